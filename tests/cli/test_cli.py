"""The programs as a user meets them: console scripts and a clone's scripts run the same code, import-time
behaviour in fresh interpreters (oneDNN), one-line errors for bad input (run_cli) while a bug shows its traceback,
and the messages for a folder given where a file is expected and for an unknown flag."""
import os

import numpy as np
import pytest

from helpers import PROJECT_DIR
from helpers.programs import assert_quiet_exit, run, run_main, run_tool, tool_main
from helpers.parity import official_state_dict
from mindcv_res2net.cli.train import main as train_main
from mindcv_res2net.models import create_model
from mindcv_res2net.weights import CheckpointError, read_checkpoint


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
        assert tool_main(tool) is importlib.import_module(f"mindcv_res2net.cli.{tool}").main
    reports = importlib.import_module("mindcv_res2net.cli.reports")  # the two report programs share a module
    assert tool_main("summarize_models") is reports.summarize_main
    assert tool_main("plot_metrics") is reports.plot_main


def _exit_of(main) -> int:
    from mindcv_res2net.utils.cli import run_cli

    with pytest.raises(SystemExit) as stopped:
        run_cli(main)
    return stopped.value.code


def _raise(exc: BaseException):
    def main() -> int:
        raise exc
    return main


def test_run_cli_prints_one_line_for_bad_input_and_lets_a_bug_show_its_traceback(capsys, monkeypatch):
    """A ``UserError`` (a flag, file, name or value) or an ``OSError`` is one line and exit 2; a plain
    ``ValueError``, ``RuntimeError`` or ``KeyError`` is a bug: it leaves ``run_cli`` with its traceback."""
    from mindcv_res2net.utils.argtypes import ConfigError
    from mindcv_res2net.utils.cli import DEBUG_ENV
    from mindcv_res2net.weights import CheckpointError

    monkeypatch.delenv(DEBUG_ENV, raising=False)
    for exc in (ConfigError("--opt must be one of sgd, adam, got 'lion'"), CheckpointError("w.ckpt: truncated"),
                FileNotFoundError("data/train: not found")):
        assert _exit_of(_raise(exc)) == 2
        assert capsys.readouterr().err == f"error: {exc}\n"
    assert _exit_of(_raise(KeyboardInterrupt())) == 130
    for bug in (ValueError("too many values to unpack"), RuntimeError("unexpected state"), KeyError("lr")):
        with pytest.raises(type(bug)):
            _exit_of(_raise(bug))
        assert capsys.readouterr().err == ""
    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(ConfigError):  # the traceback of a user error too, on request
        _exit_of(_raise(ConfigError("--opt")))


def test_bad_input_to_the_model_weights_and_deploy_rooms_is_a_user_error(tmp_path):
    """What a user typed wrong is a ``UserError`` (still a ``ValueError``), so a program prints it in one line."""
    from mindcv_res2net import create_model
    from mindcv_res2net.loss import create_loss
    from mindcv_res2net.optim import create_optimizer
    from mindcv_res2net.scheduler import create_scheduler
    from mindcv_res2net.utils.device import plan_training
    from mindcv_res2net.utils.engines import check_engine
    from mindcv_res2net.utils.errors import UserError
    from mindcv_res2net.utils.fileio import check_output

    (tmp_path / "read_only.png").write_bytes(b"")
    os.chmod(tmp_path / "read_only.png", 0o444)
    cases = [(lambda: create_model("res2net5O"), "unknown model 'res2net5O'"),
             (lambda: create_model("res2net50", num_classes=-1), "num_classes must be an int >= 0"),
             (lambda: create_model("res2net152", pretrained=True), "has no published weights"),
             (lambda: create_loss("focal", 10), "--loss must be CE"),
             (lambda: create_optimizer([], "lion", 0.1), "--opt must be one of"),
             (lambda: create_scheduler("poly", 0.1, steps_per_epoch=1, epochs=1), "--scheduler must be one of"),
             (lambda: plan_training("CPU", amp_level="O9"), "--amp_level must be"),
             (lambda: check_engine("tensorrt"), "--engine must be one of"),
             (lambda: check_output(str(tmp_path), "--out"), "is a folder")]
    if os.geteuid() != 0:  # root writes into read-only files
        cases.append((lambda: check_output(str(tmp_path / "read_only.png"), "--out"), "is read-only"))
    for call, message in cases:
        with pytest.raises(UserError, match=message):
            call()


def test_a_directory_where_a_file_is_expected_says_so(tmp_path, capsys):
    folder = str(tmp_path)
    with pytest.raises(CheckpointError, match=rf"^checkpoint {folder}: is a directory, not a weight file$"):
        read_checkpoint(folder)
    code, _, err = run_main(train_main, ["--resume", folder, "--ckpt_save_dir", str(tmp_path / "run")], capsys)
    assert code == 2 and err == (f"error: --resume {folder}: is a directory; give a checkpoint file, or "
                                 f"--ckpt_save_dir {folder} --resume auto for its newest\n")
    code, _, err = run_main(train_main, ["-c", folder], capsys)
    assert code == 2 and err == (f"error: config {folder}: is a directory, not a YAML file (a run's settings "
                                 f"are in {folder}/config.yaml)\n")
    code, _, err = run_main(train_main, ["--ckpt_path", folder, "--ckpt_save_dir", str(tmp_path / "run"),
                                         "--image_resize", "32", "--num_samples", "16", "--batch_size", "16"], capsys)
    assert code == 2 and err == f"error: checkpoint {folder}: is a directory, not a weight file\n"
    assert sorted(os.listdir(folder)) == []  # no run folder left behind


def test_convert_weights_names_an_unknown_flag(capsys):
    code, err = run_tool("convert_weights", ["a.pth", "b.ckpt", "--modle", "res2net50"], capsys)
    assert code == 2 and err == "error: unknown flag '--modle' (did you mean --model?)\n"


def test_summarize_models_shows_on_stderr_which_model_it_builds(tiny_model, monkeypatch, capsys):
    """Each row goes to stdout as its model is done; while a model is built, stderr already names it with the
    count (the rows may be going to a file)."""
    from mindcv_res2net.cli import reports

    seen = []

    def build(name, **kwargs):
        out, err = capsys.readouterr()
        seen.append((name, out, err))
        return create_model(tiny_model, **kwargs)
    monkeypatch.setattr(reports, "create_model", build)
    assert reports.summarize_main(["--models", "res2net50,res2next50", "--image_size", "32"]) == 0
    (first, header, first_err), (second, first_row, second_err) = seen
    assert (first, second) == ("res2net50", "res2next50")
    assert header.startswith("model ") and "0/2" in first_err and "res2net50" in first_err
    assert first_row.startswith("res2net50 ") and "1/2" in second_err and "res2next50" in second_err
    assert capsys.readouterr().out.startswith("res2next50 ")
