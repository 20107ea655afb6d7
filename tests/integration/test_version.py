"""``reprocas --version`` and ``reprocas version [--json]``, as real processes."""

from __future__ import annotations

from pathlib import Path

import reprocas
from reprocas import _core
from reprocas.store.packs import PACK_VERSIONS
from reprocas.store.repository import FORMAT_VERSION, FORMAT_VERSION_DEFAULT
from tests.integration._helpers import assert_ok, run_cli


def test_version_says_what_it_reads_writes_and_how_it_was_built(tmp_path: Path) -> None:
    build = "release" if _core.is_release_build() else "debug"
    # no repository anywhere (and a --repo that is not one): the version needs none
    info = assert_ok(run_cli("version", "--json", cwd=tmp_path)).json()
    assert info["version"] == reprocas.__version__
    repo_fmt = info["formats"]["repository"]
    assert repo_fmt["reads"] == list(range(1, FORMAT_VERSION + 1))
    # init creates format 3 (content ids) by default; format 2 on request.
    assert repo_fmt["creates"] == FORMAT_VERSION_DEFAULT == 3
    assert repo_fmt["writes"] == [1, 2, 3] and repo_fmt["can_create"] == [2, 3]
    assert info["formats"]["pack"]["reads"] == list(PACK_VERSIONS)
    assert (info["native"]["version"], info["native"]["build"]) == (_core.__version__, build)
    assert Path(info["native"]["path"]).samefile(_core.__file__)
    text = assert_ok(run_cli("--version", repo=tmp_path / "nowhere", cwd=tmp_path)).out
    assert text.splitlines()[0].startswith(f"reprocas {reprocas.__version__} ")
    assert (
        "repository format: reads 1, 2, 3, writes 1, 2, 3, creates 3 (2 with `init --format 2`)"
    ) in text
    assert f"{build} build" in text
    assert assert_ok(run_cli("version", cwd=tmp_path)).out == text
