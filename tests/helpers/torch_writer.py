"""Test helper: write ``{name: numpy array}`` in PyTorch's two ``torch.save`` formats, without PyTorch.

The pickle is emitted opcode by opcode (protocol 2, as ``torch.save`` does) so no fake ``torch``
module is needed. Files written here were checked once to load with ``torch.load`` (PyTorch 2.14,
both formats, in a throwaway venv); the reader itself is also tested on files written by PyTorch
(``tests/reference/torch_formats``).
"""
import io
import pickle
import struct
import zipfile

import numpy as np

_STORAGE_NAMES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.float64): "DoubleStorage",
                  np.dtype(np.float16): "HalfStorage", np.dtype(np.int64): "LongStorage",
                  np.dtype(np.int32): "IntStorage", np.dtype(np.int16): "ShortStorage",
                  np.dtype(np.int8): "CharStorage", np.dtype(np.uint8): "ByteStorage", np.dtype(np.bool_): "BoolStorage"}


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _str(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _int(value: int) -> bytes:
    if -(2 ** 31) <= value < 2 ** 31:
        return b"J" + struct.pack("<i", value)
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def _int_tuple(values) -> bytes:
    return b"(" + b"".join(_int(int(v)) for v in values) + b"t"


def _state_dict_pickle(arrays: dict, legacy: bool, views: dict) -> bytes:
    out = [b"\x80\x02", _global("collections", "OrderedDict"), b")R", b"("]
    for key, (name, array) in enumerate(arrays.items()):
        view = views.get(name, {})
        strides = view.get("stride", [s // array.itemsize for s in array.strides])
        persistent = [b"(", _str("storage"), _global("torch", _STORAGE_NAMES[array.dtype]), _str(str(key)),
                      _str("cpu"), _int(array.size)] + ([b"N"] if legacy else []) + [b"tQ"]
        out += [_str(name), _global("torch._utils", "_rebuild_tensor_v2"), b"("] + persistent + [
            _int(view.get("offset", 0)), _int_tuple(view.get("shape", array.shape)), _int_tuple(strides), b"\x89",
            _global("collections", "OrderedDict"), b")R", b"tR"]
    out += [b"u."]
    return b"".join(out)


def _storage_bytes(name: str, array: np.ndarray, views: dict) -> bytes:
    raw = array.astype(array.dtype.newbyteorder("<")).tobytes()
    return raw[: views.get(name, {}).get("storage_elements", array.size) * array.itemsize]


def save_torch_zip(arrays: dict, path: str, views: dict = None) -> None:
    """PyTorch >= 1.6 format: a zip with archive/data.pkl and one file per storage.

    ``views`` (hostile files for tests): ``{name: {"offset", "shape", "stride", "storage_elements"}}``
    overrides what the file declares for that tensor, or cuts its storage short.
    """
    arrays = {k: np.array(v, order="C") for k, v in arrays.items()}
    views = views or {}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", _state_dict_pickle(arrays, legacy=False, views=views))
        archive.writestr("archive/byteorder", "little")
        for key, (name, array) in enumerate(arrays.items()):
            archive.writestr(f"archive/data/{key}", _storage_bytes(name, array, views))
        archive.writestr("archive/version", "3\n")


def save_torch_legacy(arrays: dict, path: str, views: dict = None) -> None:
    """Pre-1.6 format: magic, protocol, sys info, state-dict pickle, storage keys, raw storages
    (``views`` as for ``save_torch_zip``)."""
    arrays = {k: np.array(v, order="C") for k, v in arrays.items()}
    views = views or {}
    buf = io.BytesIO()
    buf.write(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2))
    buf.write(pickle.dumps(1001, protocol=2))
    buf.write(pickle.dumps({"protocol_version": 1001, "little_endian": True,
                            "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2))
    buf.write(_state_dict_pickle(arrays, legacy=True, views=views))
    buf.write(pickle.dumps([str(k) for k in range(len(arrays))], protocol=2))
    for name, array in arrays.items():
        raw = _storage_bytes(name, array, views)
        buf.write(struct.pack("<q", len(raw) // array.itemsize))
        buf.write(raw)
    with open(path, "wb") as f:
        f.write(buf.getvalue())
