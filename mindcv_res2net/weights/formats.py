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

from ..utils.fileio import atomic_path
from .paddle_file import is_paddle_pickle, load_paddle_file
from .torch_file import UnsafePickleError, load_torch_file

_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net", "network")
_MAX_LISTED = 6


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, unsafe or does not fit the model."""


def brief(names) -> str:
    names = sorted(names)
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else "")


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
    """Find the tensor dict inside a PyTorch object ({'state_dict': ...}, DataParallel 'module.' names)."""
    if isinstance(obj, dict):
        for key in _WRAPPER_KEYS:
            if isinstance(obj.get(key), dict):
                return _unwrap(obj[key], path)
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{path}: no tensor dictionary found in the file")
    arrays = {k: v for k, v in obj.items() if isinstance(v, np.ndarray)}
    if not arrays:
        raise CheckpointError(f"{path}: no tensors found in the file (keys: {brief(obj)})")
    if all(k.startswith("module.") for k in arrays):
        arrays = {k[len("module."):]: v for k, v in arrays.items()}
    return arrays


# MindSpore's tensor type names; "str" entries hold UTF-32 text (numpy's "U" layout).
_MS_TYPES = {"Int8": np.int8, "UInt8": np.uint8, "Int16": np.int16, "UInt16": np.uint16, "Int32": np.int32,
             "UInt32": np.uint32, "Int64": np.int64, "UInt64": np.uint64, "Float16": np.float16,
             "Float32": np.float32, "Float64": np.float64, "Bool": np.bool_}
_MS_TYPE_NAMES = {np.dtype(v): k for k, v in _MS_TYPES.items()}
_CKPT_CHUNK_BYTES = 256 << 20  # a protobuf message must stay under 2 GB: large tensors go in chunks


def _decode_ms_entry(tag: str, dims, kind: str, data: bytes):
    """One ``.ckpt`` entry as a numpy array (``str``: text), its declared shape checked against its bytes."""
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
    if math.prod(dims) * dtype.itemsize != len(data):
        raise ValueError(f"entry '{tag}': shape {dims} of {kind} needs {math.prod(dims) * dtype.itemsize} bytes, "
                         f"the file holds {len(data)}")
    return np.frombuffer(data, dtype).reshape(dims).copy()


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
        chunks.append(value.tensor.tensor_content)
        if i + 1 < len(values) and values[i + 1].tag == value.tag:
            continue  # the next entry continues this tensor
        data, chunks = b"".join(chunks), []
        dims = tuple(value.tensor.dims)
        entries[value.tag] = _decode_ms_entry(value.tag, () if dims == (0,) and value.tensor.tensor_type == "str"
                                              else dims, value.tensor.tensor_type, data)
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
            raw = _decode_ms_entry("metadata", (), value.tensor.tensor_type, value.tensor.tensor_content)
        else:
            raw = read_mindspore_checkpoint(path, names={"metadata"}).get("metadata")
        return json.loads(raw) if isinstance(raw, str) else None
    except Exception as exc:  # corrupt or truncated file, invalid JSON
        raise CheckpointError(f"{path}: cannot read its metadata (corrupt or truncated?): {_first_line(exc)}") from None


_SAFETENSORS_TYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": "bfloat16", "I64": np.int64,
                      "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path: str) -> Dict[str, np.ndarray]:
    """Tensors of a ``.safetensors`` file; each header entry's dtype, shape and byte range are checked
    against the file before its bytes are read."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        if header_len > size - 8:
            raise ValueError(f"header of {header_len} bytes is longer than the file")
        header = json.loads(f.read(header_len))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
        data_start, data_size = 8 + header_len, size - 8 - header_len
        tensors = {}
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
            f.seek(data_start + offsets[0])
            raw = f.read(offsets[1] - offsets[0])
            if isinstance(np_type, str):  # bfloat16: the high half of a float32
                array = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
            else:
                array = np.frombuffer(raw, np.dtype(np_type).newbyteorder("<")).astype(np_type)
            tensors[name] = array.reshape(shape)
    return tensors


def read_npz(path: str) -> Dict[str, np.ndarray]:
    """Arrays of an ``.npz`` file; each member's ``.npy`` header (dtype, shape) is checked against the
    member's size before it is read, and object arrays (pickles) are refused."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            name = info.filename[:-len(".npy")] if info.filename.endswith(".npy") else info.filename
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                reader = np.lib.format.read_array_header_1_0 if version == (1, 0) \
                    else np.lib.format.read_array_header_2_0
                shape, _, dtype = reader(member)
                header_end = member.tell()
            if dtype.hasobject:
                raise ValueError(f"tensor '{name}': object arrays (pickles) are not read")
            if any(n < 0 for n in shape):
                raise ValueError(f"tensor '{name}': negative dimension in shape {shape}")
            if info.file_size - header_end != math.prod(shape) * dtype.itemsize:
                raise ValueError(f"tensor '{name}': shape {shape} of {dtype} needs {math.prod(shape) * dtype.itemsize} "
                                 f"bytes, the file holds {info.file_size - header_end}")
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_checkpoint(path: str) -> Tuple[Dict[str, np.ndarray], object]:
    """A weight file read once: ``({name: numpy array}, metadata)``, names as stored in the file.

    ``metadata`` is the parsed JSON entry that train.py writes into its MindSpore checkpoints, as
    found (``engine.checkpointing.run_metadata`` validates it), and {} for any other file.
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
            return load_paddle_file(path), {}
        if kind == "npz":
            return read_npz(path), {}
        if kind == "safetensors":
            return read_safetensors(path), {}
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
    the tensors), then each tensor, split into chunks of at most 256 MB as MindSpore does."""
    from mindspore.train.checkpoint_pb2 import Checkpoint

    def put(tag: str, dims, kind: str, content: bytes) -> None:
        message = Checkpoint()
        value = message.value.add()
        value.tag = tag
        value.tensor.dims.extend(dims)
        value.tensor.tensor_type = kind
        value.tensor.tensor_content = content
        f.write(message.SerializeToString())

    if metadata is not None:
        put("metadata", [0], "str", np.array(json.dumps(metadata, allow_nan=False)).astype("<U").tobytes())
    for name, value in weights.items():
        array = np.ascontiguousarray(value)
        if array.dtype not in _MS_TYPE_NAMES:
            raise ValueError(f"tensor '{name}': dtype {array.dtype} cannot be stored in a MindSpore checkpoint")
        flat = array.astype(array.dtype.newbyteorder("<"), copy=False).reshape(-1)
        step = max(1, _CKPT_CHUNK_BYTES // array.itemsize)
        for start in range(0, max(flat.size, 1), step):
            put(name, array.shape, _MS_TYPE_NAMES[array.dtype], flat[start:start + step].tobytes())


def save_weights(weights: Dict[str, np.ndarray], path: str, fmt: Optional[str] = None,
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

            save_file({k: np.ascontiguousarray(v) for k, v in weights.items()}, tmp,
                      metadata={"json": json.dumps(metadata)} if metadata else None)
        else:
            with open(tmp, "wb") as f:
                _write_mindspore_checkpoint(f, weights, metadata)
    return str(path)
