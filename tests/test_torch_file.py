"""Reading PyTorch files without PyTorch, and refusing pickles that would run code."""
import os
import pickle
import zipfile

import numpy as np
import pytest

from conftest import TESTS_DIR
from mindcv_res2net.utils.checkpoint import CheckpointError, read_state_dict
from mindcv_res2net.utils.convert import convert_weights
from mindcv_res2net.utils.torch_file import UnsafePickleError, load_torch_file

FIXTURES = os.path.join(TESTS_DIR, "data", "torch_formats")


@pytest.mark.parametrize("name", ["small_zip.pth", "small_legacy.pth"])
def test_reads_files_written_by_pytorch(name):
    expected = np.load(os.path.join(FIXTURES, "small_expected.npz"))
    loaded = load_torch_file(os.path.join(FIXTURES, name))
    assert list(loaded) == list(expected.files)  # order kept
    for key in expected.files:
        assert loaded[key].dtype == expected[key].dtype, key
        assert loaded[key].shape == expected[key].shape, key
        assert np.array_equal(loaded[key], expected[key]), key
    assert loaded["transposed"].flags["C_CONTIGUOUS"]


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _malicious_files(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"conv1.weight": _Exploit(marker)}, protocol=2)
    legacy = tmp_path / "evil_legacy.pth"
    legacy.write_bytes(payload)
    archive = tmp_path / "evil_zip.pth"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("archive/data.pkl", payload)
    return marker, [legacy, archive]


def test_malicious_pickle_runs_nothing_and_writes_nothing(tmp_path):
    marker, files = _malicious_files(tmp_path)
    for path in files:
        with pytest.raises(UnsafePickleError, match=r"refusing to load 'posix.system'"):
            load_torch_file(str(path))
        dst = tmp_path / "out.ckpt"
        with pytest.raises(CheckpointError, match=r"evil_.*refusing to load 'posix.system'"):
            convert_weights(path, dst, "res2net50")
        assert not dst.exists()
        assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil_legacy.pth", "evil_zip.pth"]


def test_pickled_whole_model_is_refused(tmp_path):
    """torch.save(model) pickles classes by reference: refused, never imported."""
    path = tmp_path / "model.pth"
    path.write_bytes(b"\x80\x02ctorch.nn.modules.conv\nConv2d\nq\x00)\x81q\x01.")
    with pytest.raises(CheckpointError, match=r"refusing to load 'torch.nn.modules.conv.Conv2d'"):
        read_state_dict(path)
