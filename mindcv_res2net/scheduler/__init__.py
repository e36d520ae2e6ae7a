"""Per-step learning-rate schedules with linear warm-up (mindcv's names and keys)."""
import math
from typing import Optional, Sequence

import numpy as np

from ..utils.argtypes import ConfigError

# Each schedule by name, with the flags (besides the lr and warm-up ones) that ``create_scheduler`` reads for it
SCHEDULER_FLAGS = {"cosine_decay": ("min_lr", "decay_epochs"), "step_decay": ("decay_epochs", "decay_rate"),
                   "multi_step_decay": ("decay_rate", "multi_step_decay_milestones"), "constant": ()}
SCHEDULERS = tuple(SCHEDULER_FLAGS)


def create_scheduler(name: str, lr: float, *, steps_per_epoch: int, epochs: int, warmup_epochs: int = 0,
                     warmup_factor: float = 0.0, min_lr: float = 0.0, decay_epochs: Optional[int] = None,
                     decay_rate: float = 0.1, milestones: Sequence[int] = (30, 60, 90),
                     lr_epoch_stair: bool = False) -> np.ndarray:
    """Learning rate of every optimisation step, shape (epochs * steps_per_epoch,) float32.

    Warm-up rises linearly from ``lr * warmup_factor`` to ``lr`` over ``warmup_epochs``. Then
    ``cosine_decay`` falls to ``min_lr`` over ``decay_epochs`` (default: the remaining epochs) and stays
    there; ``step_decay`` multiplies by ``decay_rate`` every ``decay_epochs``; ``multi_step_decay`` at each
    milestone epoch; ``constant`` keeps ``lr``. ``lr_epoch_stair`` holds each epoch's first value.
    """
    if name not in SCHEDULERS:
        raise ConfigError(f"--scheduler must be one of {', '.join(SCHEDULERS)}, got '{name}'")
    if steps_per_epoch <= 0 or epochs <= 0:
        raise ValueError(f"need at least one epoch and one step per epoch, got {epochs} x {steps_per_epoch}")
    decay_epochs = decay_epochs or max(epochs - warmup_epochs, 1)
    if name == "step_decay" and decay_epochs <= 0:
        raise ConfigError("--decay_epochs must be positive for step_decay")
    total = epochs * steps_per_epoch
    warmup_steps = warmup_epochs * steps_per_epoch
    values = np.empty(total, np.float64)
    for step in range(total):
        at = (step // steps_per_epoch) * steps_per_epoch if lr_epoch_stair else step
        epoch = at / steps_per_epoch
        if at < warmup_steps:
            values[step] = lr * (warmup_factor + (1.0 - warmup_factor) * at / warmup_steps)
            continue
        after = epoch - warmup_epochs
        if name == "cosine_decay":
            progress = min(after / decay_epochs, 1.0)
            values[step] = min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))
        elif name == "step_decay":
            values[step] = lr * decay_rate ** math.floor(after / decay_epochs)
        elif name == "multi_step_decay":
            values[step] = lr * decay_rate ** sum(epoch >= m for m in milestones)
        else:
            values[step] = lr
    return values.astype(np.float32)
