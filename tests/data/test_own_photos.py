"""The own-photos recipe end to end (docs/own_photos.md), and the one rule by which validate, predict and
export evaluate a checkpoint (``checkpoint_eval``): unit tests first, then one tiny real run."""
import csv
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mindcv_res2net.data.settings import EVAL_KEYS, checkpoint_eval
from mindcv_res2net.train.run_folder import checkpoint_to_evaluate, kept_checkpoints
from mindcv_res2net.models import get_pretrained_cfg
from helpers.programs import assert_quiet_exit, load_script, run, run_tool

CFG = get_pretrained_cfg("res2net50")
RUN = dict(dataset="imagefolder", data_dir="/photos", val_split="val", image_resize=64, crop_pct=None, mean=None,
           std=None, interpolation="bilinear", num_samples=40)


def test_a_checkpoint_is_evaluated_as_its_run_was():
    """The run's stored settings win over the model's defaults, and the line says what was taken."""
    chosen = checkpoint_eval("RUN/res2net50-best.ckpt", RUN, CFG)
    assert (chosen.data.dataset, chosen.data.data_dir, chosen.data.num_samples) == ("imagefolder", "/photos", 40)
    assert chosen.line == ("evaluating at 64 px (resize 73, crop_pct 0.875, bilinear, mean/std of the run) from "
                           "RUN/res2net50-best.ckpt")
    assert chosen.warnings == ()
    plain = checkpoint_eval("x.pth", None, CFG)  # no run: ImageNet style at the model's size
    assert plain.line == "evaluating at 224 px (resize 256, crop_pct 0.875, bilinear, mean/std of the model) from x.pth"
    digits = checkpoint_eval("d.ckpt", dict(dataset="digits", image_resize=32), CFG)
    assert digits.line.startswith("evaluating at 32 px (whole image stretched, bilinear, mean/std of the run)")


@settings(max_examples=40, deadline=None)
@given(overrides=st.fixed_dictionaries({}, optional=dict(
    image_resize=st.integers(32, 512), crop_pct=st.floats(0.3, 1.0),
    interpolation=st.sampled_from(["bilinear", "bicubic"]),
    mean=st.tuples(*[st.floats(0, 255)] * 3), std=st.tuples(*[st.floats(1, 100)] * 3))))
def test_every_flag_that_changes_the_run_is_honoured_with_one_warning(overrides):
    """Each given value wins; exactly the values that differ from the run's warn, naming the flag, both values."""
    chosen = checkpoint_eval("C", RUN, CFG, given=overrides, flags={"image_resize": "--image_size"})
    changed = [k for k in EVAL_KEYS if k in overrides and overrides[k] != RUN[k]]
    assert len(chosen.warnings) == len(changed)
    for key, warning in zip(changed, chosen.warnings):
        assert warning.startswith("--image_size " if key == "image_resize" else f"--{key} ")
        assert "that C was trained with" in warning and "\n" not in warning
    for key, value in overrides.items():
        assert getattr(chosen.data, key) == value
    assert chosen.preprocessing.size == overrides.get("image_resize", 64)
    assert chosen.line.endswith("from C") and ("mean/std of the flags" in chosen.line) == bool(
        {"mean", "std"} & set(overrides))


def test_a_folder_without_a_run_is_refused_naming_the_flag(tmp_path):
    from mindcv_res2net.weights import CheckpointError

    assert checkpoint_to_evaluate(str(tmp_path / "a.ckpt")) == str(tmp_path / "a.ckpt")  # files pass as they are
    with pytest.raises(CheckpointError, match=r"^--ckpt_path .*: is a folder but not a training run's \(no "
                                              r"run.json or config.yaml naming its run\); give a checkpoint file$"):
        checkpoint_to_evaluate(str(tmp_path))
    (tmp_path / "config.yaml").write_text("# run 0123456789ab, model res2net101\nmodel: res2net101\n")
    with pytest.raises(CheckpointError, match=r"is a run of model 'res2net101', not 'res2net50'$"):
        checkpoint_to_evaluate(str(tmp_path), model_name="res2net50")
    with pytest.raises(CheckpointError, match=r"the run of res2net101 has written no checkpoint yet$"):
        checkpoint_to_evaluate(str(tmp_path))


def test_kept_checkpoints_counts_the_saves_a_run_keeps():
    assert kept_checkpoints(10, start_epoch=1, save_interval=1, keep=2) == 2
    assert kept_checkpoints(1, start_epoch=1, save_interval=1, keep=10) == 1
    assert kept_checkpoints(10, start_epoch=1, save_interval=3, keep=10) == 4  # epochs 3, 6, 9 and the last
    assert kept_checkpoints(10, start_epoch=9, save_interval=1, keep=10) == 2  # a run resumed at epoch 9


def test_photo_folder_refuses_more_classes_than_it_can_make(capsys):
    code, err = run_tool("make_photo_folder", ["/nonexistent/x", "--classes", "17"], capsys)
    assert code == 2 and err.strip().splitlines()[-1] == (
        "error: --classes: at most 16 (2 photographs x 8 colour transforms), got 17")


@pytest.mark.e2e
def test_own_photos_recipe_end_to_end(tmp_path):
    """docs/own_photos.md on a tiny folder: train with the recipe's YAML (output piped:
    plain progress lines, no carriage return; the disk line first), the classes are learned (val top-1 well
    above the 25% of chance); ``validate.py --ckpt_path RUN`` alone gives the best epoch's val_top1 of
    metrics.csv at the run's size; predict takes the run folder."""
    photos, out = tmp_path / "photos", tmp_path / "run"
    load_script("tools/make_photo_folder.py").make_photo_folder(str(photos), classes=4, images_per_class=16, seed=0,
                                                               val_per_class=6)
    assert sorted(os.listdir(photos)) == ["train", "val"] and len(os.listdir(photos / "val" / "class_03")) == 6
    # the recipe starts from converted ImageNet weights; offline there are none (a stand-in of official key
    # names holds generated values, whose BatchNorm statistics make a poor start), so this run starts from
    # the model's initialisation: the converter has its own tests
    proc = run(["train.py", "-c", "configs/res2net/res2net50_own_photos_cpu.yaml", "--data_dir", str(photos),
                "--ckpt_save_dir", str(out), "--image_resize", "32", "--epoch_size", "3",
                "--lr", "0.002", "--warmup_epochs", "0", "--mode", "1", "--num_parallel_workers", "1"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_quiet_exit(proc)
    assert "\r" not in proc.stdout and "\r" not in proc.stderr
    lines = proc.stdout.splitlines()
    disk = [line for line in lines if line.startswith("disk: at most ")]
    assert len(disk) == 1 and "(2 kept + the best copy, " in disk[0]
    each_mb = float(disk[0].split(", ")[1].split(" MB each")[0])
    assert abs(each_mb * 1e6 - os.path.getsize(out / "res2net50-best.ckpt")) < 0.01 * each_mb * 1e6
    assert lines.index(disk[0]) < next(i for i, line in enumerate(lines) if line.startswith("epoch 1/3: "))
    assert "epoch 1/3: 4/4 steps (100%), " in proc.stdout and "validate: 2/2 steps (100%), " in proc.stdout
    assert sum(line.startswith("epoch 3/3: train loss ") for line in lines) == 1
    assert lines[-1].startswith("done in ")
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    best = max(rows, key=lambda row: float(row["val_top1"]))
    assert float(best["val_top1"]) > 50.0, rows  # 4 classes: chance is 25%

    proc = run(["validate.py", "--ckpt_path", str(out)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "\r" not in proc.stdout + proc.stderr
    assert (f"evaluating at 32 px (resize 36, crop_pct 0.875, bilinear, mean/std of the run) from "
            f"{out / 'res2net50-best.ckpt'}") in proc.stderr
    assert f"res2net50 on imagefolder/val in {photos}: top-1 {float(best['val_top1']):.2f}%, " in proc.stdout

    proc = run(["validate.py", "--ckpt_path", str(out), "--image_resize", "48", "--num_samples", "4"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"warning: --image_resize 48 overrides the 32 that {out / 'res2net50-best.ckpt'} was trained with" \
        in proc.stderr and "evaluating at 48 px (resize 54, " in proc.stderr and ", 4 images, " in proc.stdout

    proc = run(["tools/predict.py", "--model", "res2net50", "--ckpt_path", str(out), str(photos / "val" / "class_01"),
                "--topk", "1"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f"evaluating at 32 px (resize 36, crop_pct 0.875, bilinear, mean/std of the run) from "
        f"{out / 'res2net50-best.ckpt'}")
    predicted = proc.stdout.strip().splitlines()
    assert len(predicted) == 6 and all(": class_0" in line for line in predicted)
