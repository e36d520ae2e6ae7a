"""Small hostile files that would cost gigabytes, files that read as silent garbage, and odd ``-c`` paths.

The costly ones run the real command line as a user would (``tools/convert_weights.py``, ``train.py -c``) and
check that it refuses them with one line naming the file, in under 30 s (start-up included) and under 2 GB
of peak memory. Paddle files written by real PaddlePaddle are in ``data/paddle_files`` (see its README).
"""
import json
import os
import pickle
import re
import struct
import subprocess
import sys
import threading
import time
import zipfile
import zlib

import numpy as np
import pytest
import safetensors.numpy
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import PROJECT_DIR, TESTS_DIR, official_state_dict, run_tool
from mindcv_res2net.config import MAX_RECIPE_BYTES, ConfigError, load_yaml_config
from mindcv_res2net.weights import CheckpointError, read_checkpoint
from mindcv_res2net.deploy.convert import convert_weights
from mindcv_res2net.weights.formats import MAX_NPZ_BYTES, read_safetensors
from paddle_writer import bfloat16_bits, save_nested_pdparams, save_pdparams

PADDLE_FILES = os.path.join(TESTS_DIR, "data", "paddle_files")
TIME_LIMIT = 30  # seconds, start-up included
MEMORY_LIMIT = 2 << 30  # bytes of peak resident memory
PADDLE_VARIANT = "paddle_res2net50_vd_26w_4s"


def run_bounded(args):
    """``python ARGS`` in the project folder: (exit code, stderr, seconds, peak RSS bytes) of that process alone,
    measured by ``bounded_run.py``, which kills it at twice the time limit or twice the memory limit."""
    proc = subprocess.run([sys.executable, os.path.join(TESTS_DIR, "bounded_run.py"), str(2 * TIME_LIMIT),
                           str(2 * MEMORY_LIMIT)] + args, cwd=PROJECT_DIR, capture_output=True)
    result = json.loads(proc.stdout)
    return result["code"], proc.stderr.decode(errors="replace"), result["seconds"], result["peak_bytes"]


def assert_refused_cheaply(args, message):
    code, err, seconds, peak = run_bounded(args)
    assert code == 2 and "Traceback" not in err, err[-2000:]
    assert len(err) < 4096, f"{len(err)} bytes of error output"
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and re.search(message, last), last
    assert seconds < TIME_LIMIT and peak < MEMORY_LIMIT, (seconds, peak / 2 ** 20)


def _convert(src, tmp_path):
    return ["tools/convert_weights.py", str(src), str(tmp_path / "out.ckpt"), "--model", PADDLE_VARIANT]


# ---------------------------------------------------------------------------------------------- pickles


BOMB = r"its shared references expand to more than 10000000 objects \(a pickle bomb\)$"


def _shared_64_levels():
    """A list that holds the same list twice, 64 levels deep: 2**64 paths to one float32 array."""
    value = np.ones(2, np.float32)
    for _ in range(64):
        value = [value, value]
    return value


@pytest.mark.e2e
def test_pdparams_sharing_references_64_levels_deep_is_refused_cheaply(tmp_path):
    path = tmp_path / "shared.pdparams"
    raw = pickle.dumps({"conv1._conv.weight": _shared_64_levels()}, protocol=2)
    path.write_bytes(raw.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"))
    assert path.stat().st_size < 800
    assert_refused_cheaply(_convert(path, tmp_path), rf"^error: {path}: cannot read paddle checkpoint .*: {BOMB}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.pdparams"]


def _tuple_key_64_levels() -> bytes:
    """A protocol-2 pickle of ``{t: 1}`` where ``t`` holds the same tuple twice, 64 levels deep: hashing the key
    (which unpickling does, in C) never ends. Written opcode by opcode: Python could not build it either."""
    raw = b"\x80\x02}K\x00\x85q\x000"  # {}, (0,) memoised as 0 and popped
    for level in range(64):  # memo[level + 1] = (memo[level], memo[level])
        raw += b"h" + bytes([level]) + b"h" + bytes([level]) + b"\x86q" + bytes([level + 1]) + b"0" * (level < 63)
    return raw + b"K\x01s."


def test_pickle_whose_key_would_hash_forever_is_refused_at_once(tmp_path):
    pdparams, legacy, archive = tmp_path / "key.pdparams", tmp_path / "key.pth", tmp_path / "key_zip.pth"
    pdparams.write_bytes(_tuple_key_64_levels())
    legacy.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, 2) + pickle.dumps(1001, 2) + pickle.dumps({}, 2)
                       + _tuple_key_64_levels())  # torch.save's legacy stream: magic, protocol, sys info, object
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("archive/data.pkl", _tuple_key_64_levels())
    start = time.monotonic()
    for path, kind in ((pdparams, "paddle"), (legacy, "torch"), (archive, "torch")):
        with pytest.raises(CheckpointError, match=rf"^{path}: cannot read {kind} checkpoint .*: {BOMB}"):
            read_checkpoint(path)
    assert time.monotonic() - start < 5


def test_torch_file_sharing_references_64_levels_deep_is_refused_at_once(tmp_path):
    path = tmp_path / "shared.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"w": _shared_64_levels()}, protocol=2))
    start = time.monotonic()
    with pytest.raises(CheckpointError, match=rf"^{path}: cannot read torch checkpoint .*: {BOMB}"):
        read_checkpoint(path)
    assert time.monotonic() - start < 5


def test_shared_references_within_the_bound_are_rebuilt_once():
    """Below the bound, a shared object is rebuilt once per object, not once per path to it (2**20 paths here)."""
    from mindcv_res2net.weights.paddle_file import _RestrictedUnpickler, _materialize

    value = np.ones(2, np.float32)
    for _ in range(20):
        value = [value, value]
    raw = pickle.dumps({"w": value}, protocol=2).replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    import io

    rebuilt = _materialize(_RestrictedUnpickler(io.BytesIO(raw)).load(), {})["w"]
    for _ in range(20):
        assert rebuilt[0] is rebuilt[1]
        rebuilt = rebuilt[0]
    assert np.array_equal(rebuilt, np.ones(2, np.float32))


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
    import io

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


# ---------------------------------------------------------------------------------------------- YAML and -c


def _laughs(tmp_path):
    """A recipe of a few hundred bytes whose ``model`` value has 9**9 strings once its aliases are expanded."""
    lines = ['model: [&a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"],']
    previous = "a"
    for name in "bcdefghi":
        lines.append(f"  &{name} [" + ",".join([f"*{previous}"] * 9) + "],")
        previous = name
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join(lines) + f"\n  *{previous}]\n")
    assert path.stat().st_size < 430
    return path


@pytest.mark.e2e
def test_yaml_aliases_expanding_to_gigabytes_are_refused_cheaply(tmp_path):
    path = _laughs(tmp_path)
    assert_refused_cheaply(["train.py", "-c", str(path), f"--ckpt_save_dir={tmp_path / 'run'}"],
                           rf"^error: config {path}: line 1: anchor &a: a recipe holds plain values, without anchors "
                           r"\(&name\) or aliases \(\*name\)$")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text, message", [
    ("lr: 0.1\nmodel: res2net50\nlr: 0.2\n", r"key 'lr' appears twice \(lines 1 and 3\)"),
    ("model: &a [*a]\n", r"line 1: anchor &a: a recipe holds plain values, without anchors \(&name\) or aliases"),
    ("lr: 0.1\n\nmodel: *m\n", r"line 3: alias \*m: a recipe holds plain values"),
    ("model: " + "[" * 1000 + "]" * 1000 + "\n", r"more than 32 nested \[ \] or \{ \} \(line 1\)"),
    ("base: {lr: 0.1}\n", r"unknown key 'base'"),
    ("seed: 2021-13-45\n", r"not valid YAML \(month must be in 1..12\)"),
    ("model: [" + ", ".join(["x" * 1000] * 50) + "]\n",
     r"key 'model' expects a single value, got \['x{20,40}\.\.\.x{20,40}', 'x*\.\.\.$"),
])
def test_yaml_recipe_refusals(tmp_path, capsys, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    code, err = run_tool("mindcv_res2net.cli.train", ["-c", str(path), "--batch_size=0"], capsys)
    assert code == 2 and len(err) < 1000 and err.count("\n") == 1, err
    assert err.startswith(f"error: config {path}: ") and re.search(message, err), err


def test_yaml_merge_keys_may_be_overridden(tmp_path):
    """A key given twice is an error, but a ``<<`` merge's key overridden in the mapping is YAML's intent."""
    path = tmp_path / "c.yaml"
    path.write_text("lr: 0.5\n")
    assert load_yaml_config(str(path)) == {"lr": 0.5}
    path.write_text("<<: {lr: 0.5, momentum: 0.8}\nlr: 0.2\n")
    assert load_yaml_config(str(path)) == {"lr": 0.2, "momentum": 0.8}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.lists(st.sampled_from(["lr", "momentum", "seed", "batch_size"]), min_size=1, max_size=6))
def test_yaml_duplicate_keys_are_refused_exactly_when_present(tmp_path, keys):
    path = tmp_path / "c.yaml"
    path.write_text("".join(f"{key}: {i + 1}\n" for i, key in enumerate(keys)))
    if len(set(keys)) == len(keys):
        assert load_yaml_config(str(path)) == {k: (float(i + 1) if k in ("lr", "momentum") else i + 1)
                                              for i, k in enumerate(keys)}
    else:
        first = next(k for i, k in enumerate(keys) if k in keys[:i])
        with pytest.raises(ConfigError, match=rf"^config {path}: key '{first}' appears twice \(lines "
                                              rf"{keys.index(first) + 1} and \d+\)$"):
            load_yaml_config(str(path))


def _refusal_in_time(argv, capsys):
    """run_tool in a daemon thread: a call that blocks (on a FIFO) fails the test instead of hanging it.
    ``--batch_size=0`` is refused after the recipe is read: a recipe taken by mistake starts no training."""
    argv = argv + ["--batch_size=0"]
    result = []
    worker = threading.Thread(target=lambda: result.append(run_tool("mindcv_res2net.cli.train", argv, capsys)),
                              daemon=True)
    worker.start()
    worker.join(20)
    assert result, f"{argv} still running after 20 s"
    return result[0]


@pytest.mark.parametrize("kind, message", [
    ("directory", r"is a directory, not a YAML file \(a run's settings are in .*/c\.yaml/config\.yaml\)"),
    ("fifo", r"is a FIFO \(named pipe\), not a YAML file"),
    ("/dev/zero", "is a character device, not a YAML file"),
    ("large", rf"{MAX_RECIPE_BYTES + 1} bytes is too large for a YAML recipe \(at most {MAX_RECIPE_BYTES}\)"),
    ("latin1", r"not UTF-8 text \(byte 8\)"),
])
def test_config_path_that_is_not_a_recipe_file_says_what_it_is(tmp_path, capsys, kind, message):
    path = tmp_path / "c.yaml"
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "large":
        path.write_text("# " + "x" * (MAX_RECIPE_BYTES - 2) + "\n")
    elif kind == "latin1":
        path.write_bytes(b"model: r\xe9s2net50\n")
    else:
        path = kind
    code, err = _refusal_in_time(["-c", str(path)], capsys)
    assert code == 2 and re.fullmatch(rf"error: config {re.escape(str(path))}: {message}\n", err), err


# ---------------------------------------------------------------------------------------------- Paddle


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


@pytest.mark.parametrize("storage", ["ComplexFloatStorage", "Float8_e4m3fnStorage", "UInt16Storage"])
def test_torch_tensor_of_an_unsupported_type_is_named(tmp_path, storage):
    """The torch reader widens bfloat16 and reads every real and bool type (checked against PyTorch's own files
    in test_torch_file.py); any other storage type is refused as what it is, not as code to run."""
    from torch_writer import save_torch_zip

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


@settings(max_examples=60, deadline=None)
@given(plan=st.lists(st.tuples(st.sampled_from(["list", "tuple", "dict"]),
                               st.lists(st.integers(0, 1000), max_size=4)), min_size=1, max_size=12),
       protocol=st.integers(2, 5), limit=st.integers(1, 60))
def test_pickle_bound_refuses_exactly_the_objects_that_expand_beyond_it(plan, protocol, limit):
    """Random objects sharing earlier ones (a DAG): ``check_expansion`` refuses the pickle exactly when one of its
    objects, each reference counted, has more than the bound's parts (a leaf is 1, a container 1 + its parts)."""
    import io

    from mindcv_res2net.weights import pickle_bounds

    objects = []
    for kind, picks in plan:  # an earlier object (shared) where i % 3, else the integer i
        children = [objects[i % len(objects)] if objects and i % 3 else i for i in picks]
        objects.append({i: c for i, c in enumerate(children)} if kind == "dict" else
                       tuple(children) if kind == "tuple" else children)
    raw = pickle.dumps(objects[-1], protocol=protocol)
    original = pickle_bounds.MAX_PICKLE_OBJECTS
    pickle_bounds.MAX_PICKLE_OBJECTS = limit
    try:
        pickle_bounds.check_expansion(io.BytesIO(raw))
        refused = False
    except ValueError:
        refused = True
    finally:
        pickle_bounds.MAX_PICKLE_OBJECTS = original
    assert refused == (_expanded(objects[-1]) > limit), (_expanded(objects[-1]), limit)


def _expanded(obj) -> int:
    """Parts of ``obj`` with each reference counted (memoised by identity: linear in the distinct objects)."""
    memo = {}

    def size(value):
        if isinstance(value, (list, tuple, dict)):
            if id(value) not in memo:
                parts = list(value.values()) if isinstance(value, dict) else list(value)
                memo[id(value)] = 1 + sum(size(p) for p in parts) + (len(value) if isinstance(value, dict) else 0)
            return memo[id(value)]
        return 1

    return size(obj)
