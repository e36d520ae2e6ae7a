"""A run remembers itself: ``--resume`` takes the run's settings from its checkpoint (a flag or YAML value that
contradicts them is refused naming both, a flag that may change applies and the log says so), a resumed run keeps
its identity and its schedule across another batch size, a run stores absolute paths (validate and --resume auto
from another folder read the run's own data), and the messages of a finished run, a wrong class count and a
hand-edited config.yaml say what is wrong."""
import csv
import os
import shutil
import sys

import pytest
import yaml
from PIL import Image

import mindspore as ms
from helpers.programs import run_main
from helpers.runs import TINY_NET, TINY_NET_RUN, checkpoint_names, folder_files
from mindcv_res2net.cli.parser import parse_config, parse_settings
from mindcv_res2net.cli.train import main as train_main
from mindcv_res2net.cli.validate import main as validate_main
from mindcv_res2net.config import resumed_config, save_config
from mindcv_res2net.scheduler import create_scheduler
from mindcv_res2net.train.trainer import train
from mindcv_res2net.utils.fileio import OWNER_PATTERN
from mindcv_res2net.weights import read_checkpoint, read_checkpoint_metadata, read_mindspore_checkpoint, save_weights

MODEL = "res2net50_26w_4s"
# a run whose settings differ from train.py's defaults where resuming must keep them
TINY = ["--mode", "1", "--model", MODEL, "--image_resize", "32", "--num_samples", "16", "--batch_size", "16",
        "--num_parallel_workers", "1", "--opt", "adamw", "--lr", "0.001", "--seed", "5", "--val_while_train", "false"]


@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory):
    """A run folder after one epoch of TINY (trained once; tests work on copies). train.py sets the process's
    execution mode (PyNative here): the mode it found is restored."""
    mode = ms.get_context("mode")
    out = str(tmp_path_factory.mktemp("runs") / "run")
    try:
        train_main(TINY + ["--epoch_size", "1", "--ckpt_save_dir", out])
    finally:
        ms.set_context(mode=mode)
    return out


@pytest.fixture
def run_copy(one_epoch_run, tmp_path):
    out = str(tmp_path / "run")
    shutil.copytree(one_epoch_run, out)
    return out


# ------------------------------------------------------------------------ the run's own settings


@pytest.mark.e2e
def test_resume_auto_alone_continues_the_run_with_its_own_settings(run_copy, pynative):
    """``--ckpt_save_dir RUN --resume auto``, no --model, no -c, continues the run; a flag that may change
    (--epoch_size) applies and the log says so; a flag given again that agrees is fine."""
    first = read_checkpoint_metadata(os.path.join(run_copy, f"{MODEL}-1_1.ckpt"))
    train_main(["--ckpt_save_dir", run_copy, "--resume", "auto", "--epoch_size", "2", "--opt", "adamw"])
    second = read_checkpoint_metadata(os.path.join(run_copy, f"{MODEL}-2_1.ckpt"))
    assert second["run_id"] == first["run_id"] and second["epoch"] == 2
    assert {k: v for k, v in second["config"].items() if k not in ("epoch_size", "resume", "ckpt_save_dir")} == \
        {k: v for k, v in first["config"].items() if k not in ("epoch_size", "resume", "ckpt_save_dir")}
    assert second["config"]["epoch_size"] == 2 and second["config"]["lr"] == 0.001
    log = open(os.path.join(run_copy, "train.log")).read().splitlines()
    noted = [line for line in log if "resumed with" in line]
    assert len(noted) == 1 and noted[0].endswith("resumed with the run's own settings, except: epoch_size 1 -> 2")
    assert [line.split(",")[0] for line in open(os.path.join(run_copy, "metrics.csv"))] == ["epoch", "1", "2"]


@pytest.mark.e2e
@pytest.mark.parametrize("argv, message", [
    (["--image_resize", "64"], "--image_resize 64 contradicts the resumed run's image_resize 32"),
    (["--model", "res2net50"], f"--model res2net50 contradicts the resumed run's model {MODEL}"),
    (["--opt", "sgd"], "--opt sgd contradicts the resumed run's opt adamw"),
    (["--lr", "0.1"], "--lr 0.1 contradicts the resumed run's lr 0.001"),
    (["--num_classes", "7"], "--num_classes 7 contradicts the resumed run's num_classes 10"),  # the digits run's
])
def test_a_flag_that_contradicts_the_run_is_refused_naming_both_values(run_copy, capsys, argv, message):
    before = folder_files(run_copy)
    code, _, err = run_main(train_main, ["--ckpt_save_dir", run_copy, "--resume", "auto", "--epoch_size", "2"] + argv,
                            capsys)
    assert code == 2 and err.count("\n") == 1, err
    source = os.path.join(run_copy, "run.json" if argv[0] == "--model" else f"{MODEL}-1_1.ckpt")
    assert err == (f"error: {message} ({source}); drop it to continue the run, or start a new run in "
                   "another --ckpt_save_dir\n")
    assert folder_files(run_copy) == before


@pytest.mark.e2e
def test_a_yaml_value_that_contradicts_the_run_is_refused(run_copy, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("label_smoothing: 0.1\nepoch_size: 3\n")
    code, _, err = run_main(train_main, ["-c", str(recipe), "--ckpt_save_dir", run_copy, "--resume", "auto"], capsys)
    assert code == 2 and err.startswith("error: --label_smoothing 0.1 contradicts the resumed run's label_smoothing "
                                        "0.0 (")


def test_resume_before_the_first_checkpoint_reads_config_yaml(tmp_path, capsys):
    """A run killed before its first checkpoint: its config.yaml is the run's settings."""
    from mindcv_res2net.train.run_record import RunRecord, write_run_record

    out = tmp_path / "run"
    config = save_config(parse_settings(TINY), str(out / "config.yaml"))
    write_run_record(RunRecord("killedrun123", MODEL, "2025-01-01T00:00:00+00:00", "running"), str(out / "run.json"))
    code, _, err = run_main(train_main, ["--ckpt_save_dir", str(out), "--resume", "auto", "--seed", "6"], capsys)
    assert code == 2 and err == (f"error: --seed 6 contradicts the resumed run's seed 5 ({config}); drop it to "
                                 "continue the run, or start a new run in another --ckpt_save_dir\n")


@pytest.mark.e2e
def test_a_resumed_run_checks_ignored_flags_with_its_own_settings(run_copy, capsys):
    """--data_dir may change on resume, but this run reads digits: the flag would be ignored."""
    code, _, err = run_main(train_main, ["--ckpt_save_dir", run_copy, "--resume", "auto", "--data_dir", "/moved"],
                            capsys)
    assert code == 2 and err == ("error: --data_dir /moved: would be ignored: --dataset digits (the default) reads no "
                                 "folder; for a folder of <split>/<class>/<image> files add --dataset imagefolder\n")


@pytest.mark.e2e
def test_resume_path_and_the_run_config_agree_with_the_run(run_copy, capsys):
    """``-c RUN/config.yaml --resume PATH`` (every key given) agrees with the run's checkpoint."""
    checkpoint = os.path.join(run_copy, f"{MODEL}-1_1.ckpt")
    args, given = parse_config(["-c", os.path.join(run_copy, "config.yaml"), "--resume", checkpoint], program="train")
    stored = read_checkpoint_metadata(checkpoint)["config"]
    from mindcv_res2net.train.run_folder import run_metadata

    merged, notes = resumed_config(args, given, run_metadata({"config": stored}, checkpoint)["config"],
                                   origin=checkpoint)
    assert notes == [] and merged.model.model == MODEL and merged.data.image_resize == 32
    assert merged.run.resume == checkpoint


@pytest.mark.e2e
def test_validate_honours_a_flag_typed_at_its_default_value(run_copy, capsys, pynative):
    """A flag the user typed overrides the run's setting even when it equals the parser default: the run
    trained at 32 px, so an explicit --image_resize 224 evaluates at 224 and says so in a warning."""
    from mindcv_res2net.cli.validate import main as validate_main

    with pytest.warns(UserWarning, match=r"^--image_resize 224 overrides the 32 that .* was trained with$"):
        code, _, err = run_main(validate_main, ["--ckpt_path", run_copy, "--image_resize", "224"], capsys)
    assert code == 0 and "evaluating at 224 px" in err, err


@pytest.mark.e2e
@pytest.mark.parametrize("new_batch", [32, 8])
def test_resume_with_other_steps_per_epoch_continues_the_schedule(tmp_path, pynative, tiny_model, new_batch):
    out = str(tmp_path)
    common = TINY_NET + ["--val_while_train", "False", "--epoch_size", "3", "--ckpt_save_dir", out]
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
    common = TINY_NET + ["--val_while_train", "False", "--batch_size", "32", "--ckpt_save_dir", str(tmp_path)]
    train(parse_settings(common + ["--epoch_size", "1"]))
    train(parse_settings(common + ["--epoch_size", "2", "--resume", "auto"]))
    ids = {read_checkpoint_metadata(tmp_path / n)["run_id"] for n in checkpoint_names(tmp_path)}
    assert len(ids) == 1 and OWNER_PATTERN.match(ids.pop())


# -------------------------------------------------------------------------------- absolute paths


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
    """A run trained with ``--data_dir data`` stores the absolute path: validate.py and --resume auto run from
    another folder (holding a ./data of its own) read the run's data, validate's result line names the folder it
    read, and the top-1 is the run's own."""
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
    code, out, err = run_main(validate_main, ["--ckpt_path", str(run)], capsys)
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
        code, out, err = run_main(validate_main, ["--ckpt_path", str(path)], capsys)
    assert code == 0 and f" on imagefolder/val in {tmp_path}/data: top-1 " in out, err
    assert train_main(["--ckpt_save_dir", "run", "--resume", "auto", "--epoch_size", "2"]) == 0
    log = [line for line in open(tmp_path / "run" / "train.log") if "a relative path" in line]
    assert len(log) == 1 and " WARNING " in log[0] and f"taken as {tmp_path}/data" in log[0]
    assert read_checkpoint_metadata(tmp_path / "run" / "tiny_net-2_2.ckpt")["config"]["data_dir"] == \
        str(tmp_path / "data")


def test_validate_reads_the_runs_checkpoint_once(tmp_path, pynative, tiny_model, monkeypatch, capsys):
    """validate.py --ckpt_path RUN reads the run's best checkpoint once (network, weights, the run's settings)."""
    import mindcv_res2net.weights.formats as formats

    assert train_main(TINY_NET_RUN + ["--epoch_size", "1", "--ckpt_save_dir", str(tmp_path)]) == 0
    reads = []
    for module_name, module in list(sys.modules.items()):
        for name in ("read_checkpoint", "read_checkpoint_metadata"):
            original = getattr(formats, name)
            if module_name.startswith("mindcv_res2net.") and module is not formats \
                    and getattr(module, name, None) is original:
                monkeypatch.setattr(module, name, lambda path, *a, _read=original, _name=name, **k: (
                    reads.append((_name, str(path))), _read(path, *a, **k))[1])
    code, out, err = run_main(validate_main, ["--ckpt_path", str(tmp_path)], capsys)
    assert code == 0 and "tiny_net on digits/val: top-1 " in out, err
    assert reads == [("read_checkpoint", str(tmp_path / "tiny_net-best.ckpt"))]


# -------------------------------------------------------------------------------------- messages


def test_the_runs_class_count_is_its_trained_one(tmp_path, pynative, tiny_model, capsys):
    """--num_classes against a resumed run is checked against the class count it trained with (10), not None."""
    out = str(tmp_path)
    assert train_main(TINY_NET_RUN + ["--epoch_size", "1", "--val_while_train", "false", "--ckpt_save_dir", out]) == 0
    code, _, err = run_main(train_main, ["--ckpt_save_dir", out, "--resume", "auto", "--epoch_size", "2",
                                         "--num_classes", "7"], capsys)
    assert code == 2 and err == (f"error: --num_classes 7 contradicts the resumed run's num_classes 10 "
                                 f"({tmp_path}/tiny_net-1_4.ckpt); drop it to continue the run, or start a new run "
                                 "in another --ckpt_save_dir\n")
    assert train_main(["--ckpt_save_dir", out, "--resume", "auto", "--epoch_size", "2", "--num_classes", "10"]) == 0
    assert read_checkpoint_metadata(tmp_path / "tiny_net-2_4.ckpt")["num_classes"] == 10


def test_resuming_a_finished_run_says_so_and_writes_nothing(tmp_path, pynative, tiny_model, capsys):
    """Resuming a run at its last epoch says it is finished (last and best checkpoints, how to continue) and
    writes nothing; a smaller --epoch_size is one line."""
    out = str(tmp_path)
    assert train_main(TINY_NET_RUN + ["--epoch_size", "2", "--ckpt_save_dir", out]) == 0
    best = read_checkpoint_metadata(tmp_path / "tiny_net-best.ckpt")
    before = folder_files(tmp_path)
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
    assert folder_files(tmp_path) == before
    code, _, err = run_main(train_main, ["--ckpt_save_dir", out, "--resume", "auto"], capsys)
    assert code == 0 and err == ""
    code, _, err = run_main(train_main, ["--ckpt_save_dir", out, "--resume", "auto", "--epoch_size", "1"], capsys)
    assert code == 2 and err == (f"error: --epoch_size 1: {tmp_path}/tiny_net-2_4.ckpt has done 2 epochs already; "
                                 "give a larger --epoch_size to continue it, or --resume an earlier checkpoint of the "
                                 "run\n")
    assert folder_files(tmp_path) == before


def test_a_hand_edited_config_is_kept_and_its_replaced_values_named(tmp_path, pynative, tiny_model):
    """On resume, comments and layout in config.yaml are no edit; hand-edited values are replaced by the run's,
    named in train.log, and the edited file is kept beside."""
    out = str(tmp_path)
    assert train_main(TINY_NET_RUN + ["--epoch_size", "1", "--val_while_train", "false", "--ckpt_save_dir", out]) == 0
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
