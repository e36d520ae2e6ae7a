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
from typing import Any

import numpy as np

from .array_pickle import ArrayUnpickler, _Array, build_arrays
from .pickle_bounds import check_expansion
from .torch_file import UnsafePickleError

NAME_TABLE = "StructuredToParameterName@@"


def _tuple(items) -> tuple:
    """``builtins.tuple`` as ``paddle.save`` calls it for a nested tensor: ``tuple([(name, array)])``."""
    if not isinstance(items, (list, tuple)):
        raise UnsafePickleError("refusing builtins.tuple of anything but a list or tuple")
    return tuple(items)


class _RestrictedUnpickler(ArrayUnpickler):
    """``ArrayUnpickler`` with what ``paddle.save`` adds: ``OrderedDict`` (read as a dict) and nested tensors."""

    def __init__(self, file) -> None:
        super().__init__(file, source="Paddle files")

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return dict
        if module == "builtins" and name == "tuple":
            return _tuple
        return super().find_class(module, name)


def _paddle_array(array: _Array) -> np.ndarray:
    """The array as Paddle reads it: uint16 is bfloat16, widened to float32 (the high half of its bits)."""
    if array.value is None:
        raise ValueError("an array without its data")
    if array.value.dtype == np.uint16:
        return (array.value.astype(np.uint32) << 16).view(np.float32)
    return array.value


def _nested_tensor(obj: Any) -> Any:
    """The array of a tensor as ``paddle.save`` stores it below the top level, ``(name, array)``; else ``obj``."""
    nested = isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], str) and isinstance(obj[1], _Array)
    return obj[1] if nested else obj


def paddle_arrays(raw: Any) -> Any:
    """``raw``, as ``_RestrictedUnpickler`` loaded it, with every array built as Paddle reads it, nested tensors
    replaced by their arrays and dict keys as str (``build_arrays``)."""
    return build_arrays(raw, build=_paddle_array, key=str, unwrap=_nested_tensor)


def load_paddle_file(path: str) -> dict:
    """The dict a ``.pdparams`` file holds, every tensor a numpy array (Paddle's name table dropped): a
    state dict ``{name: array}``, or the dict that holds one (``{"model": state_dict, "epoch": 3}``).

    Raises ``UnsafePickleError`` if the file references code, ``ValueError`` if it is not readable.
    """
    with open(path, "rb") as f:
        check_expansion(f)
        f.seek(0)
        raw = _RestrictedUnpickler(f).load()
    obj = paddle_arrays(raw)
    if not isinstance(obj, dict):
        raise ValueError("not a dict of arrays: not a .pdparams file")
    return {k: v for k, v in obj.items() if k != NAME_TABLE}


def is_paddle_pickle(head: bytes) -> bool:
    """Whether a file that starts with ``head`` (16 bytes) is a pickle of a dict (Paddle) rather than
    the legacy ``torch.save`` stream, which starts with a pickled long integer (its magic number)."""
    return len(head) > 2 and head[0] == 0x80 and head[2] != 0x8A

