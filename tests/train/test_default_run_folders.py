"""Without --ckpt_save_dir every run gets a folder of its own, runs/<model>-<dataset>-<YYYYmmdd-HHMMSS> in the
current folder (a second run in the same second: -2), made only once the data and the model are checked; --resume
auto continues the newest of them; the lines that name the folder (start, stop, end) work from another folder."""
import datetime
import os
import re
import shutil
import signal
import time

import pytest
from hypothesis import example, given, settings, strategies as st

from helpers import PROJECT_DIR
from helpers.programs import run_main
from helpers.runs import TINY_NET_RUN, checkpoint_names
from mindcv_res2net.cli.train import main as train_main
from mindcv_res2net.cli.validate import main as validate_main
from mindcv_res2net.train import run_folder, trainer
from mindcv_res2net.train.run_folder import RunLock, make_run_folder, runs_of
from mindcv_res2net.train.run_record import RunFolderError, RunRecord, write_run_record

QUICK_START = os.path.join(PROJECT_DIR, "configs", "res2net", "res2net50_digits_cpu.yaml")
# the Quick start's recipe on tiny_net: 64 images, 4 steps per epoch, PyNative
RECIPE_RUN = ["-c", QUICK_START, "--model", "tiny_net", "--mode", "1", "--num_samples", "64", "--batch_size", "16",
              "--num_parallel_workers", "1", "--epoch_size", "1"]
FOLDER_NAME = re.compile(r"\Atiny_net-digits-[0-9]{8}-[0-9]{6}(-[0-9]+)?\Z")


def _runs(cwd):
    """The names in ``cwd``/runs, sorted."""
    return sorted(os.listdir(cwd / "runs"))


def _stamp(monkeypatch, value):
    """New run folders are named with the time ``value`` (YYYYmmdd-HHMMSS)."""
    monkeypatch.setattr(run_folder, "timestamp", lambda: value)


def test_the_quick_start_recipe_run_twice_gives_two_run_folders(tmp_path, monkeypatch, pynative, tiny_model, capsys):
    """The same command twice from the same folder, in the same second: two runs, each in its own folder (the
    second with -2), named at the start and in the end line, which prints the command that validates the run."""
    monkeypatch.chdir(tmp_path)
    _stamp(monkeypatch, "20261206-221500")
    outputs = []
    for _ in range(2):
        code, out, err = run_main(train_main, RECIPE_RUN, capsys)
        assert code == 0, err
        outputs.append(out)
    assert _runs(tmp_path) == ["tiny_net-digits-20261206-221500", "tiny_net-digits-20261206-221500-2"]
    for name, out in zip(_runs(tmp_path), outputs):
        folder = tmp_path / "runs" / name
        assert checkpoint_names(folder) == ["tiny_net-1_4.ckpt", "tiny_net-best.ckpt"]
        assert f"run folder: runs/{name}\n" in out
        assert out.splitlines()[-1].endswith(f"; validate it with: python validate.py --ckpt_path {folder}")
    assert not os.path.exists(tmp_path / "ckpt")
    monkeypatch.chdir(tmp_path / "runs")  # the printed command, run from another folder
    code, out, err = run_main(validate_main, outputs[1].splitlines()[-1].split("python validate.py ")[1].split(), capsys)
    assert code == 0 and out.splitlines()[-1].startswith("tiny_net on digits/val: top-1 "), err


def test_make_run_folder_never_shares_a_folder(tmp_path):
    path = str(tmp_path / "runs" / "res2net50-digits-20261206-221500")
    assert [make_run_folder(path) for _ in range(3)] == [path, path + "-2", path + "-3"]
    assert all(not os.listdir(p) for p in (path, path + "-2", path + "-3"))
    too_long = str(tmp_path / "runs" / ("x" * 300))
    with pytest.raises(RunFolderError, match=rf"^cannot make the run folder {too_long} \(File name too long\); give "
                                             "--ckpt_save_dir a folder where it can be made$"):
        make_run_folder(too_long)


def test_a_wrong_data_dir_is_the_first_error_and_leaves_no_folder(tmp_path, monkeypatch, pynative, tiny_model,
                                                                  capsys):
    """A wrong --data_dir is said first, also where the run folder would be refused (another run's files), and no
    folder is made: not runs/, not a new --ckpt_save_dir."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()  # a folder without images
    wrong = ["--dataset", "imagefolder", "--data_dir", str(tmp_path / "photos")]
    code, _, err = run_main(train_main, TINY_NET_RUN + wrong, capsys)
    assert code != 0 and str(tmp_path / "photos") in err and err.count("\n") == 1, err
    assert sorted(os.listdir(tmp_path)) == ["photos"]
    code, _, err = run_main(train_main, TINY_NET_RUN + wrong + ["--ckpt_save_dir", "new/run"], capsys)
    assert code != 0 and str(tmp_path / "photos") in err and sorted(os.listdir(tmp_path)) == ["photos"], err
    other = tmp_path / "other"
    assert train_main(TINY_NET_RUN + ["--epoch_size", "1", "--ckpt_save_dir", str(other)]) == 0
    code, _, err = run_main(train_main, TINY_NET_RUN + wrong + ["--ckpt_save_dir", str(other)], capsys)
    assert code != 0 and str(tmp_path / "photos") in err and "another run" not in err, err


def test_a_folder_made_for_a_run_that_wrote_nothing_is_removed(tmp_path):
    made, kept = tmp_path / "made", tmp_path / "kept"
    for folder, files in ((made, ()), (kept, ("run.json",))):
        lock = RunLock(str(folder), made_folder=True)
        lock.acquire()
        for name in files:
            (folder / name).write_text("{}")
        lock.release()
    assert sorted(os.listdir(tmp_path)) == ["kept"] and os.listdir(kept) == ["run.json"]


def test_resume_auto_continues_the_newest_run_of_the_model_on_the_dataset(tmp_path, monkeypatch, pynative,
                                                                          tiny_model, capsys):
    """The newest by run.json's time, not by name; runs of another data set are not counted; the line says which
    run it continues."""
    monkeypatch.chdir(tmp_path)
    # the second run is the newest by run.json's created time (seconds apart), its folder's name the oldest
    for second, stamp in enumerate(("20991231-000000", "20200101-000000")):
        _stamp(monkeypatch, stamp)
        monkeypatch.setattr(trainer, "now", lambda: f"2026-12-06T22:15:0{second}+00:00")
        assert train_main(TINY_NET_RUN + ["--epoch_size", "1", "--val_while_train", "false"]) == 0
    older, newest = (tmp_path / "runs" / f"tiny_net-digits-{stamp}" for stamp in ("20991231-000000", "20200101-000000"))
    shutil.copytree(newest, tmp_path / "runs" / "tiny_net-mnist-21000101-000000")  # another data set's run
    (tmp_path / "runs" / "tiny_net-digits-21000101-000000").mkdir()  # an empty folder: no run
    _stamp(monkeypatch, "20261206-221500")
    code, out, err = run_main(train_main, ["--model", "tiny_net", "--dataset", "digits", "--resume", "auto",
                                           "--epoch_size", "2"], capsys)
    assert code == 0, err
    assert out.splitlines()[0] == ("--resume auto: continuing runs/tiny_net-digits-20200101-000000 (newest of 2 runs of "
                                   "tiny_net on digits)")
    assert checkpoint_names(newest) == ["tiny_net-1_4.ckpt", "tiny_net-2_4.ckpt"]
    assert checkpoint_names(older) == ["tiny_net-1_4.ckpt"]
    assert runs_of(str(tmp_path / "runs"), "tiny_net", "digits") == [str(older), str(newest)]


def test_resume_auto_without_a_run_starts_a_new_one(tmp_path, monkeypatch, pynative, tiny_model, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(train_main, TINY_NET_RUN + ["--epoch_size", "1", "--resume", "auto"], capsys)
    assert code == 0, err
    assert out.splitlines()[0] == "--resume auto: no run of tiny_net on digits in runs/ yet, starting a new run"
    (name,) = _runs(tmp_path)
    assert FOLDER_NAME.match(name) and checkpoint_names(tmp_path / "runs" / name)


def _stop_after_step_2(monkeypatch):
    """train.py receives SIGTERM during its second step (a real signal, to this process)."""
    batches = trainer.train_batches

    def with_signal(*args, **kwargs):
        for step, result in enumerate(batches(*args, **kwargs), 1):
            if step == 2:
                os.kill(os.getpid(), signal.SIGTERM)
            yield result
    monkeypatch.setattr(trainer, "train_batches", with_signal)


def test_the_stop_line_continues_the_run_from_another_folder(tmp_path, monkeypatch, pynative, tiny_model, capsys):
    """A run in a default folder stopped by a signal prints the command that continues it; run as printed from
    another folder, it continues that run (and makes no folder where it runs)."""
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(here)
    with monkeypatch.context() as patched:
        _stop_after_step_2(patched)
        code, out, err = run_main(train_main, TINY_NET_RUN + ["--epoch_size", "2", "--val_while_train", "false"],
                                  capsys)
    assert code == 143, out + err
    (name,) = _runs(here)
    folder = here / "runs" / name
    last = out.splitlines()[-1]
    assert last.startswith("stopped by SIGTERM after epoch 1, step 2 of 4: ") and last.endswith(
        f"; continue with: python train.py --ckpt_save_dir {folder} --resume auto"), last
    monkeypatch.chdir(elsewhere)
    argv = last.split("continue with: python train.py ")[1].split()
    code, out, err = run_main(train_main, argv, capsys)
    assert code == 0, err
    assert checkpoint_names(folder) == ["tiny_net-1_4.ckpt", "tiny_net-2_4.ckpt"] and os.listdir(elsewhere) == []
    assert f"resuming from {folder}/tiny_net-1_2-interrupted.ckpt" in out


def test_a_file_named_runs_is_a_one_line_error(tmp_path, monkeypatch, pynative, tiny_model, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").write_text("notes")
    code, _, err = run_main(train_main, TINY_NET_RUN + ["--epoch_size", "1"], capsys)
    assert code != 0 and err == (f"error: {tmp_path}/runs: is a file, not a folder; without --ckpt_save_dir, train.py "
                                 "makes each run's folder in runs/ of the current folder: move the file, or give "
                                 "--ckpt_save_dir\n")
    assert (tmp_path / "runs").read_text() == "notes"


def _run_json(folder, created, model="tiny_net"):
    folder.mkdir(parents=True)
    write_run_record(RunRecord("a1", model, created, "finished"), str(folder / "run.json"))


def test_runs_without_a_readable_created_time_are_ordered_by_their_folder_names(tmp_path):
    """run.json's ``created`` first; a run.json without one (null, or no time) is placed by its folder name's time;
    a name without a time, another model's run and a folder without a run are no runs of the model."""
    runs = tmp_path / "runs"
    _run_json(runs / "tiny_net-digits-20261206-100000", "2026-12-06T12:00:00+00:00")
    _run_json(runs / "tiny_net-digits-20261206-110000", None)
    _run_json(runs / "tiny_net-digits-20261206-110000-2", "yesterday")
    _run_json(runs / "tiny_net-digits-20261206-110000-10", None)
    _run_json(runs / "tiny_net-digits-20261399-110000", None)  # no time in the name
    _run_json(runs / "tiny_net-digits-20261206-130000", None, model="res2net50")
    _run_json(runs / "tiny_net-digits-x-20261206-130000", None)
    (runs / "tiny_net-digits-20261206-140000").mkdir()
    found = [os.path.basename(p) for p in runs_of(str(runs), "tiny_net", "digits")]
    local = time.strftime("%Y%m%d-%H%M%S", time.localtime(datetime.datetime.fromisoformat(
        "2026-12-06T12:00:00+00:00").timestamp()))  # the first run's created time, in the names' local time
    named = ["tiny_net-digits-20261206-110000", "tiny_net-digits-20261206-110000-2", "tiny_net-digits-20261206-110000-10"]
    created = "tiny_net-digits-20261206-100000"
    assert found == (named + [created] if local >= "20261206-110000" else [created] + named)


NAMES = (st.from_regex(r"\Atiny_net-digits-[0-9]{8}-[0-9]{6}(-[0-9]{1,3})?\Z")
         | st.text(alphabet="abc-_0123456789", min_size=1, max_size=40))


@settings(max_examples=30, deadline=None)
@given(created=st.none() | st.text(min_size=1, max_size=64), name=NAMES)
@example(created=None, name="tiny_net-digits-20261206-100000\n")  # a run's name and a newline
@example(created=None, name="tiny_net-digits-\u0661\u0662345678-123456")  # digits of another script
def test_any_created_time_and_folder_name_is_a_run_or_none(tmp_path_factory, created, name):
    runs = tmp_path_factory.mktemp("runs")
    _run_json(runs / name, created)
    found = runs_of(str(runs), "tiny_net", "digits")
    assert found in ([], [str(runs / name)])
    assert not found or FOLDER_NAME.match(name)
