"""Parameters reach the command (issue 14, item 2): ``{name}`` placeholders, the
``REPROCAS_PARAMS`` file and ``REPROCAS_PARAM_<NAME>`` variables, ``reprocas.params()``
in the script, and arguments that disagree with a recorded param — through the real
command, a real git repository and real scripts; replayed the same way."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.integration._helpers import assert_ok, assert_one_line_error, git
from tests.integration.conftest import Cli

PY = sys.executable

# What the script was given, every way: its arguments, reprocas.params(), the variables
# and the JSON file.
SHOW = textwrap.dedent(
    """
    import json, os, sys
    import reprocas
    seen = {
        "argv": sys.argv[1:],
        "params": reprocas.params(),
        "file": json.load(open(os.environ["REPROCAS_PARAMS"])),
        "vars": {k: v for k, v in os.environ.items() if k.startswith("REPROCAS_PARAM_")},
    }
    with open("seen.json", "w") as f:
        json.dump(seen, f, sort_keys=True)
    """
)

# Uses its --lr argument, as a script with argparse would.
TRAIN = textwrap.dedent(
    """
    import argparse, json
    ap = argparse.ArgumentParser()
    ap.add_argument("--lr", type=float)
    ap.add_argument("--batch-size", type=int, default=1)
    a = ap.parse_args()
    with open("metrics.json", "w") as f:
        json.dump({"lr_used": a.lr, "batch": a.batch_size}, f)
    """
)


@pytest.fixture
def project(tmp_path: Path, cli: Cli) -> Path:
    """A git repository with the scripts committed, and a reprocas repository."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "show.py").write_text(SHOW)
    (proj / "train.py").write_text(TRAIN)
    (proj / ".gitignore").write_text("seen.json\nmetrics.json\nran.txt\n")
    git(proj, "init", "-q")
    git(proj, "add", "-A")
    git(proj, "commit", "-q", "-m", "scripts")
    assert_ok(cli("init"))
    return proj


def _run(cli: Cli, cwd: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    res = assert_ok(cli("run", "--json", "--env", "none", *args, cwd=cwd, env=env))
    return json.loads(res.stdout), res.err


def test_placeholders_variables_and_the_params_file_reach_the_command(
    cli: Cli, project: Path, tmp_path: Path
) -> None:
    args = ["-n", "show", "-p", "lr=0.1", "-p", "epochs=3", "-p", "model-name=tiny"]
    args += ["-p", "layers=[64,32]", "-p", "dry=false", "-o", "seen.json"]
    cmd = [PY, "show.py", "--lr", "{lr}", "--epochs={epochs}", "--literal", "{{lr}}"]
    cmd += ["--name", "{model-name}", "--layers", "{layers}", "find {}"]
    stale = {"REPROCAS_PARAM_STALE": "from an enclosing run", "REPROCAS_PARAMS": "/nowhere"}
    rec, _ = _run(cli, project, *args, "--", *cmd, env=stale)
    seen = json.loads((project / "seen.json").read_text())
    assert seen["argv"] == [
        "--lr", "0.1", "--epochs=3", "--literal", "{lr}", "--name", "tiny",
        "--layers", "[64,32]", "find {}",
    ]  # fmt: skip
    typed = {"lr": 0.1, "epochs": 3, "model-name": "tiny", "layers": [64, 32], "dry": False}
    assert seen["params"] == typed and seen["file"] == typed
    assert seen["vars"] == {  # strings as they are, the rest as JSON; nothing inherited
        "REPROCAS_PARAM_LR": "0.1",
        "REPROCAS_PARAM_EPOCHS": "3",
        "REPROCAS_PARAM_MODEL_NAME": "tiny",
        "REPROCAS_PARAM_LAYERS": "[64,32]",
        "REPROCAS_PARAM_DRY": "false",
    }
    # the record keeps the template (one source of truth) and what ran
    assert rec["command"] == cmd and rec["params"] == typed
    assert rec["argv"] == [PY, "show.py", *seen["argv"]]
    assert rec["param_conflicts"] == [] and rec["status"] == "ok"

    # a replay expands the template again from the recorded params, and passes them alike
    r = json.loads(assert_ok(cli("replay", "show", "--json", cwd=tmp_path)).stdout)
    assert r["verdict"] == "identical", r["differences"]
    assert r["run"]["command"] == cmd and r["run"]["argv"] == rec["argv"]
    replayed = json.loads((Path(r["cwd"]) / "seen.json").read_text())
    assert replayed == seen


def test_params_outside_a_run_and_in_a_run_without_params(cli: Cli, project: Path) -> None:
    import subprocess

    from tests.integration._helpers import clean_env

    out = subprocess.run(
        [PY, "-c", "import reprocas; print(reprocas.params())"],
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "{}"
    env = {"REPROCAS_PARAM_LR": "0.9", "REPROCAS_PARAMS": str(project / "nowhere.json")}
    _run(cli, project, "-n", "bare", "-o", "seen.json", "--", PY, "show.py", env=env)
    seen = json.loads((project / "seen.json").read_text())
    assert seen["params"] == {} and seen["file"] == {} and seen["vars"] == {}


def test_an_unknown_placeholder_fails_before_anything_runs(cli: Cli, project: Path) -> None:
    make = "open('ran.txt', 'w').write('ran')"
    res = cli(
        "run", "-n", "bad", "-p", "lr=0.1", "--", PY, "-c", make, "--lr", "{lr}", "{epochs}",
        cwd=project,
    )  # fmt: skip
    line = assert_one_line_error(res, 2, "{epochs}", "not a parameter", "lr", "{{epochs}}")
    assert "--param epochs=VALUE" in line
    assert not (project / "ran.txt").exists()
    assert assert_ok(cli("runs", "--json")).json() == []
    # without any params too: the name is no parameter
    res = cli("run", "-n", "bad", "--", PY, "-c", make, "{lr}", cwd=project)
    assert_one_line_error(res, 2, "{lr}", "none were given")
    assert not (project / "ran.txt").exists()


def test_an_argument_that_disagrees_with_a_param_is_warned_and_recorded(
    cli: Cli, project: Path
) -> None:
    base = ["-n", "train", "--metrics", "metrics.json"]
    rec, err = _run(cli, project, *base, "-p", "lr=0.1", "--", PY, "train.py", "--lr", "0.5")
    assert json.loads((project / "metrics.json").read_text())["lr_used"] == 0.5
    assert "reprocas: warning: the command's --lr 0.5 disagrees" in err
    assert "lr=0.1" in err and "--lr {lr}" in err
    conflict = [{"name": "lr", "param": 0.1, "argv": "0.5", "flag": "--lr"}]
    assert rec["param_conflicts"] == conflict and rec["status"] == "ok"
    [listed] = assert_ok(cli("runs", "--json")).json()
    assert listed["param_conflicts"] == conflict
    assert "arguments disagree with params: --lr 0.5" in assert_ok(cli("runs")).out

    # the same value written another way, and -/_ in the name, agree: nothing to say
    params = ["-p", "lr=0.001", "-p", "batch_size=32"]
    rec, err = _run(
        cli, project, *base, *params, "--", PY, "train.py", "--lr", "1e-3", "--batch-size=32"
    )
    assert rec["param_conflicts"] == [] and "warning" not in err
    cmd = [PY, "train.py", "--lr", "{lr}", "--batch-size", "64"]
    rec, err = _run(cli, project, *base, *params, "--", *cmd)
    assert rec["param_conflicts"] == [
        {"name": "batch_size", "param": 32, "argv": "64", "flag": "--batch-size"}
    ]
    assert "the command's --batch-size 64 disagrees" in err

    # a replay passes the same arguments, and records the same disagreement
    r = json.loads(assert_ok(cli("replay", "train#1", "--json")).stdout)
    assert r["verdict"] == "identical" and r["run"]["param_conflicts"] == conflict
