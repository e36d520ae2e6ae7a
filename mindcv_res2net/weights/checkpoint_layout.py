"""The layout of a training checkpoint written by train.py: what its entries and its metadata mean.

``<model>-<epoch>_<steps>.ckpt`` is a MindSpore checkpoint (written by ``save_weights``) holding, in
this order:

- ``metadata``: a JSON object, schema in ``METADATA_SCHEMA``; ``run_id`` names the run that wrote it;
- the network's parameters under their own names;
- ``optimizer.<name>``: the optimizer's state (step counter, moments), not its learning-rate table;
- ``ema.<name>``: the weight averages, with ``--ema``.

The stored ``config`` is kept here as the JSON object it is: ``engine`` converts it where a run uses it.
"""
import math
from typing import Callable, Dict, Optional

import numpy as np

from ..utils.fileio import OWNER_PATTERN
from .formats import CheckpointError
from .names import CLASSIFIER, stem_conv_weight, to_model_names

OPTIMIZER_PREFIX = "optimizer."
EMA_PREFIX = "ema."
_MAX_COUNT = 10 ** 9


def _int_in(low: int, high: int) -> Callable:
    def check(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    check.__doc__ = f"an integer from {low} to {high}"
    return check


def _optional(check: Callable) -> Callable:
    def optional(value) -> bool:
        return value is None or check(value)
    optional.__doc__ = f"null or {check.__doc__}"
    return optional


def _percent(value) -> bool:
    """a percentage from 0 to 100"""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and 0 <= value <= 100


def _text(value) -> bool:
    """a string"""
    return isinstance(value, str)


def _run_id(value) -> bool:
    """letters, digits, '-' and '_' (at most 64)"""
    return isinstance(value, str) and bool(OWNER_PATTERN.match(value))  # it names temporary files too


def _names(value) -> bool:
    """a list of strings"""
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _flag(value) -> bool:
    """true or false"""
    return isinstance(value, bool)


def _epoch_progress(value) -> bool:
    """an object of the partial epoch's loss_sum, correct, seen (images) and seconds"""
    if not isinstance(value, dict) or set(value) != {"loss_sum", "correct", "seen", "seconds"}:
        return False
    count = _int_in(0, _MAX_COUNT)
    return count(value["correct"]) and count(value["seen"]) and value["correct"] <= value["seen"] and all(
        isinstance(value[k], (int, float)) and not isinstance(value[k], bool) and math.isfinite(value[k])
        and value[k] >= 0 for k in ("loss_sum", "seconds"))


def _mapping(value) -> bool:
    """a JSON object"""
    return isinstance(value, dict)


# key: what a valid value is. Every key is optional when read (files of other tools hold a few or none).
METADATA_SCHEMA: Dict[str, Callable] = {
    "model": _text, "run_id": _run_id, "epoch": _int_in(0, _MAX_COUNT), "step": _int_in(0, _MAX_COUNT),
    "steps_per_epoch": _int_in(1, _MAX_COUNT), "updates_per_epoch": _int_in(1, _MAX_COUNT),
    "num_classes": _int_in(1, 10 ** 6), "in_channels": _int_in(1, 4096), "class_names": _optional(_names),
    "val_top1": _optional(_percent), "best_top1": _optional(_percent), "best_epoch": _optional(_int_in(1, _MAX_COUNT)),
    "ema": _flag, "config": _optional(_mapping), "source": _text, "optimizer_state": _flag,
    "num_devices": _int_in(1, 10 ** 6), "epoch_progress": _epoch_progress,
}


def checked_metadata(metadata, path: str) -> dict:
    """``metadata`` as read from ``path`` (``read_checkpoint``), checked against ``METADATA_SCHEMA``
    (its ``config`` only as a JSON object, left unconverted); {} when absent.

    Anything else (not an object, a wrong type, an impossible value) is a one-line ``CheckpointError``.
    """
    if metadata is None or metadata == {}:
        return {}
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path}: its metadata is a JSON {type(metadata).__name__}, not an object")
    for key, check in METADATA_SCHEMA.items():
        if key in metadata and not check(metadata[key]):
            raise CheckpointError(f"{path}: metadata '{key}' must be {check.__doc__}, got {metadata[key]!r:.80}")
    names, classes = metadata.get("class_names"), metadata.get("num_classes")
    if names is not None and classes is not None and len(names) > classes:
        raise CheckpointError(f"{path}: metadata holds {len(names)} class names for {classes} classes")
    return dict(metadata)


def network_weights(state: Dict[str, np.ndarray], ema: Optional[bool] = None,
                    path: str = "checkpoint") -> Dict[str, np.ndarray]:
    """The network's tensors of a state dict (mindcv's ``ema`` flag, with one default of ours).

    ``ema=None``: the ``ema.*`` averages of a training checkpoint with EMA (as validation during
    training used them), else the state without optimizer entries. ``ema=True``: the averages, and a
    ``CheckpointError`` naming ``path`` when it has none. ``ema=False``: the trained weights themselves.
    """
    averages = {k[len(EMA_PREFIX):]: v for k, v in state.items() if k.startswith(EMA_PREFIX)}
    if ema is True and not averages:
        raise CheckpointError(f"{path}: holds no EMA weights (ema.*); load it with ema=False")
    if averages and ema is not False:
        return averages
    return {k: v for k, v in state.items() if not k.startswith((OPTIMIZER_PREFIX, EMA_PREFIX))}


def describe_checkpoint(state: Dict[str, np.ndarray], metadata, path: str) -> dict:
    """``num_classes``, ``in_channels``, ``class_names`` and the stored training ``config`` (a JSON object,
    unconverted, or None) of a weight file, from what ``read_checkpoint`` returned for it.

    The class count and input channels are read from the classifier's and the stem's tensors under
    this package's names (``names.to_model_names`` renames every source's); the metadata may not
    contradict them. Without a classifier ``num_classes`` is 0; without a known stem ``in_channels``
    is the metadata's, else 3.
    """
    metadata = checked_metadata(metadata, path)
    try:
        ours = to_model_names(network_weights(state), {}, avg_down=False)
    except ValueError as exc:  # a PaddleClas classifier stored the wrong way round
        raise CheckpointError(f"{path}: {exc}") from None
    head = ours.get(f"{CLASSIFIER}.weight")
    stem_key = stem_conv_weight(ours)
    stem = ours[stem_key] if stem_key and ours[stem_key].ndim == 4 else None
    found = dict(num_classes=0 if head is None else int(head.shape[0]),
                 in_channels=metadata.get("in_channels", 3) if stem is None else int(stem.shape[1]))
    for key, value in found.items():  # the metadata may not claim another network than the tensors hold
        if metadata.get(key) is not None and (head if key == "num_classes" else stem) is not None \
                and metadata[key] != value:
            raise CheckpointError(f"{path}: metadata '{key}' is {metadata[key]} but its tensors have {value}")
    return dict(found, class_names=metadata.get("class_names"), config=metadata.get("config"))
