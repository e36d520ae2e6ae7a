"""Data-parallel training with msrun: two launchers as on two machines (a rank that dies, resume), and a run
killed with SIGKILL mid-epoch."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from helpers import PROJECT_DIR
from mindcv_res2net.weights import read_mindspore_checkpoint
from helpers.msrun import DISTRIBUTED_RUN, free_port, msrun_workers
from helpers.programs import helpers_env, run

pytestmark = pytest.mark.e2e


# train.py of ``--model tiny_net`` with an on_finish callback: each rank writes a digest of its trained weights
# into DIGEST_DIR
TRAIN_WITH_DIGEST = """
import hashlib, os, sys
import mindcv_res2net
from helpers import tiny_net
from mindcv_res2net.cli.parser import parse_settings
from mindcv_res2net.train.trainer import train
from mindcv_res2net.utils.cli import run_cli

def write_digest(model, rank):
    digest = hashlib.sha256(b"".join(p.asnumpy().tobytes() for p in model.trainable_params())).hexdigest()
    with open(os.path.join(os.environ["DIGEST_DIR"], f"rank_{rank}.sha256"), "w") as f:
        f.write(digest)

def main():
    tiny_net.register()
    train(parse_settings(sys.argv[1:]), on_finish=write_digest)
    return 0

run_cli(main)
"""


def test_sigkill_mid_epoch_leaves_valid_checkpoints_and_resume_auto_continues(tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "train.py", *DISTRIBUTED_RUN, "--num_samples", "192", "--batch_size", "16", "--epoch_size",
            "3", "--keep_checkpoint_max", "5", "--ckpt_save_dir", str(out)]
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
            assert name in ("config.yaml", "metrics.csv", "run.json", "train.log", ".lock") or \
                name.startswith(".partial-"), name
    resumed = run(["train.py", *DISTRIBUTED_RUN, "--num_samples", "192", "--batch_size", "16", "--epoch_size", "3",
                   "--keep_checkpoint_max", "5", "--ckpt_save_dir", str(out), "--resume", "auto"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert re.search(r"resuming from .*res2net50-[12]_12\.ckpt", resumed.stdout)
    final = sorted(n for n in os.listdir(out) if n.endswith(".ckpt"))
    assert final[-1] == "res2net50-3_12.ckpt" and not any(n.startswith(".partial-") for n in os.listdir(out))
    assert ".lock" not in os.listdir(out)  # the killed process's lock file: taken over, then removed
    epochs = [line.split(",")[0] for line in open(out / "metrics.csv").read().splitlines()[1:]]
    assert epochs == ["1", "2", "3"]


EPOCHS = 30  # of 4 steps of tiny_net: the job still runs when rank 1 is killed after the first checkpoint


def _launch_two_nodes(tmp_path, script, port, logs, extra):
    """The README's two-machine msrun command on this machine: one launcher per ``--node_rank``, one worker
    each, ``--master_addr 127.0.0.1``; each launcher in its own process group (killed as a whole)."""
    bin_dir = os.path.dirname(sys.executable)
    env = helpers_env(PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""), DIGEST_DIR=str(tmp_path / "digests"))
    launchers = []
    for node in (0, 1):
        cmd = [os.path.join(bin_dir, "msrun"), "--worker_num=2", "--local_worker_num=1", "--master_addr=127.0.0.1",
               f"--master_port={port}", f"--node_rank={node}", f"--log_dir={logs}{node}", "--join=True", str(script),
               *DISTRIBUTED_RUN, "--model", "tiny_net", "--distribute", "--num_samples", "64", "--batch_size", "8",
               "--epoch_size", str(EPOCHS), "--ckpt_save_dir", str(tmp_path / "run"), *extra]
        launchers.append(subprocess.Popen(cmd, cwd=PROJECT_DIR, env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True))
        time.sleep(1)  # node 0's scheduler binds the port first
    return launchers


def _end(launchers, timeout):
    """Wait for every launcher; a launcher still running after ``timeout`` s is a hang: kill all, fail."""
    deadline = time.time() + timeout
    try:
        for proc in launchers:
            proc.wait(timeout=max(1, deadline - time.time()))
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the job still ran {timeout} s after a rank died")
    finally:
        for proc in launchers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    return [proc.returncode for proc in launchers]


def _one_extra_scheduler_failed(logs, codes):
    """msrun 2.10 starts a scheduler in every launcher whose --master_addr is an address of its machine; on one
    machine the second cannot bind the port and its launcher exits 1 (two machines have one local master)."""
    failed = [node for node in (0, 1) if "Address already in use" in open(f"{logs}{node}/scheduler.log").read()]
    assert len(failed) == 1 and codes[failed[0]] == 1, (failed, codes)
    return 1 - failed[0]


def test_two_launchers_train_as_one_job_a_dying_rank_ends_it_and_resume_continues(tmp_path):
    (tmp_path / "digests").mkdir()
    script = tmp_path / "train.py"  # train.py with a digest: named so that ``msrun_workers`` finds it
    script.write_text(TRAIN_WITH_DIGEST)
    run_dir, logs = tmp_path / "run", str(tmp_path / "logs")
    # a rank that dies (SIGKILL of node 1's worker during epoch 2) ends the job with a message, no hang
    launchers = _launch_two_nodes(tmp_path, script, free_port(), logs, [])
    deadline = time.time() + 400
    while not (run_dir / "tiny_net-1_4.ckpt").exists():  # 64 images / 2 ranks / batch 8: 4 steps per epoch
        assert all(p.poll() is None for p in launchers) and time.time() < deadline, "no first checkpoint"
        time.sleep(0.05)
    (victim,) = msrun_workers(launchers[1].pid)
    os.kill(victim, signal.SIGKILL)
    died = time.time()
    codes = _end(launchers, timeout=180)
    assert codes[0] != 0 and codes[1] != 0
    rank0 = open(f"{logs}0/worker_0.log", errors="replace").read()
    assert "32 training images x 2 device(s), 4 steps per epoch" in rank0  # two launchers, one job
    last = [line for line in rank0.splitlines() if line.startswith("error: ")][-1]
    assert re.fullmatch(r"error: rank 0 of 2: epoch \d+ failed: .+; once every rank runs again, continue from the "
                        r"newest checkpoint with: msrun <its flags> train\.py --ckpt_save_dir \S+ --resume auto", last)
    assert "C++ Call Stack" not in last, last
    print(f"job ended {time.time() - died:.0f} s after rank 1 died")
    saved = sorted(int(m.group(1)) for m in map(re.compile(r"tiny_net-(\d+)_4\.ckpt").fullmatch, os.listdir(run_dir))
                   if m)
    assert saved and saved[-1] < EPOCHS, saved
    # both launchers again with --resume auto: the job continues from the newest checkpoint, ranks agree
    launchers = _launch_two_nodes(tmp_path, script, free_port(), logs + "_resumed", ["--resume", "auto"])
    codes = _end(launchers, timeout=400)
    node = _one_extra_scheduler_failed(logs + "_resumed", codes)
    assert codes[node] == 0, codes
    rank0 = open(f"{logs}_resumed0/worker_0.log", errors="replace").read()
    assert re.search(rf"resuming from \S*tiny_net-{saved[-1]}_4\.ckpt", rank0), rank0[-3000:]
    digests = {f: open(tmp_path / "digests" / f).read() for f in sorted(os.listdir(tmp_path / "digests"))}
    assert list(digests) == ["rank_0.sha256", "rank_1.sha256"] and len(set(digests.values())) == 1
    # only rank 0 writes the run's files: the newest --keep_checkpoint_max (10) checkpoints and its logs
    kept = [f"tiny_net-{epoch}_4.ckpt" for epoch in range(EPOCHS - 9, EPOCHS + 1)]
    assert sorted(os.listdir(run_dir)) == sorted(["config.yaml", "metrics.csv", "run.json", "train.log", *kept])
    assert "training images" not in open(f"{logs}_resumed1/worker_1.log", errors="replace").read()


# train.py of ``--model tiny_net`` whose new run folders are named at one fixed time on every rank
TRAIN_AT_A_FIXED_TIME = """
import sys
import mindcv_res2net
from helpers import tiny_net
from mindcv_res2net.cli.train import main
from mindcv_res2net.train import run_folder
from mindcv_res2net.utils.cli import run_cli

tiny_net.register()
run_folder.timestamp = lambda: "20261206-221500"
run_cli(lambda: main(sys.argv[1:]))
"""


def test_a_data_parallel_job_without_ckpt_save_dir_trains_in_one_new_run_folder(tmp_path):
    """Without --ckpt_save_dir, rank 0 makes the job's folder (with -2: the name is taken) and tells the other
    ranks; the job ends normally, in one folder."""
    script, work, logs = tmp_path / "train.py", tmp_path / "work", tmp_path / "logs"
    script.write_text(TRAIN_AT_A_FIXED_TIME)
    (work / "runs" / "tiny_net-digits-20261206-221500").mkdir(parents=True)  # taken (empty: no run to resume)
    bin_dir = os.path.dirname(sys.executable)
    env = helpers_env(PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))
    cmd = [os.path.join(bin_dir, "msrun"), "--worker_num=2", "--local_worker_num=2", f"--master_port={free_port()}",
           f"--log_dir={logs}", "--join=True", str(script), *DISTRIBUTED_RUN, "--model", "tiny_net", "--distribute",
           "--num_samples", "64", "--batch_size", "8", "--epoch_size", "1"]
    proc = subprocess.run(cmd, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=400)
    rank0 = (logs / "worker_0.log").read_text(errors="replace")
    assert proc.returncode == 0, rank0[-2000:] + (logs / "worker_1.log").read_text(errors="replace")[-2000:]
    folder = work / "runs" / "tiny_net-digits-20261206-221500-2"
    assert sorted(os.listdir(work / "runs")) == [folder.name[:-2], folder.name]
    assert os.listdir(work / "runs" / folder.name[:-2]) == []
    assert "run folder: runs/tiny_net-digits-20261206-221500-2\n" in rank0
    assert os.path.isfile(folder / "tiny_net-1_4.ckpt") and os.path.isfile(folder / "run.json")
