"""Loading weight files into networks: strict names and shapes, clear errors for every bad checkpoint, fine-tuning
heads, non-finite weights and crafted metadata named; atomic writes (the readers of each format: test_formats.py,
test_torch_file.py, test_paddle_file.py)."""
import os
import re

import numpy as np
import pytest

import mindspore as ms
from helpers.checkpoints import model_params
from mindcv_res2net import create_model
from mindcv_res2net.weights import formats as checkpoint
from mindcv_res2net.weights import CheckpointError, load_checkpoint, save_weights
from helpers.torch_writer import save_torch_legacy, save_torch_zip

TO_TORCH = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}


def torch_names(weights: dict) -> dict:
    out = {}
    for name, value in weights.items():
        prefix, _, suffix = name.rpartition(".")
        out[f"{prefix}.{TO_TORCH.get(suffix, suffix)}"] = value
    return out


@pytest.fixture(scope="module")
def r50():
    """A res2net50 whose every tensor differs from a fresh model's, in PyTorch names."""
    model = create_model("res2net50", zero_init_last=False)
    rng = np.random.default_rng(0)
    weights = {k: (v + rng.standard_normal(v.shape).astype(np.float32) * 0.01) for k, v in model_params(model).items()}
    return weights, torch_names(weights)


def _npz(tmp_path, state, name="w.npz"):
    path = tmp_path / name
    np.savez(path, **state)
    return path


@pytest.mark.e2e
def test_loads_official_names_exactly_and_ignores_batch_counters(tmp_path, r50):
    weights, official = r50
    state = dict(official)
    state.update({k.rsplit(".", 1)[0] + ".num_batches_tracked": np.array(5, np.int64)
                  for k in official if k.endswith("running_mean")})
    model = create_model("res2net50", checkpoint_path=_npz(tmp_path, state))
    loaded = model_params(model)
    assert all(np.array_equal(loaded[k], weights[k]) for k in weights)


@pytest.mark.e2e
def test_wrapped_and_dataparallel_state_dicts(tmp_path, r50):
    weights, official = r50
    save_torch_zip({f"module.{k}": v for k, v in official.items()}, tmp_path / "dp.pth")
    model = create_model("res2net50", checkpoint_path=tmp_path / "dp.pth")
    assert np.array_equal(model_params(model)["fc.weight"], weights["fc.weight"])


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"checkpoint file not found: .*nope\.ckpt"):
        create_model("res2net50", checkpoint_path=tmp_path / "nope.ckpt")


@pytest.mark.parametrize("kind", ["garbage.ckpt", "truncated_zip.pth", "truncated_legacy.pth", "empty.pth",
                                  "truncated.npz"])
def test_corrupt_files(tmp_path, r50, kind):
    _, official = r50
    small = {k: official[k] for k in list(official)[:5]}
    path = tmp_path / kind
    if kind == "garbage.ckpt":
        path.write_bytes(np.random.default_rng(1).bytes(4096))
    elif kind == "empty.pth":
        path.write_bytes(b"")
    else:
        full = tmp_path / ("full" + os.path.splitext(kind)[1])
        {"truncated_zip.pth": save_torch_zip, "truncated_legacy.pth": save_torch_legacy}.get(
            kind, lambda s, p: np.savez(p, **s))(small, full)
        data = full.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=rf"{kind}"):
        create_model("res2net50", checkpoint_path=path)


def test_wrong_model_lists_missing_and_extra(tmp_path, r50):
    _, official = r50
    with pytest.raises(CheckpointError, match=r"does not fit model 'res2net50_v1b': \d+ model parameters missing "
                                              r"from the file \(conv1\.0\.weight, .*tensors the model does not have"):
        create_model("res2net50_v1b", checkpoint_path=_npz(tmp_path, official))


@pytest.mark.e2e
def test_missing_key_and_extra_key(tmp_path, r50):
    _, official = r50
    state = dict(official)
    del state["layer2.1.convs.0.weight"]
    with pytest.raises(CheckpointError, match=r"1 model parameters missing from the file \(layer2\.1\.convs\.0\.weight\)$"):
        create_model("res2net50", checkpoint_path=_npz(tmp_path, state))
    state = dict(official, **{"layer9.0.conv1.weight": np.zeros((1,), np.float32)})
    with pytest.raises(CheckpointError, match=r"1 tensors the model does not have \(layer9\.0\.conv1\.weight\)"):
        create_model("res2net50", checkpoint_path=_npz(tmp_path, state, "extra.npz"))


def test_shape_mismatch(tmp_path, r50):
    _, official = r50
    state = dict(official, **{"layer1.0.convs.1.weight": np.zeros((26, 26, 1, 1), np.float32)})
    with pytest.raises(CheckpointError, match=r"1 shape mismatches \(layer1\.0\.convs\.1\.weight: file \(26, 26, 1, 1\) "
                                              r"vs model \(26, 26, 3, 3\)\)"):
        create_model("res2net50", checkpoint_path=_npz(tmp_path, state))


@pytest.mark.e2e
def test_classifier_rules(tmp_path, r50):
    weights, official = r50
    path = _npz(tmp_path, official)
    # a 1000-class file into a 1000-class model: fine; into a 10-class model: dropped with a warning
    with pytest.warns(UserWarning, match="dropping its 1000-class classifier"):
        model = create_model("res2net50", num_classes=10, checkpoint_path=path)
    params = model_params(model)
    assert params["fc.weight"].shape == (10, 2048)
    assert np.array_equal(params["layer4.2.conv3.weight"], weights["layer4.2.conv3.weight"])
    # a 10-class file into the default 1000-class model is an error, not a silent drop
    ten = dict(official, **{"fc.weight": np.zeros((10, 2048), np.float32), "fc.bias": np.zeros(10, np.float32)})
    with pytest.raises(CheckpointError, match=r"its classifier has 10 classes but the model has 1000; "
                                              r"it fits a model of 10 classes \(num_classes=10, --num_classes 10\); "
                                              r"only training starts a new classifier for another class count$"):
        create_model("res2net50", checkpoint_path=_npz(tmp_path, ten, "ten.npz"))
    assert create_model("res2net50", num_classes=10, checkpoint_path=tmp_path / "ten.npz").num_classes == 10
    # head-less and features_only models ignore the classifier
    create_model("res2net50", num_classes=0, checkpoint_path=path)
    create_model("res2net50", features_only=True, checkpoint_path=path)


def test_first_conv_adapted_to_grey_input(tmp_path, r50):
    weights, official = r50
    with pytest.warns(UserWarning, match="adapting the RGB first convolution to 1 input channels"):
        model = create_model("res2net50", in_channels=1, checkpoint_path=_npz(tmp_path, official))
    assert np.allclose(model_params(model)["conv1.weight"], weights["conv1.weight"].sum(axis=1, keepdims=True))


def test_optimizer_state_in_mindspore_checkpoints_is_ignored(tmp_path, r50):
    weights, _ = r50
    entries = [{"name": k, "data": ms.Tensor(v)} for k, v in weights.items()]
    entries += [{"name": "moments." + k, "data": ms.Tensor(np.zeros_like(v))} for k, v in list(weights.items())[:3]]
    entries += [{"name": "global_step", "data": ms.Tensor(np.array([7], np.int32))}]
    ms.save_checkpoint(entries, str(tmp_path / "train.ckpt"))
    model = create_model("res2net50", checkpoint_path=tmp_path / "train.ckpt")
    assert np.array_equal(model_params(model)["bn1.gamma"], weights["bn1.gamma"])


def test_save_is_atomic(tmp_path, r50, monkeypatch):
    weights, _ = r50
    target = tmp_path / "out.ckpt"

    def crash(f, *_):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "_write_mindspore_checkpoint", crash)
    with pytest.raises(OSError, match=f"^cannot write {target}: No space left on device$"):
        save_weights(weights, target)
    assert list(tmp_path.iterdir()) == []


def test_load_checkpoint_into_existing_model(tmp_path, r50):
    weights, _ = r50
    path = save_weights(weights, tmp_path / "w.safetensors")
    model = load_checkpoint(create_model("res2net50"), path)
    assert np.array_equal(model_params(model)["layer3.5.bns.2.moving_variance"],
                          weights["layer3.5.bns.2.moving_variance"])


# ---------------------------------------------------------------------------------------------- crafted files


def test_non_finite_weights_load_with_a_warning_naming_them(tmp_path, r50):
    weights, official = r50
    state = dict(official)
    state["layer2.0.conv1.weight"] = state["layer2.0.conv1.weight"].copy()
    state["layer2.0.conv1.weight"][0, 0, 0, 0] = np.nan
    state["fc.bias"] = np.full_like(state["fc.bias"], np.inf)
    with pytest.warns(UserWarning, match=r"w.npz: 2 tensors hold NaN or Inf values \(fc.bias, layer2.0.conv1.weight\)"):
        create_model("res2net50", checkpoint_path=_npz(tmp_path, state))


@pytest.mark.parametrize("metadata, message", [
    ([1, 2], "its metadata is a JSON list, not an object"),
    ({"num_classes": "ten"}, "metadata 'num_classes' must be an integer from 1 to 1000000, got 'ten'"),
    ({"num_classes": 10 ** 12}, "metadata 'num_classes' must be an integer from 1 to 1000000, got 1000000000000"),
    ({"num_classes": 3, "class_names": ["a", 2]}, "metadata 'class_names' must be null or a list of strings"),
    ({"num_classes": 2, "class_names": ["a", "b", "c"]}, "metadata holds 3 class names for 2 classes"),
    ({"num_classes": 10, "config": "x"}, "metadata 'config' must be null or a JSON object"),
    ({"num_classes": 1000}, "metadata 'num_classes' is 1000 but its tensors have 10"),
    ({"num_classes": 10, "in_channels": 1}, "metadata 'in_channels' is 1 but its tensors have 3"),
])
def test_crafted_metadata_is_one_clear_error(tmp_path, metadata, message):
    from mindcv_res2net.models import create_model_from_checkpoint

    model = create_model("res2net50", num_classes=10)
    path = save_weights({p.name: p.asnumpy() for p in model.get_parameters()}, tmp_path / "m.ckpt", metadata=metadata)
    with pytest.raises(CheckpointError, match=message):
        create_model_from_checkpoint("res2net50", path)
    if "tensors have" not in message:  # loading into a given model checks the tensors themselves
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(create_model("res2net50", num_classes=10), path)


@pytest.mark.parametrize("config, message", [
    ({"image_resize": -4}, r"key 'image_resize' must be an integer from 32 to 4096 pixels, got -4"),
    ({"mean": "abc"}, "key 'mean' expects a list"),
    ({"image_resize": 10 ** 6}, "key 'image_resize' must be an integer from 32 to 4096 pixels, got 1000000"),
])
def test_crafted_stored_config_is_one_clear_error_where_a_run_reads_it(tmp_path, config, message):
    """weights/ keeps a checkpoint's stored config as the JSON object it is; engine converts it where it is
    used: validate, predict and export (``model_to_evaluate``), resume and run folders (``run_metadata``)."""
    from mindcv_res2net.deploy.checkpoint_model import model_to_evaluate
    from mindcv_res2net.train.run_folder import run_metadata
    from mindcv_res2net.models import create_model_from_checkpoint

    model = create_model("res2net50", num_classes=10)
    path = save_weights({p.name: p.asnumpy() for p in model.get_parameters()}, tmp_path / "m.ckpt",
                        metadata={"num_classes": 10, "config": config})
    assert create_model_from_checkpoint("res2net50", path).run_config == config
    prefix = f"config {path} (metadata 'config'): "
    with pytest.raises(CheckpointError, match=re.escape(prefix) + message):
        model_to_evaluate(str(path), "res2net50")
    with pytest.raises(CheckpointError, match=re.escape(prefix) + message):
        run_metadata({"config": config}, str(path))


DISK_FULL = """
import resource, signal, sys
import numpy as np
import mindcv_res2net
from mindcv_res2net.weights import save_weights
from mindcv_res2net.utils.cli import run_cli

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
run_cli(lambda: save_weights({"w": np.ones(1 << 20, np.float32)}, sys.argv[1]) and 0)
"""


def test_full_disk_leaves_nothing_and_names_the_path(tmp_path):
    from helpers.programs import run

    script = tmp_path / "fill.py"
    script.write_text(DISK_FULL)
    out = tmp_path / "out" / "w.ckpt"
    proc = run([str(script), str(out)])
    assert proc.returncode == 2 and proc.stderr == f"error: cannot write {out}: File too large\n", proc.stderr
    assert os.listdir(tmp_path / "out") == []
