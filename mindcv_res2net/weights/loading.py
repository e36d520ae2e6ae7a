"""Strict mapping of a weight file's tensors onto a model, and loading them into it."""
import warnings
from typing import Dict, Optional

import mindspore as ms
import numpy as np

from .checkpoint_layout import checked_metadata, network_weights
from .formats import CheckpointError, brief, read_checkpoint
from .names import CLASSIFIER, stem_conv_weight, to_model_names

def non_finite_tensors(state: Dict[str, np.ndarray]) -> list:
    """Names of the floating-point tensors that hold NaN or Inf."""
    return sorted(k for k, v in state.items() if np.issubdtype(v.dtype, np.floating) and not np.isfinite(v).all())


def _adapt_first_conv(weight: np.ndarray, in_channels: int) -> np.ndarray:
    """RGB first-conv weight (O, 3, k, k) for ``in_channels`` inputs: summed for 1, else tiled and rescaled."""
    if in_channels == 1:
        return weight.sum(axis=1, keepdims=True)
    repeats = -(-in_channels // weight.shape[1])
    tiled = np.tile(weight, (1, repeats, 1, 1))[:, :in_channels]
    return tiled * (weight.shape[1] / in_channels)


def map_state_dict(source: Dict[str, np.ndarray], model: ms.nn.Cell, *, new_classifier: bool = False,
                   new_in_channels: bool = False, origin: str = "checkpoint",
                   ema: Optional[bool] = None) -> Dict[str, np.ndarray]:
    """Strictly map ``source`` onto ``model``'s parameters; returns ``{model param name: float32 array}``.

    A training checkpoint with ``ema.*`` averages gives those (as validation during training used),
    unless ``ema=False`` (see ``network_weights``).
    Every parameter must be filled with a floating-point tensor of equal shape and no source tensor may be left over
    (``num_batches_tracked`` and training state excepted; a classifier is ignored when the model has
    none). ``new_classifier``: the caller asked for another class count, so a classifier of another
    size is dropped with a warning (fine-tuning). ``new_in_channels``: an RGB first convolution is
    adapted to the model's input channels with a warning.
    """
    source = network_weights(source, ema, origin)
    params = {p.name: p for p in model.get_parameters()}
    targets = {name: tuple(p.shape) for name, p in params.items()}
    try:
        mapped = to_model_names(source, targets, avg_down=getattr(model, "avg_down", False))
    except ValueError as exc:
        raise CheckpointError(f"{origin}: {exc}") from None

    unused = tuple(getattr(model, "unused_weight_prefixes", ()))  # in published files, never used by the network
    mapped = {k: v for k, v in mapped.items() if not (unused and k.startswith(unused))}
    if getattr(model, CLASSIFIER, None) is None:  # head-less or features_only: the classifier is not used
        mapped = {k: v for k, v in mapped.items() if not k.startswith(CLASSIFIER + ".")}
    mismatched = {k for k in mapped.keys() & targets.keys() if tuple(mapped[k].shape) != targets[k]}
    conv_key = stem_conv_weight(targets)
    if conv_key in mismatched and new_in_channels and mapped[conv_key].shape[1] == 3:
        warnings.warn(f"{origin}: adapting the RGB first convolution to {targets[conv_key][1]} input channels",
                      stacklevel=3)
        mapped[conv_key] = _adapt_first_conv(mapped[conv_key], targets[conv_key][1])
        mismatched.discard(conv_key)
    head_keys = {k for k in mismatched if k.startswith(CLASSIFIER + ".")}

    missing = targets.keys() - mapped.keys()
    unexpected = mapped.keys() - targets.keys()
    if missing or unexpected or mismatched - head_keys:  # another network: report everything
        problems = []
        if missing:
            problems.append(f"{len(missing)} model parameters missing from the file ({brief(missing)})")
        if unexpected:
            problems.append(f"{len(unexpected)} tensors the model does not have ({brief(unexpected)})")
        if mismatched:
            problems.append(f"{len(mismatched)} shape mismatches (" + brief(
                f"{k}: file {tuple(mapped[k].shape)} vs model {targets[k]}" for k in mismatched) + ")")
        name = getattr(model, "default_cfg", {}).get("architecture", type(model).__name__)
        raise CheckpointError(f"{origin} does not fit model '{name}': " + "; ".join(problems))
    if head_keys:  # the same network with another class count
        classes = mapped[f"{CLASSIFIER}.weight"].shape[0]
        if not new_classifier:
            raise CheckpointError(
                f"{origin}: its classifier has {classes} classes but the model has {model.num_classes}; "
                f"it fits a model of {classes} classes (num_classes={classes}, --num_classes {classes}); only training "
                "starts a new classifier for another class count")
        warnings.warn(f"{origin}: dropping its {classes}-class classifier, the model's "
                      f"{model.num_classes}-class classifier starts from its initialisation", stacklevel=3)
        for key in [k for k in mapped if k.startswith(CLASSIFIER + ".")]:
            del mapped[key]
            targets.pop(key)
    not_real = sorted(k for k in targets if mapped[k].dtype.kind != "f")
    if not_real:  # casting would turn bits into numbers (Paddle saves float8 tensors as int8)
        raise CheckpointError(f"{origin}: weights that are not floating point (" + brief(
            f"{k}: {mapped[k].dtype}" for k in not_real) + "); the model's parameters need real numbers")
    return {k: np.ascontiguousarray(mapped[k], dtype=np.float32) for k in targets}  # without a dropped classifier


def load_checkpoint(model: ms.nn.Cell, path: str, *, new_classifier: bool = False, new_in_channels: bool = False,
                    state: Optional[Dict[str, np.ndarray]] = None, ema: Optional[bool] = None) -> ms.nn.Cell:
    """Load any supported weight file into ``model`` in place (strict; see ``map_state_dict``).

    ``state``: the file's tensors when the caller has already read them (``read_checkpoint(path)[0]``).
    Weights holding NaN or Inf are loaded with a warning naming them.
    """
    if state is None:
        state, metadata = read_checkpoint(path)
        checked_metadata(metadata, path)  # a crafted metadata entry is an error here too
    weights = map_state_dict(state, model, new_classifier=new_classifier, new_in_channels=new_in_channels,
                             origin=str(path), ema=ema)
    bad = non_finite_tensors(weights)
    if bad:
        warnings.warn(f"{path}: {len(bad)} tensors hold NaN or Inf values ({brief(bad)}); "
                      "the network's outputs will not be finite", stacklevel=2)
    for param in model.get_parameters():
        if param.name in weights:  # absent only for a classifier dropped for fine-tuning
            param.set_data(ms.Tensor(weights[param.name], dtype=param.dtype))
    return model
