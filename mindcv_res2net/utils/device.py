"""The one device and execution-mode setup of the package."""
import mindspore as ms

DEVICE_TARGETS = ("CPU", "GPU", "Ascend")
MODES = {0: ms.GRAPH_MODE, 1: ms.PYNATIVE_MODE}


def normalize_device_target(target: str) -> str:
    """'cpu' -> 'CPU', 'ascend' -> 'Ascend'; a clear error for anything else."""
    for known in DEVICE_TARGETS:
        if str(target).lower() == known.lower():
            return known
    raise ValueError(f"--device_target must be one of {', '.join(DEVICE_TARGETS)}, got '{target}'")


def set_device(target: str = "CPU", mode: int = 1, device_id: int = None) -> str:
    """Select the device and the execution mode (0 = Graph, 1 = PyNative); returns the device name.

    Asking for a GPU or Ascend device that this MindSpore installation cannot reach is a clear error.
    """
    target = normalize_device_target(target)
    if mode not in MODES:
        raise ValueError(f"--mode must be 0 (Graph) or 1 (PyNative), got {mode}")
    if target != "CPU" and not ms.hal.is_available(target):
        raise ValueError(f"--device_target {target}: no usable {target} device or driver on this machine "
                         "(use --device_target CPU)")
    if device_id is None:
        ms.set_device(target)
    else:
        ms.set_device(target, device_id)
    ms.set_context(mode=MODES[mode])
    return target


def resolve_amp_level(target: str, amp_level: str) -> tuple:
    """(AMP level to use, note or ''): CPU kernels gain nothing from float16, so CPU always runs O0."""
    if amp_level not in ("O0", "O1", "O2", "O3"):
        raise ValueError(f"--amp_level must be O0, O1, O2 or O3, got '{amp_level}'")
    if target == "CPU" and amp_level != "O0":
        return "O0", f"--amp_level {amp_level} is not supported on CPU (no float16 speed-up there): training in O0"
    return amp_level, ""
