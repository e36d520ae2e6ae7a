"""Make tests/reference/dilated: timm's float64 ``features_only`` maps of three Res2Nets at output stride 8 and 16.

PyTorch never enters mindcv_res2net or its tests: run this only inside a throwaway venv, e.g.

    python3 -m venv /work/venv-timm && /work/venv-timm/bin/pip install torch==2.14.1 timm==1.0.31
    /work/venv-timm/bin/python tools/maintainer/make_dilated_reference.py --out tests/reference/dilated

The tests import only the numpy part of this file (``reference_weight``, ``reference_input`` and the
constants); torch and timm are imported inside ``make_reference``. The method is written down in
tests/reference/dilated/README.md.
"""
import argparse
import os
import platform
import zlib

import numpy as np

from timm_reference import TIMM_NAMES

MODELS = ("res2net50", "res2net50_v1b", "res2next50")  # ours; timm's names in TIMM_NAMES
CHECKED_STRIDES = (8, 16)
INPUT_SHAPES = {"odd": (1, 3, 97, 83), "even": (1, 3, 96, 64)}  # NCHW
SAMPLES_PER_MAP = 256


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def reference_weight(key: str, shape) -> np.ndarray:
    """The tensor ``key`` (timm's state-dict name) of the reference weights, drawn from a generator seeded
    with the CRC32 of the key: convolution / linear weights normal * sqrt(2 / fan_out), the classifier bias
    normal * 0.01, BatchNorm weight and running_var uniform in [0.5, 1.5), bias and running_mean normal * 0.1
    (float32); ``num_batches_tracked`` an int64 zero."""
    if key.endswith("num_batches_tracked"):
        return np.zeros(shape, np.int64)
    rng = _rng(key)
    suffix = key.rsplit(".", 1)[-1]
    if len(shape) == 1 and key != "fc.bias":  # BatchNorm
        if suffix in ("weight", "running_var"):
            return rng.uniform(0.5, 1.5, shape).astype(np.float32)
        return (0.1 * rng.standard_normal(shape)).astype(np.float32)
    if key == "fc.bias":
        return (0.01 * rng.standard_normal(shape)).astype(np.float32)
    fan_out = shape[0] * (shape[2] * shape[3] if len(shape) == 4 else 1)
    return (np.sqrt(2.0 / fan_out) * rng.standard_normal(shape)).astype(np.float32)


def reference_input(name: str) -> np.ndarray:
    """The float32 input ``name`` of INPUT_SHAPES: standard normal, seeded with the CRC32 of ``input/<name>``."""
    return _rng(f"input/{name}").standard_normal(INPUT_SHAPES[name]).astype(np.float32)


def summarize_map(prefix: str, fmap: np.ndarray, rng: np.random.Generator) -> dict:
    """What the reference file keeps of one (1, C, H, W) float64 map: its shape, largest magnitude, per-channel
    means (C,), per-position means over channels (H, W), and SAMPLES_PER_MAP values at random flat indices."""
    index = np.sort(rng.choice(fmap.size, size=min(SAMPLES_PER_MAP, fmap.size), replace=False))
    return {f"{prefix}/shape": np.array(fmap.shape, np.int64), f"{prefix}/max_abs": np.abs(fmap).max(),
            f"{prefix}/channel_mean": fmap.mean(axis=(0, 2, 3)), f"{prefix}/position_mean": fmap.mean(axis=(0, 1)),
            f"{prefix}/sample_index": index, f"{prefix}/sample_value": fmap.reshape(-1)[index]}


def make_reference(model: str, out_dir: str) -> str:
    """Build timm's ``TIMM_NAMES[model]`` in float64 with the reference weights, run its ``features_only``
    network at each CHECKED_STRIDES on each input, and write ``out_dir/<model>.npz`` (compressed)."""
    import timm
    import torch

    full = timm.create_model(TIMM_NAMES[model], pretrained=False)  # the whole network: its file has the head
    keys = list(full.state_dict())
    shapes = [tuple(full.state_dict()[k].shape) for k in keys]
    state = {k: reference_weight(k, s) for k, s in zip(keys, shapes)}
    out = {"keys": np.array(keys), "shapes": np.array([list(s) + [-1] * (4 - len(s)) for s in shapes], np.int64),
           "gen_abssum": np.array([np.abs(state[k]).sum(dtype=np.float64) for k in keys]),
           "versions": np.array([f"timm {timm.__version__}", f"torch {torch.__version__}",
                                 f"numpy {np.__version__}", f"python {platform.python_version()}"])}
    rng = _rng(f"samples/{model}")
    for stride in CHECKED_STRIDES:
        net = timm.create_model(TIMM_NAMES[model], pretrained=False, features_only=True, output_stride=stride)
        net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items() if not k.startswith("fc.")})
        net = net.double().eval()
        for name in INPUT_SHAPES:
            with torch.no_grad():
                maps = net(torch.from_numpy(reference_input(name)).double())
            for i, fmap in enumerate(maps):
                out.update(summarize_map(f"os{stride}/{name}/map{i}", fmap.numpy(), rng))
            out[f"os{stride}/reductions"] = np.array(net.feature_info.reduction(), np.int64)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{model}.npz")
    np.savez_compressed(path, **{k: (v.astype(np.float32) if isinstance(v, np.ndarray) and v.dtype == np.float64
                                     and k != "gen_abssum" else v) for k, v in out.items()})
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join("tests", "reference", "dilated"), help="output folder")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    args = parser.parse_args()
    for model in args.models:
        print(make_reference(model, args.out))


if __name__ == "__main__":
    main()
