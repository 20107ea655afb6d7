"""The command line's small surprises, each fixed: export-table's format and overwrite,
help text, one-line errors, short "unknown" lists, number and name formatting, options
before `--` in `run`, and where the default environment name came from."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import typer.main
from typer.testing import CliRunner

import reprocas
from reprocas.cli.main import app
from reprocas.cli.output import plural, quote_name
from reprocas.model.display import format_number
from tests.integration._helpers import assert_ok, assert_one_line_error, run_cli
from tests.integration.conftest import Cli

RUNNER = CliRunner()


def _invoke(repo_path: Path, *args: str) -> str:
    """Run the app in-process (Typer's CliRunner) and return its output; must succeed."""
    res = RUNNER.invoke(app, ["--repo", str(repo_path), *args])
    assert res.exit_code == 0, (res.output, res.exception)
    return res.output


@pytest.fixture
def tables(repo: reprocas.Repo, tmp_path: Path) -> Path:
    """visits@v1 and visits@v2: a CSV table keyed by encounter_id, one value changed."""
    src = tmp_path / "src"
    src.mkdir()
    t = pa.table({"encounter_id": [10, 20, 30], "site": ["AMS", "BER", "CPH"]})
    pacsv.write_csv(t, src / "visits.csv")
    repo.commit(src, "visits")
    pacsv.write_csv(t.set_column(1, "site", pa.array(["AMS", "BER", "DUB"])), src / "visits.csv")
    repo.commit(src, "visits")
    return src


# -- export-table -------------------------------------------------------------------------


def test_export_table_takes_the_format_from_the_suffix(
    tables: Path, cli: Cli, tmp_path: Path
) -> None:
    out = tmp_path / "v1.csv"
    assert_ok(cli("export-table", "visits@v1", "visits.csv", "--to", out))
    assert out.read_text().startswith('"encounter_id","site"')
    pq_out = tmp_path / "v1.pq"
    assert_ok(cli("export-table", "visits@v1", "visits.csv", "--to", pq_out))
    assert pq.read_table(pq_out).num_rows == 3


def test_export_table_refuses_an_unknown_suffix(tables: Path, cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "v1.json"
    assert_one_line_error(
        cli("export-table", "visits@v1", "visits.csv", "--to", out), 2, "v1.json", "--format"
    )
    assert not out.exists()
    # Saying the format is enough, whatever the name.
    assert_ok(cli("export-table", "visits@v1", "visits.csv", "--to", out, "--format", "csv"))
    assert out.read_text().startswith('"encounter_id"')


def test_export_table_refuses_to_overwrite_without_force(
    tables: Path, cli: Cli, tmp_path: Path
) -> None:
    out = tmp_path / "v.csv"
    out.write_text("keep me")
    assert_one_line_error(
        cli("export-table", "visits@v1", "visits.csv", "--to", out), 2, "exists", "--force"
    )
    assert out.read_text() == "keep me"
    assert_ok(cli("export-table", "visits@v1", "visits.csv", "--to", out, "--force"))
    assert out.read_text().startswith('"encounter_id"')


# -- help ---------------------------------------------------------------------------------


def _commands() -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = []

    def walk(cmd: click.Command, path: str) -> None:
        out.append((path, cmd))
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                walk(sub, f"{path} {name}")

    walk(typer.main.get_command(app), "reprocas")
    return out


def test_every_command_has_a_one_line_summary_and_every_option_help() -> None:
    """Typer shows a docstring's first paragraph in the command list: a paragraph broken
    over lines prints broken mid-sentence there."""
    for path, cmd in _commands():
        first = (cmd.help or "").strip().split("\n\n")[0]
        assert first and "\n" not in first, f"{path}: first paragraph {first!r}"
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden:
                assert p.help, f"{path} {p.opts[0]} has no help"


def test_diff_help_says_what_applies_to_versions_and_to_runs() -> None:
    text = RUNNER.invoke(app, ["diff", "--help"], env={"COLUMNS": "250"}).output
    assert "Two dataset versions" in text and "Two runs" in text
    assert "reprocas diff clinical@v1 clinical@v2" in text
    assert "reprocas diff train#1 train#2" in text
    assert "Versions only" in text


def test_forget_help_explains_the_calendar_rules() -> None:
    text = RUNNER.invoke(app, ["forget", "--help"], env={"COLUMNS": "250"}).output
    for unit in ("hours", "days", "weeks", "months", "years"):
        assert f"last N {unit}" in text


def test_verify_bad_subset_is_one_line(repo: reprocas.Repo, cli: Cli) -> None:
    assert_one_line_error(cli("verify", "--read-data-subset", "200"), 2, "--read-data-subset")


# -- unknown names ------------------------------------------------------------------------


def test_unknown_ref_lists_a_few_datasets_and_names_the_command(
    repo: reprocas.Repo, cli: Cli, tmp_path: Path
) -> None:
    src = tmp_path / "s"
    src.mkdir()
    (src / "f").write_text("x")
    long = "a-dataset-with-a-really-long-name-that-goes-on-and-on"
    for i in range(12):
        repo.commit(src, f"{long}-{i:02d}")
    repo.close()
    for args, code in (
        (("show", "nope"), 4),
        (("show", "nope@v1"), 4),
        (("forget", "--dataset", "nope", "--keep-last", "1"), 4),
        (("repack", "--deltas", "--dataset", "nope"), 4),
    ):
        line = assert_one_line_error(cli(*args), code, "and 7 more", "`reprocas datasets`")
        assert len(line) < 400, line
        assert line.count(long[:20]) == 5, line


# -- output -------------------------------------------------------------------------------


def test_one_number_formatter() -> None:
    assert format_number(100000) == "100000"
    assert format_number(100000.0) == "100000"
    assert format_number(123456.7) == "123456.7"
    assert format_number(0.123456) == "0.1235"
    assert format_number(2.5, sign=True) == "+2.5"
    assert format_number("x") == "x"


def test_runs_prints_numbers_as_the_timeline_does(repo_path: Path, cli: Cli) -> None:
    reprocas.Repo.init(repo_path).close()
    work = repo_path.parent / "work"
    work.mkdir()
    code = "import json; json.dump({'n': 100000.0, 'acc': 0.5}, open('m.json', 'w'))"
    assert_ok(
        run_cli(
            "run", "-n", "t", "--env", "none", "-p", "n=100000", "--metrics", "m.json",
            "--", sys.executable, "-c", code,
            repo=repo_path, cwd=work,
        )
    )  # fmt: skip
    runs = assert_ok(cli("runs")).out
    timeline = assert_ok(cli("log", "--timeline")).out
    assert "n=100000" in runs and "1e+05" not in runs, runs
    assert "n=100000" in timeline and "1e+05" not in timeline, timeline


def test_diff_samples_read_as_key_equals_value(tables: Path, repo_path: Path) -> None:
    out = _invoke(repo_path, "diff", "visits@v1", "visits@v2", "--key", "encounter_id")
    assert 'encounter_id=30  site: "CPH" -> "DUB"' in out, out
    assert "{" not in out, out


def test_plural() -> None:
    assert plural(1, "file") == "1 file"
    assert plural(2, "file") == "2 files"
    assert plural(1, "entry", "entries") == "1 entry"


def test_commit_says_1_file(repo_path: Path, tmp_path: Path) -> None:
    reprocas.Repo.init(repo_path).close()
    f = tmp_path / "one.txt"
    f.write_text("x")
    out = _invoke(repo_path, "commit", str(f), "-d", "one")
    assert "1 file," in out and "1 files" not in out, out


def test_ls_quotes_names_as_gnu_ls(repo: reprocas.Repo, cli: Cli, tmp_path: Path) -> None:
    src = tmp_path / "odd"
    src.mkdir()
    (src / "a\nb").write_text("1")
    (src / "plain.csv").write_text("2")
    (src / "with space").write_text("3")
    (src / "bell\x07").write_text("4")
    repo.commit(src, "odd")
    (src / "a\nb").write_text("changed")
    repo.commit(src, "odd")
    repo.close()
    diff = assert_ok(cli("diff", "odd@v1", "odd@v2")).out
    assert "changed  'a'$'\\n''b'  (" in diff, diff
    res = assert_ok(cli("ls", "odd@v1"))
    lines = res.out.splitlines()
    assert len(lines) == 4, res.out
    names = [ln.split(maxsplit=2)[2] for ln in lines]
    assert set(names) == {"'a'$'\\n''b'", "plain.csv", "'with space'", "'bell'$'\\a'"}
    # The JSON keeps the names as they are.
    assert {e["path"] for e in assert_ok(cli("ls", "odd@v1", "--json")).json()} == {
        "a\nb",
        "plain.csv",
        "with space",
        "bell\x07",
    }
    assert quote_name("it's") == '"it\'s"'


# -- run ----------------------------------------------------------------------------------


def test_run_refuses_an_unknown_option_before_the_command(repo: reprocas.Repo, cli: Cli) -> None:
    repo.close()
    res = cli("run", "--input-free")
    assert res.returncode == 2, res.describe()
    assert "--input-free" in res.err
    assert assert_ok(cli("runs", "--json")).json() == []


# -- environment name ---------------------------------------------------------------------


def test_env_snapshot_says_where_its_name_came_from(
    repo: reprocas.Repo, cli: Cli, tmp_path: Path
) -> None:
    repo.close()
    project = tmp_path / "myproj"
    project.mkdir()
    res = assert_ok(cli("env", "snapshot", "--project", project))
    assert f"name env/myproj (from the project directory {project}" in res.out, res.out
    assert "--name" in res.out
    named = assert_ok(cli("env", "snapshot", "--project", project, "--name", "gpu", "--json"))
    assert named.json()["name"] == "env/gpu"
    assert named.json()["name_from"] == "option"


def test_unknown_environment_lists_a_few(repo: reprocas.Repo, cli: Cli, tmp_path: Path) -> None:
    repo.close()
    project = tmp_path / "proj"
    project.mkdir()
    for i in range(7):
        assert_ok(cli("env", "snapshot", "--project", project, "--name", f"e{i}", "--json"))
    line = assert_one_line_error(cli("env", "show", "env/nope"), 4, "and 2 more")
    assert "`reprocas env log`" in line and "env/e5" not in line


def test_run_says_where_its_environment_name_came_from(repo: reprocas.Repo, tmp_path: Path) -> None:
    repo.close()
    work = tmp_path / "myproj"
    work.mkdir()
    res = assert_ok(
        run_cli(
            "run", "-n", "t", "--", sys.executable, "-c", "pass", repo=tmp_path / "repo", cwd=work
        )
    )
    assert f"environment env/myproj@v1 (named after the working directory {work})" in res.err
    res = assert_ok(
        run_cli(
            "run", "-n", "t", "--env-name", "gpu-box", "--json", "--",
            sys.executable, "-c", "pass", repo=tmp_path / "repo", cwd=work,
        )
    )  # fmt: skip
    assert res.json()["environment"]["ref"] == "env/gpu-box@v1"
    res = assert_ok(
        run_cli(
            "run", "-n", "t", "--env-name", "gpu-box", "--",
            sys.executable, "-c", "pass", repo=tmp_path / "repo", cwd=work,
        )
    )  # fmt: skip
    assert "environment env/gpu-box@v1 (--env-name)" in res.err
