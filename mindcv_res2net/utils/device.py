"""The one device and execution-mode setup of the package."""
import logging
from dataclasses import dataclass

import mindspore as ms
from mindspore import log as ms_log

from .argtypes import ConfigError

DEVICE_TARGETS = ("CPU", "GPU", "Ascend")
MODES = {0: ms.GRAPH_MODE, 1: ms.PYNATIVE_MODE}  # --mode (mindcv's numbers) -> MindSpore's execution mode
MODE_BY_NAME = {"graph": 0, "pynative": 1}  # the same modes by name (the benchmark's --modes) -> --mode
# MindSpore's automatic mixed precision levels (ms.amp.auto_mixed_precision): O0 float32 throughout, O1 float16
# on a white list of operators, O2 float16 but BatchNorm and the loss, O3 float16 throughout
AMP_LEVELS = ("O0", "O1", "O2", "O3")


def normalize_device_target(target: str) -> str:
    """'cpu' -> 'CPU', 'ascend' -> 'Ascend'; a clear error for anything else."""
    for known in DEVICE_TARGETS:
        if str(target).lower() == known.lower():
            return known
    raise ConfigError(f"--device_target must be one of {', '.join(DEVICE_TARGETS)}, got '{target}'")


def set_device(target: str = "CPU", mode: int = 1, device_id: int = None) -> str:
    """Select the device and the execution mode (0 = Graph, 1 = PyNative); returns the device name.

    Asking for a GPU or Ascend device that this MindSpore installation cannot reach is a clear error.
    """
    target = normalize_device_target(target)
    if mode not in MODES:
        raise ConfigError(f"--mode must be 0 (Graph) or 1 (PyNative), got {mode}")
    if target != "CPU" and not _device_available(target):
        raise ConfigError(f"--device_target {target}: no usable {target} device or driver on this machine "
                          "(use --device_target CPU)")
    if device_id is None:
        ms.set_device(target)
    else:
        ms.set_device(target, device_id)
    ms.set_context(mode=MODES[mode])
    return target


def _device_available(target: str) -> bool:
    """Whether this MindSpore installation can reach ``target``, without MindSpore's own multi-line
    warnings about plugins it could not load (the caller reports the outcome in one line)."""
    logger = ms_log._get_logger()  # pylint: disable=protected-access
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return ms.hal.is_available(target)
    finally:
        logger.setLevel(level)


@dataclass(frozen=True, kw_only=True)
class TrainingPlan:
    """What a device supports of the requested precision, loss scaling and data feeding."""

    amp_level: str  # O0-O3
    loss_scale: float  # initial (dynamic) or fixed loss scale
    dynamic_loss_scale: bool
    dataset_sink_mode: bool
    notes: tuple  # one line per request that was changed, for the log


def plan_training(target: str, *, amp_level: str = "O0", loss_scale: float = 1.0, dynamic_loss_scale: bool = False,
                  dataset_sink_mode: bool = False) -> TrainingPlan:
    """The per-device decisions of training, in one place.

    CPU: float16 gives no speed-up and MindSpore rejects dynamic loss scaling there, and dataset sink
    mode falls back silently; so CPU trains in O0 with a fixed loss scale and without sinking, and says
    so. GPU and Ascend take every request as it is.
    """
    target = normalize_device_target(target)
    if amp_level not in AMP_LEVELS:
        raise ConfigError(f"--amp_level must be {', '.join(AMP_LEVELS[:-1])} or {AMP_LEVELS[-1]}, got '{amp_level}'")
    if loss_scale <= 0:
        raise ConfigError(f"--loss_scale must be positive, got {loss_scale}")
    notes = []
    if target == "CPU":
        if amp_level != "O0":
            notes.append(f"--amp_level {amp_level} is not supported on CPU (no float16 speed-up there): training in O0")
            amp_level = "O0"
        if dynamic_loss_scale:
            notes.append(f"--dynamic_loss_scale is not supported on CPU: using the fixed --loss_scale {loss_scale:g}")
            dynamic_loss_scale = False
        if dataset_sink_mode:
            notes.append("--dataset_sink_mode has no effect on CPU: feeding batches from the host")
            dataset_sink_mode = False
    return TrainingPlan(amp_level=amp_level, loss_scale=float(loss_scale), dynamic_loss_scale=dynamic_loss_scale,
                        dataset_sink_mode=dataset_sink_mode, notes=tuple(notes))
