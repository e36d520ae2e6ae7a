"""One run's checkpoints in a folder that may hold other runs' files: rotation, resume discovery, leftover clean-up
and the best copy, with the kills and mix-ups of real use; one line of epochs: a continuation from an older
checkpoint sets the later epochs aside, and the folder's listings leave out what was set aside."""
import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers.runs import TINY_NET, TINY_NET_RUN, checkpoint_names, folder_files, metrics_epochs
from mindcv_res2net.cli.parser import parse_settings
from mindcv_res2net.cli.train import main as train_main
from mindcv_res2net.train.run_folder import RunCheckpoints, RunFolder
from mindcv_res2net.train.trainer import train
from mindcv_res2net.weights import CheckpointError, read_checkpoint, read_checkpoint_metadata, save_weights
from mindcv_res2net.utils.logger import setup_logger

STATE = {"w": np.ones(3, np.float32)}


def _run(folder, run_id, keep=2):
    return RunCheckpoints(str(folder), "res2net50", keep=keep, run_id=run_id, logger=setup_logger(enabled=False))


def _save(run, epoch, best=False):
    metadata = dict(model="res2net50", epoch=epoch, best_epoch=epoch if best else None)
    return run.save(STATE, metadata, epoch=epoch, steps=4, is_best=best)


def test_a_new_run_never_rotates_away_its_own_newest_file_or_another_runs(tmp_path):
    old = _run(tmp_path, "oldrun", keep=2)
    for epoch in range(1, 5):
        _save(old, epoch)
    assert checkpoint_names(tmp_path) == ["res2net50-3_4.ckpt", "res2net50-4_4.ckpt"]
    new = _run(tmp_path, "newrun", keep=1)
    _save(new, 1)
    _save(new, 2)
    assert checkpoint_names(tmp_path) == ["res2net50-2_4.ckpt", "res2net50-3_4.ckpt", "res2net50-4_4.ckpt"]
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


@pytest.mark.e2e
def test_kill_between_epoch_checkpoint_and_best_copy_then_resume(tmp_path, pynative, tiny_model, monkeypatch):
    out = str(tmp_path)
    args = TINY_NET + ["--batch_size", "16", "--epoch_size", "2", "--ckpt_save_dir", out]

    def killed(self, path):
        raise KeyboardInterrupt  # the process dies right after writing the epoch checkpoint

    with monkeypatch.context() as patch:
        patch.setattr(RunCheckpoints, "_copy_to_best", killed)
        with pytest.raises(KeyboardInterrupt):
            train(parse_settings(args))
    assert checkpoint_names(tmp_path) == ["tiny_net-1_4.ckpt"]
    summary = train(parse_settings(args + ["--resume", "auto"]))
    best = read_checkpoint_metadata(tmp_path / "tiny_net-best.ckpt")
    assert best["epoch"] == summary["best_epoch"] and best["val_top1"] == summary["best_top1"]
    assert "restored" in open(tmp_path / "train.log").read()
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]


# ---------------------------------------------------------------------------- one line of epochs


def test_continuing_from_an_older_checkpoint_sets_the_later_epochs_aside(tmp_path, pynative, tiny_model):
    """--resume RUN/…-1_4.ckpt --epoch_size 2 in a run that reached epoch 3 sets the later checkpoints, the best
    copy and the later metrics rows aside (named in train.log), so that a following --resume auto continues from
    epoch 2 of this line and metrics.csv holds epochs 1, 2, 3 once each."""
    out = str(tmp_path)
    assert train_main(TINY_NET_RUN + ["--epoch_size", "3", "--ckpt_save_dir", out, "--lr", "0.02"]) == 0
    best = read_checkpoint_metadata(tmp_path / "tiny_net-best.ckpt")
    assert best["epoch"] == 2  # the best copy is one of the later epochs (val top-1 10.9%, 12.5%, 9.4%)
    later = {n: (tmp_path / n).read_bytes() for n in ("tiny_net-2_4.ckpt", "tiny_net-3_4.ckpt", "tiny_net-best.ckpt",
                                                      "metrics.csv")}
    assert train_main(["--ckpt_save_dir", out, "--resume", str(tmp_path / "tiny_net-1_4.ckpt"), "--epoch_size",
                       "2"]) == 0
    aside = [n for n in os.listdir(tmp_path) if n.startswith("abandoned-")]
    assert len(aside) == 1 and folder_files(tmp_path / aside[0]) == later
    assert checkpoint_names(tmp_path) == ["tiny_net-1_4.ckpt", "tiny_net-2_4.ckpt", "tiny_net-best.ckpt"]
    best_now = read_checkpoint_metadata(tmp_path / "tiny_net-best.ckpt")  # the resumed line's own best
    assert (tmp_path / "tiny_net-best.ckpt").read_bytes() == \
        (tmp_path / f"tiny_net-{best_now['epoch']}_4.ckpt").read_bytes()
    log = [line for line in open(tmp_path / "train.log") if "set aside" in line]
    assert len(log) == 1 and log[0].rstrip().endswith(
        f"continuing from {tmp_path}/tiny_net-1_4.ckpt (epoch 1 done): set aside what this run had trained after "
        f"that in {tmp_path / aside[0]}/: tiny_net-2_4.ckpt, tiny_net-3_4.ckpt, tiny_net-best.ckpt; a copy of "
        "metrics.csv (its rows of epochs 2, 3 are dropped from the run's)")
    assert train_main(["--ckpt_save_dir", out, "--resume", "auto", "--epoch_size", "3"]) == 0
    assert metrics_epochs(tmp_path) == ["1", "2", "3"]
    assert "resuming from " + str(tmp_path / "tiny_net-2_4.ckpt") in open(tmp_path / "train.log").read()


def test_an_interrupted_checkpoint_past_the_resumed_one_is_set_aside(tmp_path, pynative, tiny_model):
    out = str(tmp_path)
    assert train_main(TINY_NET_RUN + ["--epoch_size", "2", "--val_while_train", "false", "--ckpt_save_dir", out]) == 0
    state, metadata = read_checkpoint(str(tmp_path / "tiny_net-2_4.ckpt"))  # as if stopped after step 1 of epoch 2
    save_weights(state, tmp_path / "tiny_net-2_1-interrupted.ckpt",
                 metadata=dict(metadata, epoch=1, step=5, epoch_progress=dict(loss_sum=1.0, correct=1, seen=16,
                                                                               seconds=0.1)))
    os.remove(tmp_path / "tiny_net-2_4.ckpt")
    assert train_main(["--ckpt_save_dir", out, "--resume", str(tmp_path / "tiny_net-1_4.ckpt")]) == 0
    aside = [n for n in os.listdir(tmp_path) if n.startswith("abandoned-")]
    assert len(aside) == 1 and sorted(os.listdir(tmp_path / aside[0])) == ["metrics.csv",
                                                                           "tiny_net-2_1-interrupted.ckpt"]
    assert checkpoint_names(tmp_path) == ["tiny_net-1_4.ckpt", "tiny_net-2_4.ckpt"] and metrics_epochs(tmp_path) == ["1", "2"]


def test_run_folder_listings_leave_out_what_was_set_aside(tmp_path):
    (tmp_path / ".lock").write_text("pid 1 on host")
    (tmp_path / "abandoned-20250101-000000").mkdir()
    (tmp_path / "abandoned-20250101-000000" / "res2net50-3_4.ckpt").write_bytes(b"x")
    (tmp_path / "metrics.csv.unreadable-20250101-000000").write_bytes(b"x")
    (tmp_path / "config.yaml.edited-20250101-000000").write_bytes(b"x")
    folder = RunFolder(str(tmp_path), "res2net50")
    assert folder.run_files() == [] and folder.runs() == {}
    folder.check_owner("freshrun")  # a folder holding only these is empty for a fresh run
