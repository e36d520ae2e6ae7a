"""Reading PaddlePaddle .pdparams files without Paddle: arrays only, bounds-checked, no code run; files written by
real PaddlePaddle (tests/reference/paddle_files, see its README) read as ``paddle.load`` reads them."""
import json
import os
import pickle

import numpy as np
import pytest

from helpers import REFERENCE_DIR
from helpers.parity import official_state_dict
from helpers.programs import run_tool
from helpers.checkpoints import PickleExploit
from mindcv_res2net import create_model
from mindcv_res2net.weights import CheckpointError, read_checkpoint
from mindcv_res2net.deploy.convert import convert_weights
from mindcv_res2net.weights.paddle_file import load_paddle_file
from helpers.paddle_writer import bfloat16_bits, save_nested_pdparams, save_pdparams

PADDLE_FILES = os.path.join(REFERENCE_DIR, "paddle_files")
PADDLE_VARIANT = "paddle_res2net50_vd_26w_4s"


def test_arrays_and_name_table(tmp_path):
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.asfortranarray(np.eye(3)),
              "c": np.array(7, np.int64), "d": np.zeros((0, 4), np.float16)}
    save_pdparams(arrays, tmp_path / "w.pdparams", protocol=4)
    loaded = load_paddle_file(str(tmp_path / "w.pdparams"))
    assert list(loaded) == list(arrays)  # the StructuredToParameterName@@ table is dropped
    for key, value in arrays.items():
        assert loaded[key].dtype == value.dtype and loaded[key].shape == value.shape
        assert np.array_equal(loaded[key], value) and loaded[key].flags["C_CONTIGUOUS"]


def test_malicious_pickle_runs_nothing_and_writes_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pdparams"
    path.write_bytes(pickle.dumps({"conv1._conv.weight": PickleExploit(marker)}, protocol=2))
    with pytest.raises(CheckpointError, match=r"evil.pdparams: refusing to load 'posix.system'"):
        convert_weights(path, tmp_path / "out.ckpt", "paddle_res2net50_26w_4s")
    assert not marker.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["evil.pdparams"]


def _patched(tmp_path, old: bytes, new: bytes):
    path = tmp_path / "w.pdparams"
    save_pdparams({"w": np.ones((2, 3), np.float32)}, path)
    raw = path.read_bytes()
    assert raw.count(old) == 1, raw
    path.write_bytes(raw.replace(old, new))
    return path


@pytest.mark.parametrize("old, new, message", [
    (b"K\x02K\x03\x86", b"M\xe8\x03K\x03\x86", r"array of shape \(1000, 3\) and dtype float32 needs 12000 bytes, "
                                               r"the file holds 24"),
    (b"X\x02\x00\x00\x00f4", b"X\x02\x00\x00\x00O8", r"refusing array dtype 'O8'"),
    (b"cnumpy\nndarray\n", b"cnumpy\nmemmap\n", r"refusing to load 'numpy.memmap'"),
])
def test_hostile_arrays_are_refused(tmp_path, old, new, message):
    path = _patched(tmp_path, old, new)
    with pytest.raises(CheckpointError, match=rf"^{path}: .*{message}"):
        read_checkpoint(path)


@pytest.mark.e2e
def test_mmpretrain_names_load(tmp_path):
    """mmpretrain's converted official files: a ``backbone.`` prefix and ``head.fc.*``."""
    official = official_state_dict("res2net50_14w_8s")
    renamed = {("head." + k) if k.startswith("fc.") else "backbone." + k: v for k, v in official.items()}
    np.savez(tmp_path / "mmpretrain.npz", **renamed)
    model = create_model("res2net50_14w_8s", checkpoint_path=tmp_path / "mmpretrain.npz")
    assert np.array_equal(model.fc.weight.asnumpy(), official["fc.weight"])


# ---------------------------------------------------------------------------------------------- real Paddle files


def _expected():
    with open(os.path.join(PADDLE_FILES, "expected.json")) as f:
        return json.load(f)


def test_every_dtype_of_a_real_paddle_file_reads_as_paddle_reads_it():
    """Paddle stores bfloat16 as uint16 (and reads it back as bfloat16): the values, not their bits, come out.
    float8 is stored as int8 and Paddle itself reads int8 back: it stays int8 (refused as a weight, below)."""
    state, _ = read_checkpoint(os.path.join(PADDLE_FILES, "dtypes.pdparams"))
    expected = _expected()["dtypes"]
    assert sorted(state) == sorted(expected)
    for name, want in expected.items():
        assert np.array_equal(state[name].astype(np.float32), np.array(want["as_float32"], np.float32)), name
        kind = {"bfloat16": "float32", "float8_e4m3fn": "int8"}.get(name, want["paddle_load_dtype"])
        assert state[name].dtype == np.dtype(kind), name
    bf16, _ = read_checkpoint(os.path.join(PADDLE_FILES, "bfloat16.pdparams"))
    assert np.allclose(bf16["w"], _expected()["values"], rtol=1 / 128) and bf16["w"].dtype == np.float32


def test_a_real_paddle_file_nesting_its_state_dict_is_read():
    state, _ = read_checkpoint(os.path.join(PADDLE_FILES, "nested.pdparams"))
    expected = _expected()["nested"]
    assert sorted(state) == sorted(expected)
    for key, value in expected.items():
        assert np.array_equal(state[key], np.array(value, np.float32))


def test_paddle_file_nesting_its_state_dict_under_another_key_says_where_the_tensors_are(tmp_path):
    path = tmp_path / "params.pdparams"
    save_nested_pdparams({"fc.weight": np.ones((2, 3), np.float32)}, path, key="params", epoch=3)
    with pytest.raises(CheckpointError, match=rf"^{path}: no tensors found in the file \(keys: epoch, params\); "
                                              r"dicts of tensors under params, but only one under state_dict, model, "
                                              r"model_state_dict, net, network is read$"):
        read_checkpoint(path)


def test_a_real_complex_paddle_tensor_is_refused():
    path = os.path.join(PADDLE_FILES, "complex64.pdparams")
    with pytest.raises(CheckpointError, match=rf"^{path}: refusing array dtype 'c8': only arrays of real numbers"):
        read_checkpoint(path)


def test_paddle_network_with_bfloat16_and_nested_tensors_converts_to_the_right_values(tmp_path):
    official = official_state_dict(PADDLE_VARIANT)
    weight = "bb_0_0.conv0._conv.weight"
    bits = bfloat16_bits(official[weight])
    state = dict(official, **{weight: bits})
    save_nested_pdparams(state, tmp_path / "nested_bf16.pdparams", epoch=3)
    convert_weights(tmp_path / "nested_bf16.pdparams", tmp_path / "out.ckpt", PADDLE_VARIANT)
    converted, metadata = read_checkpoint(tmp_path / "out.ckpt")
    assert metadata["num_classes"] == 1000
    assert np.array_equal(converted["layer1.0.conv1.weight"], (bits.astype(np.uint32) << 16).view(np.float32))
    assert np.allclose(converted["layer1.0.conv1.weight"], official[weight], rtol=1 / 128, atol=1e-30)
    assert np.array_equal(converted["fc.weight"], official["out.weight"].T)


@pytest.mark.e2e
def test_paddle_float8_weights_stored_as_int8_are_refused(tmp_path, capsys):
    official = official_state_dict(PADDLE_VARIANT)
    weight = "bb_0_0.conv0._conv.weight"
    save_pdparams(dict(official, **{weight: np.clip(official[weight] * 100, -127, 127).astype(np.int8)}),
                  tmp_path / "f8.pdparams")
    code, err = run_tool("convert_weights", [str(tmp_path / "f8.pdparams"), str(tmp_path / "out.ckpt"), "--model",
                                             PADDLE_VARIANT], capsys)
    assert code == 2 and err == (f"error: {tmp_path / 'f8.pdparams'}: weights that are not floating point "
                                 "(layer1.0.conv1.weight: int8); the model's parameters need real numbers\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f8.pdparams"]


@pytest.mark.e2e
@pytest.mark.parametrize("num_classes", [[], ["--num_classes", "10"]])
def test_paddle_classifier_stored_out_in_gets_paddle_advice(tmp_path, capsys, num_classes):
    official = official_state_dict(PADDLE_VARIANT)
    save_pdparams(dict(official, **{"out.weight": np.ascontiguousarray(official["out.weight"].T)}),
                  tmp_path / "outin.pdparams")
    code, err = run_tool("convert_weights", [str(tmp_path / "outin.pdparams"), str(tmp_path / "out.ckpt"),
                                             "--model", PADDLE_VARIANT] + num_classes, capsys)
    assert code == 2 and err == (
        f"error: {tmp_path / 'outin.pdparams'}: its Paddle classifier out.weight is stored (1000, 2048), (out, in), "
        "but a Paddle Linear stores (in, out), here (2048, 1000) for the 1000 classes of out.bias: save out.weight "
        "transposed\n")
