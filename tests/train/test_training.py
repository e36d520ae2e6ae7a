"""Tiny training and validation runs end to end, in both modes: train.py and validate.py as commands, checkpoints
without optimizer state, mixup, one-line command-line errors, validation refusing another model's checkpoint, the
dataset-sink path of accelerators, and the Res2Net-DLA and PaddleClas families (the schedules, optimizers and
loss: test_optimization.py)."""
import csv
import json
import os

import numpy as np
import pytest

from mindcv_res2net import create_model
from mindcv_res2net.cli.parser import parse_args, parse_settings
from mindcv_res2net.train.trainer import train
from mindcv_res2net.weights import read_mindspore_checkpoint
from helpers.programs import assert_quiet_exit, run

TINY = ["--dataset", "digits", "--image_resize", "32", "--num_samples", "64", "--batch_size", "16",
        "--num_parallel_workers", "1"]


def _metadata(path):
    return json.loads(read_mindspore_checkpoint(path, names={"metadata"})["metadata"])


@pytest.mark.e2e
def test_train_and_validate_graph_mode_cli(tmp_path):
    out = tmp_path / "run"
    proc = run(["train.py", "--mode", "0", *TINY, "--epoch_size", "2", "--opt", "adamw", "--lr", "0.001",
                "--weight_decay", "0.05", "--keep_checkpoint_max", "1", "--ckpt_save_dir", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_quiet_exit(proc)
    assert sorted(os.listdir(out)) == ["config.yaml", "metrics.csv", "res2net50-2_4.ckpt", "res2net50-best.ckpt",
                                       "run.json", "train.log"]
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"] and all(float(r["img_per_s"]) > 0 for r in rows)
    meta = _metadata(str(out / "res2net50-2_4.ckpt"))
    assert meta["epoch"] == 2 and meta["step"] == 8 and meta["class_names"] == [str(d) for d in range(10)]
    assert meta["config"]["opt"] == "adamw"
    weights = read_mindspore_checkpoint(str(out / "res2net50-2_4.ckpt"))
    assert "optimizer.global_step" in weights and any(k.startswith("optimizer.adam_m.") for k in weights)
    log = open(out / "train.log").read()
    assert "epoch 2/2" in log and "\n  lr: 0.001\n" in log  # every setting in the log file
    assert "lr 0.001, " in proc.stdout.splitlines()[0] and "lr: " not in proc.stdout  # the changed ones on the console
    best = max(float(r["val_top1"]) for r in rows)
    proc = run(["validate.py", "--mode", "0", *TINY, "--ckpt_path", str(out / "res2net50-best.ckpt")])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"top-1 {best:.2f}%" in proc.stdout and "64 images" in proc.stdout
    assert_quiet_exit(proc)
    # the saved config reproduces the run's settings
    assert parse_args(["-c", str(out / "config.yaml")]).weight_decay == 0.05
    # every file of the run folder has the user's umask (0644 under 022), not mkstemp's 0600
    from mindcv_res2net.utils.fileio import current_umask

    for name in os.listdir(out):
        assert os.stat(out / name).st_mode & 0o777 == 0o666 & ~current_umask(), name


@pytest.mark.e2e
def test_checkpoints_without_optimizer_state_are_smaller_refuse_resume_and_strip(tmp_path, pynative, tiny_model):
    """--save_optimizer_state false: weights and metadata only, and a resume names the reason;
    tools/convert_weights.py strips a full training checkpoint to the same network weights."""
    from mindcv_res2net.weights import CheckpointError
    from mindcv_res2net.deploy.convert import convert_weights

    common = ["--model", tiny_model, "--mode", "1", *TINY, "--num_samples", "32", "--epoch_size", "1", "--opt",
              "adamw", "--lr", "0.001"]
    full = train(parse_settings(common + ["--ckpt_save_dir", str(tmp_path / "full")]))["last_checkpoint"]
    light = train(parse_settings(common + ["--ckpt_save_dir", str(tmp_path / "light"), "--save_optimizer_state",
                                       "false"]))["last_checkpoint"]
    light_weights, full_weights = read_mindspore_checkpoint(light), read_mindspore_checkpoint(full)
    assert not any(k.startswith("optimizer.") for k in light_weights)
    assert _metadata(light)["optimizer_state"] is False and _metadata(full)["optimizer_state"] is True
    optimizer_bytes = sum(v.nbytes for k, v in full_weights.items() if k.startswith("optimizer."))
    assert optimizer_bytes > 0 and os.path.getsize(full) - os.path.getsize(light) >= optimizer_bytes
    with pytest.raises(CheckpointError, match=r"holds no optimizer state \(written with --save_optimizer_state "
                                              r"false\), so it cannot be resumed"):
        train(parse_settings(common + ["--epoch_size", "2", "--ckpt_save_dir", str(tmp_path / "light"), "--resume",
                                   "auto", "--save_optimizer_state", "false"]))
    stripped = convert_weights(full, str(tmp_path / "stripped.ckpt"), tiny_model)
    weights = read_mindspore_checkpoint(stripped)
    assert set(weights) == {k for k in full_weights if not k.startswith("optimizer.")}
    meta = _metadata(stripped)
    assert meta["class_names"] == [str(d) for d in range(10)] and meta["num_classes"] == 10
    assert meta["config"]["image_resize"] == 32


@pytest.mark.e2e
def test_train_pynative_mixup_momentum(tmp_path, pynative):
    args = parse_settings(["--mode", "1", *TINY, "--num_samples", "32", "--epoch_size", "1", "--opt", "momentum",
                       "--lr", "0.01", "--mixup", "0.2", "--cutmix", "1.0", "--label_smoothing", "0.1",
                       "--loss_scale", "64", "--clip_grad", "--drop_path_rate", "0.05", "--amp_level", "O2",
                       "--ckpt_save_dir", str(tmp_path)])
    summary = train(args)
    assert summary["last_top1"] is not None and 0 <= summary["best_top1"] <= 100
    assert os.path.isfile(summary["best_checkpoint"]) and summary["last_checkpoint"].endswith("res2net50-1_2.ckpt")
    assert "--amp_level O2 is not supported on CPU" in open(tmp_path / "train.log").read()


@pytest.mark.e2e
@pytest.mark.parametrize("argv, message", [
    (["validate.py", "--dataset", "digits"], "error: validate.py needs --ckpt_path FILE or --pretrained"),
    (["validate.py", "--dataset", "imagenet", "--data_dir", "/no/such/dir", "--pretrained"],
     "error: image folder not found: /no/such/dir/val"),
    (["validate.py", "--dataset", "digits", "--ckpt_path", "/no/such.ckpt"],
     "error: checkpoint file not found: /no/such.ckpt"),
    (["train.py", "--dataset", "digits", "--optimizer", "adam"], "error: unknown flag '--optimizer'"),
    (["validate.py", "--model", "res2net5O", "--dataset", "imagenet", "--data_dir", "/no/such/dir", "--ckpt_path",
      "/no/such.ckpt"], "error: unknown model 'res2net5O'; did you mean res2net50"),
    (["train.py", "--dataset", "cifar10", "--data_dir", "/no/such/dir"], "error: cifar10 not found: looked for"),
    (["train.py", "--device_target", "GPU"], "error: --device_target GPU: no usable GPU device"),
    (["validate.py", "--device_target", "ascend", "--pretrained"], "error: --device_target Ascend: no usable Ascend device"),
])
def test_cli_errors_are_one_line(argv, message):
    proc = run(argv)
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith(message), proc.stderr[-2000:]
    assert_quiet_exit(proc)


@pytest.mark.e2e
def test_validate_rejects_checkpoints_of_another_model_or_class_count(tmp_path):
    from mindcv_res2net.weights import save_weights

    model = create_model("res2net50", num_classes=7)
    save_weights({p.name: p.asnumpy() for p in model.get_parameters()}, tmp_path / "seven.ckpt")
    (tmp_path / "corrupt.ckpt").write_bytes(b"\x0a\x05garbage" * 50)
    cases = [(["--model", "res2net50"], "seven.ckpt: its classifier has 7 classes but digits/val has 10"),
             (["--model", "res2net50_v1b"], "does not fit model 'res2net50_v1b'")]
    for extra, message in cases:
        proc = run(["validate.py", *TINY, "--ckpt_path", str(tmp_path / "seven.ckpt"), *extra])
        assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    proc = run(["validate.py", *TINY, "--ckpt_path", str(tmp_path / "corrupt.ckpt")])
    assert proc.returncode == 2 and "corrupt.ckpt: cannot read" in proc.stderr


@pytest.mark.e2e
def test_dataset_sink_path_on_accelerators(tmp_path, pynative, monkeypatch):
    """GPU/Ascend feed batches through ms.data_sink; CPU cannot run it, so it is emulated here."""
    from mindcv_res2net.train import trainer
    from mindcv_res2net.utils.device import TrainingPlan

    calls = []

    def fake_data_sink(fn, dataset, sink_size):
        assert sink_size == 1
        batches = dataset.create_tuple_iterator(num_epochs=1)

        def run_step():
            calls.append(1)
            return fn(*next(batches))
        return run_step

    monkeypatch.setattr(trainer.ms, "data_sink", fake_data_sink)
    monkeypatch.setattr(trainer, "plan_training", lambda *a, **k: TrainingPlan(
        amp_level="O0", loss_scale=1.0, dynamic_loss_scale=False, dataset_sink_mode=True, notes=()))
    args = parse_settings(["--mode", "1", *TINY, "--num_samples", "32", "--epoch_size", "1", "--opt", "adamw",
                       "--lr", "0.001", "--val_while_train", "False", "--ckpt_save_dir", str(tmp_path)])
    summary = train(args)
    assert len(calls) == 2 and summary["last_checkpoint"].endswith("res2net50-1_2.ckpt")
    args = args.replace(gradient_accumulation_steps=2)
    with pytest.raises(ValueError, match="--dataset_sink_mode cannot be combined with --gradient_accumulation_steps"):
        train(args)


@pytest.mark.e2e
@pytest.mark.parametrize("model_name", ["res2next_dla60", "paddle_res2net50_vd_26w_4s"])
def test_new_families_train_validate_and_predict(tmp_path, model_name):
    """The DLA and PaddleClas families through train.py, validate.py and tools/predict.py (the other tools: export)."""
    from PIL import Image

    out = tmp_path / "run"
    tiny = ["--mode", "1", *TINY, "--num_samples", "32", "--model", model_name]
    proc = run(["train.py", *tiny, "--epoch_size", "1", "--opt", "adamw", "--lr", "0.001", "--ckpt_save_dir", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = out / f"{model_name}-best.ckpt"
    assert best.is_file() and _metadata(str(best))["model"] == model_name
    proc = run(["validate.py", *tiny, "--ckpt_path", str(best)])
    assert proc.returncode == 0 and f"{model_name} on digits/val: top-1" in proc.stdout, proc.stderr[-3000:]
    Image.fromarray(np.full((8, 8), 200, np.uint8), "L").save(tmp_path / "seven.png")
    proc = run(["tools/predict.py", "--model", model_name, "--ckpt_path", str(best), "--topk", "2",
                str(tmp_path / "seven.png")])
    assert proc.returncode == 0 and proc.stdout.startswith(f"{tmp_path / 'seven.png'}: "), proc.stderr[-3000:]
    assert_quiet_exit(proc)
