"""Exact parity with the official PyTorch Res2Net networks (tests/reference/parity, see its README).

Each variant's official state dict (weight rule + stored BatchNorm tensors, the source's own names)
is written in its source's file format (PaddleClas .pdparams, the official DLA .pth with its 15 unused
tensors, else .npz), goes through the project's own converter and ``create_model(checkpoint_path=...)``,
then must reproduce the float64 reference logits within the manifest's ``atol`` on both inputs.
"""
import numpy as np
import pytest

import mindspore as ms
from mindspore import nn
from helpers.parity import MANIFEST, official_state_dict, parity_file, rule_weight
from helpers.checkpoints import model_params
from mindcv_res2net import create_model
from mindcv_res2net.models.fuse import fuse_batchnorm
from mindcv_res2net.weights import save_weights
from mindcv_res2net.deploy.convert import convert_weights
from helpers.paddle_writer import save_pdparams
from helpers.torch_writer import save_torch_legacy, save_torch_zip


def _official_dla_file(variant, path):
    """The official DLA .pth: the network's tensors plus the 15 that the official forward pass never uses."""
    state = dict(official_state_dict(variant))
    for prefix, (out, inp) in {"level3.project": (256, 128), "level4.project": (512, 256),
                               "level4.tree1.project": (512, 256)}.items():
        state[f"{prefix}.0.weight"] = rule_weight(f"{prefix}.0.weight", (out, inp, 1, 1))
        state.update({f"{prefix}.1.{k}": np.full(out, v, np.float32) for k, v in
                      (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0))})
    save_torch_zip(state, path)
    return path


def _source_file(variant, tmp_path):
    """The variant's official weights in its source's own format: .pdparams (PaddleClas), .pth (DLA), else .npz."""
    if variant.startswith("paddle_"):
        path = tmp_path / f"{variant}.pdparams"
        save_pdparams(official_state_dict(variant), path)
        return path
    if "dla" in variant:
        return _official_dla_file(variant, tmp_path / f"{variant}.pth")
    path = tmp_path / f"{variant}_official.npz"
    np.savez(path, **official_state_dict(variant))
    return path


def _converted(variant, tmp_path):
    return convert_weights(_source_file(variant, tmp_path), tmp_path / f"{variant}.ckpt", variant)


def _max_error(model, x, reference):
    model.set_train(False)
    return float(np.abs(model(ms.Tensor(x)).asnumpy().astype(np.float64) - reference).max())


def _assert_logits_match(model, variant, inputs):
    ref = parity_file(variant)
    atol = MANIFEST[variant]["atol"]
    assert _max_error(model, inputs["x"], ref["logits_fp64"]) <= atol
    odd = inputs["x_dla" if "dla" in variant else "x_odd"]  # DLA needs sides that are multiples of 32
    assert _max_error(model, odd, ref["logits_odd_fp64"]) <= atol


@pytest.mark.e2e
@pytest.mark.parametrize("variant", list(MANIFEST))
def test_logits_match_official_pynative(variant, tmp_path, parity_inputs, pynative):
    model = create_model(variant, checkpoint_path=_converted(variant, tmp_path))
    assert sum(p.size for p in model.trainable_params()) == MANIFEST[variant]["params"]
    assert len(list(model.get_parameters())) == MANIFEST[variant]["n_tensors"]
    _assert_logits_match(model, variant, parity_inputs)


@pytest.mark.e2e
@pytest.mark.parametrize("variant", ["res2net50_26w_4s", "res2net50_v1b_26w_4s", "paddle_res2net50_vd_26w_4s",
                                     "res2net_dla60"])
def test_logits_match_official_graph(variant, tmp_path, parity_inputs, graph):
    _assert_logits_match(create_model(variant, checkpoint_path=_converted(variant, tmp_path)), variant, parity_inputs)


@pytest.mark.e2e
@pytest.mark.parametrize("variant", ["res2net50_26w_4s", "res2net50_v1b_26w_4s", "res2next50",
                                     "paddle_res2net50_26w_4s", "res2next_dla60"])
def test_batchnorm_folded_model_matches_official_graph(variant, tmp_path, parity_inputs, graph):
    model = fuse_batchnorm(create_model(variant, checkpoint_path=_converted(variant, tmp_path)))
    assert not any(isinstance(cell, nn.BatchNorm2d) for _, cell in model.cells_and_names())
    _assert_logits_match(model, variant, parity_inputs)


@pytest.mark.e2e
@pytest.mark.parametrize("variant", ["res2net50_26w_4s", "res2net50_v1b_26w_4s"])
def test_stage_features_match_official(variant, tmp_path, parity_inputs, pynative):
    model = create_model(variant, checkpoint_path=_converted(variant, tmp_path), features_only=True,
                         out_indices=(0, 1, 2, 3, 4))
    model.set_train(False)
    feats = model(ms.Tensor(parity_inputs["x"]))
    ref = parity_file(variant)
    assert feats[0].shape == (2, 64, 112, 112)
    for stage in range(1, 5):
        out = feats[stage].asnumpy().astype(np.float64)
        assert out.shape == tuple(ref[f"feat{stage}_shape"])
        sample = out.reshape(-1)[ref[f"feat{stage}_index"]]
        assert np.abs(sample - ref[f"feat{stage}_sample"]).max() <= MANIFEST[variant]["atol"], stage


def _mindcv_names(weights: dict, avg_down: bool) -> dict:
    """This package's names -> mindcv 0.3's (down_sample, classifier, v1b layer1 shortcut without pool index)."""
    out = {}
    for name, value in weights.items():
        if avg_down and name.startswith("layer1.0.downsample."):
            index, rest = name[len("layer1.0.downsample."):].split(".", 1)
            name = f"layer1.0.downsample.{int(index) - 1}.{rest}"
        name = name.replace(".downsample.", ".down_sample.")
        out["classifier." + name[3:] if name.startswith("fc.") else name] = value
    return out


@pytest.mark.e2e
@pytest.mark.parametrize("variant", ["res2net50_26w_4s", "res2net50_v1b_26w_4s"])
def test_every_input_format_gives_the_official_network(variant, tmp_path, parity_inputs, pynative):
    """PyTorch zip and legacy .pth, timm-style .safetensors, mindcv .ckpt and our .safetensors output."""
    official = official_state_dict(variant)
    reference = model_params(create_model(variant, checkpoint_path=_converted(variant, tmp_path)))
    sources = {}
    save_torch_zip(official, tmp_path / "zip.pth")
    save_torch_legacy(dict(official, **{"bn1.num_batches_tracked": np.array(3, np.int64)}),
                      tmp_path / "legacy.pth")
    sources["torch zip"] = tmp_path / "zip.pth"
    sources["torch legacy"] = tmp_path / "legacy.pth"
    from safetensors.numpy import save_file

    save_file(official, str(tmp_path / "timm.safetensors"))
    sources["safetensors (PyTorch names)"] = tmp_path / "timm.safetensors"
    avg_down = "v1b" in variant
    ms.save_checkpoint([{"name": k, "data": ms.Tensor(v)} for k, v in _mindcv_names(reference, avg_down).items()],
                       str(tmp_path / "mindcv.ckpt"))
    sources["mindcv ckpt"] = tmp_path / "mindcv.ckpt"
    sources["our safetensors"] = convert_weights(tmp_path / "legacy.pth", tmp_path / "ours.safetensors", variant)
    save_weights(reference, tmp_path / "ours.ckpt")
    sources["our ckpt"] = tmp_path / "ours.ckpt"

    ref_logits = parity_file(variant)["logits_odd_fp64"]
    for label, path in sources.items():
        model = create_model(variant, checkpoint_path=path)
        loaded = model_params(model)
        assert loaded.keys() == reference.keys(), label
        assert all(np.array_equal(loaded[k], reference[k]) for k in reference), label
        if label == "torch legacy":  # the official 2019 files' format: check the logits end to end
            assert _max_error(model, parity_inputs["x_odd"], ref_logits) <= MANIFEST[variant]["atol"]


@pytest.mark.e2e
@pytest.mark.parametrize("protocol, numpy2_names", [(4, False), (2, True)])
def test_pdparams_of_any_protocol_and_numpy_version_give_the_paddle_network(tmp_path, protocol, numpy2_names):
    variant = "paddle_res2net50_14w_8s"
    official = official_state_dict(variant)
    reference = model_params(create_model(variant, checkpoint_path=_converted(variant, tmp_path)))
    save_pdparams(official, tmp_path / "other.pdparams", protocol=protocol, numpy2_names=numpy2_names)
    loaded = model_params(create_model(variant, checkpoint_path=tmp_path / "other.pdparams"))
    assert all(np.array_equal(loaded[k], reference[k]) for k in reference)
    assert np.array_equal(loaded["fc.weight"], official["out.weight"].T)  # Paddle stores (in, out)


def test_dla_files_load_with_or_without_the_unused_official_tensors(tmp_path):
    variant = "res2net_dla60"
    with_unused = model_params(create_model(variant, checkpoint_path=_source_file(variant, tmp_path)))
    save_torch_zip(official_state_dict(variant), tmp_path / "timm.pth")  # timm's files: the 477 used tensors
    without = model_params(create_model(variant, checkpoint_path=tmp_path / "timm.pth"))
    assert with_unused.keys() == without.keys() and all(np.array_equal(with_unused[k], without[k]) for k in without)
