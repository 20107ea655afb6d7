"""Delta chunks (issue 8): exact checkouts, bounded chains, bases kept alive by prune,
and clear errors when a base is damaged or missing. Real repositories, real packs."""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reprocas
from reprocas.errors import CorruptDataError, IntegrityError
from reprocas.model.chunking import DeltaConfig
from reprocas.store.packs import CODEC_DELTA, FrameInfo, read_trailer
from reprocas.store.repository import version_ref
from tests.integration._helpers import assert_checkout_equals, run_cli, verify_ok
from tests.integration.trees import describe

ROWS = 40_000


def rows(seed: int, n: int = ROWS) -> list[str]:
    rng = random.Random(seed)
    return [
        f"{i},P{rng.randrange(10**6):06d},2024-0{1 + i % 9}-{1 + i % 28:02d},"
        f"{rng.random() * 200:.3f},{rng.choice(['A', 'B', 'C'])},note {rng.randrange(10**9)}\n"
        for i in range(n)
    ]


def mutate(lines: list[str], rng: random.Random, kind: str) -> None:
    """Change a table the way clinical tables change (scattered, small)."""
    n = len(lines)
    if kind == "edit":
        for k in rng.sample(range(n), n // 200):
            lines[k] = lines[k].replace(",", ";", 1)
    elif kind == "delete":
        for k in sorted(rng.sample(range(n), n // 100), reverse=True):
            del lines[k]
    elif kind == "insert":
        for k in sorted(rng.sample(range(n), n // 100), reverse=True):
            lines.insert(k, f"late,{rng.randrange(10**9)},{rng.random():.4f}\n")
    else:
        lines.extend(f"new,{rng.randrange(10**9)},{rng.random():.4f}\n" for _ in range(n // 50))


def write(src: Path, lines: list[str]) -> None:
    src.mkdir(exist_ok=True)
    (src / "enc.csv").write_text("".join(lines))
    (src / "static.txt").write_text("unchanged\n" * 100)


def delta_frames(root: Path) -> list[FrameInfo]:
    out: list[FrameInfo] = []
    for p in sorted((root / "packs").glob("*/*.pack")):
        out += [f for f in read_trailer(p).frames if f.codec == CODEC_DELTA]
    return out


def build_series(
    tmp_path: Path,
    versions: int,
    seed: int = 1,
    added: list[int] | None = None,
    fmt: int | None = None,
    **cfg: Any,
) -> tuple[Path, list[Path]]:
    root = tmp_path / "repo"
    store_cfg = DeltaConfig(**cfg) if cfg else None
    repo = reprocas.Repo.init(root, deltas=store_cfg, format=fmt)
    rng = random.Random(seed)
    lines = rows(seed)
    snapshots = []
    kinds = ["append", "edit", "delete", "insert"]
    with repo:
        for v in range(versions):
            if v:
                mutate(lines, rng, kinds[(v - 1) % len(kinds)])
            src = tmp_path / f"src{v + 1}"
            write(src, lines)
            r = repo.commit(src, "enc")
            if added is not None:
                added.append(r.new_bytes)
            snapshots.append(src)
    return root, snapshots


def test_every_version_checks_out_exactly_and_later_versions_cost_little(tmp_path: Path) -> None:
    added: list[int] = []
    root, sources = build_series(tmp_path, 5, added=added)
    frames = delta_frames(root)
    assert frames, "no delta frames were written"
    with reprocas.Repo.open(root) as repo:
        for v, src in enumerate(sources, 1):
            assert_checkout_equals(repo, f"enc@v{v}", describe(src), tmp_path / f"out{v}")
            assert repo.cat(f"enc@v{v}", "enc.csv") == (src / "enc.csv").read_bytes()
            with repo.open_file(f"enc@v{v}", "enc.csv") as f:
                f.seek(12345)
                assert f.read(5000) == (src / "enc.csv").read_bytes()[12345:17345]
    # Scattered edits of 1 row in 100-200 touch nearly every chunk; deltas keep the
    # later versions' cost to a small fraction of the first's.
    assert all(a < added[0] * 0.2 for a in added[1:]), added
    report = verify_ok(root)
    assert report["chunks_read"] > 0


def test_chains_never_exceed_the_bound(tmp_path: Path) -> None:
    root, sources = build_series(tmp_path, 9, max_depth=2)
    frames = delta_frames(root)
    assert frames
    assert max(f.depth for f in frames) <= 2
    depth = {}
    for f in frames:
        for d, _, _ in f.chunks:
            depth[d] = f.depth
    for f in frames:  # a delta is exactly one deeper than its deepest base
        assert f.depth == 1 + max(depth.get(b, 0) for b in f.bases)
    with reprocas.Repo.open(root) as repo:
        assert_checkout_equals(repo, "enc@v9", describe(sources[-1]), tmp_path / "out")


def test_deltas_off_and_format_1_repositories_write_plain_frames(tmp_path: Path) -> None:
    # A format 2 repository, marked format 1 below (formats 1 and 2 share trees).
    root, sources = build_series(tmp_path, 3, fmt=2, enabled=False)
    assert not delta_frames(root)
    marker = json.loads((root / "reprocas.json").read_text())
    assert marker["version"] == 2 and marker["deltas"]["enabled"] is False
    # A format 1 repository (written before deltas) opens and commits as before.
    old = tmp_path / "old"
    shutil.copytree(root, old)
    marker["version"] = 1
    del marker["deltas"]
    (old / "reprocas.json").write_text(json.dumps(marker))
    src = tmp_path / "src_next"
    lines = (sources[-1] / "enc.csv").read_text().splitlines(keepends=True)
    mutate(lines, random.Random(5), "edit")
    write(src, lines)
    with reprocas.Repo.open(old) as repo:
        repo.commit(src, "enc")
        assert_checkout_equals(repo, "enc@v4", describe(src), tmp_path / "out")
    assert not delta_frames(old)


def _base_pack(root: Path) -> Path:
    """The pack holding v1's data frames (the bases of v2's deltas)."""
    bases = {b for f in delta_frames(root) for b in f.bases}
    for p in (root / "packs").glob("*/*.pack"):
        t = read_trailer(p)
        if any(d in bases for f in t.frames if f.codec != CODEC_DELTA for d, _, _ in f.chunks):
            return p
    raise AssertionError("no pack holds a base")


def test_a_corrupt_base_is_reported_for_every_version_that_depends_on_it(tmp_path: Path) -> None:
    root, _ = build_series(tmp_path, 4)
    pack = _base_pack(root)
    t = read_trailer(pack)
    f = next(f for f in t.frames if f.codec != CODEC_DELTA)
    data = bytearray(pack.read_bytes())
    data[f.offset + f.stored_len // 2] ^= 0xFF
    pack.write_bytes(bytes(data))
    res = run_cli("verify", "--read-data", "--json", repo=root)
    assert res.returncode != 0
    report = json.loads(res.stdout)
    affected = {v for p in report["problems"] for v in p["versions"]}
    # the version holding the damaged frame, and every later one coded against it
    assert len(affected) >= 2 and "enc@v4" in affected, report["problems"][:3]
    delta_problems = [p for p in report["problems"] if "delta frame" in p["message"]]
    assert delta_problems, "frames whose base is damaged must be reported too"
    with reprocas.Repo.open(root) as repo:
        out = tmp_path / "out"
        with pytest.raises(CorruptDataError):
            repo.checkout("enc@v4", out)
        assert not (out / "enc.csv").exists()


def test_a_missing_base_is_an_integrity_error_naming_the_versions(tmp_path: Path) -> None:
    root, _ = build_series(tmp_path, 3)
    base = next(iter({b for f in delta_frames(root) for b in f.bases}))
    with reprocas.Repo.open(root) as repo:
        index = repo.store.index
        with index.write() as txn:
            assert txn.delete(base, db=index.db["chunks"])
    res = run_cli("verify", "--json", repo=root)
    assert res.returncode != 0
    missing = [p for p in json.loads(res.stdout)["problems"] if base.hex() in p["message"]]
    assert missing and "enc@v2" in missing[0]["versions"], missing
    res = run_cli("checkout", "enc@v3", tmp_path / "out", repo=root)
    assert res.returncode != 0
    assert "missing" in res.err and "Traceback" not in res.err


MUTATIONS = ("edit", "delete", "insert", "append")
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("commit"), st.sampled_from(MUTATIONS), st.integers(0, 2**32 - 1)),
        st.tuples(st.just("forget"), st.integers(0, 63), st.just(0)),
        st.tuples(st.just("prune"), st.just(""), st.just(0)),
    ),
    min_size=4,
    max_size=9,
)


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=_OPS)
def test_prune_never_loses_what_a_kept_delta_needs(
    tmp_path: Path, ops: list[tuple[str, Any, int]]
) -> None:
    """Random commit / forget / prune sequences (the mutation, its seed and the victim
    of each forget drawn by hypothesis): every kept version still checks out exactly,
    and verify --read-data passes (bases of kept deltas survive prune)."""
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    lines = rows(3, 15_000)
    kept: dict[int, bytes] = {}
    with reprocas.Repo.init(work / "repo") as repo:
        n = 0
        for op, arg, seed in [("commit", "append", 0), *ops]:
            if op == "commit":
                if n:
                    mutate(lines, random.Random(seed), arg)
                src = work / "src"
                write(src, lines)
                n = repo.commit(src, "t").number
                kept[n] = (src / "enc.csv").read_bytes()
            elif op == "forget" and len(kept) > 1:
                candidates = sorted(kept)[:-1]
                victim = candidates[arg % len(candidates)]
                with repo.store.index.read() as txn:
                    sid = repo.store.resolve(txn, f"t@v{victim}").id
                with repo.store.ref_transaction() as rt:
                    rt.delete([(version_ref("t", victim), sid)])
                del kept[victim]
            elif op == "prune":
                repo.prune(max_unused=0.0)
            for v, data in kept.items():
                assert repo.cat(f"t@v{v}", "enc.csv") == data
        assert repo.verify(read_data=True).ok


def test_damaged_delta_record_is_a_clear_error(tmp_path: Path) -> None:
    root, _ = build_series(tmp_path, 2)
    with reprocas.Repo.open(root) as repo:
        index = repo.store.index
        with index.write() as txn:
            txn.drop(index.db["deltas"], delete=False)
        with pytest.raises(IntegrityError, match="bases"):
            repo.checkout("enc@v2", tmp_path / "out")
        # index rebuild restores the delta records from the pack trailers
        repo.rebuild_index()
    with reprocas.Repo.open(root) as repo:
        repo.checkout("enc@v2", tmp_path / "out2")


def test_repack_deltas_upgrades_a_format_1_history_and_prune_reclaims(tmp_path: Path) -> None:
    root, sources = build_series(tmp_path, 5, fmt=2, enabled=False)
    marker = json.loads((root / "reprocas.json").read_text())
    marker["version"] = 1
    del marker["deltas"]
    (root / "reprocas.json").write_text(json.dumps(marker))

    def packs_bytes() -> int:
        return sum(p.stat().st_size for p in (root / "packs").glob("*/*.pack"))

    before = packs_bytes()
    res = run_cli("repack", "--deltas", "--json", repo=root)
    report = res.json()
    assert report["upgraded_format"] is True
    assert report["chunks_reencoded"] > 0 and report["bytes_after"] < report["bytes_before"]
    assert json.loads((root / "reprocas.json").read_text())["version"] == 2
    assert run_cli("repack", "--deltas", "--json", repo=root).json()["chunks_reencoded"] == 0
    assert run_cli("prune", "--max-unused", "0", repo=root).returncode == 0
    assert packs_bytes() < before * 0.6
    verify_ok(root)
    with reprocas.Repo.open(root) as repo:
        for v, src in enumerate(sources, 1):
            assert_checkout_equals(repo, f"enc@v{v}", describe(src), tmp_path / f"o{v}")
    res = run_cli("repack", "--deltas", "-d", "nope", repo=root)
    assert res.returncode == 4 and "no dataset named 'nope'" in res.err
    res = run_cli("repack", repo=root)
    assert res.returncode != 0 and "--deltas" in res.err


def test_du_charges_bases_and_stays_exact_after_repack(tmp_path: Path) -> None:
    """A version whose chunks are bases of a later version's deltas does not free
    them alone; du from counts equals the full walk, before and after a repack."""
    from reprocas.store.accounting import du

    root = tmp_path / "repo"
    lines = rows(11)
    with reprocas.Repo.init(root, deltas=DeltaConfig(enabled=False)) as repo:
        for v in range(2):
            if v:
                mutate(lines, random.Random(v), "edit")  # touches nearly every chunk
            write(tmp_path / f"s{v}", lines)
            repo.commit(tmp_path / f"s{v}", "enc")
        before = {v.ref: v.exclusive_bytes for v in du(repo.store).versions}
        assert before == {v.ref: v.exclusive_bytes for v in du(repo.store, recompute=True).versions}
    assert run_cli("repack", "--deltas", repo=root).returncode == 0
    with reprocas.Repo.open(root) as repo:
        after = {v.ref: v.exclusive_bytes for v in du(repo.store).versions}
        walked = {v.ref: v.exclusive_bytes for v in du(repo.store, recompute=True).versions}
    assert after == walked, (before, after, walked)
    # v1's chunks are now the bases of v2's deltas: forgetting v1 alone frees little
    assert after["enc@v1"] < before["enc@v1"] / 2, (before, after)


def test_a_renamed_file_is_still_coded_against_its_old_self(tmp_path: Path) -> None:
    lines = rows(21)
    src = tmp_path / "src"
    src.mkdir()
    (src / "sub").mkdir()
    (src / "sub" / "enc_2026-10.csv").write_text("".join(lines))
    (src / "notes.txt").write_text("x" * 5000)
    with reprocas.Repo.init(tmp_path / "repo") as repo:
        first = repo.commit(src, "enc").new_bytes
        mutate(lines, random.Random(2), "edit")
        (src / "sub" / "enc_2026-10.csv").unlink()
        (src / "enc_2026-11.csv").write_text("".join(lines))  # moved and renamed
        second = repo.commit(src, "enc").new_bytes
        assert second < first * 0.2, (first, second)
        assert repo.cat("enc@v2", "enc_2026-11.csv") == "".join(lines).encode()


def test_pipelined_deltas_over_many_batches_check_out_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small read batches and an early switch to compressing deltas on a worker
    thread: frames of a batch land while the next one is planned, a chunk repeated in
    the next batch is not stored twice, and every version checks out exactly."""
    import reprocas.store.commit as commit_mod

    monkeypatch.setattr(commit_mod, "BLOCK_SIZE", 256 << 10)
    monkeypatch.setattr(commit_mod, "PIPELINE_AFTER", 1)
    lines = rows(31, 60_000)
    dup = "".join(lines[:3000])  # the same run of rows twice, far apart
    rng = random.Random(4)
    with reprocas.Repo.init(tmp_path / "repo") as repo:
        added = []
        for v in range(4):
            if v:
                mutate(lines, rng, ["edit", "delete", "insert"][v - 1])
            src = tmp_path / f"s{v}"
            src.mkdir()
            (src / "t.csv").write_text(dup + "".join(lines) + dup)
            added.append(repo.commit(src, "t").new_bytes)
            assert repo.cat(f"t@v{v + 1}", "t.csv") == (src / "t.csv").read_bytes()
        assert all(a < added[0] * 0.2 for a in added[1:]), added
        assert repo.verify(read_data=True).ok
    digests = [d for f in delta_frames(tmp_path / "repo") for d, _, _ in f.chunks]
    assert digests and len(digests) == len(set(digests))
