"""Parameter names of every source (official PyTorch, mindcv, PaddleClas, mmpretrain) mapped to this
package's (the official PyTorch names with MindSpore's BatchNorm names)."""
import re
from typing import Dict, Iterable, Optional

import numpy as np

# The head and stems under our names, into which every source's are renamed (``to_model_names``: mindcv's
# ``classifier``, mmpretrain's ``head.fc``, PaddleClas' ``out`` and ``conv1_1``); the models name their cells so.
CLASSIFIER = "fc"
STEM_CONV = "conv1"  # Res2Net: one 7x7 convolution
DEEP_STEM_CONV = "conv1.0"  # Res2Net-v1b / vd: the first of the deep stem's three 3x3 convolutions
DLA_STEM_CONV = "base_layer.0"  # Res2Net-DLA
STEM_CONVS = (STEM_CONV, DEEP_STEM_CONV, DLA_STEM_CONV)

BN_RENAMES = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
# Entries of training checkpoints that are not network weights (optimizer, loss scale, EMA, counters).
# (mindcv's and MindSpore's names; this package's own training state is told apart in checkpoint_layout.py)
TRAINING_STATE_PREFIXES = ("moments.", "moment1.", "moment2.", "accum.", "mean_grad.", "mean_square.",
                           "adam_m.", "adam_v.", "scale_sense")
TRAINING_STATE_KEYS = {"global_step", "learning_rate", "momentum", "beta1_power", "beta2_power", "epoch_num",
                       "step_num", "current_iterator_step", "last_overflow_iterator_step", "loss_scale"}


def _is_training_state(name: str) -> bool:
    return name in TRAINING_STATE_KEYS or name.startswith(TRAINING_STATE_PREFIXES) or name.endswith(
        "num_batches_tracked") or name == "metadata"


_PADDLE_BN = {"weight": "gamma", "bias": "beta", "_mean": "moving_mean", "_variance": "moving_variance"}
# PaddleClas stem units -> (our convolution, our BatchNorm); the vd stem is conv1.{0,3,6} with BN at .1, .4, bn1
_PADDLE_STEM = {"conv1": (STEM_CONV, "bn1"), "conv1_1": (DEEP_STEM_CONV, "conv1.1"), "conv1_2": ("conv1.3", "conv1.4"),
                "conv1_3": ("conv1.6", "bn1")}
_PADDLE_KEY = re.compile(r"^(?P<unit>.+)\.(?P<kind>_conv|_batch_norm)\.(?P<param>\w+)$")
_PADDLE_BLOCK = re.compile(r"^bb_(?P<stage>\d+)_(?P<block>\d+)\.(?P<part>\w+)$")
_PADDLE_SPLIT = re.compile(r"^res\w+_branch2b_(?P<index>\d+)$")


def _paddle_unit(unit: str, *, avg_down: bool):
    """(our convolution, our BatchNorm) for a PaddleClas ConvBNLayer name, or None if unknown."""
    if unit in _PADDLE_STEM:
        return _PADDLE_STEM[unit]
    block = _PADDLE_BLOCK.match(unit)
    if not block:
        return None
    base, part = f"layer{int(block['stage']) + 1}.{int(block['block'])}", block["part"]
    if part in ("conv0", "conv2"):
        index = "1" if part == "conv0" else "3"
        return f"{base}.conv{index}", f"{base}.bn{index}"
    if part == "short":  # avg_down: index 0 of our shortcut is the pool (identity in layer1)
        first = 1 if avg_down else 0
        return f"{base}.downsample.{first}", f"{base}.downsample.{first + 1}"
    split = _PADDLE_SPLIT.match(part)
    if split:
        return f"{base}.convs.{int(split['index']) - 1}", f"{base}.bns.{int(split['index']) - 1}"
    return None


def paddle_classifier(weight: np.ndarray, bias=None) -> np.ndarray:
    """PaddleClas' classifier ``out.weight`` (Paddle's Linear stores (in, out)) as (out, in); a ``ValueError``
    when its ``out.bias`` shows it stored the other way round."""
    if bias is not None and bias.ndim == 1 and weight.shape[0] == bias.shape[0] != weight.shape[1]:
        raise ValueError(f"its Paddle classifier out.weight is stored {tuple(weight.shape)}, (out, in), but a Paddle "
                         f"Linear stores (in, out), here {tuple(weight.shape[::-1])} for the {bias.shape[0]} classes "
                         "of out.bias: save out.weight transposed")
    return weight.T


def _from_paddle_names(source: Dict[str, np.ndarray], *, avg_down: bool) -> Dict[str, np.ndarray]:
    """PaddleClas Res2Net names (``bb_0_0.res2a_branch2b_1._conv.weight``, ``out.weight`` stored (in, out))
    to this package's; unknown names are kept, so that the strict mapping reports them."""
    renamed = {}
    for name, value in source.items():
        if name == "out.weight" and value.ndim == 2:
            renamed[f"{CLASSIFIER}.weight"] = paddle_classifier(value, source.get("out.bias"))
            continue
        if name == "out.bias":
            renamed[f"{CLASSIFIER}.bias"] = value
            continue
        key = _PADDLE_KEY.match(name)
        unit = _paddle_unit(key["unit"], avg_down=avg_down) if key else None
        if unit is None or (key["kind"] == "_conv" and key["param"] != "weight") or (
                key["kind"] == "_batch_norm" and key["param"] not in _PADDLE_BN):
            renamed[name] = value
        elif key["kind"] == "_conv":
            renamed[f"{unit[0]}.weight"] = value
        else:
            renamed[f"{unit[1]}.{_PADDLE_BN[key['param']]}"] = value
    return renamed


def stem_conv_weight(names: Iterable[str]) -> Optional[str]:
    """The stem convolution's weight among ``names`` (ours, e.g. a model's parameters or a renamed file's
    tensors): ``conv1.weight``, ``conv1.0.weight`` or ``base_layer.0.weight``; None if none is there."""
    names = set(names)
    return next((f"{conv}.weight" for conv in STEM_CONVS if f"{conv}.weight" in names), None)


def to_model_names(source: Dict[str, np.ndarray], targets: Dict[str, tuple], *,
                   avg_down: bool) -> Dict[str, np.ndarray]:
    """Rename PyTorch / mindcv / PaddleClas / mmpretrain parameter names to this package's names (unknown
    names kept as they are). A ``ValueError`` if a PaddleClas classifier is stored transposed."""
    if any("._conv." in k or "._batch_norm." in k for k in source):
        source = _from_paddle_names(source, avg_down=avg_down)
    if source and all(k.startswith(("backbone.", "head.")) for k in source):  # mmpretrain
        source = {(f"{CLASSIFIER}." + k[len("head.fc."):]) if k.startswith("head.fc.") else k.split(".", 1)[1]: v
                  for k, v in source.items()}
    mindcv_names = any(".down_sample." in k or k.startswith("classifier.") for k in source)
    renamed = {}
    for name, value in source.items():
        if _is_training_state(name):
            continue
        if mindcv_names:
            if avg_down and name.startswith("layer1.0.down_sample."):  # mindcv's v1b layer1 has no pool index
                index, rest = name[len("layer1.0.down_sample."):].split(".", 1)
                name = f"layer1.0.downsample.{int(index) + 1}.{rest}"
            name = name.replace(".down_sample.", ".downsample.")
            if name.startswith("classifier."):
                name = f"{CLASSIFIER}." + name[len("classifier."):]
        prefix, _, suffix = name.rpartition(".")
        if name not in targets and suffix in BN_RENAMES and f"{prefix}.moving_mean" in targets:
            name = f"{prefix}.{BN_RENAMES[suffix]}"
        renamed[name] = value
    return renamed
