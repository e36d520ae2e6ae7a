"""Strict loading, clear errors for every bad checkpoint, fine-tuning heads, atomic writes."""
import os

import numpy as np
import pytest

import mindspore as ms
from conftest import model_params
from mindcv_res2net import create_model
from mindcv_res2net.utils import checkpoint
from mindcv_res2net.utils.checkpoint import CheckpointError, load_checkpoint, save_weights
from torch_writer import save_torch_legacy, save_torch_zip

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


def test_loads_official_names_exactly_and_ignores_batch_counters(tmp_path, r50):
    weights, official = r50
    state = dict(official)
    state.update({k.rsplit(".", 1)[0] + ".num_batches_tracked": np.array(5, np.int64)
                  for k in official if k.endswith("running_mean")})
    model = create_model("res2net50", checkpoint_path=_npz(tmp_path, state))
    loaded = model_params(model)
    assert all(np.array_equal(loaded[k], weights[k]) for k in weights)


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
                                              r"pass num_classes=10"):
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

    def crash(entries, path, **_):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.ms, "save_checkpoint", crash)
    with pytest.raises(OSError, match="disk full"):
        save_weights(weights, target)
    assert list(tmp_path.iterdir()) == []


def test_load_checkpoint_into_existing_model(tmp_path, r50):
    weights, _ = r50
    path = save_weights(weights, tmp_path / "w.safetensors")
    model = load_checkpoint(create_model("res2net50"), path)
    assert np.array_equal(model_params(model)["layer3.5.bns.2.moving_variance"],
                          weights["layer3.5.bns.2.moving_variance"])


@pytest.mark.parametrize("crc", [False, True])
def test_mindspore_reader_matches_load_checkpoint_and_ignores_free_memory(tmp_path, monkeypatch, crc):
    """Our .ckpt parser gives MindSpore's entries, and works when free memory (page cache full) looks short."""
    path = str(tmp_path / "state.ckpt")
    rng = np.random.default_rng(0)
    entries = [{"name": "w", "data": ms.Tensor(rng.standard_normal((3, 4, 2)).astype(np.float32))},
               {"name": "half", "data": ms.Tensor(np.arange(5, dtype=np.float16))},
               {"name": "step", "data": ms.Tensor(np.array([7], np.int32))},
               {"name": "scalar", "data": ms.Tensor(np.float32(2.5))}]
    ms.save_checkpoint(entries, path, append_dict={"metadata": '{"epoch": 3}'}, crc_check=crc)
    expected = ms.load_checkpoint(path, crc_check=crc)
    got = checkpoint.read_mindspore_checkpoint(path)
    assert set(got) == set(expected) and got["metadata"] == '{"epoch": 3}'
    for name in ("w", "half", "step", "scalar"):
        want = expected[name].asnumpy()
        assert got[name].dtype == want.dtype and got[name].shape == want.shape and np.array_equal(got[name], want)
    assert checkpoint.read_mindspore_checkpoint(path, names={"metadata"}) == {"metadata": '{"epoch": 3}'}
    import mindspore.train.serialization as serialization

    monkeypatch.setattr(serialization, "_get_available_memory", lambda: 16)  # bytes "free"
    with pytest.raises(Exception, match="exceeds current available memory"):
        ms.load_checkpoint(path)
    assert np.array_equal(checkpoint.read_state_dict(path)["w"], expected["w"].asnumpy())
    if crc:
        raw = bytearray(open(path, "rb").read())
        raw[40] ^= 0xFF
        open(path, "wb").write(bytes(raw))
        with pytest.raises(CheckpointError, match="cannot read"):
            checkpoint.read_state_dict(path)
