"""Test helper: write ``{name: numpy array}`` as PaddlePaddle's ``paddle.save`` does for a state dict:
a pickle (protocol 2 by default) of a dict of numpy arrays plus the ``StructuredToParameterName@@``
name table, without Paddle."""
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
