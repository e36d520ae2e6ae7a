"""Res2Net as a dense-prediction backbone: ``output_stride`` by dilation (parity with timm, tests/data/dilated),
whole-network weight files into ``features_only`` models, and mmpretrain's ``frozen_stages`` / ``norm_eval``
through real optimizer steps."""
import os

import numpy as np
import pytest
from safetensors.numpy import save_file

import mindspore as ms
from conftest import TESTS_DIR, model_params, save_trained_like_checkpoint
from make_dilated_reference import CHECKED_STRIDES, INPUT_SHAPES, MODELS, reference_input, reference_weight
from mindcv_res2net import create_model
from mindcv_res2net.weights.convert import convert_weights

DILATED_DIR = os.path.join(TESTS_DIR, "data", "dilated")


def _reference(model: str):
    return np.load(os.path.join(DILATED_DIR, f"{model}.npz"), allow_pickle=False)


def _timm_file(model: str, data, tmp_path) -> str:
    """The reference weights under timm's names, in timm's file format (safetensors, head and
    ``num_batches_tracked`` included), each tensor checked against the generator's checksum."""
    state = {}
    for key, padded, abssum in zip(data["keys"], data["shapes"], data["gen_abssum"]):
        key = str(key)
        state[key] = reference_weight(key, tuple(int(s) for s in padded if s >= 0))
        assert np.isclose(np.abs(state[key]).sum(dtype=np.float64), abssum, rtol=1e-9), key
    path = str(tmp_path / f"{model}_timm.safetensors")
    save_file(state, path)
    return path


def _map_errors(ours: np.ndarray, data, prefix: str) -> dict:
    """Errors of our (1, C, H, W) map against the stored summary of timm's float64 map."""
    assert ours.shape == tuple(data[f"{prefix}/shape"]), prefix
    flat = ours.reshape(-1)
    return {"max_abs": abs(np.abs(ours).max() - float(data[f"{prefix}/max_abs"])),
            "channel_mean": np.abs(ours.mean(axis=(0, 2, 3)) - data[f"{prefix}/channel_mean"]).max(),
            "position_mean": np.abs(ours.mean(axis=(0, 1)) - data[f"{prefix}/position_mean"]).max(),
            "samples": np.abs(flat[data[f"{prefix}/sample_index"]] - data[f"{prefix}/sample_value"]).max()}


def _assert_maps_match_timm(net, data, stride: int, inputs=tuple(INPUT_SHAPES)) -> None:
    assert net.feature_info.reduction() == data[f"os{stride}/reductions"].tolist()
    net.set_train(False)
    for name in inputs:
        maps = net(ms.Tensor(reference_input(name)))
        assert len(maps) == 5
        for i, fmap in enumerate(maps):
            prefix = f"os{stride}/{name}/map{i}"
            errors = _map_errors(fmap.asnumpy().astype(np.float64), data, prefix)
            tolerance = 1e-4 * float(data[f"{prefix}/max_abs"])
            assert max(errors.values()) <= tolerance, (prefix, errors, tolerance)


@pytest.mark.parametrize("model", MODELS)
def test_dilated_features_match_timm(model, tmp_path, pynative):
    """Output stride 8 from timm's own file (head dropped), 16 from the project's converted checkpoint."""
    data = _reference(model)
    timm_file = _timm_file(model, data, tmp_path)
    converted = convert_weights(timm_file, str(tmp_path / f"{model}.ckpt"), model)
    for stride, path in zip(CHECKED_STRIDES, (timm_file, converted)):
        net = create_model(model, features_only=True, output_stride=stride, checkpoint_path=path)
        assert net.fc is None
        _assert_maps_match_timm(net, data, stride)


def test_dilated_v1b_features_match_timm_graph(tmp_path, graph):
    data = _reference("res2net50_v1b")
    net = create_model("res2net50_v1b", features_only=True, output_stride=8,
                       checkpoint_path=_timm_file("res2net50_v1b", data, tmp_path))
    _assert_maps_match_timm(net, data, 8, inputs=("odd",))
