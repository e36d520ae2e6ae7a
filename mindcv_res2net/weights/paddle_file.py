"""Read PaddlePaddle ``.pdparams`` files without Paddle and without running their code.

A ``.pdparams`` file is a pickle (protocol 2 to 4) of a dict of numpy arrays; ``paddle.save`` adds a
``StructuredToParameterName@@`` table of names. A tensor nested deeper (``{"model": state_dict,
"epoch": 3}``) is pickled as ``builtins.tuple((name, array))``. bfloat16 tensors are stored as
uint16 arrays (Paddle has no uint16 tensors and reads them back as bfloat16), so uint16 is read as
bfloat16 and widened to float32. The unpickler resolves only what rebuilds numpy arrays (numpy 1.x
and 2.x module names) and these tuples, and refuses every other global before it is called. Each
array's declared shape and dtype are checked against its bytes before it is built; the objects the
pickle would build are bounded before it is loaded (``pickle_bounds``), and one shared by many
references is rebuilt once.
"""
import math
import pickle
from typing import Any

import numpy as np

from .pickle_bounds import check_expansion
from .torch_file import UnsafePickleError

NAME_TABLE = "StructuredToParameterName@@"
_MULTIARRAY = ("numpy.core.multiarray", "numpy._core.multiarray")
_DTYPES = {"f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1"}


class _NDArrayType:
    """What the pickle names as ``numpy.ndarray``; only ever passed to ``_reconstruct``."""


class _DType:
    """A numpy dtype as the pickle describes it (``numpy.dtype(code, align, copy)`` then its state)."""

    def __init__(self, code, align=False, copy=True) -> None:
        if not isinstance(code, str) or code.lstrip("<>|=") not in _DTYPES:
            raise UnsafePickleError(f"refusing array dtype {code!r}: only arrays of real numbers and booleans are read")
        self.dtype = np.dtype(code)

    def __setstate__(self, state) -> None:
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "="):
            self.dtype = self.dtype.newbyteorder(state[1]) if state[1] in "<>" else self.dtype


class _Array:
    """An array under construction: ``_reconstruct`` makes it, ``__setstate__`` gives its bytes."""

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
        if dtype.dtype.kind == "u" and dtype.dtype.itemsize == 2:  # bfloat16: the high half of a float32
            self.value = (array.astype(np.uint32) << 16).view(np.float32).copy(order="C")
        else:
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


def _tuple(items) -> tuple:
    """``builtins.tuple`` as ``paddle.save`` calls it for a nested tensor: ``tuple([(name, array)])``."""
    if not isinstance(items, (list, tuple)):
        raise UnsafePickleError("refusing builtins.tuple of anything but a list or tuple")
    return tuple(items)


def _scalar(dtype, raw) -> np.ndarray:
    array = _Array()
    array.__setstate__(((), dtype, False, raw))
    return array.value


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module in _MULTIARRAY and name == "_reconstruct":
            return _reconstruct
        if module in _MULTIARRAY and name == "scalar":
            return _scalar
        if module == "numpy" and name == "ndarray":
            return _NDArrayType
        if module == "numpy" and name == "dtype":
            return _DType
        if module == "collections" and name == "OrderedDict":
            return dict
        if module == "_codecs" and name == "encode":
            return _latin1
        if module in ("__builtin__", "builtins") and name == "bytes":
            return _empty_bytes
        if module == "builtins" and name == "tuple":
            return _tuple
        raise UnsafePickleError(
            f"refusing to load '{module}.{name}': the file asks to call code that is not an array "
            "container (only arrays are read from Paddle files)")

    def persistent_load(self, pid):
        raise UnsafePickleError("refusing a persistent object: not a .pdparams file")


def _is_nested_tensor(obj: Any) -> bool:
    """Whether ``obj`` is how ``paddle.save`` stores a tensor below the top level: ``(name, array)``."""
    return isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], str) and isinstance(obj[1], _Array)


def _materialize(obj: Any, done: dict) -> Any:
    """``obj`` with every array built; ``done`` maps ``id`` of each container already rebuilt to its result,
    so that a container shared by many references costs its work once (not once per path to it)."""
    if isinstance(obj, _Array):
        return obj.value
    if isinstance(obj, (_DType, type)):
        raise ValueError("a bare dtype or type where an array was expected")
    if not isinstance(obj, (dict, list, tuple)):
        return obj
    if id(obj) not in done:
        if isinstance(obj, dict):
            done[id(obj)] = {str(k): _materialize(v, done) for k, v in obj.items()}
        elif _is_nested_tensor(obj):
            done[id(obj)] = obj[1].value
        else:
            done[id(obj)] = type(obj)(_materialize(v, done) for v in obj)
    return done[id(obj)]


def load_paddle_file(path: str) -> dict:
    """The dict a ``.pdparams`` file holds, every tensor a numpy array (Paddle's name table dropped): a
    state dict ``{name: array}``, or the dict that holds one (``{"model": state_dict, "epoch": 3}``).

    Raises ``UnsafePickleError`` if the file references code, ``ValueError`` if it is not readable.
    """
    with open(path, "rb") as f:
        check_expansion(f)
        f.seek(0)
        raw = _RestrictedUnpickler(f).load()
    obj = _materialize(raw, {})
    if not isinstance(obj, dict):
        raise ValueError("not a dict of arrays: not a .pdparams file")
    return {k: v for k, v in obj.items() if k != NAME_TABLE}


def is_paddle_pickle(head: bytes) -> bool:
    """Whether a file that starts with ``head`` (16 bytes) is a pickle of a dict (Paddle) rather than
    the legacy ``torch.save`` stream, which starts with a pickled long integer (its magic number)."""
    return len(head) > 2 and head[0] == 0x80 and head[2] != 0x8A

