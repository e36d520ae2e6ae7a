"""The readers of the weight-file formats that are not pickles distrust their files: MindSpore ``.ckpt``
(protobuf), ``.npz`` (zip) and ``.safetensors`` (JSON header). A declared size the file does not hold, a member or
key given twice, a dtype that is no real number, a byte range outside the data or covering nothing is refused
naming the file, before anything large is allocated; what the reference library reads, ours reads the same.

The costly ones run the real command line as a user would (``tools/convert_weights.py``) and check that it refuses
them with one line naming the file, in under 30 s (start-up included) and under 2 GB of peak memory."""
import io
import json
import struct
import time
import zipfile
import zlib

import numpy as np
import pytest
import safetensors.numpy
from hypothesis import HealthCheck, given, settings, strategies as st

import mindspore as ms
from helpers.programs import assert_refused_cheaply
from mindcv_res2net.weights import CheckpointError, formats, read_checkpoint, save_weights
from mindcv_res2net.weights.formats import MAX_NPZ_BYTES, read_safetensors


# ---------------------------------------------------------------------------------------------- MindSpore .ckpt


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
    got = formats.read_mindspore_checkpoint(path)
    assert set(got) == set(expected) and got["metadata"] == '{"epoch": 3}'
    for name in ("w", "half", "step", "scalar"):
        want = expected[name].asnumpy()
        assert got[name].dtype == want.dtype and got[name].shape == want.shape and np.array_equal(got[name], want)
    assert formats.read_mindspore_checkpoint(path, names={"metadata"}) == {"metadata": '{"epoch": 3}'}
    import mindspore.train.serialization as serialization

    monkeypatch.setattr(serialization, "_get_available_memory", lambda: 16)  # bytes "free"
    with pytest.raises(Exception, match="exceeds current available memory"):
        ms.load_checkpoint(path)
    assert np.array_equal(formats.read_checkpoint(path)[0]["w"], expected["w"].asnumpy())
    if crc:
        raw = bytearray(open(path, "rb").read())
        raw[40] ^= 0xFF
        open(path, "wb").write(bytes(raw))
        with pytest.raises(CheckpointError, match="cannot read"):
            formats.read_checkpoint(path)[0]


def test_written_checkpoints_load_in_mindspore_and_keep_metadata_first(tmp_path):
    path = save_weights({"w": np.arange(6, dtype=np.float32).reshape(2, 3), "step": np.array([3], np.int32)},
                        tmp_path / "w.ckpt", metadata={"epoch": 2, "names": ["é", "ü"]})
    loaded = ms.load_checkpoint(str(path))
    assert np.array_equal(loaded["w"].asnumpy(), np.arange(6).reshape(2, 3)) and loaded["step"].asnumpy()[0] == 3
    assert formats.read_checkpoint_metadata(path) == {"epoch": 2, "names": ["é", "ü"]}
    assert formats.read_mindspore_checkpoint(path, names={"metadata"}) == {
        "metadata": '{"epoch": 2, "names": ["\\u00e9", "\\u00fc"]}'}


def test_hostile_mindspore_checkpoint_is_refused(tmp_path):
    from mindspore.train.checkpoint_pb2 import Checkpoint

    message = Checkpoint()
    value = message.value.add()
    value.tag, value.tensor.tensor_type, value.tensor.tensor_content = "conv1.weight", "Float32", b"\0" * 16
    value.tensor.dims.extend([64, 3, 7, 7])
    path = tmp_path / "w.ckpt"
    path.write_bytes(message.SerializeToString())
    with pytest.raises(CheckpointError, match=rf"^{path}: .*entry 'conv1.weight': shape \(64, 3, 7, 7\) of Float32 "
                                              r"needs 37632 bytes, the file holds 16"):
        formats.read_checkpoint(path)


# ---------------------------------------------------------------------------------------------- npz


def _crc_of_zeros(count: int):
    """The map ``crc -> zlib.crc32(bytes(count), crc)``, as (images of the 32 bits, image of 0); ``count`` a
    multiple of 1 MiB. CRC-32 is affine in its start value, so maps compose by doubling (no gigabytes hashed)."""
    def compose(f, g):  # f after g
        apply_f = lambda c: _apply(f, c)  # noqa: E731
        return [apply_f(col) ^ f[1] for col in g[0]], apply_f(g[1])

    chunk = bytes(1 << 20)
    unit = ([zlib.crc32(chunk, 1 << i) ^ zlib.crc32(chunk, 0) for i in range(32)], zlib.crc32(chunk, 0))
    result, blocks = ([1 << i for i in range(32)], 0), count >> 20
    while blocks:
        if blocks & 1:
            result = compose(unit, result)
        unit, blocks = compose(unit, unit), blocks >> 1
    return result


def _apply(op, crc: int) -> int:
    columns, constant = op
    for i in range(32):
        if crc >> i & 1:
            constant ^= columns[i]
    return constant


def write_deflated_npz(path, name: str, shape, dtype=np.float32) -> int:
    """An honest ``.npz``: one member ``name`` whose ``.npy`` header declares ``shape`` and whose deflated
    stream really inflates to that many zero bytes, with the right sizes and CRC (zip64); returns its size."""
    header = _npy_header(shape, dtype)
    data_size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    segment = 16 << 20
    assert data_size % segment == 0
    encoder = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = encoder.compress(header) + encoder.flush(zlib.Z_FULL_FLUSH)
    encoder = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = encoder.compress(bytes(segment)) + encoder.flush(zlib.Z_FULL_FLUSH)  # independent of what precedes
    stream_parts = [head, zeros * (data_size // segment), b"\x03\x00"]  # b"\x03\x00": an empty final block
    crc = _apply(_crc_of_zeros(data_size), zlib.crc32(header))
    compressed, size = sum(len(p) for p in stream_parts), len(header) + data_size
    member = f"{name}.npy".encode()
    zip64 = struct.pack("<HHQQ", 1, 16, size, compressed)
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 8, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF, len(member),
                        len(zip64)) + member + zip64
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 8, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                          len(member), len(zip64), 0, 0, 0, 0, 0) + member + zip64
    with open(path, "wb") as f:
        f.write(local)
        for part in stream_parts:
            f.write(part)
        offset = f.tell()
        f.write(central)
        f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), offset, 0))
        return f.tell()


def _npy_header(shape, dtype) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                               "shape": tuple(shape)})
    return buf.getvalue()


def test_the_npz_bomb_writer_is_honest(tmp_path):
    """The writer's archive is a valid zip whose member inflates to what it declares (checked on 64 MiB)."""
    path = tmp_path / "honest.npz"
    write_deflated_npz(path, "w", (16 << 20,))
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None  # every CRC and size verified by inflating
    with np.load(path) as data:
        assert data["w"].shape == (16 << 20,) and not data["w"].any()


@pytest.mark.e2e
@pytest.mark.parametrize("gib", [4, 12])
def test_npz_member_declaring_gigabytes_is_refused_before_inflating(tmp_path, gib):
    path = tmp_path / f"bomb{gib}.npz"
    size = write_deflated_npz(path, "conv1.weight", ((gib << 30) // 4,))
    assert size < (gib + 1) << 20  # a few MB
    message = rf"^error: {path}: cannot read npz checkpoint .*: its members declare {(gib << 30) + 128} bytes " \
              rf"\('conv1.weight.npy': {(gib << 30) + 128}\), more than the {MAX_NPZ_BYTES} bytes an .npz weight"
    if gib == 4:
        assert_refused_cheaply(["tools/convert_weights.py", str(path), str(tmp_path / "out.ckpt"), "--model",
                                "res2net50"], message)
    else:  # the same path as 4 GiB: in this process, without another interpreter start-up
        start = time.monotonic()
        with pytest.raises(CheckpointError, match=message[len("^error: "):]):
            read_checkpoint(path)
        assert time.monotonic() - start < 5
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_npz_with_a_member_name_twice_is_refused(tmp_path):
    path = tmp_path / "twice.npz"
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(path, "w") as archive:
        for value in (1.0, 2.0):
            archive.writestr("fc.bias.npy", _npy_header((2,), np.float32) + np.full(2, value, np.float32).tobytes())
    with pytest.raises(CheckpointError, match=rf"^{path}: cannot read npz checkpoint .*: member 'fc.bias.npy' "
                                              r"appears twice in the archive$"):
        read_checkpoint(path)


@pytest.mark.parametrize("descr", ["<c8", "<U4", "|V4", "<M8[s]"])
def test_npz_member_of_a_non_numeric_dtype_is_refused(tmp_path, descr):
    path = tmp_path / "odd.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("w.npy", _npy_header((2,), np.dtype(descr)) + bytes(2 * np.dtype(descr).itemsize))
    with pytest.raises(CheckpointError, match=rf"^{path}: .*tensor 'w': dtype .* is not read \(only real numbers"):
        read_checkpoint(path)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arrays=st.lists(st.tuples(st.sampled_from(["<f4", ">f8", "<f2", "|i1", "<i8", "|u1", "|b1"]),
                                 st.lists(st.integers(0, 3), max_size=3), st.booleans()), max_size=4),
       compression=st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
def test_npz_reads_as_numpy_does(tmp_path, arrays, compression):
    """Any shapes (0-d and empty), dtypes, byte orders and Fortran order: read_npz gives what np.load gives."""
    rng = np.random.default_rng(0)
    state = {f"t{i}": (np.asfortranarray if fortran else np.ascontiguousarray)(
        rng.integers(0, 2, shape).astype(descr)) for i, (descr, shape, fortran) in enumerate(arrays)}
    path = tmp_path / "any.npz"
    (np.savez_compressed if compression == zipfile.ZIP_DEFLATED else np.savez)(path, **state)
    if not state:
        return  # an empty archive is no weight file (nothing to sniff)
    read = read_checkpoint(path)[0]
    with np.load(path) as data:
        assert sorted(read) == sorted(data.files)
        for key in data.files:
            assert read[key].dtype == data[key].dtype.newbyteorder("=") and read[key].shape == data[key].shape
            assert np.array_equal(read[key], data[key]) and read[key].flags["C_CONTIGUOUS"]


def test_hostile_npz_is_refused(tmp_path):
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False, "shape": (10 ** 6,)})
    path = tmp_path / "w.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ok.npy", _npy(np.ones(3, np.float32)))
        archive.writestr("big.npy", member.getvalue() + np.ones(4, np.float32).tobytes())
    with pytest.raises(CheckpointError, match=rf"^{path}: .*tensor 'big': shape \(1000000,\) of float32 needs "
                                              r"4000000 bytes, the file holds 16"):
        formats.read_checkpoint(path)


def _npy(array):
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------- safetensors


def _write_safetensors(path, header: str, data_size: int) -> None:
    raw = header.encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(range(256)) * (data_size // 256)
                     + bytes(data_size % 256))


def _entry(name, count, start):
    return f'"{name}":{{"dtype":"F32","shape":[{count}],"data_offsets":[{start},{start + 4 * count}]}}'


@pytest.mark.parametrize("header, size, message", [
    ("{" + _entry("a", 1, 0) + "," + _entry("a", 1, 4) + "}", 8, r"key 'a' appears twice in the header"),
    ("{" + _entry("a", 2, 0) + "," + _entry("b", 1, 4) + "}", 8, r"tensor 'b': byte range \[4, 8\] overlaps "
                                                                 r"tensor 'a'"),
    ("{" + _entry("a", 1, 0) + "," + _entry("b", 1, 8) + "}", 12, r"data bytes 4 to 8 belong to no tensor"),
    ("{" + _entry("a", 1, 0) + "}", 8, r"data bytes 4 to 8 belong to no tensor"),
    ("{" + _entry("a", 1, 4) + "}", 8, r"data bytes 0 to 4 belong to no tensor"),
])
def test_safetensors_the_reference_library_refuses_are_refused(tmp_path, header, size, message):
    path = tmp_path / "w.safetensors"
    _write_safetensors(path, header, size)
    with pytest.raises(Exception, match="offset|not fully covered"):  # the reference library's verdict
        safetensors.numpy.load_file(str(path))
    with pytest.raises(CheckpointError, match=rf"^{path}: cannot read safetensors checkpoint .*: {message}$"):
        read_checkpoint(path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layout=st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 3), st.integers(0, 12)), max_size=4),
       data_size=st.integers(0, 24))
def test_safetensors_are_refused_exactly_when_the_reference_library_refuses_them(tmp_path, layout, data_size):
    """Headers with any byte ranges (overlapping, with gaps, beyond the data) and data sizes: our reader refuses
    the file exactly when ``safetensors`` does, and else reads the same tensors. A name given twice is always
    refused (the reference library keeps the last entry, and refuses the file when the first one then leaves
    bytes uncovered)."""
    path = tmp_path / "any.safetensors"
    _write_safetensors(path, "{" + ",".join(_entry(n, c, s) for n, c, s in layout) + "}", data_size)
    try:
        reference = safetensors.numpy.load_file(str(path))
    except Exception:  # noqa: BLE001  (whatever the reference library raises, it refused the file)
        reference = None
    try:
        ours = read_safetensors(str(path))
    except ValueError:
        ours = None
    names = [name for name, _, _ in layout]
    assert (ours is None) == (reference is None or len(set(names)) < len(names)), (layout, data_size, reference)
    if ours is not None:
        assert sorted(ours) == sorted(reference)
        assert all(np.array_equal(ours[k], reference[k]) for k in ours)


def _safetensors_with_header(path, edit):
    """A valid .safetensors file whose JSON header is then changed by ``edit(header)`` (data kept)."""
    save_weights({"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(4, np.float32)}, path)
    raw = path.read_bytes()
    length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + length])
    edit(header)
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + length:])


@pytest.mark.parametrize("edit, message", [
    (lambda h: h["b"].update(data_offsets=[24, 10 ** 9]), r"tensor 'b': byte range \[24, 1000000000\] lies outside"),
    (lambda h: h["b"].update(shape=[400]), r"tensor 'b': shape \(400,\) of F32 needs 1600 bytes, its byte range holds 16"),
    (lambda h: h["a"].update(shape=[-2, -3]), r"tensor 'a': shape \[-2, -3\] is not a list of non-negative"),
    (lambda h: h["a"].update(dtype="F128"), r"tensor 'a': unsupported dtype 'F128'"),
])
def test_hostile_safetensors_are_refused(tmp_path, edit, message):
    path = tmp_path / "w.safetensors"
    _safetensors_with_header(path, edit)
    with pytest.raises(CheckpointError, match=rf"^{path}: cannot read safetensors checkpoint .*: {message}"):
        formats.read_checkpoint(path)
