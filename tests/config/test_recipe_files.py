"""A recipe (``-c FILE``) is a small file of plain values: anchors and aliases (which could expand a few hundred
bytes to gigabytes), keys given twice, deep nesting, unknown keys and values of the wrong shape are refused in one
line naming the file and line; a path that is no recipe file (a folder, a FIFO, a device, too large, not UTF-8)
says what it is."""
import os
import re
import threading

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from helpers.programs import assert_refused_cheaply, run_main
from mindcv_res2net.cli.parser import parse_settings
from mindcv_res2net.cli.train import main as train_main
from mindcv_res2net.config import MAX_RECIPE_BYTES, ConfigError, load_yaml_config


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.sampled_from(["lr: 0.5", "seed: 3", "scale: [0.5, 1.0]", "model: res2next50",
                                        "mean: [1, 2, 3]"]), min_size=1, max_size=5, unique=True),
       marked=st.integers(0, 4), alias=st.booleans())
def test_a_recipe_with_an_anchor_or_alias_is_refused_naming_its_line(tmp_path, values, marked, alias):
    """Recipes are plain values: an anchor (&name) or alias (*name) on any line is one error naming that line."""
    path = tmp_path / "anchored.yaml"
    path.write_text("\n".join(values) + "\n")
    assert parse_settings(["-c", str(path)]).run.config == str(path)
    line = min(marked, len(values) - 1)
    key, value = values[line].split(": ")
    values[line] = f"{key}: *v" if alias else f"{key}: &v {value}"
    path.write_text("\n".join(values) + "\n")
    what = "alias \\*v" if alias else "anchor &v"
    with pytest.raises(ConfigError, match=rf"^config {path}: line {line + 1}: {what}: a recipe holds plain values, "
                                          r"without anchors \(&name\) or aliases \(\*name\)$"):
        parse_settings(["-c", str(path)])


def _laughs(tmp_path):
    """A recipe of a few hundred bytes whose ``model`` value has 9**9 strings once its aliases are expanded."""
    lines = ['model: [&a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"],']
    previous = "a"
    for name in "bcdefghi":
        lines.append(f"  &{name} [" + ",".join([f"*{previous}"] * 9) + "],")
        previous = name
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join(lines) + f"\n  *{previous}]\n")
    assert path.stat().st_size < 430
    return path


@pytest.mark.e2e
def test_yaml_aliases_expanding_to_gigabytes_are_refused_cheaply(tmp_path):
    path = _laughs(tmp_path)
    assert_refused_cheaply(["train.py", "-c", str(path), f"--ckpt_save_dir={tmp_path / 'run'}"],
                           rf"^error: config {path}: line 1: anchor &a: a recipe holds plain values, without anchors "
                           r"\(&name\) or aliases \(\*name\)$")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text, message", [
    ("lr: 0.1\nmodel: res2net50\nlr: 0.2\n", r"key 'lr' appears twice \(lines 1 and 3\)"),
    ("model: &a [*a]\n", r"line 1: anchor &a: a recipe holds plain values, without anchors \(&name\) or aliases"),
    ("lr: 0.1\n\nmodel: *m\n", r"line 3: alias \*m: a recipe holds plain values"),
    ("model: " + "[" * 1000 + "]" * 1000 + "\n", r"more than 32 nested \[ \] or \{ \} \(line 1\)"),
    ("base: {lr: 0.1}\n", r"unknown key 'base'"),
    ("seed: 2021-13-45\n", r"not valid YAML \(month must be in 1..12\)"),
    ("model: [" + ", ".join(["x" * 1000] * 50) + "]\n",
     r"key 'model' expects a single value, got \['x{20,40}\.\.\.x{20,40}', 'x*\.\.\.$"),
])
def test_yaml_recipe_refusals(tmp_path, capsys, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    code, _, err = run_main(train_main, ["-c", str(path), "--batch_size=0"], capsys)
    assert code == 2 and len(err) < 1000 and err.count("\n") == 1, err
    assert err.startswith(f"error: config {path}: ") and re.search(message, err), err


def test_yaml_merge_keys_may_be_overridden(tmp_path):
    """A key given twice is an error, but a ``<<`` merge's key overridden in the mapping is YAML's intent."""
    path = tmp_path / "c.yaml"
    path.write_text("lr: 0.5\n")
    assert load_yaml_config(str(path)) == {"lr": 0.5}
    path.write_text("<<: {lr: 0.5, momentum: 0.8}\nlr: 0.2\n")
    assert load_yaml_config(str(path)) == {"lr": 0.2, "momentum": 0.8}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.lists(st.sampled_from(["lr", "momentum", "seed", "batch_size"]), min_size=1, max_size=6))
def test_yaml_duplicate_keys_are_refused_exactly_when_present(tmp_path, keys):
    path = tmp_path / "c.yaml"
    path.write_text("".join(f"{key}: {i + 1}\n" for i, key in enumerate(keys)))
    if len(set(keys)) == len(keys):
        assert load_yaml_config(str(path)) == {k: (float(i + 1) if k in ("lr", "momentum") else i + 1)
                                              for i, k in enumerate(keys)}
    else:
        first = next(k for i, k in enumerate(keys) if k in keys[:i])
        with pytest.raises(ConfigError, match=rf"^config {path}: key '{first}' appears twice \(lines "
                                              rf"{keys.index(first) + 1} and \d+\)$"):
            load_yaml_config(str(path))


def _refusal_in_time(argv, capsys):
    """train.py's main in a daemon thread: a call that blocks (on a FIFO) fails the test instead of hanging it.
    ``--batch_size=0`` is refused after the recipe is read: a recipe taken by mistake starts no training."""
    argv = argv + ["--batch_size=0"]
    result = []
    worker = threading.Thread(target=lambda: result.append(run_main(train_main, argv, capsys)), daemon=True)
    worker.start()
    worker.join(20)
    assert result, f"{argv} still running after 20 s"
    return result[0]


@pytest.mark.parametrize("kind, message", [
    ("directory", r"is a directory, not a YAML file \(a run's settings are in .*/c\.yaml/config\.yaml\)"),
    ("fifo", r"is a FIFO \(named pipe\), not a YAML file"),
    ("/dev/zero", "is a character device, not a YAML file"),
    ("large", rf"{MAX_RECIPE_BYTES + 1} bytes is too large for a YAML recipe \(at most {MAX_RECIPE_BYTES}\)"),
    ("latin1", r"not UTF-8 text \(byte 8\)"),
])
def test_config_path_that_is_not_a_recipe_file_says_what_it_is(tmp_path, capsys, kind, message):
    path = tmp_path / "c.yaml"
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "large":
        path.write_text("# " + "x" * (MAX_RECIPE_BYTES - 2) + "\n")
    elif kind == "latin1":
        path.write_bytes(b"model: r\xe9s2net50\n")
    else:
        path = kind
    code, _, err = _refusal_in_time(["-c", str(path)], capsys)
    assert code == 2 and re.fullmatch(rf"error: config {re.escape(str(path))}: {message}\n", err), err
