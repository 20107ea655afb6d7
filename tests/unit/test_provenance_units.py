"""Pure parts of runs and provenance: params, metrics, names, the run object."""

from __future__ import annotations

from pathlib import Path

import pytest

from reprocas.model.ids import ObjectId
from reprocas.model.objects import Run, object_from_wire
from reprocas.provenance import graph
from reprocas.provenance.errors import MetricsError, ParamsError
from reprocas.provenance.names import parse_run_ref, run_ref
from reprocas.provenance.run import default_name
from reprocas.provenance.run_inputs import parse_input
from reprocas.provenance.run_params import parse_params, typed_metrics
from reprocas.store import codec


def test_params_values_and_files(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text("lr = 0.5\n[model]\ndepth = 3\n")
    got = parse_params(["lr=0.1", "name=resnet", "flag=true", "xs=[1,2]"], [tmp_path / "a.toml"])
    assert got == {"lr": 0.1, "name": "resnet", "flag": True, "xs": [1, 2], "model": {"depth": 3}}
    with pytest.raises(ParamsError):
        parse_params(["novalue"])
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ParamsError, match="map"):
        parse_params([], [tmp_path / "bad.json"])


def test_yaml_params_need_a_yaml_package_or_work(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("lr: 0.3\n")
    try:
        import yaml  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        with pytest.raises(ParamsError, match="YAML"):
            parse_params([], [tmp_path / "p.yaml"])
    else:
        assert parse_params([], [tmp_path / "p.yaml"]) == {"lr": 0.3}


def test_metrics_are_typed_and_checked() -> None:
    m = typed_metrics({"acc": 0.9, "loss": [1, 0.5], "val": {"f1": 0.7}}, "m")
    assert m == {
        "acc": {"kind": "scalar", "value": 0.9},
        "loss": {"kind": "series", "values": [1, 0.5]},
        "val/f1": {"kind": "scalar", "value": 0.7},
    }
    for bad in ({"a": "x"}, {"a": True}, {"a": [1, "x"]}, [1]):
        with pytest.raises(MetricsError):
            typed_metrics(bad, "m")


def test_names_and_inputs() -> None:
    assert run_ref("train", 3) == "run:train:0000000003"
    assert parse_run_ref("run:a/b:0000000012") == ("a/b", 12)
    assert parse_run_ref("ds:a:v:0000000001") is None
    assert parse_input("clinical@v3=data/c") == ("clinical@v3", "data/c")
    assert parse_input("clinical") == ("clinical", None)
    assert default_name(["python", "-u", "scripts/train.py", "--lr", "1"]) == "train"
    assert graph.code_commit(graph.code_node("ab" * 20)) == "ab" * 20


def test_run_object_round_trips_canonically() -> None:
    sid = ObjectId(b"\x01" * 32)
    run = Run(
        name="t", number=1, command=("python", "x.py"), cwd="/w", host="h", user="u",
        start_ns=1, end_ns=2, exit_code=0, status="ok", params={"b": 1, "a": 0.5},
        inputs=({"dataset": "c", "number": 1, "snapshot": sid.raw, "path": "inputs/c"},),
        outputs=(), metrics={"acc": {"kind": "scalar", "value": 1.0}},
        environment=None, code=None, root=None,
    )  # fmt: skip
    enc = codec.encode(run.to_wire())
    back = object_from_wire(codec.decode(enc))
    assert back == run
    assert codec.encode(back.to_wire()) == enc
    assert run.snapshot_ids() == [sid]
    edges = graph.run_edges(ObjectId(b"\x02" * 32), run)
    assert [(e.kind, e.dst) for e in edges] == [(graph.USED, sid.raw)]
