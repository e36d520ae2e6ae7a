"""A run folder belongs to one run and one process at a time: a fresh run refuses, before writing anything, a
--ckpt_save_dir that holds another run's files (any model's checkpoints, config.yaml, metrics.csv, train.log,
run.json); leftovers of killed processes are not a run; --resume continues the folder's own run; run.json names
the run and how it ended (folders written before it are read by config.yaml's first line); a second process is
refused while one trains in the folder (a file lock), and a file as --ckpt_save_dir is one line."""
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from mindcv_res2net.config import save_config
from mindcv_res2net.cli.parser import parse_config, parse_settings
from mindcv_res2net.cli.train import main as train_main
from mindcv_res2net.train.run_folder import RunCheckpoints, RunFolder, RunFolderError, RunLock, checkpoint_to_evaluate
from mindcv_res2net.train.run_record import STATUSES, RunRecord, read_run_record, write_run_record
from mindcv_res2net.train.trainer import train
from mindcv_res2net.utils.fileio import WriteError, atomic_path
from mindcv_res2net.utils.logger import setup_logger
from mindcv_res2net.weights import CheckpointError, read_checkpoint_metadata, save_weights
from helpers import PROJECT_DIR
from helpers.programs import assert_quiet_exit, helpers_env, run, run_main
from helpers.runs import TINY_NET_RUN, folder_files, metrics_epochs

TINY = ["--mode", "1", "--dataset", "digits", "--image_resize", "32", "--num_samples", "16", "--batch_size", "16",
        "--num_parallel_workers", "1", "--opt", "adamw", "--lr", "0.001", "--seed", "5"]
FRESH_REFUSAL = (r"^--ckpt_save_dir: {folder} holds another run's files \(run {run}, {model}, newest epoch {epoch}: "
                 r"{names}\); a fresh run never writes over them: continue it with {flags}--resume auto, or choose "
                 r"another --ckpt_save_dir$")


def _snapshot(folder):
    """{name: (bytes, mtime_ns)} of everything in ``folder``."""
    return {name: (open(os.path.join(folder, name), "rb").read(), os.stat(os.path.join(folder, name)).st_mtime_ns)
            for name in sorted(os.listdir(folder))}


def _legacy_config(path, settings, run_id, model):
    """A run's config.yaml as train.py wrote it before run.json: its first line names the run."""
    save_config(settings, str(path))
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(f"# run {run_id}, model {model}\n{text}")


def _other_run(folder, model="res2net50", run_id="otherrun1234", epochs=(1, 2)):
    """A stand-in for another run's folder, as train.py wrote it before run.json: tiny checkpoints of ``run_id``,
    its config.yaml naming it, metrics and log."""
    files = RunCheckpoints(str(folder), model, keep=5, run_id=run_id, logger=setup_logger(enabled=False))
    for epoch in epochs:
        files.save({"w": np.ones(3, np.float32)}, dict(model=model, epoch=epoch), epoch=epoch, steps=4,
                   is_best=epoch == 1)
    _legacy_config(files.config_path, parse_settings(["--model", model]), run_id, model)
    for name in ("metrics.csv", "train.log"):
        (folder / name).write_text("the other run's\n")


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.e2e
def test_second_fresh_run_is_refused_and_the_first_resumes(tmp_path, pynative):
    """A second fresh run in the first run's folder is refused before writing anything, and the first resumes
    there. Leftovers of killed processes do not count."""
    out = tmp_path / "run"
    out.mkdir()
    leftovers = [f".partial-deadrun.{_dead_pid()}.x1y2.ckpt", f".partial-anon.{_dead_pid()}.z3"]
    for name in leftovers:
        (out / name).write_bytes(b"cut short")
    common = TINY + ["--ckpt_save_dir", str(out)]
    first = train(parse_settings(common + ["--epoch_size", "1"]))
    run_a = read_checkpoint_metadata(first["last_checkpoint"])["run_id"]
    assert sorted(os.listdir(out)) == sorted(leftovers + ["config.yaml", "metrics.csv", "res2net50-1_1.ckpt",
                                                          "res2net50-best.ckpt", "run.json", "train.log"])
    before = _snapshot(out)
    with pytest.raises(RunFolderError, match=FRESH_REFUSAL.format(
            folder=out, run=run_a, model="res2net50", epoch=1, flags="",
            names=r"config.yaml, metrics.csv, res2net50-1_1.ckpt, res2net50-best.ckpt, run.json, train.log")):
        train(parse_settings(common + ["--epoch_size", "1", "--seed", "6"]))
    assert _snapshot(out) == before  # nothing replaced, appended or added
    summary = train(parse_settings(common + ["--epoch_size", "2", "--resume", "auto"]))
    assert read_checkpoint_metadata(summary["last_checkpoint"])["run_id"] == run_a
    assert [line.split(",")[0] for line in open(out / "metrics.csv").read().splitlines()] == ["epoch", "1", "2"]
    record = json.loads((out / "run.json").read_text())
    assert record == dict(id=run_a, model="res2net50", created=record["created"], status="finished")
    log = open(out / "train.log").read()
    assert log.startswith(before["train.log"][0].decode()) and "resuming from" in log


@pytest.mark.e2e
def test_cli_refusal_is_one_line_and_writes_nothing(tmp_path):
    _other_run(tmp_path)
    before = _snapshot(tmp_path)
    proc = run(["train.py", *TINY, "--epoch_size", "1", "--ckpt_save_dir", str(tmp_path)])
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert proc.stderr == (
        f"error: --ckpt_save_dir: {tmp_path} holds another run's files (run otherrun1234, res2net50, newest epoch 2: "
        "config.yaml, metrics.csv, res2net50-1_4.ckpt, res2net50-2_4.ckpt, res2net50-best.ckpt, train.log); a fresh "
        "run never writes over them: continue it with --resume auto, or choose another --ckpt_save_dir\n")
    assert_quiet_exit(proc)
    assert _snapshot(tmp_path) == before


def test_another_models_run_is_refused_with_its_model_named(tmp_path, pynative):
    _other_run(tmp_path, model="res2net101_26w_4s", epochs=(3,))
    os.remove(tmp_path / "train.log")
    before = _snapshot(tmp_path)
    for extra in ([], ["--resume", "auto"]):  # --resume auto finds no res2net50 run to continue either
        with pytest.raises(RunFolderError, match=FRESH_REFUSAL.format(
                folder=tmp_path, run="otherrun1234", model="res2net101_26w_4s", epoch=3,
                flags="--model res2net101_26w_4s ",
                names=r"config.yaml, metrics.csv, res2net101_26w_4s-3_4.ckpt")):
            train(parse_settings(TINY + ["--ckpt_save_dir", str(tmp_path)] + extra))
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("present", [["metrics.csv"], ["train.log"], ["config.yaml"], ["metrics.csv", "train.log"]])
def test_files_that_name_no_run_are_another_runs(tmp_path, pynative, present):
    """metrics.csv and train.log (and a config.yaml without its run line) cannot say whose they are: in a
    folder without any file of the run itself, they are another run's."""
    for name in present:
        (tmp_path / name).write_text("epoch: 1\n")
    before = _snapshot(tmp_path)
    for extra in ([], ["--resume", "auto"]):
        with pytest.raises(RunFolderError, match=rf"^--ckpt_save_dir: {tmp_path} holds another run's files \(naming "
                                                 rf"no run: {', '.join(present)}\); a fresh run never writes over "
                                                 r"them: choose another --ckpt_save_dir$"):
            train(parse_settings(TINY + ["--ckpt_save_dir", str(tmp_path)] + extra))
    assert _snapshot(tmp_path) == before


def test_checkpoints_without_a_run_id_and_several_runs(tmp_path, pynative):
    save_weights({"w": np.ones(2, np.float32)}, str(tmp_path / "res2net50-4_8.ckpt"), metadata={"epoch": 4})
    (tmp_path / "res2net50-best.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(RunFolderError, match=r"holds another run's files \(run \(no id\), res2net50, newest epoch 4: "
                                             r"res2net50-4_8.ckpt, res2net50-best.ckpt\); a fresh run never writes "
                                             r"over them: choose another --ckpt_save_dir$"):
        train(parse_settings(TINY + ["--ckpt_save_dir", str(tmp_path)]))
    os.remove(tmp_path / "res2net50-best.ckpt")
    _other_run(tmp_path, epochs=(1,))
    with pytest.raises(RunFolderError, match=r"holds the files of 2 other runs \(run otherrun1234, res2net50, "
                                             r"newest epoch 1; run \(no id\), res2net50, newest epoch 4: config.yaml, "
                                             r"metrics.csv, res2net50-1_4.ckpt, res2net50-4_8.ckpt, "
                                             r"res2net50-best.ckpt, train.log\); a fresh run never writes over them: "
                                             r"choose another --ckpt_save_dir$"):
        train(parse_settings(TINY + ["--ckpt_save_dir", str(tmp_path)]))


def test_resume_path_into_another_runs_folder_is_refused(tmp_path, pynative):
    mine = tmp_path / "mine"
    _other_run(mine, run_id="myrun", epochs=(1,))
    theirs = tmp_path / "theirs"
    _other_run(theirs, run_id="theirrun", epochs=(1,))
    before = _snapshot(theirs)
    with pytest.raises(RunFolderError, match=rf"^--ckpt_save_dir: {theirs} holds another run's files \(run theirrun, "
                                             r"res2net50, newest epoch 1: .*\); run myrun, resumed from "
                                             rf"{mine}/res2net50-1_4.ckpt, never writes over them: choose another "
                                             r"--ckpt_save_dir$"):
        train(parse_settings(TINY + ["--ckpt_save_dir", str(theirs), "--resume", str(mine / "res2net50-1_4.ckpt")]))
    assert _snapshot(theirs) == before


@pytest.mark.e2e
def test_resume_auto_before_the_first_checkpoint_continues_that_run(tmp_path, pynative):
    """A run killed during its first epoch left config.yaml (naming it), metrics.csv and train.log:
    --resume auto starts it again under its own identity, and train.log keeps the lines logged before."""
    _legacy_config(tmp_path / "config.yaml", parse_settings(TINY), "killedrun", "res2net50")
    (tmp_path / "metrics.csv").write_text("epoch,train_loss\n1,2.")
    (tmp_path / "train.log").write_text("first lines\n")
    summary = train(parse_settings(TINY + ["--val_while_train", "False", "--epoch_size", "1", "--resume", "auto",
                                       "--ckpt_save_dir", str(tmp_path)]))
    assert read_checkpoint_metadata(summary["last_checkpoint"])["run_id"] == "killedrun"
    log = open(tmp_path / "train.log").read()
    assert log.startswith("first lines\n") and "--resume auto: no checkpoint in" in log
    assert [line.split(",")[0] for line in open(tmp_path / "metrics.csv").read().splitlines()] == ["epoch", "1"]


def test_claiming_a_folder_never_replaces_a_config_written_meanwhile(tmp_path):
    path = tmp_path / "config.yaml"
    with pytest.raises(WriteError, match=rf"^cannot write {path}: another process created it meanwhile$"):
        with atomic_path(str(path), replace=False) as tmp:
            open(tmp, "w").write("mine")
            path.write_text("theirs")  # another run claims the folder between the check and the write
    assert path.read_text() == "theirs" and os.listdir(tmp_path) == ["config.yaml"]


@settings(max_examples=200, deadline=None)
@given(run_id=st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z"), model=st.from_regex(r"\A[A-Za-z0-9_.-]{1,100}\Z"),
       rest=st.text(max_size=300))
def test_the_run_line_of_an_older_config_yaml_reads_back(tmp_path_factory, run_id, model, rest):
    """A folder written before run.json names its run on config.yaml's first line, and only there."""
    folder = tmp_path_factory.mktemp("cfg")
    (folder / "config.yaml").write_text(f"# run {run_id}, model {model}\n{rest}")
    assert RunFolder(str(folder), model).identity() == RunRecord(run_id, model)
    (folder / "config.yaml").write_text(f"model: {model}\n# run {run_id}, model {model}\n{rest}")
    assert RunFolder(str(folder), model).identity() is None


# ---------------------------------------------------------------------------------------------- run.json

RECORDS = st.builds(RunRecord, id=st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z"),
                    model=st.text(st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1,
                                  max_size=100).filter(lambda m: not any(c.isspace() for c in m)),
                    created=st.none() | st.text(min_size=1, max_size=64), status=st.sampled_from(STATUSES))


@settings(max_examples=200, deadline=None)
@given(record=RECORDS)
def test_run_json_reads_back_what_the_run_wrote(tmp_path_factory, record):
    path = str(tmp_path_factory.mktemp("run") / "run.json")
    write_run_record(record, path)
    assert read_run_record(path) == record


@settings(max_examples=300, deadline=None)
@given(content=st.binary(max_size=300) | st.builds(
    lambda record, extra: json.dumps(dict(dataclasses.asdict(record), **extra)).encode(), RECORDS,
    st.dictionaries(st.sampled_from(["id", "model", "created", "status", "note"]),
                    st.none() | st.integers() | st.text(max_size=5) | st.lists(st.integers(), max_size=2))))
def test_any_bytes_as_run_json_are_a_record_or_one_line_naming_the_file(tmp_path_factory, content):
    path = str(tmp_path_factory.mktemp("run") / "run.json")
    with open(path, "wb") as f:
        f.write(content)
    try:
        record = read_run_record(path)
    except RunFolderError as exc:
        assert str(exc).startswith(f"{path}: not a run record (") and "\n" not in str(exc)
    else:
        assert record.status in STATUSES and 1 <= len(record.id) <= 64


@pytest.mark.parametrize("make", [lambda p: p.mkdir(), lambda p: os.mkfifo(p),
                                  lambda p: p.write_text('{"id": "a"' + " " * 5000 + "}")])
def test_a_run_json_that_is_no_file_or_too_large_is_one_line(tmp_path, make):
    make(tmp_path / "run.json")
    with pytest.raises(RunFolderError, match=rf"^{tmp_path}/run.json: (not a regular file|not a run record \(more "
                                             r"than 4096 bytes)"):
        read_run_record(str(tmp_path / "run.json"))


def test_run_json_names_the_folders_run_for_ownership_and_validate(tmp_path, pynative):
    """A folder whose only run file is another run's run.json is that run's: a fresh run is refused naming it,
    validate.py --ckpt_path RUN takes its model; an unreadable run.json is one line naming it."""
    write_run_record(RunRecord("otherrun1234", "res2net101", "2025-01-01T00:00:00+00:00", "stopped"),
                     str(tmp_path / "run.json"))
    before = _snapshot(tmp_path)
    with pytest.raises(RunFolderError, match=rf"^--ckpt_save_dir: {tmp_path} holds another run's files \(run "
                                             r"otherrun1234, res2net101, no epoch checkpoint: run.json\); a fresh run "
                                             r"never writes over them: continue it with --model res2net101 --resume "
                                             r"auto, or choose another --ckpt_save_dir$"):
        train(parse_settings(TINY + ["--ckpt_save_dir", str(tmp_path)]))
    assert _snapshot(tmp_path) == before
    with pytest.raises(CheckpointError, match=r"is a run of model 'res2net101', not 'res2net50'$"):
        checkpoint_to_evaluate(str(tmp_path), model_name="res2net50")
    with pytest.raises(CheckpointError, match=r"the run of res2net101 has written no checkpoint yet$"):
        checkpoint_to_evaluate(str(tmp_path))
    (tmp_path / "run.json").write_text('{"id": "x y"}')
    message = rf"^{tmp_path}/run.json: not a run record \(no model, created, status\); it names the run its folder "
    for attempt in (lambda: train(parse_settings(TINY + ["--ckpt_save_dir", str(tmp_path), "--resume", "auto"])),
                    lambda: checkpoint_to_evaluate(str(tmp_path))):
        with pytest.raises(RunFolderError, match=message):
            attempt()


@pytest.mark.e2e
def test_run_json_says_how_the_run_ended_and_keeps_its_creation(tmp_path, pynative, tiny_model, monkeypatch):
    """finished after its last epoch (and again after a resume, created unchanged), failed after an error; a run
    continued from a folder written before run.json gets one, its creation time unknown."""
    from mindcv_res2net.train import trainer

    tiny = ["--model", tiny_model, *TINY, "--val_while_train", "false", "--ckpt_save_dir", str(tmp_path)]
    train(parse_settings(tiny + ["--epoch_size", "1"]))
    first = json.loads((tmp_path / "run.json").read_text())
    assert first["status"] == "finished" and first["model"] == tiny_model and first["created"][:2] == "20"
    assert first["id"] == read_checkpoint_metadata(tmp_path / f"{tiny_model}-1_1.ckpt")["run_id"]
    train(parse_settings(tiny + ["--epoch_size", "2", "--resume", "auto"]))
    assert json.loads((tmp_path / "run.json").read_text()) == first

    def diverged(run, epoch, stop):
        raise RuntimeError("training diverged")

    with monkeypatch.context() as patch, pytest.raises(RuntimeError, match="training diverged"):
        patch.setattr(trainer, "train_epoch", diverged)
        train(parse_settings(tiny + ["--epoch_size", "3", "--resume", "auto"]))
    assert json.loads((tmp_path / "run.json").read_text()) == dict(first, status="failed")
    os.remove(tmp_path / "run.json")  # as a folder written before run.json: config.yaml names the run
    _legacy_config(tmp_path / "config.yaml", parse_settings(tiny), first["id"], tiny_model)
    train(parse_settings(tiny + ["--epoch_size", "3", "--resume", "auto"]))
    assert json.loads((tmp_path / "run.json").read_text()) == dict(first, created=None)
    assert not (tmp_path / "config.yaml").read_text().startswith("# run ")


# --------------------------------------------------------------------------- one process per run


HOLD = ("import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, b'pid %d on test-host' % os.getpid())\n"
        "print('held', flush=True)\n"
        "time.sleep(120)\n")


def _holder(path):
    """A process holding the lock ``path`` (as another train.py would), once it holds it."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "held\n"
    return proc


def test_a_run_held_by_another_process_is_refused_until_that_process_dies(tmp_path, pynative, tiny_model, capsys):
    """While another process holds the run folder's lock, --resume auto and --resume PATH are refused in one line
    naming its pid, and nothing in the folder changes; once it dies, the run resumes."""
    out = str(tmp_path)
    assert train_main(TINY_NET_RUN + ["--epoch_size", "1", "--ckpt_save_dir", out]) == 0
    assert not (tmp_path / ".lock").exists()  # released, and removed, at the end
    before = folder_files(tmp_path)
    holder = _holder(tmp_path / ".lock")
    try:
        for extra in (["--resume", "auto", "--epoch_size", "2"], ["--resume", str(tmp_path / "tiny_net-1_4.ckpt")]):
            code, _, err = run_main(train_main, ["--ckpt_save_dir", out] + extra, capsys)
            assert code == 2 and err == (f"error: --ckpt_save_dir {out}: another process trains in this run folder "
                                         f"(pid {holder.pid} on test-host); wait until it ends, or stop it, before "
                                         "continuing the run\n")
        assert {k: v for k, v in folder_files(tmp_path).items() if k != ".lock"} == before
    finally:
        holder.kill()
        holder.wait()
    assert (tmp_path / ".lock").exists()  # left by the killed holder: its lock went with it
    assert train_main(["--ckpt_save_dir", out, "--resume", "auto", "--epoch_size", "2"]) == 0
    assert metrics_epochs(tmp_path) == ["1", "2"] and not (tmp_path / ".lock").exists()


TRY_LOCK = ("import fcntl, os, sys\n"
            "fd = os.open(sys.argv[1], os.O_RDWR)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n")


def test_the_lock_is_held_while_the_run_trains_fresh_or_resumed(tmp_path, pynative, tiny_model):
    out, attempts = str(tmp_path / "run"), []

    def try_lock(model, rank):
        attempts.append(subprocess.run([sys.executable, "-c", TRY_LOCK, os.path.join(out, ".lock")],
                                       capture_output=True, text=True))

    train(parse_settings(TINY_NET_RUN + ["--epoch_size", "1", "--ckpt_save_dir", out]), on_finish=try_lock)
    args, given = parse_config(["--ckpt_save_dir", out, "--resume", "auto", "--epoch_size", "2"], program="train")
    train(args, on_finish=try_lock, given=given)
    assert [a.returncode for a in attempts] == [1, 1] and all("BlockingIOError" in a.stderr for a in attempts)
    assert not os.path.exists(os.path.join(out, ".lock"))


def test_a_fresh_run_into_a_held_folder_is_refused(tmp_path, pynative, tiny_model):
    holder = _holder(tmp_path / ".lock")
    try:
        with pytest.raises(RunFolderError, match=rf"^--ckpt_save_dir {tmp_path}: another process trains in this run "
                                                 rf"folder \(pid {holder.pid} on test-host\)"):
            train(parse_settings(TINY_NET_RUN + ["--epoch_size", "1", "--ckpt_save_dir", str(tmp_path)]))
    finally:
        holder.kill()
        holder.wait()
    assert os.listdir(tmp_path) == [".lock"]


def test_a_lock_is_taken_once_and_never_by_two(tmp_path):
    first, second = RunLock(str(tmp_path / "new")), RunLock(str(tmp_path / "new"))
    first.acquire()
    first.acquire()  # already held: nothing
    assert first.held and os.listdir(tmp_path / "new") == [".lock"]
    with pytest.raises(RunFolderError, match=rf"\(pid {os.getpid()} on "):
        second.acquire()
    first.release()
    assert os.listdir(tmp_path / "new") == []
    second.acquire()
    second.release()


def test_a_file_system_without_locks_is_said_once_and_the_run_goes_on(tmp_path, monkeypatch):
    import errno
    import logging

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr("mindcv_res2net.train.run_folder.fcntl.flock", no_locks)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("mindcv_res2net").addHandler(handler)
    try:
        lock = RunLock(str(tmp_path))
        lock.acquire()
        lock.acquire()
    finally:
        logging.getLogger("mindcv_res2net").removeHandler(handler)
    assert [r.getMessage() for r in records] == [f"cannot lock {tmp_path}/.lock (No locks available): nothing stops "
                                                 "a second process from training in this run folder at the same time"]
    assert not lock.held


def test_a_checkpoint_written_while_waiting_for_the_lock_is_refused(tmp_path, pynative, tiny_model):
    """The settings were read from one checkpoint; once the lock is held, the newest is another (a process
    that held the lock wrote it and ended): starting from either would be wrong, so the command is refused."""
    from mindcv_res2net.train.plan import claim_run_folder, plan_run

    out = str(tmp_path)
    assert train_main(TINY_NET_RUN + ["--epoch_size", "1", "--val_while_train", "false", "--ckpt_save_dir", out]) == 0
    plan = plan_run(*parse_config(["--ckpt_save_dir", out, "--resume", "auto", "--epoch_size", "3"], program="train"))
    assert plan.checkpoint == str(tmp_path / "tiny_net-1_4.ckpt")
    assert train_main(["--ckpt_save_dir", out, "--resume", "auto", "--epoch_size", "2"]) == 0  # meanwhile
    with pytest.raises(RunFolderError, match=rf"^--ckpt_save_dir {tmp_path}: its newest checkpoint changed while "
                                             rf"this process started \({tmp_path}/tiny_net-1_4.ckpt -> "
                                             rf"{tmp_path}/tiny_net-2_4.ckpt\); run the command again$"):
        claim_run_folder(plan)
    assert not (tmp_path / ".lock").exists()  # the lock taken to check is released


RACER = ("import sys\n"  # run with helpers_env(): the package and helpers
         "from helpers import tiny_net\n"
         "tiny_net.register()\n"
         "from mindcv_res2net.cli.train import cli\n"
         "sys.argv = ['train.py'] + sys.argv[1:]\n"
         "cli()\n")


@pytest.mark.e2e
def test_two_resumes_of_one_run_at_once(tmp_path, pynative, tiny_model):
    """Two train.py processes resuming one run at once: the second fails at once with one line naming the folder
    and the first's pid; killed, the first leaves the run to the next --resume auto."""
    out = str(tmp_path)
    assert train_main(TINY_NET_RUN + ["--epoch_size", "1", "--val_while_train", "false", "--ckpt_save_dir", out]) == 0
    resume = [sys.executable, "-c", RACER, "--ckpt_save_dir", out, "--resume", "auto", "--epoch_size", "100000"]
    first = subprocess.Popen(resume, cwd=PROJECT_DIR, env=helpers_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while "epoch 3/" not in open(tmp_path / "train.log").read():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        second = subprocess.run(resume, cwd=PROJECT_DIR, env=helpers_env(), capture_output=True, text=True,
                                timeout=300)
        assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr[-2000:]
        assert second.stderr.startswith(f"error: --ckpt_save_dir {out}: another process trains in this run folder "
                                        f"(pid {first.pid} on ")
        assert_quiet_exit(second)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    epochs = [int(e) for e in metrics_epochs(tmp_path)]
    assert epochs == list(range(1, len(epochs) + 1))  # each epoch once
    assert train_main(["--ckpt_save_dir", out, "--resume", "auto", "--epoch_size", str(epochs[-1] + 1)]) == 0
    assert [int(e) for e in metrics_epochs(tmp_path)] == list(range(1, epochs[-1] + 2))


# ---------------------------------------------------------------------- a file as the run folder


def test_a_file_as_ckpt_save_dir_is_one_line(tmp_path, capsys, monkeypatch):
    """A --ckpt_save_dir that is a regular file (or below one) is one line saying so, checked before the data or
    the model are built."""
    monkeypatch.setattr("mindcv_res2net.train.trainer.plan_run", lambda *a: pytest.fail("read something"))
    (tmp_path / "notes.txt").write_text("mine")
    for given, where in (("notes.txt", ""), ("notes.txt/run", f"{tmp_path}/notes.txt ")):
        monkeypatch.chdir(tmp_path)
        code, _, err = run_main(train_main, ["--ckpt_save_dir", given, "--resume", "auto"], capsys)
        assert code == 2 and err == f"error: --ckpt_save_dir {tmp_path}/{given}: {where}is a file, not a folder\n"
    assert (tmp_path / "notes.txt").read_text() == "mine" and os.listdir(tmp_path) == ["notes.txt"]
