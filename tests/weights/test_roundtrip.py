"""Property-based round trips (Hypothesis) of every weight-file writer/reader pair the project owns:
``.ckpt`` (``save_weights`` / ``read_checkpoint``, ``read_checkpoint_metadata``, and
``mindspore.load_checkpoint``), ``.safetensors``, ``.npz`` (``np.savez`` / ``read_npz``), and the
test-side PyTorch and Paddle writers. Any shape (0-d and empty included), every dtype the format
holds, tensors split across ``.ckpt`` chunks, any JSON metadata: reading back gives exactly what was
written. Any byte string given to ``read_checkpoint`` is a ``CheckpointError``, nothing else.

Examples are few and derandomized (a fixed sequence), so the suite stays fast and CI stable.
"""
import json
import os
import tempfile
from contextlib import contextmanager
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as npst

import mindspore as ms
from mindcv_res2net.weights import CheckpointError, formats, read_checkpoint, read_checkpoint_metadata, save_weights
from mindcv_res2net.weights.formats import read_npz
from mindcv_res2net.weights.paddle_file import NAME_TABLE
from helpers.paddle_writer import save_pdparams
from helpers.torch_writer import save_torch_legacy, save_torch_zip

ROUND_TRIP = settings(max_examples=40, derandomize=True, database=None, deadline=None,
                      suppress_health_check=[HealthCheck.too_slow])

SHAPES = npst.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)
BOTH_ORDERS = "?"  # little- and big-endian variants of multi-byte dtypes
CKPT_DTYPES = st.one_of(npst.boolean_dtypes(), npst.integer_dtypes(endianness=BOTH_ORDERS),
                        npst.unsigned_integer_dtypes(endianness=BOTH_ORDERS),
                        npst.floating_dtypes(endianness=BOTH_ORDERS, sizes=(16, 32, 64)))
SAFETENSORS_DTYPES = CKPT_DTYPES  # and BF16, which numpy cannot hold: written by hand below
NPZ_DTYPES = CKPT_DTYPES  # read_npz reads real numbers and booleans; other dtypes: test_npz_refuses_other_dtypes
NPZ_REFUSED_DTYPES = st.one_of(npst.complex_number_dtypes(), npst.datetime64_dtypes(), npst.timedelta64_dtypes(),
                               npst.byte_string_dtypes(), npst.unicode_string_dtypes(),
                               npst.array_dtypes(npst.scalar_dtypes(), max_size=3))
TORCH_DTYPES = st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.int8,
                                np.uint8, np.bool_]).map(np.dtype)  # every storage type but bfloat16
# paddle_file reads f2-f8, i1-i8, u1-u8, b1 in either byte order; uint16 holds bfloat16 bits in Paddle files
# (read widened to float32, tested in test_paddle_file.py), so it does not round-trip as uint16
PADDLE_DTYPES = CKPT_DTYPES.filter(lambda dtype: dtype.newbyteorder("=") != np.dtype(np.uint16))

ANY_TEXT = st.text(st.characters())  # any code point, lone surrogates included (JSON escapes them)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                    | ANY_TEXT, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
                    max_leaves=12)
# zipfile cuts a member name at NUL; "t" first: np.savez's own keywords are "file" and "allow_pickle"
NPZ_NAMES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=12).map(
    lambda name: "t" + name)
METADATA = JSON.filter(lambda value: value is not None)  # None means "no metadata"
UNICODE_METADATA = {"\ud800 ключ": ["\x00", "😀", {"": None, "n": -0.0, "big": 2 ** 70}], "metadata": "\u2028"}


def arrays_of(dtypes):
    """An array of any shape (0-d and empty included) and any values (NaN, infinities) of ``dtypes``."""
    return dtypes.flatmap(lambda dtype: npst.arrays(dtype, SHAPES))


def state_dicts(dtypes, names=st.text(max_size=12), max_size=4):
    return st.dictionaries(names, arrays_of(dtypes), min_size=1, max_size=max_size)


@contextmanager
def scratch_file(name: str):
    """A path in a fresh temporary folder (Hypothesis runs many examples in one test call)."""
    with tempfile.TemporaryDirectory() as folder:
        yield os.path.join(folder, name)


def assert_same(written: dict, read: dict) -> None:
    """Same names; each tensor the same shape, dtype (in this machine's byte order: every reader gives
    native arrays) and bytes."""
    assert read.keys() == written.keys()
    for name, array in written.items():
        native = array.astype(array.dtype.newbyteorder("="))
        got = read[name]
        assert (got.shape, got.dtype) == (native.shape, native.dtype), name
        assert got.tobytes() == native.tobytes(), name


@ROUND_TRIP
@given(state=state_dicts(CKPT_DTYPES), metadata=st.none() | METADATA, chunk_bytes=st.integers(1, 64))
@example(state={"w": np.arange(5, dtype=">f8"), "s": np.array(7, np.int8)}, metadata=UNICODE_METADATA, chunk_bytes=3)
def test_ckpt_round_trip(state, metadata, chunk_bytes):
    """Tensors cross chunks of ``chunk_bytes`` (one element at least); MindSpore reads the file too."""
    if metadata is not None:
        state.pop("metadata", None)  # the metadata entry's name (refused beside metadata)
    with scratch_file("w.ckpt") as path, mock.patch.object(formats, "_CKPT_CHUNK_BYTES", chunk_bytes):
        save_weights(state, path, metadata=metadata)
        tensors, read_metadata = read_checkpoint(path)
        assert_same(state, tensors)
        assert read_metadata == ({} if metadata is None else metadata)
        assert read_checkpoint_metadata(path) == metadata
        loaded = ms.load_checkpoint(path)
    for name, array in state.items():
        if array.shape != (0,):  # MindSpore reads dims [0] as a scalar: it cannot hold a 1-d empty tensor
            assert np.array_equal(loaded[name].asnumpy(), array, equal_nan=array.dtype.kind == "f"), name
            assert loaded[name].shape == array.shape, name


def test_ckpt_scalars_keep_shape_and_older_scalars_are_read(tmp_path):
    """A 0-d tensor comes back 0-d (not of shape (1,)), and a scalar stored with dims [0] (MindSpore's other
    spelling, which its reader maps to shape ()) reads as 0-d."""
    from mindspore.train.checkpoint_pb2 import Checkpoint

    save_weights({"momentum": np.array(0.9, np.float32), "empty": np.zeros(0, np.int8)}, tmp_path / "a.ckpt")
    tensors, _ = read_checkpoint(tmp_path / "a.ckpt")
    assert tensors["momentum"].shape == () and tensors["momentum"] == np.float32(0.9)
    assert tensors["empty"].shape == (0,) and tensors["empty"].dtype == np.int8
    assert ms.load_checkpoint(str(tmp_path / "a.ckpt"))["momentum"].shape == ()
    message = Checkpoint()
    value = message.value.add()
    value.tag, value.tensor.tensor_type, value.tensor.tensor_content = "momentum", "Float32", b"\0\0\x80?"
    value.tensor.dims.extend([0])
    (tmp_path / "b.ckpt").write_bytes(message.SerializeToString())
    tensors, _ = read_checkpoint(tmp_path / "b.ckpt")
    assert tensors["momentum"].shape == () and tensors["momentum"] == np.float32(1.0)


def test_ckpt_writer_refuses_what_it_cannot_store(tmp_path):
    with pytest.raises(ValueError, match="tensor 'c': dtype complex64 cannot be stored in a MindSpore checkpoint"):
        save_weights({"c": np.zeros(2, np.complex64)}, tmp_path / "c.ckpt")
    with pytest.raises(ValueError, match="a tensor named 'metadata' cannot be stored with metadata"):
        save_weights({"metadata": np.zeros(2, np.float32)}, tmp_path / "m.ckpt", metadata={"epoch": 1})
    with pytest.raises(ValueError, match="tensor 'c': dtype complex64 cannot be stored in a safetensors file"):
        save_weights({"c": np.zeros(2, np.complex64)}, tmp_path / "c.safetensors")
    assert os.listdir(tmp_path) == []


def test_ckpt_chunks_that_disagree_or_repeated_entries_are_refused(tmp_path):
    from mindspore.train.checkpoint_pb2 import Checkpoint

    def entry(tag, dims, kind, content):
        message = Checkpoint()
        value = message.value.add()
        value.tag, value.tensor.tensor_type, value.tensor.tensor_content = tag, kind, content
        value.tensor.dims.extend(dims)
        return message.SerializeToString()

    (tmp_path / "chunks.ckpt").write_bytes(entry("w", [2], "Float32", b"\0" * 4) + entry("w", [2], "Int32", b"\0" * 4))
    with pytest.raises(CheckpointError, match="entry 'w': its chunks declare different shapes or types"):
        read_checkpoint(tmp_path / "chunks.ckpt")
    twice = entry("w", [1], "Float32", b"\0" * 4) + entry("b", [1], "Float32", b"\0" * 4)
    (tmp_path / "twice.ckpt").write_bytes(twice + entry("w", [1], "Float32", b"\0" * 4))
    with pytest.raises(CheckpointError, match="entry 'w' appears twice"):
        read_checkpoint(tmp_path / "twice.ckpt")


@ROUND_TRIP
@given(state=state_dicts(SAFETENSORS_DTYPES, names=st.text(max_size=12).filter(lambda n: n != "__metadata__")),
       metadata=st.none() | METADATA)
@example(state={"w": np.arange(5, dtype=">f8"), "s": np.array(7, np.int8)}, metadata=UNICODE_METADATA)
def test_safetensors_round_trip(state, metadata):
    with scratch_file("w.safetensors") as path:
        save_weights(state, path, metadata=metadata)
        tensors, read_metadata = read_checkpoint(path)
    assert_same(state, tensors)
    assert read_metadata == ({} if metadata is None else metadata)


@ROUND_TRIP
@given(bits=npst.arrays(np.uint16, SHAPES))
def test_safetensors_bfloat16_reads_as_the_float32_it_widens_to(bits):
    """BF16 (which numpy cannot write): any 16-bit patterns, NaNs included, read as float32 whose high
    half they are and whose low half is zero."""
    header = json.dumps({"w": {"dtype": "BF16", "shape": list(bits.shape), "data_offsets": [0, bits.nbytes]}})
    with scratch_file("bf16.safetensors") as path:
        with open(path, "wb") as f:
            f.write(len(header).to_bytes(8, "little") + header.encode() + bits.astype("<u2").tobytes())
        tensors, _ = read_checkpoint(path)
    assert tensors["w"].dtype == np.float32 and tensors["w"].shape == bits.shape
    assert np.array_equal(tensors["w"].view(np.uint32), bits.astype(np.uint32) << 16)


@ROUND_TRIP
@given(state=state_dicts(NPZ_DTYPES, names=NPZ_NAMES), fortran=st.booleans())
@pytest.mark.filterwarnings("ignore:Stored array in format 3.0")  # unicode field names need .npy format 3.0
def test_npz_round_trip(state, fortran):
    """``np.savez`` (C or Fortran order, either byte order) read by ``read_npz`` and by ``read_checkpoint``:
    shapes, values and dtypes as written, in native byte order."""
    if fortran:
        state = {k: np.asfortranarray(v) for k, v in state.items()}
    with scratch_file("w.npz") as path:
        np.savez(path, **state)
        for read in (read_npz(path), read_checkpoint(path)[0]):
            assert_same(state, read)


@ROUND_TRIP
@given(array=arrays_of(NPZ_REFUSED_DTYPES))
def test_npz_refuses_other_dtypes(array):
    """Text, complex, date and structured members are no weights: a one-line error naming file and tensor."""
    with scratch_file("w.npz") as path:
        np.savez(path, t=array)
        with pytest.raises(CheckpointError, match=r"w\.npz: .*tensor 't': dtype .* is not read"):
            read_checkpoint(path)


@ROUND_TRIP
@given(state=state_dicts(TORCH_DTYPES, names=st.text(max_size=12).filter(lambda n: not n.startswith("module."))),
       legacy=st.booleans())
def test_torch_writer_round_trip(state, legacy):
    """``helpers/torch_writer.py`` (both ``torch.save`` formats) read by ``weights/torch_file.py``."""
    with scratch_file("w.pth") as path:
        (save_torch_legacy if legacy else save_torch_zip)(state, path)
        tensors, metadata = read_checkpoint(path)
    assert_same(state, tensors)
    assert metadata == {}


@ROUND_TRIP
@given(state=state_dicts(PADDLE_DTYPES, names=st.text(max_size=12).filter(lambda n: n != NAME_TABLE)),
       protocol=st.sampled_from([2, 3, 4]))
def test_paddle_writer_round_trip(state, protocol):
    """``helpers/paddle_writer.py`` (pickle protocols 2-4, either byte order) read by ``weights/paddle_file.py``."""
    with scratch_file("w.pdparams") as path:
        save_pdparams(state, path, protocol=protocol)
        tensors, metadata = read_checkpoint(path)
    assert_same(state, tensors)
    assert metadata == {}


FILE_STARTS = st.sampled_from([b"", b"PK\x03\x04", b"\x80\x02", b"\x80\x04\x95", b"\x0a",
                               b"\x10\x00\x00\x00\x00\x00\x00\x00{", b"\x93NUMPY"])


@settings(max_examples=150, derandomize=True, database=None, deadline=None)
@given(start=FILE_STARTS, body=st.binary(max_size=200), suffix=st.sampled_from([".ckpt", ".pth", ".bin", ".npz"]))
def test_any_bytes_give_a_checkpoint_error(start, body, suffix):
    """Whatever the bytes (after a start that sends them to each parser), ``read_checkpoint`` and
    ``read_checkpoint_metadata`` either read them or raise a one-line ``CheckpointError``, never another
    exception."""
    with scratch_file("any" + suffix) as path:
        with open(path, "wb") as f:
            f.write(start + body)
        for read in (read_checkpoint, read_checkpoint_metadata):
            try:
                read(path)
            except CheckpointError as exc:
                assert str(exc).startswith(path) and "\n" not in str(exc)


def test_safetensors_metadata_of_other_writers(tmp_path):
    """timm's header metadata (``{"format": "pt"}``) is no metadata of ours; a ``json`` text that is not
    JSON is one error line naming the file."""
    from safetensors.numpy import save_file

    save_file({"w": np.ones(2, np.float32)}, str(tmp_path / "timm.safetensors"), metadata={"format": "pt"})
    assert read_checkpoint(tmp_path / "timm.safetensors")[1] == {}
    save_file({"w": np.ones(2, np.float32)}, str(tmp_path / "bad.safetensors"), metadata={"json": "{oops"})
    with pytest.raises(CheckpointError, match=rf"^{tmp_path / 'bad.safetensors'}: cannot read safetensors checkpoint"):
        read_checkpoint(tmp_path / "bad.safetensors")
