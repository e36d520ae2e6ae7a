"""Weight files in every supported format: recognise, read (with every tensor's declared shape and extent
checked against the bytes the file really has), and write atomically.

Reads official PyTorch checkpoints (zip and legacy ``torch.save``), PaddlePaddle ``.pdparams``,
``.safetensors``, ``.npz`` and MindSpore ``.ckpt``; writes MindSpore ``.ckpt`` (streamed, metadata first)
and ``.safetensors``. Names are left as the file has them: ``names.py`` maps them, ``loading.py`` loads.
"""
import binascii
import json
import math
import os
import zipfile
from typing import Dict, Optional, Tuple

import numpy as np

from ..utils.errors import UserError, brief
from ..utils.fileio import atomic_path
from .paddle_file import is_paddle_pickle, load_paddle_file
from .torch_file import UnsafePickleError, load_torch_file

_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net", "network")


class CheckpointError(UserError):
    """A checkpoint file is missing, unreadable, unsafe or does not fit the model."""


def _sniff(path: str) -> str:
    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) < 8:
        return "unknown"
    if head.startswith(b"PK\x03\x04"):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            return "torch"
        return "npz" if names and all(n.endswith(".npy") for n in names) else "unknown"
    header_len = int.from_bytes(head[:8], "little")  # safetensors: u64 JSON header length, then '{'
    if 0 < header_len < os.path.getsize(path) and head[8:9] == b"{":
        return "safetensors"
    if head[0] == 0x80:  # pickle protocol >= 2: legacy torch.save, or a Paddle .pdparams dict
        return "paddle" if is_paddle_pickle(head) else "torch"
    if path.endswith(".ckpt") or head[0] == 0x0A:  # protobuf field 1, length-delimited
        return "mindspore"
    return "unknown"


def _unwrap(obj, path: str) -> Dict[str, np.ndarray]:
    """Find the tensor dict inside a PyTorch or Paddle object ({'state_dict': ...}, {'model': ...},
    DataParallel 'module.' names)."""
    if isinstance(obj, dict):
        for key in _WRAPPER_KEYS:
            if isinstance(obj.get(key), dict):
                return _unwrap(obj[key], path)
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{path}: no tensor dictionary found in the file")
    arrays = {k: v for k, v in obj.items() if isinstance(v, np.ndarray)}
    if not arrays:
        nested = [k for k, v in obj.items()
                  if isinstance(v, dict) and any(isinstance(t, np.ndarray) for t in v.values())]
        where = (f"; dicts of tensors under {brief(nested)}, but only one under {', '.join(_WRAPPER_KEYS)} is read"
                 if nested else "")
        raise CheckpointError(f"{path}: no tensors found in the file (keys: {brief(obj)}){where}")
    if all(k.startswith("module.") for k in arrays):
        arrays = {k[len("module."):]: v for k, v in arrays.items()}
    return arrays


# MindSpore's tensor type names; "str" entries hold UTF-32 text (numpy's "U" layout).
_MS_TYPES = {"Int8": np.int8, "UInt8": np.uint8, "Int16": np.int16, "UInt16": np.uint16, "Int32": np.int32,
             "UInt32": np.uint32, "Int64": np.int64, "UInt64": np.uint64, "Float16": np.float16,
             "Float32": np.float32, "Float64": np.float64, "Bool": np.bool_}
_MS_TYPE_NAMES = {np.dtype(v): k for k, v in _MS_TYPES.items()}
_CKPT_CHUNK_BYTES = 256 << 20  # a protobuf message must stay under 2 GB: large tensors go in chunks


def _decode_ms_entry(tag: str, data: bytes, *, dims, kind: str):
    """One ``.ckpt`` entry as a numpy array (``str``: text), its declared shape checked against its bytes.

    ``dims`` () is a scalar; so is (0,) holding exactly one element's bytes, as ``mindspore.load_checkpoint``
    reads it (a 1-d empty tensor holds no bytes). Values are little-endian.
    """
    if kind == "str":
        if len(data) % 4:
            raise ValueError(f"entry '{tag}': text of {len(data)} bytes is not UTF-32")
        return str(np.frombuffer(data, f"<U{len(data) // 4}")[0]) if data else ""
    if kind not in _MS_TYPES:
        raise ValueError(f"entry '{tag}' has unsupported type {kind}")
    dims = tuple(int(d) for d in dims)
    if any(d < 0 for d in dims):
        raise ValueError(f"entry '{tag}': negative dimension in shape {dims}")
    dtype = np.dtype(_MS_TYPES[kind])
    if dims == (0,) and len(data) == dtype.itemsize:
        dims = ()
    if math.prod(dims) * dtype.itemsize != len(data):
        raise ValueError(f"entry '{tag}': shape {dims} of {kind} needs {math.prod(dims) * dtype.itemsize} bytes, "
                         f"the file holds {len(data)}")
    return np.frombuffer(data, dtype.newbyteorder("<")).astype(dtype).reshape(dims)


def read_mindspore_checkpoint(path: str, names=None) -> Dict[str, object]:
    """Entries of a MindSpore ``.ckpt`` file: ``{tag: numpy array}``, string entries as ``str``.

    Parses the protobuf directly instead of ``mindspore.load_checkpoint``, which refuses files
    larger than the machine's *free* memory even when the page cache could be reclaimed (a full
    training checkpoint of res2net50 is 380 MB). ``names`` limits the result to those tags.
    Large tensors stored in several consecutive chunks are joined; a CRC trailer is verified;
    every entry's shape must match its bytes.
    """
    from mindspore.train.checkpoint_pb2 import Checkpoint

    with open(path, "rb") as f:
        content = f.read()
    if content[-17:-10] == b"crc_num":
        content, crc = content[:-17], int.from_bytes(content[-10:], "big")
        if binascii.crc32(content, 0) != crc:
            raise ValueError("CRC check failed")
    proto = Checkpoint()
    proto.ParseFromString(content)
    del content
    entries, chunks = {}, []
    values = proto.value
    for i, value in enumerate(values):
        if names is not None and value.tag not in names:
            continue
        if not value.HasField("tensor"):
            raise ValueError(f"entry '{value.tag}' is a map parameter, which this reader does not support")
        if chunks and (value.tensor.dims, value.tensor.tensor_type) != (values[i - 1].tensor.dims,
                                                                        values[i - 1].tensor.tensor_type):
            raise ValueError(f"entry '{value.tag}': its chunks declare different shapes or types")
        chunks.append(value.tensor.tensor_content)
        if i + 1 < len(values) and values[i + 1].tag == value.tag:
            continue  # the next entry continues this tensor
        data, chunks = b"".join(chunks), []
        if value.tag in entries:
            raise ValueError(f"entry '{value.tag}' appears twice")
        entries[value.tag] = _decode_ms_entry(value.tag, data, dims=value.tensor.dims, kind=value.tensor.tensor_type)
    return entries


def read_checkpoint_metadata(path: str):
    """The ``metadata`` JSON of a ``.ckpt`` written by this package, parsed (any JSON type), or None.

    Files written by ``save_weights`` store it first, so only their first entry is read; other
    files are parsed whole. A corrupt file raises ``CheckpointError``.
    """
    from mindspore.train.checkpoint_pb2 import Checkpoint

    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            head = f.read(11)
            length, shift, pos = 0, 0, 1
            while head[:1] == b"\x0a" and pos < len(head):  # field 1, length-delimited: varint length
                length |= (head[pos] & 0x7F) << shift
                shift += 7
                pos += 1
                if not head[pos - 1] & 0x80:
                    break
            first = Checkpoint()
            if head[:1] == b"\x0a" and 0 < length < (64 << 20):
                f.seek(0)
                first.ParseFromString(f.read(pos + length))
        if first.value and first.value[0].tag == "metadata":
            value = first.value[0]
            raw = _decode_ms_entry("metadata", value.tensor.tensor_content, dims=(), kind=value.tensor.tensor_type)
        else:
            raw = read_mindspore_checkpoint(path, names={"metadata"}).get("metadata")
        return json.loads(raw) if isinstance(raw, str) else None
    except Exception as exc:  # corrupt or truncated file, invalid JSON
        raise CheckpointError(f"{path}: cannot read its metadata (corrupt or truncated?): {_first_line(exc)}") from None


_SAFETENSORS_TYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": "bfloat16", "I64": np.int64,
                      "I32": np.int32, "I16": np.int16, "I8": np.int8, "U64": np.uint64, "U32": np.uint32,
                      "U16": np.uint16, "U8": np.uint8, "BOOL": np.bool_}
_SAFETENSORS_NAMES = {np.dtype(v) for v in _SAFETENSORS_TYPES.values() if not isinstance(v, str)}  # writable


_SAFETENSORS_MAX_HEADER = 100_000_000  # bytes, as the reference library allows


def _unique_keys(pairs) -> dict:
    """A JSON object's pairs as a dict; a key given twice is an error (``json.loads`` keeps the last)."""
    result = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"key {key[:80]!r} appears twice in the header")
        result[key] = value
    return result


def _check_coverage(ranges, data_size: int) -> None:
    """The tensors' byte ranges ``[(start, end, name)]`` must tile the data exactly, as the reference
    ``safetensors`` library requires: no overlap, no byte outside every tensor."""
    position, previous = 0, None
    for begin, stop, name in sorted(ranges):
        if begin < position:
            raise ValueError(f"tensor '{name}': byte range [{begin}, {stop}] overlaps tensor '{previous}'")
        if begin > position:
            raise ValueError(f"data bytes {position} to {begin} belong to no tensor")
        position, previous = stop, name
    if position != data_size:
        raise ValueError(f"data bytes {position} to {data_size} belong to no tensor")


def read_safetensors(path: str) -> Dict[str, np.ndarray]:
    """Tensors of a ``.safetensors`` file; each header entry's dtype, shape and byte range are checked
    against the file before its bytes are read. Refused as the reference library refuses them: a key
    given twice, byte ranges that overlap or leave data bytes outside every tensor."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        if header_len > size - 8:
            raise ValueError(f"header of {header_len} bytes is longer than the file")
        if header_len > _SAFETENSORS_MAX_HEADER:
            raise ValueError(f"header of {header_len} bytes is longer than {_SAFETENSORS_MAX_HEADER}")
        header = json.loads(f.read(header_len), object_pairs_hook=_unique_keys)
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
        data_start, data_size = 8 + header_len, size - 8 - header_len
        entries = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
                raise ValueError(f"tensor '{name}': header entry must hold dtype, shape and data_offsets")
            dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
            if dtype not in _SAFETENSORS_TYPES:
                raise ValueError(f"tensor '{name}': unsupported dtype {dtype!r}")
            if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                                      for n in shape):
                raise ValueError(f"tensor '{name}': shape {shape!r} is not a list of non-negative integers")
            if not (isinstance(offsets, list) and len(offsets) == 2 and all(
                    isinstance(o, int) and not isinstance(o, bool) for o in offsets)
                    and 0 <= offsets[0] <= offsets[1] <= data_size):
                raise ValueError(f"tensor '{name}': byte range {offsets!r} lies outside the file's "
                                 f"{data_size} data bytes")
            np_type = _SAFETENSORS_TYPES[dtype]
            itemsize = 2 if isinstance(np_type, str) else np.dtype(np_type).itemsize
            if offsets[1] - offsets[0] != math.prod(shape) * itemsize:
                raise ValueError(f"tensor '{name}': shape {tuple(shape)} of {dtype} needs "
                                 f"{math.prod(shape) * itemsize} bytes, its byte range holds {offsets[1] - offsets[0]}")
            entries[name] = (np_type, shape, offsets)
        _check_coverage([(o[0], o[1], name) for name, (_, _, o) in entries.items()], data_size)
        tensors = {}
        for name, (np_type, shape, offsets) in entries.items():
            f.seek(data_start + offsets[0])
            raw = f.read(offsets[1] - offsets[0])
            if isinstance(np_type, str):  # bfloat16: the high half of a float32
                array = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
            else:
                array = np.frombuffer(raw, np.dtype(np_type).newbyteorder("<")).astype(np_type)
            tensors[name] = array.reshape(shape)
    return tensors


def _safetensors_metadata(path: str):
    """The JSON metadata that ``save_weights`` stores in a ``.safetensors`` header (as ``__metadata__``'s
    ``json`` text), parsed; {} for a file without it. Call it after ``read_safetensors`` checked the file."""
    with open(path, "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    extra = header.get("__metadata__")
    text = extra.get("json") if isinstance(extra, dict) else None
    return json.loads(text) if isinstance(text, str) else {}


# Every member of an .npz together: a deflated member can honestly declare any size in a few bytes, so the
# declared sizes are capped before anything is inflated. The largest network, res2net200, has 0.3 GB of weights.
MAX_NPZ_BYTES = 1 << 30


def _npy_header(member, name: str) -> Tuple[tuple, bool, np.dtype]:
    """(shape, fortran_order, dtype) of an ``.npy`` stream, read from its header only."""
    version = np.lib.format.read_magic(member)
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = reader(member)
    if dtype.kind not in "biuf" or dtype.hasobject or dtype.fields is not None:
        raise ValueError(f"tensor '{name}': dtype {dtype} is not read (only real numbers and booleans; "
                         "object arrays would be pickles)")
    if any(n < 0 for n in shape):
        raise ValueError(f"tensor '{name}': negative dimension in shape {shape}")
    return shape, fortran, dtype


_READ_CHUNK = 16 << 20  # bytes per read of an .npz member


def _read_exactly(stream, size: int, name: str) -> np.ndarray:
    """``size`` bytes of ``stream`` as a uint8 array, read in chunks straight into it (no second copy)."""
    buffer = np.empty(size, np.uint8)
    filled = 0
    while filled < size:
        data = stream.read(min(_READ_CHUNK, size - filled))
        if not data:
            raise ValueError(f"tensor '{name}': {filled} of its {size} bytes are in the file")
        buffer[filled:filled + len(data)] = np.frombuffer(data, np.uint8)
        filled += len(data)
    return buffer


def read_npz(path: str) -> Dict[str, np.ndarray]:
    """Arrays of an ``.npz`` file (C order, native byte order).

    Before a member is inflated, the sizes the archive declares (at most ``MAX_NPZ_BYTES`` for all members
    together) and its ``.npy`` header (numeric dtype, shape) are checked against each other; member names
    must be unique, and each member gives exactly the bytes its header needs.
    """
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        seen = set()
        for info in infos:
            if info.filename in seen:
                raise ValueError(f"member '{info.filename}' appears twice in the archive")
            seen.add(info.filename)
        declared = sum(info.file_size for info in infos)
        if declared > MAX_NPZ_BYTES:
            largest = max(infos, key=lambda i: i.file_size)
            raise ValueError(f"its members declare {declared} bytes ('{largest.filename}': {largest.file_size}), "
                             f"more than the {MAX_NPZ_BYTES} bytes an .npz weight file may hold")
        arrays = {}
        for info in infos:
            name = info.filename[:-len(".npy")] if info.filename.endswith(".npy") else info.filename
            with archive.open(info) as member:
                shape, fortran, dtype = _npy_header(member, name)
                needed = math.prod(shape) * dtype.itemsize
                if info.file_size - member.tell() != needed:
                    raise ValueError(f"tensor '{name}': shape {shape} of {dtype} needs {needed} bytes, "
                                     f"the file holds {info.file_size - member.tell()}")
                raw = _read_exactly(member, needed, name)
            array = raw.view(dtype).reshape(shape, order="F" if fortran else "C")
            arrays[name] = array.astype(dtype.newbyteorder("="), order="C", copy=False)  # 0-d stays 0-d
    return arrays


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_checkpoint(path: str) -> Tuple[Dict[str, np.ndarray], object]:
    """A weight file read once: ``({name: numpy array}, metadata)``, names as stored in the file.

    ``metadata`` is the parsed JSON that ``save_weights`` stores (train.py's MindSpore checkpoints,
    converted ``.ckpt`` and ``.safetensors`` files), as found (``checkpoint_layout.checked_metadata``
    validates it), and {} for any other file.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint {path}: is a directory, not a weight file")
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint file not found: {path}")
    kind = "weight"  # named once the file is recognised
    try:
        kind = _sniff(path)
        if kind == "torch":
            return _unwrap(load_torch_file(path), path), {}
        if kind == "paddle":
            return _unwrap(load_paddle_file(path), path), {}
        if kind == "npz":
            return read_npz(path), {}
        if kind == "safetensors":
            return read_safetensors(path), _safetensors_metadata(path)
        if kind == "mindspore":
            entries = read_mindspore_checkpoint(path)
            raw = entries.get("metadata")
            return ({k: v for k, v in entries.items() if isinstance(v, np.ndarray)},
                    json.loads(raw) if isinstance(raw, str) else {})
    except UnsafePickleError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except CheckpointError:
        raise
    except Exception as exc:  # corrupt, truncated or crafted file in any format
        raise CheckpointError(f"{path}: cannot read {kind} checkpoint (corrupt, truncated or crafted?): "
                              f"{_first_line(exc)}") from None
    raise CheckpointError(f"{path}: unrecognised checkpoint format (expected a PyTorch .pth, Paddle .pdparams, "
                          ".safetensors, .npz or MindSpore .ckpt file)")


def _write_mindspore_checkpoint(f, weights: Dict[str, np.ndarray], metadata: Optional[dict]) -> None:
    """Stream a MindSpore ``.ckpt`` protobuf to ``f``: the metadata entry first (so it can be read without
    the tensors), then each tensor, little-endian, split into chunks of at most ``_CKPT_CHUNK_BYTES`` as
    MindSpore does. A scalar is stored with shape [] (not [1]). ``mindspore.load_checkpoint`` reads every
    tensor back but a 1-d empty one (shape [0]), which it takes for a scalar."""
    from mindspore.train.checkpoint_pb2 import Checkpoint

    def put(tag: str, content: bytes, *, dims, kind: str) -> None:
        message = Checkpoint()
        value = message.value.add()
        value.tag = tag
        value.tensor.dims.extend(dims)
        value.tensor.tensor_type = kind
        value.tensor.tensor_content = content
        f.write(message.SerializeToString())

    if metadata is not None:
        if "metadata" in weights:
            raise ValueError("a tensor named 'metadata' cannot be stored with metadata (the name of its entry)")
        put("metadata", np.array(_metadata_json(metadata)).astype("<U").tobytes(), dims=[0], kind="str")
    for name, value in weights.items():
        array = np.asarray(value)  # not ascontiguousarray: it makes a 0-d array 1-d
        kind = _MS_TYPE_NAMES.get(array.dtype.newbyteorder("="))
        if kind is None:
            raise ValueError(f"tensor '{name}': dtype {array.dtype} cannot be stored in a MindSpore checkpoint")
        flat = array.astype(array.dtype.newbyteorder("<"), copy=False).reshape(-1)
        step = max(1, _CKPT_CHUNK_BYTES // array.itemsize)
        for start in range(0, max(flat.size, 1), step):
            put(name, flat[start:start + step].tobytes(), dims=array.shape, kind=kind)


def _metadata_json(metadata) -> str:
    """The JSON text stored as a weight file's metadata (strict JSON: no NaN or infinity)."""
    return json.dumps(metadata, allow_nan=False)


def save_weights(weights: Dict[str, np.ndarray], path: str, *, fmt: Optional[str] = None,
                 metadata: Optional[dict] = None, owner: str = "anon") -> str:
    """Write ``{name: array}`` atomically as a MindSpore ``.ckpt`` or ``.safetensors`` (by ``fmt`` or suffix).

    ``metadata`` (JSON-serialisable) is stored with the tensors; ``owner`` tags the temporary file
    (see ``utils.fileio``). A failed write (disk full) leaves nothing behind and names ``path``.
    """
    fmt = fmt or ("safetensors" if str(path).endswith(".safetensors") else "ckpt")
    if fmt not in ("ckpt", "safetensors"):
        raise ValueError(f"unknown weight format '{fmt}' (use ckpt or safetensors)")
    with atomic_path(path, owner=owner) as tmp:
        if fmt == "safetensors":
            from safetensors.numpy import save_file

            arrays = {k: np.asarray(v, order="C") for k, v in weights.items()}
            for name, array in arrays.items():
                if array.dtype.newbyteorder("=") not in _SAFETENSORS_NAMES:
                    raise ValueError(f"tensor '{name}': dtype {array.dtype} cannot be stored in a safetensors file")
            save_file(arrays, tmp, metadata=None if metadata is None else {"json": _metadata_json(metadata)})
        else:
            with open(tmp, "wb") as f:
                _write_mindspore_checkpoint(f, weights, metadata)
    return str(path)
