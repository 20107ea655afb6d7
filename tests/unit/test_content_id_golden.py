"""The worked content-id example of docs/FORMAT.md ("Content id: a worked example") is
right: recomputed with plain ``blake3`` and ``msgpack`` (as a third party would), with
reprocas's own listing code, and by a real commit into a format-3 repository."""

from __future__ import annotations

import os
from pathlib import Path

import blake3
import msgpack

import reprocas
from reprocas.store.content import content_id, dir_items

DOC = Path(__file__).resolve().parents[2] / "docs" / "FORMAT.md"
MARK = "<!-- golden: content-id-example -->"

HELLO = b"hello\n"
RUN = b"#!/bin/sh\necho hi\n"


def _documented() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    block = text.split(MARK, 1)[1].split("```", 2)[1]
    out = {}
    for line in block.splitlines():
        if "=" in line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def _h(data: bytes) -> bytes:
    return blake3.blake3(data).digest()


def test_the_worked_example_recomputes_without_reprocas() -> None:
    doc = _documented()
    d_hello, d_run = _h(HELLO), _h(RUN)
    assert doc["digest(hello.txt)"] == d_hello.hex()
    assert doc["digest(bin/run)"] == d_run.hex()
    sub = {"entries": [["run", "file", 0o755, d_run, len(RUN)]], "type": "tree", "v": 3}
    enc_sub = msgpack.packb(sub, use_bin_type=True)
    assert doc["encoding(bin)"] == enc_sub.hex()
    assert doc["id(bin)"] == _h(enc_sub).hex()
    root = {
        "entries": [
            ["bin", "dir", 0o755, _h(enc_sub), 0],
            ["hello.txt", "file", 0o644, d_hello, len(HELLO)],
            ["link", "symlink", 0o777, b"hello.txt", 0],
        ],
        "type": "tree",
        "v": 3,
    }
    enc_root = msgpack.packb(root, use_bin_type=True)
    assert doc["encoding(root)"] == enc_root.hex()
    assert doc["content id"] == _h(enc_root).hex()


def _example(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin").chmod(0o755)
    (root / "hello.txt").write_bytes(HELLO)
    (root / "hello.txt").chmod(0o644)
    (root / "bin" / "run").write_bytes(RUN)
    (root / "bin" / "run").chmod(0o755)
    os.symlink("hello.txt", root / "link")
    return root


def test_reprocas_gives_the_documented_content_id(tmp_path: Path) -> None:
    want = _documented()["content id"]
    src = _example(tmp_path / "src")
    cid = content_id(dir_items(src))
    assert cid is not None and cid.hex() == want
    with reprocas.Repo.init(tmp_path / "repo", format=3) as repo:
        repo.commit(src, "example")
        assert repo.show("example").content_id == want
