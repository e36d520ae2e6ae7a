"""Reading PaddlePaddle .pdparams files without Paddle: arrays only, bounds-checked, no code run."""
import pickle

import numpy as np
import pytest

from conftest import PickleExploit, official_state_dict
from mindcv_res2net import create_model
from mindcv_res2net.weights import CheckpointError, read_checkpoint
from mindcv_res2net.deploy.convert import convert_weights
from mindcv_res2net.weights.paddle_file import load_paddle_file
from paddle_writer import save_pdparams


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
