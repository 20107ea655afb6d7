"""The moto fixture is a real S3 server that honours the conditional headers the
remote protocol relies on (checked with boto3, independently of reprocas._core)."""

from __future__ import annotations

import pytest

from tests.s3server import S3Server

boto3 = pytest.importorskip("boto3")
botocore_exceptions = pytest.importorskip("botocore.exceptions")


def _client(server: S3Server):  # type: ignore[no-untyped-def]
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def _status(exc: Exception) -> int:
    return int(exc.response["ResponseMetadata"]["HTTPStatusCode"])  # type: ignore[attr-defined]


def test_moto_honours_if_none_match_and_if_match(s3_server: S3Server) -> None:
    c = _client(s3_server)
    b = s3_server.bucket
    first = c.put_object(Bucket=b, Key="refs/a", Body=b"1", IfNoneMatch="*")["ETag"]
    with pytest.raises(botocore_exceptions.ClientError) as exc:
        c.put_object(Bucket=b, Key="refs/a", Body=b"2", IfNoneMatch="*")
    assert _status(exc.value) == 412
    second = c.put_object(Bucket=b, Key="refs/a", Body=b"2", IfMatch=first)["ETag"]
    assert second != first
    with pytest.raises(botocore_exceptions.ClientError) as exc:
        c.put_object(Bucket=b, Key="refs/a", Body=b"3", IfMatch=first)
    assert _status(exc.value) == 412
    # If-Match on a missing key: 404 NoSuchKey, not 412.
    with pytest.raises(botocore_exceptions.ClientError) as exc:
        c.put_object(Bucket=b, Key="refs/missing", Body=b"x", IfMatch=first)
    assert _status(exc.value) == 404
    assert c.get_object(Bucket=b, Key="refs/a")["Body"].read() == b"2"


def test_reset_between_tests_empties_the_bucket(s3_server: S3Server) -> None:
    c = _client(s3_server)
    c.put_object(Bucket=s3_server.bucket, Key="left-over", Body=b"x")
    s3_server.reset()
    assert c.list_objects_v2(Bucket=s3_server.bucket).get("KeyCount", 0) == 0


def test_a_stopped_server_refuses_connections(fresh_s3_server: S3Server) -> None:
    c = _client(fresh_s3_server)
    c.put_object(Bucket=fresh_s3_server.bucket, Key="k", Body=b"x")
    fresh_s3_server.stop()
    with pytest.raises(botocore_exceptions.EndpointConnectionError):
        _client(fresh_s3_server).get_object(Bucket=fresh_s3_server.bucket, Key="k")
