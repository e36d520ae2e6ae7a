"""Read tensors from PyTorch ``torch.save`` files without PyTorch and without running their code.

Both formats are supported: the zip archive written by PyTorch >= 1.6 and the legacy stream of
pickles written before (the official 2019 Res2Net weights). Pickles go through an unpickler that
resolves only containers and PyTorch's tensor-rebuild functions; any other global (a function that
could run code when the file is loaded) is refused before it is called.
"""
import collections
import io
import math
import os
import pickle
import struct
import zipfile
from typing import Any, BinaryIO, Dict, Optional, Tuple

import numpy as np

from ..utils.errors import UserError
from .pickle_bounds import check_expansion

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

_STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
    "BFloat16Storage": "bfloat16",
}


class UnsafePickleError(UserError):
    """The pickle references something other than tensor data; nothing from it was executed."""


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


class _Storage:
    """Placeholder for a storage whose bytes are read after unpickling."""

    def __init__(self, storage_type: _StorageType, key: str, numel: int) -> None:
        self.dtype = storage_type.dtype
        self.key = key
        self.numel = numel
        self.data: Optional[np.ndarray] = None


class _LazyTensor:
    """A tensor view declared by the file: ``storage[offset + sum(i_k * stride_k)]`` for shape ``size``."""

    def __init__(self, storage: _Storage, *, offset, size, stride) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def _check(self, name: str) -> Tuple[int, Tuple[int, ...], Tuple[int, ...]]:
        """The view's (offset, shape, strides) once proven to lie inside the storage's real bytes."""
        if not isinstance(self.storage, _Storage):
            raise ValueError(f"tensor '{name}': its storage is not a tensor storage")
        if self.storage.data is None:
            raise ValueError(f"tensor '{name}': storage {self.storage.key} has no data in the file")
        offset, size, stride = self.offset, self.size, self.stride
        if not (isinstance(size, (tuple, list)) and isinstance(stride, (tuple, list)) and _is_int(offset)
                and all(_is_int(v) for v in (*size, *stride))):
            raise ValueError(f"tensor '{name}': offset, shape and stride must be integers")
        size, stride = tuple(size), tuple(stride)
        available = self.storage.data.size
        if len(size) != len(stride):
            raise ValueError(f"tensor '{name}': shape {size} and stride {stride} differ in length")
        if offset < 0:
            raise ValueError(f"tensor '{name}': negative storage offset {offset}")
        if any(n < 0 for n in size):
            raise ValueError(f"tensor '{name}': negative dimension in shape {size}")
        if any(s < 0 for s in stride):
            raise ValueError(f"tensor '{name}': negative stride in {stride}")
        count = math.prod(size)
        if count:
            extent = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
            if extent > available:
                raise ValueError(f"tensor '{name}': offset {offset}, shape {size} and stride {stride} reach element "
                                 f"{extent - 1} but its storage holds {available} elements")
            if count > available:  # overlapping strides: more values than the storage could hold
                raise ValueError(f"tensor '{name}': shape {size} has {count} elements, more than the {available} "
                                 "of its storage")
        return offset, size, stride

    def to_numpy(self, name: str) -> np.ndarray:
        offset, size, stride = self._check(name)
        flat = self.storage.data
        if not size:  # a scalar
            return np.array(flat[offset])
        if not math.prod(size):
            return np.zeros(size, flat.dtype)
        itemsize = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[offset:], shape=size, strides=[s * itemsize for s in stride], writeable=False)
        return np.ascontiguousarray(view)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _rebuild_tensor(storage, storage_offset, size, stride, *_unused):
    """PyTorch's ``torch._utils._rebuild_tensor_v2``, which the pickle calls with positional arguments."""
    return _LazyTensor(storage, offset=storage_offset, size=size, stride=stride)


def _rebuild_parameter(data, requires_grad, backward_hooks, *_unused):
    return data


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, storages: Dict[str, _Storage]) -> None:
        super().__init__(file, encoding="utf-8")
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "torch" and name.endswith("Storage"):
            raise UnsafePickleError(f"tensors of type torch.{name} are not read (only real floating-point, "
                                    "integer and bool tensors)")
        raise UnsafePickleError(
            f"refusing to load '{module}.{name}': the file asks to call code that is not a tensor "
            "container (only tensor data is read from PyTorch files)")

    def persistent_load(self, pid):
        # zip: ('storage', type, key, location, numel); legacy: the same plus view metadata
        if not isinstance(pid, tuple) or not pid or _text(pid[0]) != "storage":
            raise UnsafePickleError(f"refusing persistent object {_text(pid[0]) if pid else pid!r}: "
                                    "only tensor storages are read (was a whole model saved?)")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType):
            raise UnsafePickleError(f"unsupported storage type {storage_type!r}")
        key = _text(key)
        if key not in self.storages:
            self.storages[key] = _Storage(storage_type, key, int(numel))
        if len(pid) > 5 and pid[5] is not None:
            raise ValueError("storage views of the pre-1.0 format are not supported")
        return self.storages[key]


def _text(value) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def _itemsize(dtype) -> int:
    return 2 if isinstance(dtype, str) else np.dtype(dtype).itemsize


def _frombuffer(raw: bytes, dtype, *, big_endian: bool) -> np.ndarray:
    if isinstance(dtype, str):  # bfloat16: widen to float32 through the high 16 bits
        halves = np.frombuffer(raw, dtype=">u2" if big_endian else "<u2").astype(np.uint32)
        return (halves << 16).view(np.float32)
    dt = np.dtype(dtype).newbyteorder(">" if big_endian else "<")
    return np.frombuffer(raw, dtype=dt).astype(np.dtype(dtype), copy=False)


def _materialize(obj: Any, done: dict, name: str = "") -> Any:
    """``obj`` with every tensor view checked against its storage and copied out; ``name``: its key path.
    ``done`` maps ``id`` of each object already rebuilt to its result, so that an object shared by many
    references costs its work once (not once per path to it)."""
    if isinstance(obj, _Storage):
        raise ValueError(f"'{name}': a bare storage, not a tensor")
    if not isinstance(obj, (_LazyTensor, dict, list, tuple)):
        return obj
    if id(obj) not in done:
        if isinstance(obj, _LazyTensor):
            done[id(obj)] = obj.to_numpy(name or "<root>")
        elif isinstance(obj, dict):
            done[id(obj)] = collections.OrderedDict(
                (_text(k), _materialize(v, done, f"{name}.{_text(k)}" if name else _text(k))) for k, v in obj.items())
        else:
            done[id(obj)] = type(obj)(_materialize(v, done, f"{name}[{i}]") for i, v in enumerate(obj))
    return done[id(obj)]


def _load_pickle(f: BinaryIO, storages: Dict[str, _Storage]) -> Any:
    """The next pickle of ``f``, once its opcodes are shown to build a bounded number of objects."""
    start = f.tell()
    check_expansion(f)
    f.seek(start)
    return _RestrictedUnpickler(f, storages).load()


def _load_zip(path: str) -> Any:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if not pkl:
            raise ValueError("zip file without data.pkl: not a PyTorch checkpoint")
        prefix = pkl[0][: -len("data.pkl")]
        big_endian = (prefix + "byteorder" in names
                      and archive.read(prefix + "byteorder").decode().strip() == "big")
        storages: Dict[str, _Storage] = {}
        obj = _load_pickle(io.BytesIO(archive.read(pkl[0])), storages)
        for key, storage in storages.items():
            member = f"{prefix}data/{key}"
            if member not in names:
                raise ValueError(f"storage {key} is missing from the archive")
            raw = archive.read(member)
            if len(raw) % _itemsize(storage.dtype):
                raise ValueError(f"storage {key} holds {len(raw)} bytes, not a whole number of "
                                 f"{_itemsize(storage.dtype)}-byte elements")
            storage.data = _frombuffer(raw, storage.dtype, big_endian=big_endian)
    return obj


def _load_legacy(path: str) -> Any:
    with open(path, "rb") as f:
        storages: Dict[str, _Storage] = {}
        magic = _load_pickle(f, storages)
        if magic != LEGACY_MAGIC:
            raise ValueError("pickle file is not a PyTorch checkpoint (bad magic number)")
        protocol = _load_pickle(f, storages)
        if protocol != LEGACY_PROTOCOL:
            raise ValueError(f"unsupported legacy PyTorch protocol {protocol}")
        sys_info = _load_pickle(f, storages)
        little_endian = not isinstance(sys_info, dict) or sys_info.get("little_endian", True)
        obj = _load_pickle(f, storages)
        keys = _load_pickle(f, storages)
        if not isinstance(keys, list):
            raise ValueError("the list of storage keys is missing")
        size = os.fstat(f.fileno()).st_size
        for key in keys:
            if _text(key) not in storages:
                raise ValueError(f"storage {_text(key)} is listed but no tensor uses it")
            storage = storages[_text(key)]
            header = f.read(8)
            if len(header) != 8:
                raise ValueError("file is truncated")
            (numel,) = struct.unpack("<q" if little_endian else ">q", header)
            nbytes = numel * _itemsize(storage.dtype)
            if numel < 0 or nbytes > size - f.tell():
                raise ValueError(f"storage {_text(key)} declares {numel} elements, more than the file holds "
                                 "(truncated or crafted file)")
            storage.data = _frombuffer(f.read(nbytes), storage.dtype, big_endian=not little_endian)
    return obj


def load_torch_file(path: str) -> Any:
    """The object saved by ``torch.save`` with every tensor as a numpy array (C-contiguous copy).

    Every tensor's offset, shape and stride are checked against the bytes its storage really has
    before anything is read. Raises ``UnsafePickleError`` if the file references code, ``ValueError``
    naming the tensor if a view reaches outside its storage, or if the file is not readable.
    """
    obj = _load_zip(path) if zipfile.is_zipfile(path) else _load_legacy(path)
    return _materialize(obj, {})
