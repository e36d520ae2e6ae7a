"""A run's data and history are its own: it stores absolute paths (validate and --resume auto from another
folder read the run's data, and say which folder), its metrics.csv survives what a user's tools write, a
continuation from an older checkpoint sets the later epochs aside, one process at a time trains in a run
folder, and the messages of a finished run, a file as --ckpt_save_dir and a hand-edited config.yaml."""
import csv
import io
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from hypothesis import example, given, settings, strategies as st
from PIL import Image

from conftest import PROJECT_DIR, TESTS_DIR, assert_quiet_exit
from mindcv_res2net.cli.parser import parse_config, parse_settings
from mindcv_res2net.cli.train import main as train_main
from mindcv_res2net.cli.validate import main as validate_main
from mindcv_res2net.train.run_folder import RunFolder, RunFolderError, RunLock
from mindcv_res2net.train.trainer import train
from mindcv_res2net.utils.cli import run_cli
from mindcv_res2net.utils.logger import MetricsCSV, read_metrics
from mindcv_res2net.weights import read_checkpoint, read_checkpoint_metadata, save_weights

TINY = ["--model", "tiny_net", "--mode", "1", "--dataset", "digits", "--image_resize", "32", "--num_samples", "64",
        "--batch_size", "16", "--num_parallel_workers", "1", "--opt", "adamw", "--lr", "0.002", "--seed", "3"]


def _cli(main, argv, capsys):
    """``main(argv)`` through ``run_cli``, as the console script runs it: (exit code, stdout, stderr)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: main(argv))
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def _snapshot(folder):
    """{relative path: bytes} of every file under ``folder``."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            found[os.path.relpath(path, folder)] = open(path, "rb").read()
    return found


def _epochs(folder):
    return [row["epoch"] for row in csv.DictReader(open(os.path.join(folder, "metrics.csv"), newline=""))]


def _ckpts(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".ckpt"))


# ---------------------------------------------------------------------------------------------- absolute paths


def _photo_folder(root, swapped=False):
    """``root``/{train,val}/{dark,light}/*.png: dark and light squares (``swapped``: each class holds the
    other's images, so a model trained on the unswapped folder scores 0% here)."""
    for split, count in (("train", 8), ("val", 4)):
        for name, level in (("dark", 20), ("light", 235)):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (32, 32), ((255 - level if swapped else level) + i,) * 3).save(folder / f"{i}.png")


PHOTOS = ["--model", "tiny_net", "--mode", "1", "--dataset", "imagefolder", "--image_resize", "32", "--batch_size",
          "8", "--num_parallel_workers", "1", "--opt", "adamw", "--lr", "0.05", "--seed", "3", "--epoch_size", "3"]


def test_a_relative_data_dir_is_the_runs_own_folder_from_anywhere(tmp_path, monkeypatch, pynative, tiny_model, capsys):
    """Issue: a run trained with ``--data_dir data`` stored ``data``; validate.py and --resume auto run from
    another folder read that folder's ./data. The run stores absolute paths, validate's result line names
    the folder it read, and the top-1 is the run's own."""
    first, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    _photo_folder(first / "data")
    _photo_folder(elsewhere / "data", swapped=True)
    monkeypatch.chdir(first)
    assert train_main(PHOTOS + ["--data_dir", "data", "--ckpt_save_dir", "run"]) == 0
    run = first / "run"
    config = read_checkpoint_metadata(run / "tiny_net-best.ckpt")["config"]
    assert (config["data_dir"], config["ckpt_save_dir"]) == (str(first / "data"), str(run))
    assert yaml.safe_load(open(run / "config.yaml"))["data_dir"] == str(first / "data")
    best = max(float(row["val_top1"]) for row in csv.DictReader(open(run / "metrics.csv")))

    monkeypatch.chdir(elsewhere)
    code, out, err = _cli(validate_main, ["--ckpt_path", str(run)], capsys)
    assert code == 0, err
    assert f"tiny_net on imagefolder/val in {first / 'data'}: top-1 {best:.2f}%, " in out
    assert train_main(["--ckpt_save_dir", str(run), "--resume", "auto", "--epoch_size", "4"]) == 0
    assert read_checkpoint_metadata(run / "tiny_net-4_2.ckpt")["config"]["data_dir"] == str(first / "data")


def test_an_older_runs_relative_data_dir_is_read_here_with_a_warning(tmp_path, monkeypatch, pynative, tiny_model,
                                                                      capsys):
    """A run stored before paths were absolute keeps its relative data_dir: read from the current folder,
    as before, and a warning names the stored value and the folder used (validate and resume)."""
    _photo_folder(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    assert train_main(PHOTOS + ["--data_dir", "data", "--ckpt_save_dir", "run", "--epoch_size", "1"]) == 0
    path = tmp_path / "run" / "tiny_net-1_2.ckpt"
    state, metadata = read_checkpoint(str(path))
    save_weights(state, path, metadata=dict(metadata, config=dict(metadata["config"], data_dir="data")))
    os.remove(tmp_path / "run" / "tiny_net-best.ckpt")
    warning = (rf"^{path} stores data_dir 'data', a relative path: taken as {tmp_path}/data, relative to the current "
               r"folder \(the folder the run was started from is not recorded\)$")
    with pytest.warns(UserWarning, match=warning):
        code, out, err = _cli(validate_main, ["--ckpt_path", str(path)], capsys)
    assert code == 0 and f" on imagefolder/val in {tmp_path}/data: top-1 " in out, err
    assert train_main(["--ckpt_save_dir", "run", "--resume", "auto", "--epoch_size", "2"]) == 0
    log = [line for line in open(tmp_path / "run" / "train.log") if "a relative path" in line]
    assert len(log) == 1 and " WARNING " in log[0] and f"taken as {tmp_path}/data" in log[0]
    assert read_checkpoint_metadata(tmp_path / "run" / "tiny_net-2_2.ckpt")["config"]["data_dir"] == \
        str(tmp_path / "data")


def test_validate_reads_the_runs_checkpoint_once(tmp_path, pynative, tiny_model, monkeypatch, capsys):
    """validate.py --ckpt_path RUN reads the run's best checkpoint once (network, weights, the run's settings)."""
    import mindcv_res2net.weights.formats as formats

    assert train_main(TINY + ["--epoch_size", "1", "--ckpt_save_dir", str(tmp_path)]) == 0
    reads = []
    for module_name, module in list(sys.modules.items()):
        for name in ("read_checkpoint", "read_checkpoint_metadata"):
            original = getattr(formats, name)
            if module_name.startswith("mindcv_res2net.") and module is not formats \
                    and getattr(module, name, None) is original:
                monkeypatch.setattr(module, name, lambda path, *a, _read=original, _name=name, **k: (
                    reads.append((_name, str(path))), _read(path, *a, **k))[1])
    code, out, err = _cli(validate_main, ["--ckpt_path", str(tmp_path)], capsys)
    assert code == 0 and "tiny_net on digits/val: top-1 " in out, err
    assert reads == [("read_checkpoint", str(tmp_path / "tiny_net-best.ckpt"))]


# ---------------------------------------------------------------------------------------------- metrics.csv


def _spreadsheet(text: str, bom=True, line_end="\r\n", quote=True, order=None, extra=None) -> bytes:
    """``text`` (a metrics.csv) as a spreadsheet program saves it back: a byte-order mark, its line ends,
    every field quoted, columns reordered and an extra column of notes, trailing blank lines."""
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header = order or rows[0]
    table = [dict(zip(rows[0], row)) for row in rows[1:]]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=line_end, quoting=csv.QUOTE_ALL if quote else csv.QUOTE_MINIMAL)
    writer.writerow(header + ([extra] if extra else []))
    for i, row in enumerate(table):
        writer.writerow([row[k] for k in header] + ([f"note, {i}"] if extra else []))
    return (b"\xef\xbb\xbf" if bom else b"") + (out.getvalue() + line_end * 2).encode()


def test_metrics_saved_back_by_a_spreadsheet_keep_every_row_on_resume(tmp_path, pynative, tiny_model):
    """Issue: metrics.csv saved back with a byte-order mark lost every earlier row at the next resume."""
    out = str(tmp_path)
    assert train_main(TINY + ["--epoch_size", "2", "--ckpt_save_dir", out]) == 0
    before = list(csv.DictReader(open(tmp_path / "metrics.csv", newline="")))
    order = ["img_per_s", "epoch", "val_top1", "train_loss", "train_top1", "lr", "val_loss", "val_top5",
             "epoch_seconds"]
    saved = _spreadsheet((tmp_path / "metrics.csv").read_text(), order=order, extra="comment")
    (tmp_path / "metrics.csv").write_bytes(saved)
    assert train_main(["--ckpt_save_dir", out, "--resume", "auto", "--epoch_size", "3"]) == 0
    assert (tmp_path / "metrics.csv").read_bytes().startswith(saved)  # continued after its own bytes
    fields, rows, problem = read_metrics(str(tmp_path / "metrics.csv"))
    assert problem is None and fields == order + ["comment"] and [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert [{k: r[k] for k in before[0]} for r in rows[:2]] == before and rows[1]["comment"] == "note, 1"
    assert not [n for n in os.listdir(tmp_path) if "unreadable" in n]


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\x00\x00garbage", b"loss;acc\n1;2\n",
                                     b"epoch,train_loss\n1,2.3\n"])
def test_metrics_that_are_not_ours_are_kept_beside_the_new_file(tmp_path, pynative, tiny_model, content, caplog):
    """Issue: a metrics.csv of random bytes or with a wrong header was silently replaced."""
    out = str(tmp_path)
    assert train_main(TINY + ["--epoch_size", "1", "--val_while_train", "false", "--ckpt_save_dir", out]) == 0
    (tmp_path / "metrics.csv").write_bytes(content)
    assert train_main(["--ckpt_save_dir", out, "--resume", "auto", "--epoch_size", "2"]) == 0
    kept = [n for n in os.listdir(tmp_path) if n.startswith("metrics.csv.unreadable-")]
    assert len(kept) == 1 and (tmp_path / kept[0]).read_bytes() == content
    assert _epochs(tmp_path) == ["2"]
    line = [r for r in open(tmp_path / "train.log") if "cannot be read as this run's metrics" in r]
    assert len(line) == 1 and " WARNING " in line[0] and f"kept as {tmp_path / kept[0]}" in line[0]


ROW = st.fixed_dictionaries({
    "epoch": st.integers(1, 10 ** 6).map(str), "train_loss": st.floats(0, 50).map("{:.5f}".format),
    "train_top1": st.floats(0, 100).map("{:.3f}".format), "lr": st.floats(0, 1).map("{:.6g}".format),
    "val_loss": st.sampled_from(["", "2.30000"]), "val_top1": st.sampled_from(["", "12.500"]),
    "val_top5": st.sampled_from(["", "50.000"]), "epoch_seconds": st.floats(0, 1e5).map("{:.2f}".format),
    "img_per_s": st.floats(0.01, 1e5).map("{:.2f}".format)})


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(ROW, max_size=6), bom=st.booleans(), crlf=st.booleans(), quote=st.booleans(),
       extra=st.one_of(st.none(), st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=10)
                       .filter(lambda s: s.strip() and s.strip() not in MetricsCSV.FIELDS and "\x00" not in s)))
def test_metrics_rows_read_back_equal_also_after_a_spreadsheet_save(tmp_path_factory, rows, bom, crlf, quote, extra):
    path = str(tmp_path_factory.mktemp("m") / "metrics.csv")
    metrics = MetricsCSV(path)
    for row in rows:
        metrics.append(**row)
    fields, read, problem = read_metrics(path)
    assert (fields, read, problem) == (list(MetricsCSV.FIELDS), rows, None)
    with open(path, newline="") as f:
        saved = _spreadsheet(f.read(), bom=bom, line_end="\r\n" if crlf else "\n", quote=quote, extra=extra)
    with open(path, "wb") as f:
        f.write(saved)
    metrics = MetricsCSV(path, keep_until_epoch=10 ** 6)
    for row in rows[:1]:
        metrics.append(**row)
    fields, read, problem = read_metrics(path)
    assert problem is None and [{k: r[k] for k in MetricsCSV.FIELDS} for r in read] == rows + rows[:1]
    assert open(path, "rb").read().startswith(saved) and len(os.listdir(os.path.dirname(path))) == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.builds(lambda head, tail: head + tail, st.sampled_from([
    b"epoch,train_loss,train_top1,lr,val_loss,val_top1,val_top5,epoch_seconds,img_per_s\r\n1,2,3,4,,,,5,6\r\n",
    b"\xef\xbb\xbfepoch,train_loss,train_top1,lr,val_loss,val_top1,val_top5,epoch_seconds,img_per_s\n"]),
    st.binary(max_size=100)))
@example(b"epoch,train_loss,train_top1,lr,val_loss,val_top1,val_top5,epoch_seconds,img_per_s\r\n1,2,3,4,,,,5")
@example(b"\n\n")
def test_any_bytes_as_metrics_csv_lose_nothing(tmp_path_factory, content):
    """The run goes on (the file is continued or started again), the old bytes still exist byte for byte
    (as the new file's beginning, or set aside beside it), and the new file reads back as metrics."""
    folder = tmp_path_factory.mktemp("m")
    path = str(folder / "metrics.csv")
    with open(path, "wb") as f:
        f.write(content)
    row = dict(epoch=7, train_loss="1.0", train_top1="50.000", lr="0.1", epoch_seconds="1.00", img_per_s="9.00")
    metrics = MetricsCSV(path, keep_until_epoch=10 ** 6)
    metrics.append(**row)
    new = open(path, "rb").read()
    aside = [open(folder / n, "rb").read() for n in os.listdir(folder) if n != "metrics.csv"]
    assert new.startswith(content) or aside == [content]
    fields, rows, problem = read_metrics(path)
    assert problem is None and rows[-1] == dict({k: "" for k in fields}, **{k: str(v) for k, v in row.items()})


# ---------------------------------------------------------------------------------------------- one line of epochs


def test_continuing_from_an_older_checkpoint_sets_the_later_epochs_aside(tmp_path, pynative, tiny_model):
    """Issue: --resume RUN/…-1_4.ckpt --epoch_size 2 in a run that reached epoch 3 left -3_4.ckpt, which
    --resume auto then took ("epoch 3 done", "last checkpoint None"), and metrics.csv ended with epochs 1, 2, 4."""
    out = str(tmp_path)
    assert train_main(TINY + ["--epoch_size", "3", "--ckpt_save_dir", out, "--lr", "0.02"]) == 0
    best = read_checkpoint_metadata(tmp_path / "tiny_net-best.ckpt")
    assert best["epoch"] == 2  # the best copy is one of the later epochs (val top-1 10.9%, 12.5%, 9.4%)
    later = {n: (tmp_path / n).read_bytes() for n in ("tiny_net-2_4.ckpt", "tiny_net-3_4.ckpt", "tiny_net-best.ckpt",
                                                      "metrics.csv")}
    assert train_main(["--ckpt_save_dir", out, "--resume", str(tmp_path / "tiny_net-1_4.ckpt"), "--epoch_size",
                       "2"]) == 0
    aside = [n for n in os.listdir(tmp_path) if n.startswith("abandoned-")]
    assert len(aside) == 1 and _snapshot(tmp_path / aside[0]) == later
    assert _ckpts(tmp_path) == ["tiny_net-1_4.ckpt", "tiny_net-2_4.ckpt", "tiny_net-best.ckpt"]
    best_now = read_checkpoint_metadata(tmp_path / "tiny_net-best.ckpt")  # the resumed line's own best
    assert (tmp_path / "tiny_net-best.ckpt").read_bytes() == \
        (tmp_path / f"tiny_net-{best_now['epoch']}_4.ckpt").read_bytes()
    log = [line for line in open(tmp_path / "train.log") if "set aside" in line]
    assert len(log) == 1 and log[0].rstrip().endswith(
        f"continuing from {tmp_path}/tiny_net-1_4.ckpt (epoch 1 done): set aside what this run had trained after "
        f"that in {tmp_path / aside[0]}/: tiny_net-2_4.ckpt, tiny_net-3_4.ckpt, tiny_net-best.ckpt; a copy of "
        "metrics.csv (its rows of epochs 2, 3 are dropped from the run's)")
    assert train_main(["--ckpt_save_dir", out, "--resume", "auto", "--epoch_size", "3"]) == 0
    assert _epochs(tmp_path) == ["1", "2", "3"]
    assert "resuming from " + str(tmp_path / "tiny_net-2_4.ckpt") in open(tmp_path / "train.log").read()


def test_an_interrupted_checkpoint_past_the_resumed_one_is_set_aside(tmp_path, pynative, tiny_model):
    out = str(tmp_path)
    assert train_main(TINY + ["--epoch_size", "2", "--val_while_train", "false", "--ckpt_save_dir", out]) == 0
    state, metadata = read_checkpoint(str(tmp_path / "tiny_net-2_4.ckpt"))  # as if stopped after step 1 of epoch 2
    save_weights(state, tmp_path / "tiny_net-2_1-interrupted.ckpt",
                 metadata=dict(metadata, epoch=1, step=5, epoch_progress=dict(loss_sum=1.0, correct=1, seen=16,
                                                                               seconds=0.1)))
    os.remove(tmp_path / "tiny_net-2_4.ckpt")
    assert train_main(["--ckpt_save_dir", out, "--resume", str(tmp_path / "tiny_net-1_4.ckpt")]) == 0
    aside = [n for n in os.listdir(tmp_path) if n.startswith("abandoned-")]
    assert len(aside) == 1 and sorted(os.listdir(tmp_path / aside[0])) == ["metrics.csv",
                                                                           "tiny_net-2_1-interrupted.ckpt"]
    assert _ckpts(tmp_path) == ["tiny_net-1_4.ckpt", "tiny_net-2_4.ckpt"] and _epochs(tmp_path) == ["1", "2"]


def test_run_folder_listings_leave_out_what_was_set_aside(tmp_path):
    (tmp_path / ".lock").write_text("pid 1 on host")
    (tmp_path / "abandoned-20250101-000000").mkdir()
    (tmp_path / "abandoned-20250101-000000" / "res2net50-3_4.ckpt").write_bytes(b"x")
    (tmp_path / "metrics.csv.unreadable-20250101-000000").write_bytes(b"x")
    (tmp_path / "config.yaml.edited-20250101-000000").write_bytes(b"x")
    folder = RunFolder(str(tmp_path), "res2net50")
    assert folder.run_files() == [] and folder.runs() == {}
    folder.check_owner("freshrun")  # a folder holding only these is empty for a fresh run


# ---------------------------------------------------------------------------------------------- one process per run

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
    """Issue: two --resume auto of one run at the same moment both trained, each over the other's files."""
    out = str(tmp_path)
    assert train_main(TINY + ["--epoch_size", "1", "--ckpt_save_dir", out]) == 0
    assert not (tmp_path / ".lock").exists()  # released, and removed, at the end
    before = _snapshot(tmp_path)
    holder = _holder(tmp_path / ".lock")
    try:
        for extra in (["--resume", "auto", "--epoch_size", "2"], ["--resume", str(tmp_path / "tiny_net-1_4.ckpt")]):
            code, _, err = _cli(train_main, ["--ckpt_save_dir", out] + extra, capsys)
            assert code == 2 and err == (f"error: --ckpt_save_dir {out}: another process trains in this run folder "
                                         f"(pid {holder.pid} on test-host); wait until it ends, or stop it, before "
                                         "continuing the run\n")
        assert {k: v for k, v in _snapshot(tmp_path).items() if k != ".lock"} == before
    finally:
        holder.kill()
        holder.wait()
    assert (tmp_path / ".lock").exists()  # left by the killed holder: its lock went with it
    assert train_main(["--ckpt_save_dir", out, "--resume", "auto", "--epoch_size", "2"]) == 0
    assert _epochs(tmp_path) == ["1", "2"] and not (tmp_path / ".lock").exists()


TRY_LOCK = ("import fcntl, os, sys\n"
            "fd = os.open(sys.argv[1], os.O_RDWR)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n")


def test_the_lock_is_held_while_the_run_trains_fresh_or_resumed(tmp_path, pynative, tiny_model):
    out, attempts = str(tmp_path / "run"), []

    def try_lock(model, rank):
        attempts.append(subprocess.run([sys.executable, "-c", TRY_LOCK, os.path.join(out, ".lock")],
                                       capture_output=True, text=True))

    train(parse_settings(TINY + ["--epoch_size", "1", "--ckpt_save_dir", out]), on_finish=try_lock)
    args, given = parse_config(["--ckpt_save_dir", out, "--resume", "auto", "--epoch_size", "2"], program="train")
    train(args, on_finish=try_lock, given=given)
    assert [a.returncode for a in attempts] == [1, 1] and all("BlockingIOError" in a.stderr for a in attempts)
    assert not os.path.exists(os.path.join(out, ".lock"))


def test_a_fresh_run_into_a_held_folder_is_refused(tmp_path, pynative, tiny_model):
    holder = _holder(tmp_path / ".lock")
    try:
        with pytest.raises(RunFolderError, match=rf"^--ckpt_save_dir {tmp_path}: another process trains in this run "
                                                 rf"folder \(pid {holder.pid} on test-host\)"):
            train(parse_settings(TINY + ["--epoch_size", "1", "--ckpt_save_dir", str(tmp_path)]))
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
    assert train_main(TINY + ["--epoch_size", "1", "--val_while_train", "false", "--ckpt_save_dir", out]) == 0
    plan = plan_run(*parse_config(["--ckpt_save_dir", out, "--resume", "auto", "--epoch_size", "3"], program="train"))
    assert plan.checkpoint == str(tmp_path / "tiny_net-1_4.ckpt")
    assert train_main(["--ckpt_save_dir", out, "--resume", "auto", "--epoch_size", "2"]) == 0  # meanwhile
    lock = RunLock(out)
    try:
        with pytest.raises(RunFolderError, match=rf"^--ckpt_save_dir {tmp_path}: its newest checkpoint changed while "
                                                 rf"this process started \({tmp_path}/tiny_net-1_4.ckpt -> "
                                                 rf"{tmp_path}/tiny_net-2_4.ckpt\); run the command again$"):
            claim_run_folder(plan, lock)
    finally:
        lock.release()


RACER = ("import sys\n"
         f"sys.path.insert(0, {TESTS_DIR!r})\n"
         "import tiny_net\n"
         "tiny_net.register()\n"
         "from mindcv_res2net.cli.train import cli\n"
         "sys.argv = ['train.py'] + sys.argv[1:]\n"
         "cli()\n")


@pytest.mark.e2e
def test_two_resumes_of_one_run_at_once(tmp_path, pynative, tiny_model):
    """The issue's race with real train.py processes: the second fails at once with one line naming the folder
    and the first's pid; killed, the first leaves the run to the next --resume auto."""
    out = str(tmp_path)
    assert train_main(TINY + ["--epoch_size", "1", "--val_while_train", "false", "--ckpt_save_dir", out]) == 0
    resume = [sys.executable, "-c", RACER, "--ckpt_save_dir", out, "--resume", "auto", "--epoch_size", "100000"]
    first = subprocess.Popen(resume, cwd=PROJECT_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while "epoch 3/" not in open(tmp_path / "train.log").read():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        second = subprocess.run(resume, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300)
        assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr[-2000:]
        assert second.stderr.startswith(f"error: --ckpt_save_dir {out}: another process trains in this run folder "
                                        f"(pid {first.pid} on ")
        assert_quiet_exit(second)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    epochs = [int(e) for e in _epochs(tmp_path)]
    assert epochs == list(range(1, len(epochs) + 1))  # each epoch once
    assert train_main(["--ckpt_save_dir", out, "--resume", "auto", "--epoch_size", str(epochs[-1] + 1)]) == 0
    assert [int(e) for e in _epochs(tmp_path)] == list(range(1, epochs[-1] + 2))


# ---------------------------------------------------------------------------------------------- messages


def test_the_runs_class_count_is_its_trained_one(tmp_path, pynative, tiny_model, capsys):
    """Issue: "contradicts the resumed run's num_classes None" for a run that trained with 10 classes."""
    out = str(tmp_path)
    assert train_main(TINY + ["--epoch_size", "1", "--val_while_train", "false", "--ckpt_save_dir", out]) == 0
    code, _, err = _cli(train_main, ["--ckpt_save_dir", out, "--resume", "auto", "--epoch_size", "2",
                                     "--num_classes", "7"], capsys)
    assert code == 2 and err == (f"error: --num_classes 7 contradicts the resumed run's num_classes 10 "
                                 f"({tmp_path}/tiny_net-1_4.ckpt); drop it to continue the run, or start a new run "
                                 "in another --ckpt_save_dir\n")
    assert train_main(["--ckpt_save_dir", out, "--resume", "auto", "--epoch_size", "2", "--num_classes", "10"]) == 0
    assert read_checkpoint_metadata(tmp_path / "tiny_net-2_4.ckpt")["num_classes"] == 10


def test_resuming_a_finished_run_says_so_and_writes_nothing(tmp_path, pynative, tiny_model, capsys):
    """Issue: "done in 0 s ... last checkpoint None" when resuming a run at its last epoch."""
    out = str(tmp_path)
    assert train_main(TINY + ["--epoch_size", "2", "--ckpt_save_dir", out]) == 0
    best = read_checkpoint_metadata(tmp_path / "tiny_net-best.ckpt")
    before = _snapshot(tmp_path)
    args, given = parse_config(["--ckpt_save_dir", out, "--resume", "auto"], program="train")
    summary = train(args, given=given)
    assert summary["last_checkpoint"] == str(tmp_path / "tiny_net-2_4.ckpt")
    assert summary["best_checkpoint"] == str(tmp_path / "tiny_net-best.ckpt")
    assert (summary["best_top1"], summary["best_epoch"]) == (best["val_top1"], best["epoch"])
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"run {best['run_id']} is finished: epoch 2 of 2 done ({tmp_path}/tiny_net-2_4.ckpt); best val top-1 "
        f"{best['val_top1']:.2f}% at epoch {best['epoch']} ({tmp_path}/tiny_net-best.ckpt); nothing to train: it "
        f"continues only with a larger --epoch_size (python train.py --ckpt_save_dir {tmp_path} --resume auto "
        "--epoch_size N, N > 2)")
    assert _snapshot(tmp_path) == before
    code, _, err = _cli(train_main, ["--ckpt_save_dir", out, "--resume", "auto"], capsys)
    assert code == 0 and err == ""
    code, _, err = _cli(train_main, ["--ckpt_save_dir", out, "--resume", "auto", "--epoch_size", "1"], capsys)
    assert code == 2 and err == (f"error: --epoch_size 1: {tmp_path}/tiny_net-2_4.ckpt has done 2 epochs already; "
                                 "give a larger --epoch_size to continue it, or --resume an earlier checkpoint of the "
                                 "run\n")
    assert _snapshot(tmp_path) == before


def test_a_file_as_ckpt_save_dir_is_one_line(tmp_path, capsys, monkeypatch):
    """Issue: "config.yaml: File exists" for a --ckpt_save_dir that is a regular file; checked before the
    data or the model are built."""
    monkeypatch.setattr("mindcv_res2net.train.trainer.plan_run", lambda *a: pytest.fail("read something"))
    (tmp_path / "notes.txt").write_text("mine")
    for given, where in (("notes.txt", ""), ("notes.txt/run", f"{tmp_path}/notes.txt ")):
        monkeypatch.chdir(tmp_path)
        code, _, err = _cli(train_main, ["--ckpt_save_dir", given, "--resume", "auto"], capsys)
        assert code == 2 and err == f"error: --ckpt_save_dir {tmp_path}/{given}: {where}is a file, not a folder\n"
    assert (tmp_path / "notes.txt").read_text() == "mine" and os.listdir(tmp_path) == ["notes.txt"]


def test_a_hand_edited_config_is_kept_and_its_replaced_values_named(tmp_path, pynative, tiny_model):
    """Issue: a hand-edited config.yaml was rewritten on resume without a word."""
    out = str(tmp_path)
    assert train_main(TINY + ["--epoch_size", "1", "--val_while_train", "false", "--ckpt_save_dir", out]) == 0
    config = tmp_path / "config.yaml"
    reformatted = "# my notes\n" + yaml.safe_dump(yaml.safe_load(config.read_text()), indent=4, default_flow_style=True)
    config.write_text(config.read_text().split("\n", 1)[0] + "\n" + reformatted)  # comments and layout are no edit
    assert train_main(["--ckpt_save_dir", out, "--resume", "auto", "--epoch_size", "2"]) == 0
    assert not [n for n in os.listdir(tmp_path) if ".edited-" in n] and "hand-edited" not in open(
        tmp_path / "train.log").read()

    edited = config.read_text().replace("lr: 0.002", "lr: 0.5").replace("seed: 3", "seed: 11  # try another")
    config.write_text(edited)
    assert train_main(["--ckpt_save_dir", out, "--resume", "auto", "--epoch_size", "3"]) == 0
    kept = [n for n in os.listdir(tmp_path) if n.startswith("config.yaml.edited-")]
    assert len(kept) == 1 and (tmp_path / kept[0]).read_text() == edited
    line = [r for r in open(tmp_path / "train.log") if "hand-edited" in r]
    assert len(line) == 1 and " WARNING " in line[0] and line[0].rstrip().endswith(
        f"{config}: replaced the hand-edited values lr: 0.5 -> 0.002, seed: 11 -> 3 (a run's settings come from its "
        f"checkpoint; change those that may change with flags); the edited file is kept as {tmp_path / kept[0]}")
    assert yaml.safe_load(config.read_text())["lr"] == 0.002 and yaml.safe_load(config.read_text())["epoch_size"] == 3
    assert read_checkpoint_metadata(tmp_path / "tiny_net-3_4.ckpt")["config"]["lr"] == 0.002
