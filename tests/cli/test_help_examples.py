"""Every program's --help shows its description's examples as written: a line continuation (a backslash at a
line end) stays, with its indented next line below it, never joined into one long line."""
import importlib
import re
import sys
import tomllib

import pytest

from helpers import PROJECT_DIR

with open(f"{PROJECT_DIR}/pyproject.toml", "rb") as _f:
    SCRIPTS = tomllib.load(_f)["project"]["scripts"]


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_help_keeps_the_examples_line_continuations(script, monkeypatch, capsys):
    module, function = SCRIPTS[script].split(":")
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    with pytest.raises(SystemExit) as exit_info:
        getattr(importlib.import_module(module), function)()
    assert exit_info.value.code in (0, None)
    description = capsys.readouterr().out.split("\noptions:")[0].splitlines()
    for number, line in enumerate(description):
        assert not re.search(r"\S {4,}--", line), f"{script} --help joined an example's lines: {line!r}"
        if line.endswith(" \\"):
            indent = len(line) - len(line.lstrip())
            following = description[number + 1]
            assert len(following) - len(following.lstrip()) > indent, f"{script} --help: {line!r} / {following!r}"
