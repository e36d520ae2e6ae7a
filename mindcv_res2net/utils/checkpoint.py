"""The one weight loader and converter.

Reads official PyTorch checkpoints (zip and legacy ``torch.save`` formats), ``.safetensors``,
``.npz`` with PyTorch names, and MindSpore ``.ckpt`` files (this package's names or mindcv's),
maps them strictly onto a model's parameters, loads or writes them. Files are written to a
temporary name in the destination folder and renamed, so a crash never leaves a partial file
under the final name.
"""
import json
import os
import tempfile
import warnings
import zipfile
from contextlib import contextmanager
from typing import Dict, Iterator, Optional, Tuple

import mindspore as ms
import numpy as np

from .torch_file import UnsafePickleError, load_torch_file

# Suffix renames from PyTorch's BatchNorm names to MindSpore's.
BN_RENAMES = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
# Entries of training checkpoints that are not network weights (optimizer, loss scale, EMA, counters).
TRAINING_STATE_PREFIXES = ("moments.", "moment1.", "moment2.", "accum.", "mean_grad.", "mean_square.",
                           "adam_m.", "adam_v.", "optimizer.", "ema.", "scale_sense")
TRAINING_STATE_KEYS = {"global_step", "learning_rate", "momentum", "beta1_power", "beta2_power", "epoch_num",
                       "step_num", "current_iterator_step", "last_overflow_iterator_step", "loss_scale"}
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net", "network")
_MAX_LISTED = 6


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, unsafe or does not fit the model."""


def _brief(names) -> str:
    names = sorted(names)
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else "")


# ---------------------------------------------------------------------------------------------- reading


def _sniff(path: str) -> str:
    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) < 8:
        return "unknown"
    if head.startswith(b"PK\x03\x04"):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            return "torch"
        return "npz" if names and all(n.endswith(".npy") for n in names) else "unknown"
    header_len = int.from_bytes(head[:8], "little")  # safetensors: u64 JSON header length, then '{'
    if 0 < header_len < os.path.getsize(path) and head[8:9] == b"{":
        return "safetensors"
    if head[0] == 0x80:  # pickle protocol >= 2: legacy torch.save
        return "torch"
    if path.endswith(".ckpt") or head[0] == 0x0A:  # protobuf field 1, length-delimited
        return "mindspore"
    return "unknown"


def _unwrap(obj, path: str) -> Dict[str, np.ndarray]:
    """Find the tensor dict inside a PyTorch object ({'state_dict': ...}, DataParallel 'module.' names)."""
    if isinstance(obj, dict):
        for key in _WRAPPER_KEYS:
            if isinstance(obj.get(key), dict):
                return _unwrap(obj[key], path)
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{path}: no tensor dictionary found in the file")
    arrays = {k: v for k, v in obj.items() if isinstance(v, np.ndarray)}
    if not arrays:
        raise CheckpointError(f"{path}: no tensors found in the file (keys: {_brief(obj)})")
    if all(k.startswith("module.") for k in arrays):
        arrays = {k[len("module."):]: v for k, v in arrays.items()}
    return arrays


def read_mindspore_checkpoint(path: str, names=None) -> Dict[str, object]:
    """Entries of a MindSpore ``.ckpt`` file: ``{tag: numpy array}``, string entries as ``str``.

    Parses the protobuf directly instead of ``mindspore.load_checkpoint``, which refuses files
    larger than the machine's *free* memory even when the page cache could be reclaimed (a full
    training checkpoint of res2net50 is 380 MB). ``names`` limits the result to those tags.
    Large tensors stored in several consecutive chunks are joined; a CRC trailer is verified.
    """
    import binascii

    from mindspore.train.checkpoint_pb2 import Checkpoint
    from mindspore.train.serialization import tensor_to_np_type

    with open(path, "rb") as f:
        content = f.read()
    if content[-17:-10] == b"crc_num":
        content, crc = content[:-17], int.from_bytes(content[-10:], "big")
        if binascii.crc32(content, 0) != crc:
            raise ValueError("CRC check failed")
    proto = Checkpoint()
    proto.ParseFromString(content)
    del content
    entries, chunks = {}, []
    values = proto.value
    for i, value in enumerate(values):
        if names is not None and value.tag not in names:
            continue
        if not value.HasField("tensor"):
            raise ValueError(f"entry '{value.tag}' is a map parameter, which this reader does not support")
        chunks.append(value.tensor.tensor_content)
        if i + 1 < len(values) and values[i + 1].tag == value.tag:
            continue  # the next entry continues this tensor
        data, chunks = b"".join(chunks), []
        kind = value.tensor.tensor_type
        if kind == "str":
            entries[value.tag] = str(np.frombuffer(data, f"U{len(data) // 4}")[0])
            continue
        dtype = tensor_to_np_type(kind)
        if dtype is None:
            raise ValueError(f"entry '{value.tag}' has unsupported type {kind}")
        dims = tuple(value.tensor.dims)
        entries[value.tag] = np.frombuffer(data, dtype).reshape(() if dims == (0,) else dims).copy()
    return entries


def read_checkpoint(path: str) -> Tuple[Dict[str, np.ndarray], dict]:
    """A weight file read once: ``({name: numpy array}, metadata)``, names as stored in the file.

    ``metadata`` is the JSON entry that train.py writes into its MindSpore checkpoints ({} for any
    other file).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint file not found: {path}")
    kind = "weight"  # named once the file is recognised
    try:
        kind = _sniff(path)
        if kind == "torch":
            return _unwrap(load_torch_file(path), path), {}
        if kind == "npz":
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}, {}
        if kind == "safetensors":
            from safetensors.numpy import load_file

            return load_file(path), {}
        if kind == "mindspore":
            entries = read_mindspore_checkpoint(path)
            raw = entries.get("metadata")
            return ({k: v for k, v in entries.items() if isinstance(v, np.ndarray)},
                    json.loads(raw) if isinstance(raw, str) else {})
    except UnsafePickleError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except CheckpointError:
        raise
    except Exception as exc:  # corrupt or truncated file in any format
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: cannot read {kind} checkpoint (corrupt or truncated?): {reason}") from None
    raise CheckpointError(f"{path}: unrecognised checkpoint format (expected a PyTorch .pth, .safetensors, "
                          ".npz or MindSpore .ckpt file)")


def read_state_dict(path: str) -> Dict[str, np.ndarray]:
    """All tensors of a weight file as ``{name: numpy array}``, names as stored in the file."""
    return read_checkpoint(path)[0]


def network_weights(state: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The network's tensors of a state dict: the ``ema.*`` averages of a training checkpoint with EMA
    (as validation during training used them), else the state itself."""
    ema = {k[len("ema."):]: v for k, v in state.items() if k.startswith("ema.")}
    return ema or state


def describe_checkpoint(state: Dict[str, np.ndarray], metadata: dict) -> dict:
    """``num_classes``, ``in_channels``, ``class_names`` and the training ``config`` (or None) of a weight
    file, from what ``read_checkpoint`` returned for it.

    From the metadata of a checkpoint written by train.py, else from the classifier (``fc``, or mindcv's
    ``classifier``) and first-convolution shapes; ``num_classes`` is 0 for a head-less file.
    """
    if metadata.get("num_classes"):
        return dict(num_classes=int(metadata["num_classes"]), in_channels=int(metadata.get("in_channels") or 3),
                    class_names=metadata.get("class_names"), config=metadata.get("config"))
    state = network_weights(state)
    head = next((state[k] for k in ("fc.weight", "classifier.weight") if k in state), None)
    stem = next((state[k] for k in ("conv1.weight", "conv1.0.weight") if k in state and state[k].ndim == 4), None)
    return dict(num_classes=0 if head is None else int(head.shape[0]),
                in_channels=3 if stem is None else int(stem.shape[1]), class_names=None, config=None)


# ---------------------------------------------------------------------------------------------- mapping


def _is_training_state(name: str) -> bool:
    return name in TRAINING_STATE_KEYS or name.startswith(TRAINING_STATE_PREFIXES) or name.endswith(
        "num_batches_tracked") or name == "metadata"


def _to_model_names(source: Dict[str, np.ndarray], targets: Dict[str, tuple], avg_down: bool) -> Dict[str, np.ndarray]:
    """Rename PyTorch / mindcv parameter names to this package's names (unknown names kept as they are)."""
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
                name = "fc." + name[len("classifier."):]
        prefix, _, suffix = name.rpartition(".")
        if name not in targets and suffix in BN_RENAMES and f"{prefix}.moving_mean" in targets:
            name = f"{prefix}.{BN_RENAMES[suffix]}"
        renamed[name] = value
    return renamed


def _adapt_first_conv(weight: np.ndarray, in_channels: int) -> np.ndarray:
    """RGB first-conv weight (O, 3, k, k) for ``in_channels`` inputs: summed for 1, else tiled and rescaled."""
    if in_channels == 1:
        return weight.sum(axis=1, keepdims=True)
    repeats = -(-in_channels // weight.shape[1])
    tiled = np.tile(weight, (1, repeats, 1, 1))[:, :in_channels]
    return tiled * (weight.shape[1] / in_channels)


def map_state_dict(source: Dict[str, np.ndarray], model: ms.nn.Cell, new_classifier: bool = False,
                   new_in_channels: bool = False, origin: str = "checkpoint") -> Dict[str, np.ndarray]:
    """Strictly map ``source`` onto ``model``'s parameters; returns ``{model param name: float32 array}``.

    A training checkpoint with ``ema.*`` averages gives those (as validation during training used).
    Every parameter must be filled with an equal shape and no source tensor may be left over
    (``num_batches_tracked`` and training state excepted; a classifier is ignored when the model has
    none). ``new_classifier``: the caller asked for another class count, so a classifier of another
    size is dropped with a warning (fine-tuning). ``new_in_channels``: an RGB first convolution is
    adapted to the model's input channels with a warning.
    """
    source = network_weights(source)
    params = {p.name: p for p in model.get_parameters()}
    targets = {name: tuple(p.shape) for name, p in params.items()}
    mapped = _to_model_names(source, targets, getattr(model, "avg_down", False))
    cfg = getattr(model, "default_cfg", {}) or {}
    classifier = cfg.get("classifier", "fc")
    first_conv = cfg.get("first_conv", "conv1")

    if getattr(model, "fc", None) is None:  # head-less or features_only: the classifier is not used
        mapped = {k: v for k, v in mapped.items() if not k.startswith(classifier + ".")}
    mismatched = {k for k in mapped.keys() & targets.keys() if tuple(mapped[k].shape) != targets[k]}
    conv_key = f"{first_conv}.weight"
    if conv_key in mismatched and new_in_channels and mapped[conv_key].shape[1] == 3:
        warnings.warn(f"{origin}: adapting the RGB first convolution to {targets[conv_key][1]} input channels",
                      stacklevel=3)
        mapped[conv_key] = _adapt_first_conv(mapped[conv_key], targets[conv_key][1])
        mismatched.discard(conv_key)
    head_keys = {k for k in mismatched if k.startswith(classifier + ".")}

    missing = targets.keys() - mapped.keys()
    unexpected = mapped.keys() - targets.keys()
    if missing or unexpected or mismatched - head_keys:  # another network: report everything
        problems = []
        if missing:
            problems.append(f"{len(missing)} model parameters missing from the file ({_brief(missing)})")
        if unexpected:
            problems.append(f"{len(unexpected)} tensors the model does not have ({_brief(unexpected)})")
        if mismatched:
            problems.append(f"{len(mismatched)} shape mismatches (" + _brief(
                f"{k}: file {tuple(mapped[k].shape)} vs model {targets[k]}" for k in mismatched) + ")")
        name = getattr(model, "default_cfg", {}).get("architecture", type(model).__name__)
        raise CheckpointError(f"{origin} does not fit model '{name}': " + "; ".join(problems))
    if head_keys:  # the same network with another class count
        classes = mapped[f"{classifier}.weight"].shape[0]
        if not new_classifier:
            raise CheckpointError(
                f"{origin}: its classifier has {classes} classes but the model has {model.num_classes}; "
                f"pass num_classes={classes} (--num_classes {classes}), or another count to fine-tune a new classifier")
        warnings.warn(f"{origin}: dropping its {classes}-class classifier, the model's "
                      f"{model.num_classes}-class classifier starts from its initialisation", stacklevel=3)
        for key in [k for k in mapped if k.startswith(classifier + ".")]:
            del mapped[key]
            targets.pop(key)
    return {k: np.ascontiguousarray(mapped[k], dtype=np.float32) for k in targets}  # without a dropped classifier


def load_checkpoint(model: ms.nn.Cell, path: str, new_classifier: bool = False,
                    new_in_channels: bool = False, state: Optional[Dict[str, np.ndarray]] = None) -> ms.nn.Cell:
    """Load any supported weight file into ``model`` in place (strict; see ``map_state_dict``).

    ``state``: the file's tensors when the caller has already read them (``read_state_dict(path)``).
    """
    state = read_state_dict(path) if state is None else state
    weights = map_state_dict(state, model, new_classifier, new_in_channels, origin=str(path))
    for param in model.get_parameters():
        if param.name in weights:  # absent only for a classifier dropped for fine-tuning
            param.set_data(ms.Tensor(weights[param.name], dtype=param.dtype))
    return model


# ---------------------------------------------------------------------------------------------- writing


@contextmanager
def atomic_path(path: str, suffix: str = "") -> Iterator[str]:
    """A temporary path in ``path``'s folder that is renamed to ``path`` only if the block succeeds.

    The temporary name is ``.partial-<random><suffix>`` (MindSpore insists on a '.ckpt' suffix): a partial
    file never carries a checkpoint's name, and it is removed on error.
    """
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".partial-", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_weights(weights: Dict[str, np.ndarray], path: str, fmt: Optional[str] = None,
                 metadata: Optional[dict] = None) -> str:
    """Write ``{name: array}`` atomically as a MindSpore ``.ckpt`` or ``.safetensors`` (by ``fmt`` or suffix)."""
    fmt = fmt or ("safetensors" if str(path).endswith(".safetensors") else "ckpt")
    if fmt not in ("ckpt", "safetensors"):
        raise ValueError(f"unknown weight format '{fmt}' (use ckpt or safetensors)")
    with atomic_path(path, suffix=".ckpt" if fmt == "ckpt" else "") as tmp:
        if fmt == "safetensors":
            from safetensors.numpy import save_file

            save_file({k: np.ascontiguousarray(v) for k, v in weights.items()}, tmp,
                      metadata={"json": json.dumps(metadata)} if metadata else None)
        else:
            entries = [{"name": k, "data": ms.Tensor(v)} for k, v in weights.items()]
            ms.save_checkpoint(entries, tmp, append_dict={"metadata": json.dumps(metadata)} if metadata else None)
    return str(path)
