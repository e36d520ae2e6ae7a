"""Command-line tools and import-time behaviour, run as a user would in fresh interpreters."""
import os

import numpy as np
import pytest

from conftest import PROJECT_DIR, assert_quiet_exit, official_state_dict, run


@pytest.mark.e2e
def test_onednn_isa_set_before_mindspore():
    code = "import os, mindcv_res2net; print(os.environ['ONEDNN_MAX_CPU_ISA'])"
    proc = run(["-W", "error::RuntimeWarning", "-c", code], unset=("ONEDNN_MAX_CPU_ISA",))
    assert proc.returncode == 0 and proc.stdout.strip() == "AVX2", proc.stderr


@pytest.mark.e2e
def test_onednn_user_setting_wins():
    code = "import os, mindspore, mindcv_res2net; print(os.environ['ONEDNN_MAX_CPU_ISA'])"
    proc = run(["-c", code], env_extra={"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"})
    assert proc.stdout.strip() == "AVX512_CORE" and "RuntimeWarning" not in proc.stderr


@pytest.mark.e2e
def test_onednn_warns_once_when_mindspore_came_first():
    code = "import mindspore, mindcv_res2net, importlib; importlib.reload(mindcv_res2net)"
    proc = run(["-c", code], unset=("ONEDNN_MAX_CPU_ISA",))
    assert proc.returncode == 0
    assert proc.stderr.count("mindspore was imported before mindcv_res2net") == 1, proc.stderr


@pytest.mark.e2e
def test_convert_weights_cli(tmp_path):
    np.savez(tmp_path / "official.npz", **official_state_dict("res2net50_26w_4s"))
    proc = run(["tools/convert_weights.py", str(tmp_path / "official.npz"), str(tmp_path / "r50.ckpt"),
                "--model", "res2net50_26w_4s"])
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "r50.ckpt").is_file() and "wrote" in proc.stdout
    assert_quiet_exit(proc)
    # a file of another model: one clear line, exit 2, nothing written
    proc = run(["tools/convert_weights.py", str(tmp_path / "official.npz"), str(tmp_path / "v1b.ckpt"),
                "--model", "res2net50_v1b"])
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "does not fit model 'res2net50_v1b'" in lines[0]
    assert not (tmp_path / "v1b.ckpt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["official.npz", "r50.ckpt"]
    proc = run(["tools/convert_weights.py", str(tmp_path / "nothing.pth"), str(tmp_path / "x.ckpt"), "--model",
                "res2net50"])
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: checkpoint file not found: {tmp_path}/nothing.pth"


@pytest.mark.e2e
def test_summarize_models_cli():
    proc = run(["tools/summarize_models.py", "--models", "res2net50_v1b,res2next50", "--image_size", "64"])
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()[1:]}
    assert rows["res2net50_v1b"][1] == "25,718,352" and rows["res2next50"][1] == "24,671,464"
    assert float(rows["res2net50_v1b"][2]) > 0 and "(1, 1000)" in proc.stdout
    assert_quiet_exit(proc)
    proc = run(["tools/summarize_models.py", "--models", "resnet50"])
    assert proc.returncode == 2 and proc.stderr.startswith("error: unknown model 'resnet50'")


def test_console_scripts_and_clone_scripts_run_the_same_code():
    """Every ``[project.scripts]`` entry names a callable, and each tools/*.py of a clone runs the same ``main``."""
    import importlib
    import re

    with open(os.path.join(PROJECT_DIR, "pyproject.toml")) as f:
        section = f.read().split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    scripts = dict(re.findall(r'^([\w-]+) = "([\w.:]+)"', section, re.M))
    assert set(scripts) == {"res2net-train", "res2net-validate", "res2net-convert", "res2net-export", "res2net-predict",
                            "res2net-benchmark", "res2net-summarize", "res2net-plot", "res2net-mindcv"}
    for target in scripts.values():
        module, _, func = target.partition(":")
        assert callable(getattr(importlib.import_module(module), func)), target
    for tool in ("benchmark", "convert_weights", "export", "predict"):
        assert importlib.import_module(tool).main is importlib.import_module(f"mindcv_res2net.cli.{tool}").main
    reports = importlib.import_module("mindcv_res2net.cli.reports")  # the two report programs share a module
    assert importlib.import_module("summarize_models").main is reports.summarize_main
    assert importlib.import_module("plot_metrics").main is reports.plot_main
