"""Property: for random small trees, ``check-dir`` (reprocas.ops.checkdir) says
"same" exactly when a byte-for-byte comparison of the directory with a checkout of the
version finds nothing different — and the content id it recomputes from the directory
equals the version's exactly then (format 3)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reprocas
from reprocas.model.chunking import ChunkingConfig
from reprocas.ops.checkdir import check_against_ref
from tests.integration.trees import describe

NAMES = st.sampled_from(["a", "b", "c.txt", "D", "é.csv"])
FILE = st.tuples(st.just("file"), st.binary(max_size=3000), st.sampled_from([0o644, 0o755, 0o600]))
LINK = st.tuples(st.just("link"), st.sampled_from(["a", "../b", "c.txt/x"]), st.just(0))
DIR = st.tuples(st.just("dir"), st.just(b""), st.sampled_from([0o755, 0o700]))
Spec = dict[str, tuple[str, object, int]]


@st.composite
def trees(draw: st.DrawFn) -> Spec:
    """Paths (depth up to 3) to what is there; a directory holds what is below it."""
    out: Spec = {}
    for _ in range(draw(st.integers(0, 8))):
        parts = draw(st.lists(NAMES, min_size=1, max_size=3))
        prefix = ""
        ok = True
        for p in parts[:-1]:
            prefix += p
            kind = out.setdefault(prefix, ("dir", b"", 0o755))[0]
            if kind != "dir":
                ok = False
                break
            prefix += "/"
        path = prefix + parts[-1]
        if ok and path not in out:
            out[path] = draw(st.one_of(FILE, LINK, DIR))
    return out


@st.composite
def mutations(draw: st.DrawFn, spec: Spec) -> Spec:
    """The tree, often unchanged, else with one path's content, mode or name changed,
    one path removed or one added."""
    out = dict(spec)
    what = draw(st.sampled_from(["none", "none", "content", "mode", "remove", "add", "rename"]))
    leaves = sorted(p for p in out if not any(q.startswith(p + "/") for q in out))
    if what == "add" or not leaves:
        name = draw(st.sampled_from(["new", "zz", "c.txt.bak"]))
        if name not in out:
            out[name] = draw(st.one_of(FILE, LINK, DIR))
        return out
    if what == "none":
        return out
    path = draw(st.sampled_from(leaves))
    kind, data, mode = out[path]
    if what == "remove":
        del out[path]
    elif what == "rename":
        del out[path]
        out[path + "2"] = (kind, data, mode)
    elif what == "mode":
        out[path] = (kind, data, {0o644: 0o755, 0o755: 0o700}.get(mode, 0o644))
    else:
        out[path] = draw(st.one_of(FILE, LINK, DIR))
    return out


def _materialise(spec: Spec, root: Path) -> None:
    root.mkdir()
    for path in sorted(spec):
        kind, data, mode = spec[path]
        p = root / path
        if kind == "dir":
            p.mkdir(exist_ok=True)
        elif kind == "link":
            os.symlink(str(data), p)
        else:
            assert isinstance(data, bytes)
            p.write_bytes(data)
    # Modes last (deepest first), so a directory without write permission is filled first.
    for path in sorted(spec, key=lambda q: -q.count("/")):
        kind, _, mode = spec[path]
        if kind != "link":
            (root / path).chmod(mode)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_check_dir_agrees_with_a_byte_comparison_of_a_checkout(data: st.DataObject) -> None:
    spec = data.draw(trees())
    other = data.draw(mutations(spec))
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        _materialise(spec, t / "src")
        _materialise(other, t / "dir")
        chunking = ChunkingConfig(min_size=256, avg_size=1024, max_size=4096)
        with reprocas.Repo.init(t / "repo", chunking=chunking, format=3) as repo:
            repo.commit(t / "src", "ds")
            repo.checkout("ds@v1", t / "out")
            res = check_against_ref(repo.store, t / "dir", "ds@v1")
        same_bytes = describe(t / "dir") == describe(t / "out")
        assert res.same == same_bytes, (spec, other, res.differences)
        assert (res.actual_id == res.expected_id) == same_bytes
        assert bool(res.differences) == (not same_bytes)
