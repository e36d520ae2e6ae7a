"""A run folder belongs to one run: a fresh run refuses, before writing anything, a --ckpt_save_dir that
holds another run's files (any model's checkpoints, config.yaml, metrics.csv, train.log); leftovers of
killed processes are not a run; --resume continues the folder's own run."""
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from mindcv_res2net.config import save_config
from mindcv_res2net.cli.parser import parse_settings
from mindcv_res2net.train.run_folder import RunCheckpoints, RunFolder, RunFolderError, checkpoint_to_evaluate
from mindcv_res2net.train.run_record import STATUSES, RunRecord, read_run_record, write_run_record
from mindcv_res2net.train.trainer import train
from mindcv_res2net.utils.fileio import WriteError, atomic_path
from mindcv_res2net.utils.logger import setup_logger
from mindcv_res2net.weights import CheckpointError, read_checkpoint_metadata, save_weights
from conftest import assert_quiet_exit, run

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
    """Issue 21's reproduction: run B in run A's folder. Leftovers of killed processes do not count."""
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
