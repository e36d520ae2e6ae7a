"""Test helper: write ``{name: numpy array}`` as PaddlePaddle's ``paddle.save`` does for a state dict:
a pickle (protocol 2 by default) of a dict of numpy arrays plus the ``StructuredToParameterName@@``
name table, or nested in a dict (``{"model": state_dict, "epoch": 3}``), without Paddle. Real files
written by Paddle are in ``tests/reference/paddle_files``."""
import pickle

import numpy as np


def save_pdparams(arrays: dict, path: str, protocol: int = 2, numpy2_names: bool = False) -> None:
    """``numpy2_names`` writes numpy 2.x's module name (``numpy._core.multiarray``), as files saved under
    numpy 2 carry."""
    state = {k: np.array(v, order="C") for k, v in arrays.items()}
    state["StructuredToParameterName@@"] = {k: f"param_{i}" for i, k in enumerate(arrays)}
    raw = pickle.dumps(state, protocol=protocol)
    if protocol == 2:  # text globals: spell the module as the chosen numpy major version does
        raw = raw.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
        if numpy2_names:
            raw = raw.replace(b"cnumpy.core.multiarray\n", b"cnumpy._core.multiarray\n")
    else:
        assert not numpy2_names, "numpy 2 names are patched into protocol-2 pickles only"
    with open(path, "wb") as f:
        f.write(raw)


def bfloat16_bits(array) -> np.ndarray:
    """float32 values as the uint16 bits of bfloat16 (rounded to nearest even): how Paddle stores bfloat16."""
    bits = np.asarray(array, np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


class _NestedTensor:
    """Pickles as ``paddle.save`` pickles a tensor below the top level: ``tuple((name, array))``."""

    def __init__(self, name: str, array: np.ndarray) -> None:
        self.name, self.array = name, array

    def __reduce__(self):
        return tuple, ((self.name, self.array),)


def save_nested_pdparams(arrays: dict, path: str, key: str = "model", **extra) -> None:
    """``paddle.save({key: state_dict, **extra})`` (protocol 4, as Paddle 3 writes): each tensor a nested tuple."""
    state = {key: {k: _NestedTensor(f"param_{i}", np.array(v, order="C")) for i, (k, v) in enumerate(arrays.items())},
             **extra}
    with open(path, "wb") as f:
        pickle.dump(state, f, protocol=4)
