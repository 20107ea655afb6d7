"""How params reach a command: placeholders, variables, and arguments that disagree."""

from __future__ import annotations

import pytest

from reprocas.provenance.errors import ParamsError
from reprocas.provenance.run_argv import (
    command_line,
    conflicts,
    env_name,
    expand,
    param_variables,
    recorded_command_line,
)


def test_expand_placeholders_escapes_and_other_braces() -> None:
    p = {"lr": 0.1, "name": "a b", "model": {"depth": 3}, "xs": [1, 2], "on": True}
    got = expand(
        ["x", "--lr={lr}", "{{lr}}", "{{{lr}}}", "{name}", "{model.depth}", "{xs}", "{on}"], p
    )
    assert got == ["x", "--lr=0.1", "{lr}", "{0.1}", "a b", "3", "[1,2]", "true"]
    kept = ["{}", "{'a': 1}", '{"k": 2}', "{ lr }", "{1x}"]
    assert expand(kept, p) == kept
    assert expand(["{model}"], p) == ['{"depth":3}']
    with pytest.raises(ParamsError, match=r"\{model.width\}.*not a parameter"):
        expand(["{model.width}"], p)
    with pytest.raises(ParamsError, match="none were given"):
        expand(["{lr}"], {})


def test_conflicts_read_arguments_as_argparse_would() -> None:
    p = {"lr": 0.1, "batch_size": 32, "name": "resnet", "verbose": True, "cfg": {"a": 1}}

    def names(*argv: str) -> list[tuple[str, str]]:
        return [(c["name"], c["argv"]) for c in conflicts(["prog", *argv], p)]

    assert names("--lr", "0.1", "--batch-size", "32", "--name", "resnet") == []
    assert names("--lr=1e-1", "--batch_size=32.0") == []  # the same numbers
    assert names("--lr", "0.5") == [("lr", "0.5")]
    assert names("--lr=-0.5") == [("lr", "-0.5")]
    assert names("--lr", "-0.5") == [("lr", "-0.5")]  # a negative number is a value
    assert names("--lr", "--name", "x") == [("name", "x")]  # --lr has no value here
    assert names("--lr", "0.5", "--lr", "0.1") == []  # the last one counts
    assert names("--verbose", "data.csv") == []  # a bare flag is true
    assert names("--verbose", "false") == [("verbose", "false")]
    assert names("--cfg", "{}") == []  # nested params are not compared
    assert names("--", "--lr", "0.5") == []  # after --, arguments are not options
    assert names("-lr", "0.5", "--LR", "0.5") == []  # one dash, other case: not the name
    assert conflicts(["prog", "--name", "vgg"], p)[0] == {
        "name": "name",
        "param": "resnet",
        "argv": "vgg",
        "flag": "--name",
    }


def test_variables_names_and_the_recorded_command() -> None:
    assert env_name("model.hidden-size") == "REPROCAS_PARAM_MODEL_HIDDEN_SIZE"
    got, notes = param_variables({"a-b": 1, "a_b": "x", "c": None})
    assert got == {"REPROCAS_PARAM_A_B": "x", "REPROCAS_PARAM_C": "null"}
    assert len(notes) == 1 and "a-b and a_b" in notes[0]
    line = command_line(["p", "--lr", "{lr}"], {"lr": 0.5})
    assert line.argv == ["p", "--lr", "0.5"] and line.extra() == {"argv": line.argv}
    assert command_line(["p"], {"lr": 0.5}).extra() == {}
    # a run recorded before placeholders were expanded ran its braces literally
    old = recorded_command_line(["p", "{lr}"], {"lr": 0.5}, {})
    assert old.argv == ["p", "{lr}"]
    new = recorded_command_line(["p", "{lr}"], {"lr": 0.5}, {"argv": ["p", "0.5"]})
    assert new.argv == ["p", "0.5"]
