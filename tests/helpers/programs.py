"""Running the programs as a user does: a subprocess in the project folder, or a tool's ``main(argv)`` through
``run_cli`` in this process; the project's scripts imported by their path."""
import functools
import importlib.util
import json
import os
import re
import subprocess
import sys
from typing import NamedTuple

import pytest

from helpers import PROJECT_DIR, TESTS_DIR


def run(args, env_extra=None, unset=()):
    """``python ARGS`` in the project folder, as a user would run it: the finished process (text output)."""
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(env_extra or {})
    return subprocess.run([sys.executable] + args, cwd=PROJECT_DIR, env=env, capture_output=True, text=True,
                          timeout=600)


def helpers_env(**extra) -> dict:
    """This process's environment for a started Python that imports the package and ``helpers`` (a script of a
    test that registers ``helpers.tiny_net``), plus ``extra``."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join([PROJECT_DIR, TESTS_DIR]), **extra)


def assert_quiet_exit(proc):
    assert "Exception ignored" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


@functools.lru_cache(maxsize=None)
def load_script(path: str):
    """The project's script at ``path`` (relative to the project folder, e.g. ``tools/export.py``) imported as the
    module named by its file, once per process. A script that imports a sibling script (as the maintainer
    scripts do) needs that sibling loaded first."""
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, os.path.join(PROJECT_DIR, path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def tool_main(name: str):
    """``main(argv)`` of ``tools/<name>.py``."""
    return load_script(f"tools/{name}.py").main


def run_main(main, argv, capsys):
    """``main(argv)`` through ``run_cli``, as the console script runs it: (exit code, stdout, stderr)."""
    from mindcv_res2net.utils.cli import run_cli

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: main(argv))
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def run_tool(name, argv, capsys):
    """``tools/<name>.py``'s ``main(argv)`` through ``run_cli`` in this process (no interpreter start-up,
    for error paths; the tools' own tests run each tool once as a subprocess): (exit code, stderr)."""
    code, _, err = run_main(tool_main(name), argv, capsys)
    return code, err


class BoundedRun(NamedTuple):
    code: int
    stderr: str
    seconds: float
    peak_bytes: int


def run_bounded(args, *, seconds: float, max_bytes: int) -> BoundedRun:
    """``python ARGS`` in the project folder, measured alone by ``helpers/bounded_run.py`` (its peak resident
    memory is its own, not this process's) and killed after ``seconds`` or above ``max_bytes``."""
    proc = subprocess.run([sys.executable, os.path.join(TESTS_DIR, "helpers", "bounded_run.py"), str(seconds),
                           str(max_bytes)] + list(args), cwd=PROJECT_DIR, capture_output=True)
    result = json.loads(proc.stdout)
    return BoundedRun(result["code"], proc.stderr.decode(errors="replace"), result["seconds"], result["peak_bytes"])


REFUSAL_SECONDS = 30  # a hostile file is refused within this time, start-up included
REFUSAL_BYTES = 2 << 30  # and under this peak resident memory


def assert_refused_cheaply(args, message):
    """``python ARGS`` refuses its input with one line ``error: ...`` matching ``message``, in under
    REFUSAL_SECONDS and REFUSAL_BYTES of its own (killed at twice either)."""
    result = run_bounded(args, seconds=2 * REFUSAL_SECONDS, max_bytes=2 * REFUSAL_BYTES)
    err = result.stderr
    assert result.code == 2 and "Traceback" not in err, err[-2000:]
    assert len(err) < 4096, f"{len(err)} bytes of error output"
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and re.search(message, last), last
    assert result.seconds < REFUSAL_SECONDS and result.peak_bytes < REFUSAL_BYTES, (result.seconds,
                                                                                    result.peak_bytes / 2 ** 20)
