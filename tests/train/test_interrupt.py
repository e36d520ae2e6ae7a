"""Stopping a run with SIGINT/SIGTERM: the checkpoint of the step reached, the last line, the exit code, and a
resume that ends with the tensors of an unbroken run (real signals, subprocesses)."""
import csv
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from helpers import PROJECT_DIR
from helpers.msrun import DISTRIBUTED_RUN, free_port, msrun_workers
from helpers.programs import run
from mindcv_res2net.train.run_folder import RunCheckpoints, run_metadata
from mindcv_res2net.utils.logger import setup_logger
from mindcv_res2net.weights import CheckpointError, read_mindspore_checkpoint

# 48 images, batch 8: 6 steps per epoch; Graph mode (one compilation, then fast steps); EMA on
TINY = ["--mode", "0", "--dataset", "digits", "--image_resize", "32", "--num_samples", "48", "--batch_size", "8",
        "--num_parallel_workers", "1", "--opt", "adamw", "--lr", "0.001", "--val_while_train", "False",
        "--ema", "True", "--ema_decay", "0.9", "--epoch_size", "2"]
FINAL = "res2net50-2_6.ckpt"
STOP_LINE = re.compile(r"^stopped by (SIG\w+) after epoch (\d+), step (\d+) of 6: checkpoint (\S+); "
                       r"continue with: python train\.py --ckpt_save_dir (\S+) --resume auto$")


def _tensors(path):
    return {k: v for k, v in read_mindspore_checkpoint(path).items() if isinstance(v, np.ndarray)}


def _rows(folder):
    """metrics.csv without the timing columns."""
    with open(os.path.join(folder, "metrics.csv")) as f:
        return [{k: v for k, v in row.items() if k not in ("epoch_seconds", "img_per_s")} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory):
    folder = tmp_path_factory.mktemp("unbroken")
    proc = run(["train.py", *TINY, "--ckpt_save_dir", str(folder)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    return folder


def _stop_mid_epoch(folder, signum, preexec_fn=None):
    """train.py stopped by ``signum`` once its progress shows step 2 of epoch 1: (exit code, stdout)."""
    out_path, err_path = (folder.parent / (folder.name + suffix) for suffix in (".stdout", ".stderr"))
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen([sys.executable, "train.py", *TINY, "--ckpt_save_dir", str(folder)], cwd=PROJECT_DIR,
                                stdout=out, stderr=err, text=True, preexec_fn=preexec_fn)
    try:
        deadline = time.time() + 400
        # stdout is a file, not a terminal: progress comes as plain lines, one per step of a 6-step epoch
        while not re.search(r"^epoch 1/2: [2-6]/6 steps", out_path.read_text(errors="replace"), re.M):
            assert proc.poll() is None and time.time() < deadline, err_path.read_text()[-2000:]
            time.sleep(0.05)
        proc.send_signal(signum)
        proc.wait(timeout=300)
    finally:
        proc.kill()
    return proc.returncode, out_path.read_text()


def _check_stop_line(out, folder, name):
    """The last line printed says where the run stopped and how to continue; train.log ends with it."""
    last = out.rstrip("\n").splitlines()[-1]
    match = STOP_LINE.match(last)
    assert match, out[-1500:]
    assert match.group(1) == name and match.group(5) == str(folder)
    epoch, step, path = int(match.group(2)), int(match.group(3)), match.group(4)
    assert os.path.isfile(path) and os.path.dirname(path) == str(folder)
    expected = f"res2net50-{epoch}_{step}-interrupted.ckpt" if step < 6 else f"res2net50-{epoch}_6.ckpt"
    assert os.path.basename(path) == expected
    assert (folder / "train.log").read_text().rstrip("\n").endswith(last)
    return epoch, step


@pytest.mark.e2e
def test_sigint_inherited_as_ignored_stops_and_resume_ends_as_an_unbroken_run(tmp_path, unbroken):
    folder = tmp_path / "run"
    code, out = _stop_mid_epoch(folder, signal.SIGINT, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    # MindSpore 2.10 turns a SIGINT that arrives while it runs a step into a SIGTERM to its own process
    # (Graph and PyNative alike), so the run names the signal it received, and exits with its code
    name = "SIGINT" if code == 130 else "SIGTERM"
    assert code in (130, 143), out[-1500:]
    epoch, step = _check_stop_line(out, folder, name)
    proc = run(["train.py", "--ckpt_save_dir", str(folder), "--resume", "auto"])  # the command the stop line gives
    assert proc.returncode == 0, proc.stderr[-2000:]
    if step < 6:
        assert f"epoch {epoch} continues after step {step}" in proc.stdout
    assert not [n for n in os.listdir(folder) if n.endswith("-interrupted.ckpt")]  # superseded by epoch files
    reference, resumed = _tensors(unbroken / FINAL), _tensors(folder / FINAL)
    assert sorted(reference) == sorted(resumed)
    for name, value in reference.items():
        np.testing.assert_allclose(resumed[name], value, rtol=0, atol=1e-6, err_msg=name)
    assert _rows(folder) == _rows(unbroken)  # the stopped epoch's loss and top-1 count all its batches


@pytest.mark.e2e
def test_sigterm_stops_and_a_resume_with_another_batch_size_restarts_the_epoch(tmp_path):
    folder = tmp_path / "run"
    code, out = _stop_mid_epoch(folder, signal.SIGTERM)
    assert code == 143, out[-1500:]
    epoch, step = _check_stop_line(out, folder, "SIGTERM")
    if step == 6:
        pytest.fail("the signal came after the epoch's last step: the machine is too slow for this test")
    proc = run(["train.py", "--ckpt_save_dir", str(folder), "--resume", "auto", "--batch_size", "16"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (f"res2net50-{epoch}_{step}-interrupted.ckpt stopped after step {step} of epoch {epoch} (6 steps of "
            f"batch 8 on 1 device(s)); this run has 3 steps of batch 16 on 1 device(s), 3 updates: epoch {epoch} "
            "starts again from its first batch, from the weights of that step") in proc.stdout
    assert [row["epoch"] for row in _rows(folder)] == ["1", "2"]


@pytest.mark.e2e
def test_skipped_batches_leave_the_rest_of_the_epoch_as_it_was():
    """A resumed epoch's batches after step k are an unbroken epoch's, random crops and flips included."""
    from mindcv_res2net.cli.parser import parse_settings
    from mindcv_res2net.data import create_loader
    from mindcv_res2net.data.loader import iterate_batches
    from mindcv_res2net.models import get_pretrained_cfg

    data = parse_settings(["--dataset", "digits", "--image_resize", "32", "--num_samples", "40", "--batch_size", "8",
                           "--num_parallel_workers", "2"]).data
    loader = create_loader(data, "train", train=True, model_cfg=get_pretrained_cfg("res2net50"))
    whole = [[t.asnumpy() for t in batch] for batch in iterate_batches(loader.for_epoch(3))]
    tail = [[t.asnumpy() for t in batch] for batch in iterate_batches(loader.for_epoch(3), skip=2)]
    assert len(whole) == 5 and len(tail) == 3
    for (image, label), (image_after, label_after) in zip(whole[2:], tail):
        assert np.array_equal(image, image_after) and np.array_equal(label, label_after)


def _save_at(files, epoch, step, steps=4, **extra):
    metadata = dict(model="res2net50", epoch=epoch, step=step, steps_per_epoch=steps, **extra)
    if step % steps:
        progress = dict(loss_sum=1.0, correct=1, seen=2, seconds=0.5)
        return files.save_interrupted({"w": np.zeros(2, np.float32)}, dict(metadata, epoch_progress=progress),
                                      epoch=epoch + 1, step=step - epoch * steps)
    return files.save({"w": np.zeros(2, np.float32)}, metadata, epoch=epoch, steps=steps, is_best=False)


def test_resume_auto_takes_the_interrupted_checkpoint_until_a_newer_epoch_replaces_it(tmp_path):
    files = RunCheckpoints(str(tmp_path), "res2net50", keep=2, run_id="run1", logger=setup_logger(enabled=False))
    _save_at(files, 1, 4)
    interrupted = _save_at(files, 1, 6)  # stopped after step 2 of epoch 2
    assert os.path.basename(interrupted) == "res2net50-2_2-interrupted.ckpt"
    assert files.resume_path() == interrupted
    files.check_owner("run1")  # its own files
    again = _save_at(files, 1, 7)  # resumed, stopped again after step 3: only the newest interrupted one stays
    assert sorted(os.listdir(tmp_path)) == ["res2net50-1_4.ckpt", "res2net50-2_3-interrupted.ckpt"]
    assert files.resume_path() == again
    files.repair_best(1)  # the best copy comes from the epoch file, not the interrupted one of the same epoch
    assert read_mindspore_checkpoint(files.best_path)["metadata"] == read_mindspore_checkpoint(
        str(tmp_path / "res2net50-1_4.ckpt"))["metadata"]
    _save_at(files, 2, 8)
    assert sorted(os.listdir(tmp_path)) == ["res2net50-1_4.ckpt", "res2net50-2_4.ckpt", "res2net50-best.ckpt"]


_number = st.one_of(st.integers(-5, 10 ** 10), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                    st.text(max_size=3), st.none())


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["loss_sum", "correct", "seen", "seconds", "other"]), _number))
def test_epoch_progress_metadata_reads_only_when_every_number_is_possible(progress):
    valid = set(progress) == {"loss_sum", "correct", "seen", "seconds"} and all(
        isinstance(progress[k], int) and not isinstance(progress[k], bool) and 0 <= progress[k] <= 10 ** 9
        for k in ("correct", "seen")) and progress["correct"] <= progress["seen"] and all(
        isinstance(progress[k], (int, float)) and not isinstance(progress[k], bool) and np.isfinite(progress[k])
        and progress[k] >= 0 for k in ("loss_sum", "seconds"))
    if valid:
        assert run_metadata({"epoch_progress": progress}, "x.ckpt")["epoch_progress"] == progress
    else:
        with pytest.raises(CheckpointError, match=r"^x\.ckpt: metadata 'epoch_progress' must be an object of"):
            run_metadata({"epoch_progress": progress}, "x.ckpt")


@pytest.mark.e2e
def test_sigterm_to_every_msrun_worker_stops_all_ranks_after_one_step(tmp_path):
    bin_dir = os.path.dirname(sys.executable)
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))
    logs, folder = tmp_path / "logs", tmp_path / "run"
    cmd = [os.path.join(bin_dir, "msrun"), "--worker_num=2", "--local_worker_num=2", f"--master_port={free_port()}",
           f"--log_dir={logs}", "--join=True", "train.py", *DISTRIBUTED_RUN, "--distribute", "--num_samples", "96",
           "--batch_size", "8", "--epoch_size", "2", "--ckpt_save_dir", str(folder)]
    msrun = subprocess.Popen(cmd, cwd=PROJECT_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 500
        while not re.search(r": [2-5]/6 steps", (logs / "worker_0.log").read_text(errors="replace")
                            if (logs / "worker_0.log").exists() else ""):
            assert msrun.poll() is None and time.time() < deadline, "msrun ended before step 2"
            time.sleep(0.05)
        workers = msrun_workers(msrun.pid)
        assert len(workers) == 2
        for pid in workers:
            os.kill(pid, signal.SIGTERM)
        msrun.wait(timeout=300)  # no rank hangs
    finally:
        msrun.kill()
    assert msrun.returncode != 0  # msrun reports the workers' exit code 143 as a failed job
    rank0, rank1 = ((logs / f"worker_{r}.log").read_text(errors="replace") for r in (0, 1))
    stopped = re.search(r"stopped by SIGTERM after epoch (\d+), step (\d+) of 6: checkpoint (\S+);", rank0)
    assert stopped, rank0[-2000:]
    epoch, step, path = stopped.groups()
    assert f"continue with: msrun <its flags> train.py --ckpt_save_dir {folder} --resume auto" in rank0
    assert f"rank 1: stopped by SIGTERM after epoch {epoch}, step {step}; rank 0 writes the checkpoint" in rank1
    assert os.path.isfile(path) and os.listdir(folder).count(os.path.basename(path)) == 1
    assert not [n for n in os.listdir(folder) if n.startswith(".partial")]  # rank 0 finished writing
