"""One run's checkpoints in a folder that may hold other runs' files: rotation, resume discovery,
leftover clean-up and the best copy, with the kills and mix-ups of real use."""
import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from mindcv_res2net.cli.parser import parse_settings
from mindcv_res2net.train.run_folder import RunCheckpoints, RunFolder
from mindcv_res2net.train.trainer import train
from mindcv_res2net.scheduler import create_scheduler
from mindcv_res2net.weights import CheckpointError, read_checkpoint_metadata, read_mindspore_checkpoint
from mindcv_res2net.utils.fileio import OWNER_PATTERN
from mindcv_res2net.utils.logger import setup_logger

STATE = {"w": np.ones(3, np.float32)}


def _run(folder, run_id, keep=2):
    return RunCheckpoints(str(folder), "res2net50", keep=keep, run_id=run_id, logger=setup_logger(enabled=False))


def _save(run, epoch, best=False):
    metadata = dict(model="res2net50", epoch=epoch, best_epoch=epoch if best else None)
    return run.save(STATE, metadata, epoch=epoch, steps=4, is_best=best)


def _ckpts(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".ckpt"))


def test_a_new_run_never_rotates_away_its_own_newest_file_or_another_runs(tmp_path):
    old = _run(tmp_path, "oldrun", keep=2)
    for epoch in range(1, 5):
        _save(old, epoch)
    assert _ckpts(tmp_path) == ["res2net50-3_4.ckpt", "res2net50-4_4.ckpt"]
    new = _run(tmp_path, "newrun", keep=1)
    _save(new, 1)
    _save(new, 2)
    assert _ckpts(tmp_path) == ["res2net50-2_4.ckpt", "res2net50-3_4.ckpt", "res2net50-4_4.ckpt"]
    assert read_checkpoint_metadata(tmp_path / "res2net50-2_4.ckpt")["run_id"] == "newrun"
    assert {run: [e for e, _ in files] for run, files in new.runs().items()} == {"oldrun": [3, 4], "newrun": [2]}


def test_resume_auto_takes_the_single_run_and_refuses_a_mix(tmp_path):
    folder = RunFolder(str(tmp_path), "res2net50")
    assert folder.resume_path() is None
    one = _run(tmp_path, "first", keep=5)
    _save(one, 1)
    _save(one, 2)
    assert folder.resume_path() == str(tmp_path / "res2net50-2_4.ckpt")
    _save(_run(tmp_path, "second"), 3)
    with pytest.raises(CheckpointError, match=rf"^--resume auto: {tmp_path} holds res2net50 checkpoints of 2 runs "
                                              r"\(run first: epochs 1-2, newest res2net50-2_4.ckpt; run second: "
                                              r"epochs 3-3, newest res2net50-3_4.ckpt\); choose one with --resume PATH$"):
        folder.resume_path()


def test_leftovers_removed_only_when_ours_dead_and_regular_files(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {f".partial-myrun.{dead.pid}.a1.ckpt": "file", f".partial-myrun.{alive.pid}.b2.ckpt": "file",
                 f".partial-other.{dead.pid}.c3.ckpt": "file", ".partial-export-x7": "dir",
                 f".partial-myrun.{dead.pid}.d4": "dir", "notes.txt": "file"}
        for name, kind in names.items():
            (tmp_path / name).mkdir() if kind == "dir" else (tmp_path / name).write_bytes(b"x")
        _run(tmp_path, "myrun").remove_leftovers()
        assert sorted(os.listdir(tmp_path)) == sorted(set(names) - {f".partial-myrun.{dead.pid}.a1.ckpt"})
    finally:
        alive.kill()
        alive.wait()


def test_repair_best_after_a_kill_before_the_best_copy(tmp_path):
    other = _run(tmp_path, "other")
    _save(other, 7, best=True)  # another run's best.ckpt
    mine = _run(tmp_path, "mine", keep=3)
    _save(mine, 1)  # written, but killed before its best copy
    mine.repair_best(1)
    meta = read_checkpoint_metadata(tmp_path / "res2net50-best.ckpt")
    assert meta["run_id"] == "mine" and meta["epoch"] == 1
    mine.repair_best(1)  # nothing to do: already right


TINY = ["--model", "tiny_net", "--mode", "1", "--dataset", "digits", "--image_resize", "32", "--num_samples", "64",
        "--num_parallel_workers", "1", "--opt", "adamw", "--lr", "0.002", "--seed", "3"]


@pytest.mark.e2e
def test_kill_between_epoch_checkpoint_and_best_copy_then_resume(tmp_path, pynative, tiny_model, monkeypatch):
    out = str(tmp_path)
    args = TINY + ["--batch_size", "16", "--epoch_size", "2", "--ckpt_save_dir", out]

    def killed(self, path):
        raise KeyboardInterrupt  # the process dies right after writing the epoch checkpoint

    with monkeypatch.context() as patch:
        patch.setattr(RunCheckpoints, "_copy_to_best", killed)
        with pytest.raises(KeyboardInterrupt):
            train(parse_settings(args))
    assert _ckpts(tmp_path) == ["tiny_net-1_4.ckpt"]
    summary = train(parse_settings(args + ["--resume", "auto"]))
    best = read_checkpoint_metadata(tmp_path / "tiny_net-best.ckpt")
    assert best["epoch"] == summary["best_epoch"] and best["val_top1"] == summary["best_top1"]
    assert "restored" in open(tmp_path / "train.log").read()
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]


@pytest.mark.e2e
@pytest.mark.parametrize("new_batch", [32, 8])
def test_resume_with_other_steps_per_epoch_continues_the_schedule(tmp_path, pynative, tiny_model, new_batch):
    out = str(tmp_path)
    common = TINY + ["--val_while_train", "False", "--epoch_size", "3", "--ckpt_save_dir", out]
    train(parse_settings(common + ["--batch_size", "16", "--epoch_size", "1"]))
    train(parse_settings(common + ["--batch_size", str(new_batch), "--resume", "auto"]))
    steps = 64 // new_batch
    last = str(tmp_path / f"tiny_net-3_{steps}.ckpt")
    assert int(read_mindspore_checkpoint(last)["optimizer.global_step"].reshape(-1)[0]) == 3 * steps
    assert f"steps per epoch changed from 4 (in the checkpoint) to {steps}" in open(tmp_path / "train.log").read()
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    unbroken = create_scheduler("cosine_decay", 0.002, steps_per_epoch=steps, epochs=3)  # the lr of an unbroken run at this batch size
    assert [float(r["lr"]) for r in rows[1:]] == pytest.approx([unbroken[2 * steps - 1], unbroken[3 * steps - 1]],
                                                               rel=1e-5)


@pytest.mark.e2e
def test_resume_keeps_the_run_identity(tmp_path, pynative, tiny_model):
    common = TINY + ["--val_while_train", "False", "--batch_size", "32", "--ckpt_save_dir", str(tmp_path)]
    train(parse_settings(common + ["--epoch_size", "1"]))
    train(parse_settings(common + ["--epoch_size", "2", "--resume", "auto"]))
    ids = {read_checkpoint_metadata(tmp_path / n)["run_id"] for n in _ckpts(tmp_path)}
    assert len(ids) == 1 and OWNER_PATTERN.match(ids.pop())
