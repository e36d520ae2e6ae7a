"""Read pickles of numpy arrays (in dicts, lists and tuples) without running their code.

The unpickler resolves only what rebuilds a numpy array of real numbers or booleans (numpy 1.x and 2.x
module names, protocols 2 to 5) and protocol 2's spellings of bytes, and refuses every other global before it is called
(``UnsafePickleError``). Each array's declared shape and dtype are checked against its bytes before it is
built; the objects the pickle would build are bounded before it is loaded (``pickle_bounds``), and one
shared by many references is rebuilt once. Readers: ``paddle_file`` (``.pdparams``) and the CIFAR
python-version batches (``data.sources``).
"""
import math
import pickle
from typing import Any, BinaryIO, Callable, Optional

import numpy as np

from .pickle_bounds import check_expansion
from .torch_file import UnsafePickleError

_MULTIARRAY = ("numpy.core.multiarray", "numpy._core.multiarray")
_NUMERIC = ("numpy.core.numeric", "numpy._core.numeric")
_DTYPES = {"f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1"}


class _NDArrayType:
    """What the pickle names as ``numpy.ndarray``; only ever passed to ``_reconstruct``."""


class _DType:
    """A numpy dtype as the pickle describes it (``numpy.dtype(code, align, copy)`` then its state)."""

    def __init__(self, code, align=False, copy=True) -> None:
        if isinstance(code, bytes):  # a Python 2 pickle read with encoding="bytes"
            code = code.decode("ascii", "replace")
        if not isinstance(code, str) or code.lstrip("<>|=") not in _DTYPES:
            raise UnsafePickleError(f"refusing array dtype {code!r}: only arrays of real numbers and booleans are read")
        self.dtype = np.dtype(code)

    def __setstate__(self, state) -> None:
        order = state[1] if isinstance(state, tuple) and len(state) > 1 else None
        order = order.decode("ascii", "replace") if isinstance(order, bytes) else order
        if order in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(order)


class _Array:
    """An array under construction: ``_reconstruct`` makes it, ``__setstate__`` gives its bytes; ``value``:
    the array, C-contiguous in native byte order (None until the pickle gives its state)."""

    def __init__(self) -> None:
        self.value = None

    def __setstate__(self, state) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise ValueError("array state is not (version, shape, dtype, fortran, bytes)")
        shape, dtype, fortran, raw = state[-4:]
        if not isinstance(dtype, _DType):
            raise ValueError("array dtype is not a numpy dtype")
        if not isinstance(shape, tuple) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                                   for n in shape):
            raise ValueError(f"array shape {shape!r} is not a tuple of non-negative integers")
        if not isinstance(raw, (bytes, bytearray)):
            raise ValueError("array data is not raw bytes")
        needed = math.prod(shape) * dtype.dtype.itemsize
        if len(raw) != needed:
            raise ValueError(f"array of shape {shape} and dtype {dtype.dtype} needs {needed} bytes, "
                             f"the file holds {len(raw)}")
        array = np.frombuffer(bytes(raw), dtype.dtype).reshape(shape, order="F" if fortran else "C")
        self.value = array.astype(dtype.dtype.newbyteorder("="), order="C", copy=True)


def _reconstruct(cls, shape, typecode) -> _Array:
    if cls is not _NDArrayType:
        raise UnsafePickleError("refusing to rebuild anything but a numpy array")
    return _Array()


def _latin1(text, encoding) -> bytes:
    """Protocol-2 pickles spell bytes as ``_codecs.encode(text, "latin1")``."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise UnsafePickleError(f"refusing _codecs.encode with {encoding!r}")
    return text.encode("latin1")


def _empty_bytes(*args) -> bytes:
    """Protocol-2 pickles spell empty bytes (an empty array's data) as ``bytes()``; nothing else is built."""
    if args:
        raise UnsafePickleError("refusing bytes() with arguments")
    return b""


def _scalar(dtype, raw) -> _Array:
    """``numpy.core.multiarray.scalar(dtype, bytes)``: a numpy scalar, read as a 0-d array."""
    array = _Array()
    array.__setstate__(((), dtype, False, raw))
    return array


def _frombuffer(buffer, dtype, shape, order) -> _Array:
    """Protocol 5's spelling of a contiguous array: ``numpy.core.numeric._frombuffer(bytes, dtype, shape, order)``."""
    array = _Array()
    array.__setstate__((shape, dtype, order == "F", buffer))
    return array


class ArrayUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays (as ``_Array``, see ``build_arrays``) and nothing else that calls
    code; ``source`` names the kind of file in its refusals ("Paddle files"). ``encoding``: how Python 2
    strings are read (``"bytes"`` keeps them bytes, as a Python 2 pickle's array data must stay)."""

    def __init__(self, file: BinaryIO, *, source: str, encoding: str = "ASCII") -> None:
        super().__init__(file, encoding=encoding)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if module in _MULTIARRAY and name == "_reconstruct":
            return _reconstruct
        if module in _MULTIARRAY and name == "scalar":
            return _scalar
        if module in _NUMERIC and name == "_frombuffer":
            return _frombuffer
        if module == "numpy" and name == "ndarray":
            return _NDArrayType
        if module == "numpy" and name == "dtype":
            return _DType
        if module == "_codecs" and name == "encode":
            return _latin1
        if module in ("__builtin__", "builtins") and name == "bytes":
            return _empty_bytes
        raise UnsafePickleError(
            f"refusing to load '{module}.{name}': the file asks to call code that is not an array "
            f"container (only arrays are read from {self.source})")

    def persistent_load(self, pid):
        raise UnsafePickleError(f"refusing a persistent object: only arrays are read from {self.source}")


def _stored(array: _Array) -> np.ndarray:
    """The array as the file stores it."""
    if array.value is None:
        raise ValueError("an array without its data")
    return array.value


def build_arrays(obj: Any, *, build: Callable[[_Array], np.ndarray] = _stored,
                 key: Optional[Callable[[Any], Any]] = None, unwrap: Optional[Callable[[Any], Any]] = None) -> Any:
    """``obj`` as loaded by ``ArrayUnpickler`` with every array made by ``build`` (default: as stored), every dict
    key converted by ``key`` (None: as it is), and every object first replaced by ``unwrap(obj)`` (a reader's own
    wrapping of an array, e.g. Paddle's ``(name, array)``; None: none). Each array and container is rebuilt
    once, however many references share it (not once per path to it)."""
    done: dict = {}  # id of each array or container rebuilt -> its result

    def rebuilt(item: Any) -> Any:
        if unwrap is not None:
            item = unwrap(item)
        if isinstance(item, (_DType, type)):
            raise ValueError("a bare dtype or type where an array was expected")
        if not isinstance(item, (_Array, dict, list, tuple)):
            return item
        if id(item) not in done:
            if isinstance(item, _Array):
                done[id(item)] = build(item)
            elif isinstance(item, dict):
                done[id(item)] = {(k if key is None else key(k)): rebuilt(v) for k, v in item.items()}
            else:
                done[id(item)] = type(item)(rebuilt(v) for v in item)
        return done[id(item)]

    return rebuilt(obj)


def load_array_pickle(stream: BinaryIO, *, source: str, encoding: str = "ASCII") -> Any:
    """The object one pickle of ``stream`` holds, every array a numpy array; its opcodes are first shown to
    build a bounded number of objects (``check_expansion``), so ``stream`` must be seekable. Raises
    ``UnsafePickleError`` (naming ``source``) if the pickle references code, ``ValueError`` and the
    unpickler's own errors if it is malformed."""
    start = stream.tell()
    check_expansion(stream)
    stream.seek(start)
    return build_arrays(ArrayUnpickler(stream, source=source, encoding=encoding).load())
