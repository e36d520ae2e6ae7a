"""Data-parallel training with msrun on 2 CPU workers, and a run killed with SIGKILL mid-epoch."""
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import PROJECT_DIR
from mindcv_res2net.weights import read_mindspore_checkpoint
from conftest import run

pytestmark = pytest.mark.e2e

TINY = ["--mode", "0", "--dataset", "digits", "--image_resize", "32", "--num_parallel_workers", "1",
        "--opt", "adamw", "--lr", "0.001", "--val_while_train", "False"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# train.py with an on_finish callback: each rank writes a digest of its trained weights into DIGEST_DIR
TRAIN_WITH_DIGEST = """
import hashlib, os, sys
import mindcv_res2net
from mindcv_res2net.config import parse_args
from mindcv_res2net.engine.trainer import train
from mindcv_res2net.utils.cli import run_cli

def write_digest(model, rank):
    digest = hashlib.sha256(b"".join(p.asnumpy().tobytes() for p in model.trainable_params())).hexdigest()
    with open(os.path.join(os.environ["DIGEST_DIR"], f"rank_{rank}.sha256"), "w") as f:
        f.write(digest)

def main():
    train(parse_args(sys.argv[1:]), on_finish=write_digest)
    return 0

run_cli(main)
"""


def test_msrun_two_workers_end_with_identical_weights(tmp_path):
    bin_dir = os.path.dirname(sys.executable)
    (tmp_path / "digests").mkdir()
    script = tmp_path / "train_with_digest.py"
    script.write_text(TRAIN_WITH_DIGEST)
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""), DIGEST_DIR=str(tmp_path / "digests"))
    cmd = [os.path.join(bin_dir, "msrun"), "--worker_num=2", "--local_worker_num=2", f"--master_port={_free_port()}",
           f"--log_dir={tmp_path / 'logs'}", "--join=True", str(script), *TINY, "--distribute", "--num_samples", "64",
           "--batch_size", "8", "--epoch_size", "1", "--ckpt_save_dir", str(tmp_path / "ckpt")]
    proc = subprocess.run(cmd, cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=600)
    logs = {f: open(tmp_path / "logs" / f, errors="replace").read() for f in os.listdir(tmp_path / "logs")}
    assert proc.returncode == 0, "\n".join(log[-2000:] for log in logs.values())
    digests = {f: open(tmp_path / "digests" / f).read() for f in sorted(os.listdir(tmp_path / "digests"))}
    assert list(digests) == ["rank_0.sha256", "rank_1.sha256"]
    assert len(set(digests.values())) == 1  # gradients were averaged: both ranks hold the same weights
    # each rank saw its own half: 64 images / 2 ranks / batch 8 = 4 steps; only rank 0 wrote files
    assert sorted(os.listdir(tmp_path / "ckpt")) == ["config.yaml", "metrics.csv", "res2net50-1_4.ckpt", "train.log"]
    assert "32 training images x 2 device(s), 4 steps per epoch" in logs["worker_0.log"]
    assert "training images" not in logs["worker_1.log"]


def test_sigkill_mid_epoch_leaves_valid_checkpoints_and_resume_auto_continues(tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "train.py", *TINY, "--num_samples", "192", "--batch_size", "16", "--epoch_size", "3",
            "--keep_checkpoint_max", "5", "--ckpt_save_dir", str(out)]
    proc = subprocess.Popen(args, cwd=PROJECT_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not (out / "res2net50-1_12.ckpt").exists():
            assert proc.poll() is None and time.time() < deadline, "training ended before its first checkpoint"
            time.sleep(0.2)
        time.sleep(1.5)  # well into epoch 2 (12 steps of about 0.3 s)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    names = os.listdir(out)
    assert "res2net50-3_12.ckpt" not in names
    for name in names:
        if re.match(r"^res2net50-(\d+_\d+|best)\.ckpt$", name):
            assert "conv1.weight" in read_mindspore_checkpoint(str(out / name)), name  # complete and readable
        else:
            assert name in ("config.yaml", "metrics.csv", "train.log") or name.startswith(".partial-"), name
    resumed = run(["train.py", *TINY, "--num_samples", "192", "--batch_size", "16", "--epoch_size", "3",
                   "--keep_checkpoint_max", "5", "--ckpt_save_dir", str(out), "--resume", "auto"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert re.search(r"resuming from .*res2net50-[12]_12\.ckpt", resumed.stdout)
    final = sorted(n for n in os.listdir(out) if n.endswith(".ckpt"))
    assert final[-1] == "res2net50-3_12.ckpt" and not any(n.startswith(".partial-") for n in os.listdir(out))
    epochs = [line.split(",")[0] for line in open(out / "metrics.csv").read().splitlines()[1:]]
    assert epochs == ["1", "2", "3"]
