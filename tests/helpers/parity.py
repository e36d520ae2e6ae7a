"""The official networks' weights of the parity data (tests/reference/parity, see its README): the rule
every tensor but BatchNorm follows, and the stored BatchNorm tensors."""
import functools
import json
import os
import zlib

import numpy as np

from helpers import REFERENCE_DIR

PARITY_DIR = os.path.join(REFERENCE_DIR, "parity")

with open(os.path.join(PARITY_DIR, "manifest.json")) as _f:
    MANIFEST = json.load(_f)


def rule_weight(key: str, shape) -> np.ndarray:
    """The parity README's rule for every tensor that is not BatchNorm."""
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    w = rng.standard_normal(shape, dtype=np.float64)
    if key in ("fc.bias", "out.bias"):
        w *= 0.01
    else:
        fan_out = shape[0] * (shape[2] * shape[3] if len(shape) == 4 else 1)
        w *= np.sqrt(2.0 / fan_out)
    return w.astype(np.float32)


def parity_file(variant: str):
    return np.load(os.path.join(PARITY_DIR, f"{variant}.npz"), allow_pickle=False)


def parity_inputs() -> dict:
    """{name: NCHW float32 images} of the parity data."""
    return dict(np.load(os.path.join(PARITY_DIR, "inputs.npz"), allow_pickle=False))


@functools.lru_cache(maxsize=2)
def official_state_dict(variant: str) -> dict:
    """The complete official PyTorch state dict of a parity variant (rule tensors + stored BatchNorm)."""
    data = parity_file(variant)
    state = {}
    for key, padded, abssum in zip(data["keys"], data["shapes"], data["gen_abssum"]):
        key = str(key)
        if f"bn/{key}" in data.files:
            state[key] = data[f"bn/{key}"]
        else:
            state[key] = rule_weight(key, tuple(int(s) for s in padded if s >= 0))
            assert np.isclose(np.abs(state[key]).sum(dtype=np.float64), abssum, rtol=1e-9), key
    return state
