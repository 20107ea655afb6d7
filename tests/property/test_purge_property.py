"""Property: whichever versions `rm --purge` removes, the kept ones read back byte for
byte, every delta frame left still decodes, and no byte unique to a removed version is
stored anywhere under the repository (issue 13, "Removing what must go").

One repository is built once (a clinical-like table in five versions, each changed a
little from the one before, so chunks are shared and stored as deltas, with a line
only that version holds); each example copies it and purges a random subset.
"""

from __future__ import annotations

import atexit
import functools
import random
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reprocas
from tests.integration._helpers import stored_bytes

VERSIONS = 5
ROWS = 12_000


@functools.cache
def _base() -> tuple[Path, dict[str, dict[str, bytes]], dict[str, bytes]]:
    """The repository, each version's files, and each version's own marker line."""
    work = Path(tempfile.mkdtemp(prefix="reprocas-prop-purge-"))
    atexit.register(shutil.rmtree, work, True)
    repo_path = work / "repo"
    rng = random.Random(5)
    rows = [f"{i},P{rng.randrange(10**6):06d},{rng.random():.5f}\n" for i in range(ROWS)]
    files: dict[str, dict[str, bytes]] = {}
    markers: dict[str, bytes] = {}
    with reprocas.Repo.init(repo_path, pack_size=256 << 10) as repo:
        for v in range(1, VERSIONS + 1):
            for k in rng.sample(range(ROWS), ROWS // 300):
                rows[k] = f"{k},P{rng.randrange(10**6):06d},{rng.random():.5f}\n"
            marker = f"only-v{v}-{rng.randbytes(24).hex()}".encode()
            at = rng.randrange(ROWS)
            table = "".join(rows[:at]) + marker.decode() + "\n" + "".join(rows[at:])
            src = work / f"src{v}"
            src.mkdir()
            (src / "table.csv").write_text(table)
            (src / "static.txt").write_text("unchanged\n" * 200)
            repo.commit(src, "cohort", message=f"v{v}")
            ref = f"cohort@v{v}"
            files[ref] = {p.name: p.read_bytes() for p in src.iterdir()}
            markers[ref] = marker
    stored = stored_bytes(repo_path)
    assert stored.delta_bases, "the versions must be stored partly as deltas"
    assert len(stored.files) > 8, "and in several packs"
    return repo_path, files, markers


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(removed=st.sets(st.integers(1, VERSIONS), min_size=1, max_size=VERSIONS))
def test_purged_versions_leave_no_byte_and_kept_ones_read_back(removed: set[int]) -> None:
    base, files, markers = _base()
    with tempfile.TemporaryDirectory(prefix="reprocas-prop-purge-ex-") as tmp:
        repo_path = Path(tmp) / "repo"
        shutil.copytree(base, repo_path)
        gone = [f"cohort@v{v}" for v in sorted(removed)]
        with reprocas.Repo.open(repo_path) as repo:
            result = repo.rm(gone, purge=True, lease_wait=5)
            assert result.removed == gone
            assert result.purge_report.verify["ok"]
            kept = {e.ref for e in repo.log()}
            assert kept == set(files) - set(gone)
            for ref in kept:
                for name, data in files[ref].items():
                    assert repo.cat(ref, name) == data, f"{ref}:{name} changed"
            assert repo.verify(read_data=True).ok
        stored = stored_bytes(repo_path)
        assert stored.undecodable == []
        for ref, marker in markers.items():
            if ref in gone:
                assert stored.where(marker) == [], f"{ref}'s own line is still stored"
            else:
                assert stored.where(marker), f"{ref}'s own line is missing"
