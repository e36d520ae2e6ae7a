"""Reading PyTorch files without PyTorch, and refusing pickles that would run code."""
import os
import pickle
import zipfile

import numpy as np
import pytest

from helpers import REFERENCE_DIR
from helpers.programs import run
from helpers.parity import official_state_dict
from helpers.checkpoints import PickleExploit
from mindcv_res2net.weights import CheckpointError, read_checkpoint
from mindcv_res2net.deploy.convert import convert_weights
from mindcv_res2net.weights.torch_file import UnsafePickleError, load_torch_file
from helpers.torch_writer import save_torch_legacy, save_torch_zip

FIXTURES = os.path.join(REFERENCE_DIR, "torch_formats")


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


def _malicious_files(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"conv1.weight": PickleExploit(marker)}, protocol=2)
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
        read_checkpoint(path)


ATTACKED = "layer1.0.convs.0.weight"  # (26, 26, 3, 3): 6084 float32 values, strides (234, 9, 3, 1)
ATTACKS = {
    "storage too small": (dict(storage_elements=100), r"reach element 6083 but its storage holds 100 elements"),
    "offset past the end": (dict(offset=10 ** 6), r"offset 1000000, .* reach element 1006083 but its storage holds 6084 elements"),
    "negative offset": (dict(offset=-5), r"negative storage offset -5"),
    "negative stride": (dict(stride=(-234, 9, 3, 1)), r"negative stride in \(-234, 9, 3, 1\)"),
    "stride of 10^12": (dict(stride=(10 ** 12, 9, 3, 1)), r"reach element 25000000000233 but its storage holds 6084"),
    "view larger than storage": (dict(stride=(0, 0, 0, 0)), r"shape \(26, 26, 3, 3\) has 6084 elements, more than the 1"),
}


@pytest.mark.parametrize("writer", [save_torch_zip, save_torch_legacy], ids=["zip", "legacy"])
@pytest.mark.parametrize("attack", list(ATTACKS))
def test_views_outside_their_storage_are_refused_before_any_read(tmp_path, writer, attack):
    """One tensor of a complete official state dict declares a view its storage cannot hold: one error naming
    the file and the tensor, nothing written, no crash, no heap bytes copied into a checkpoint."""
    view, message = ATTACKS[attack]
    if attack == "view larger than storage":
        view = dict(view, storage_elements=1)
    path = tmp_path / "attacked.pth"
    writer(official_state_dict("res2net50_26w_4s"), str(path), views={ATTACKED: view})
    with pytest.raises(CheckpointError, match=rf"^{path}: cannot read torch checkpoint .*: tensor '{ATTACKED}': .*"
                                              rf"{message}"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match=ATTACKED):
        convert_weights(path, tmp_path / "out.ckpt", "res2net50_26w_4s")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attacked.pth"]


def test_legacy_storage_declaring_more_bytes_than_the_file_is_refused(tmp_path):
    path = tmp_path / "huge.pth"
    save_torch_legacy({"w": np.ones(4, np.float32)}, str(path))
    raw = bytearray(path.read_bytes())
    size_at = len(raw) - 16 - 8  # the storage's element count, before its 16 bytes
    raw[size_at:size_at + 8] = (10 ** 15).to_bytes(8, "little")
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"storage 0 declares 1000000000000000 elements, more than the file holds"):
        read_checkpoint(path)


@pytest.mark.e2e
def test_convert_cli_refuses_an_attacked_file_in_one_line(tmp_path):
    path = tmp_path / "attacked.pth"
    save_torch_zip(official_state_dict("res2net50_26w_4s"), str(path), views={ATTACKED: dict(offset=10 ** 6)})
    proc = run(["tools/convert_weights.py", str(path), str(tmp_path / "out.ckpt"), "--model", "res2net50_26w_4s"])
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"error: {path}: cannot read torch checkpoint") and ATTACKED in proc.stderr
    assert not (tmp_path / "out.ckpt").exists()


@pytest.mark.parametrize("storage", ["ComplexFloatStorage", "Float8_e4m3fnStorage", "UInt16Storage"])
def test_torch_tensor_of_an_unsupported_type_is_named(tmp_path, storage):
    """The torch reader widens bfloat16 and reads every real and bool type (checked against PyTorch's own files
    above); any other storage type is refused as what it is, not as code to run."""
    save_torch_zip({"w": np.ones(2, np.float32)}, tmp_path / "float.pth")
    path = tmp_path / "other.pth"
    with zipfile.ZipFile(tmp_path / "float.pth") as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info.filename, data.replace(b"ctorch\nFloatStorage\n", f"ctorch\n{storage}\n".encode())
                            if info.filename.endswith("data.pkl") else data)
    with pytest.raises(CheckpointError, match=rf"^{path}: tensors of type torch.{storage} are not read \(only real "
                                              r"floating-point, integer and bool tensors\)$"):
        read_checkpoint(path)
