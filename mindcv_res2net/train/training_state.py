"""A training step's checkpoint tensors: the network's weights, the optimizer's state and the EMA
averages under the names of ``weights.checkpoint_layout``, and putting them back to resume."""
from typing import Dict, List, Tuple

import mindspore as ms
import numpy as np

from ..weights import CheckpointError
from ..weights.checkpoint_layout import EMA_PREFIX, OPTIMIZER_PREFIX


def _optimizer_state(train_step) -> list:
    """Optimizer parameters that are state (step counter, moments): not network weights, and not the
    learning-rate table, which the config rebuilds."""
    model_ids = {id(p) for p in train_step.model.get_parameters()}
    return [p for p in train_step.optimizer.get_parameters()
            if id(p) not in model_ids and p.name != "learning_rate"]


def _checkpoint_entries(train_step, *, optimizer_state: bool = True) -> List[Tuple[str, ms.Parameter]]:
    """(checkpoint name, parameter) of everything a training checkpoint holds: the weights by name,
    ``optimizer.*`` state (unless ``optimizer_state`` is False) and, with EMA, the ``ema.*`` averages."""
    entries = [(p.name, p) for p in train_step.model.get_parameters()]
    if optimizer_state:
        entries += [(OPTIMIZER_PREFIX + p.name, p) for p in _optimizer_state(train_step)]
    if train_step.use_ema:
        entries += [(p.name, p) for p in train_step.ema]
    return entries


def training_state(train_step, *, optimizer_state: bool = True) -> Dict[str, np.ndarray]:
    """A ``TrainStep``'s checkpoint tensors (see ``_checkpoint_entries``)."""
    return {name: param.asnumpy() for name, param in _checkpoint_entries(train_step, optimizer_state=optimizer_state)}


def checkpoint_bytes(train_step, *, optimizer_state: bool = True) -> int:
    """Bytes of tensor data one training checkpoint of ``train_step`` holds (see ``_checkpoint_entries``);
    the file adds names, shapes and metadata (a few kB)."""
    return sum(int(param.nbytes) for _, param in _checkpoint_entries(train_step, optimizer_state=optimizer_state))


def restore_training_state(train_step, path: str, state: Dict[str, np.ndarray], *, updates_done: int) -> None:
    """Put a checkpoint of this run back into ``train_step`` from ``state``, the tensors read from ``path``:
    weights, optimizer state and EMA (strict; a clear error if absent). The optimizer's step counter is
    set to ``updates_done``, the position of the resumed epoch in this configuration's learning-rate
    schedule (it differs from the file's when the steps per epoch changed)."""
    missing = {}  # name: what the file holds instead
    for name, param in _checkpoint_entries(train_step):
        value = state.get(name)
        if value is not None and value.shape == (1,) and tuple(param.shape) == ():
            value = value.reshape(())  # a scalar as the writer of 048cc05 stored it (shape [1])
        if value is None or tuple(value.shape) != tuple(param.shape):
            missing[name] = "" if value is None else f" (shape {tuple(value.shape)}, not {tuple(param.shape)})"
            continue
        param.set_data(ms.Tensor(value, dtype=param.dtype))
    if missing and all(m.startswith(OPTIMIZER_PREFIX) for m in missing) \
            and not any(k.startswith(OPTIMIZER_PREFIX) for k in state):
        raise CheckpointError(f"{path}: holds no optimizer state (written with --save_optimizer_state false), so "
                              "it cannot be resumed; start a new run from its weights with --ckpt_path")
    if missing:
        hint = " (was it written with --ema?)" if any(m.startswith(EMA_PREFIX) for m in missing) else ""
        raise CheckpointError(f"{path}: cannot resume, {len(missing)} entries missing or of another shape"
                              f"{hint}: {', '.join(m + missing[m] for m in sorted(missing)[:6])}")
    step = getattr(train_step.optimizer, "global_step", None)
    if step is not None:
        step.set_data(ms.Tensor(np.full(step.shape, updates_done), dtype=step.dtype))
