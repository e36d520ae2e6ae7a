"""What a training run says on the console: the settings that differ from the recipe (every one stays in train.log
and config.yaml), and after its first steps the estimated time of an epoch and of the run, once, also on resume."""
import os
import re

import pytest
import yaml

from helpers import PROJECT_DIR
from helpers.programs import run_main
from helpers.runs import TINY_NET_RUN
from mindcv_res2net.cli.train import main as train_main
from mindcv_res2net.train import trainer
from mindcv_res2net.train.trainer import FirstSteps

RECIPE = os.path.join("configs", "res2net", "res2net50_digits_cpu.yaml")
ESTIMATE = re.compile(r"^estimated (\d+(\.\d)? s) per epoch \(4 steps x (\d[\d.e-]*) s\), (\d+(\.\d)? s) for (.+)$")


def test_the_console_shows_only_the_settings_the_flags_changed(tmp_path, monkeypatch, pynative, tiny_model, capsys):
    """Quick start's recipe with flags: one settings line naming the recipe and the flags' values; train.log and
    config.yaml keep every setting."""
    monkeypatch.chdir(PROJECT_DIR)  # the recipe as the Quick start names it, relative
    folder = tmp_path / "run"
    code, out, err = run_main(train_main, ["-c", RECIPE, "--model", "tiny_net", "--mode", "1", "--num_samples", "64",
                                           "--batch_size", "16", "--num_parallel_workers", "1", "--epoch_size", "1",
                                           "--lr", "0.01", "--weight_decay", "0.05", "--ckpt_save_dir", str(folder)],
                              capsys)
    assert code == 0, err
    assert out.splitlines()[0] == (f"settings (from {RECIPE}, changed by flags: batch_size 16, epoch_size 1, lr 0.01, "
                                   "mode 1, model tiny_net, num_parallel_workers 1, num_samples 64); all of them: "
                                   "train.log, config.yaml")  # weight_decay: the recipe's value
    assert "config:" not in out and "label_smoothing" not in out and "warmup_epochs" not in out
    log = (folder / "train.log").read_text()
    assert "config:\n" in log and "label_smoothing: 0.0" in log and "warmup_epochs: 0" in log
    assert out.splitlines()[0] in log
    stored = yaml.safe_load((folder / "config.yaml").read_text())
    assert stored["lr"] == 0.01 and stored["label_smoothing"] == 0.0 and stored["warmup_epochs"] == 0


def test_without_a_recipe_the_settings_line_names_the_defaults(tmp_path, pynative, tiny_model, capsys):
    code, out, err = run_main(train_main, TINY_NET_RUN + ["--epoch_size", "1", "--ckpt_save_dir", str(tmp_path)],
                              capsys)
    assert code == 0, err
    assert out.splitlines()[0] == ("settings (defaults, changed by flags: batch_size 16, epoch_size 1, image_resize 32, "
                                   "lr 0.002, mode 1, model tiny_net, num_parallel_workers 1, num_samples 64, "
                                   "opt adamw, seed 3); all of them: train.log, config.yaml")


def _estimates(text):
    return [ESTIMATE.match(line) for line in text.splitlines() if line.startswith("estimated")]


def test_the_estimated_time_is_one_line_after_the_first_steps_also_on_resume(tmp_path, pynative, tiny_model, capsys):
    """A new run of 2 epochs x 4 steps says it once, with its epochs; continued from epoch 1 to 3, once again,
    with the steps left; in train.log too."""
    run = TINY_NET_RUN + ["--ckpt_save_dir", str(tmp_path)]
    code, out, err = run_main(train_main, run + ["--epoch_size", "2"], capsys)
    assert code == 0, err
    (first,) = _estimates(out)
    assert first and first.group(6) == "2 epochs, plus validation", out
    per_step = float(first.group(3))
    assert first.group(4) == trainer._duration(8 * per_step)
    code, out, err = run_main(train_main, ["--ckpt_save_dir", str(tmp_path), "--resume",
                                           str(tmp_path / "tiny_net-1_4.ckpt"), "--epoch_size", "3"], capsys)
    assert code == 0, err
    (resumed,) = _estimates(out)
    assert resumed and resumed.group(6) == "the 8 steps left (epochs 2-3 of 3), plus validation", out
    assert (tmp_path / "train.log").read_text().count(" INFO estimated ") == 2


def test_the_first_step_is_not_timed(monkeypatch):
    """The compile step (the job's first) and the pause between epochs are left out of the time per step."""
    clock = iter([30.0, 31.0, 32.0, 50.0, 51.0, 52.0, 53.0])  # step 1 compiles (ends at 30); 18 s between epochs
    monkeypatch.setattr(trainer.time, "perf_counter", lambda: next(clock))
    timer = FirstSteps()
    timer.epoch_starts()
    due = [timer.step_ended() for _ in range(3)]  # steps 1-3 end at 30, 31, 32
    timer.epoch_starts()  # at 50
    due += [timer.step_ended() for _ in range(3)]  # at 51, 52, 53
    assert due == [False] * 5 + [True] and (timer.timed, timer.seconds) == (5, 5.0)


@pytest.mark.parametrize("seconds, shown", [(0.42, "0.4 s"), (12.3, "12 s"), (59.4, "59 s"), (61, "1 min"),
                                            (240, "4 min"), (3600, "1 h"), (12000, "3 h 20 min")])
def test_durations_read_as_a_person_says_them(seconds, shown):
    assert trainer._duration(seconds) == shown
