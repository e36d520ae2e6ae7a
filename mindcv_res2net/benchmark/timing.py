"""Wall-clock medians of repeated calls and the process's peak resident memory."""
import statistics
import time
from typing import Callable, Tuple


def timed(fn: Callable[[], object], *, repeats: int, warmup: int, progress) -> Tuple[float, float]:
    """(first call seconds, median seconds of ``repeats`` calls after ``warmup`` more); ``progress`` (a
    tqdm bar) advances once per call."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    progress.update()
    for _ in range(warmup):
        fn()
        progress.update()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        progress.update()
    return first, statistics.median(times)


def reset_peak_memory() -> bool:
    """Restart the kernel's peak resident-memory count (VmHWM) from the current size; False where it
    cannot (not Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_memory_mb() -> float:
    """Peak resident memory (MB) since the process started or ``reset_peak_memory``, VmHWM of /proc/self/status.

    Unlike ``ru_maxrss``, it does not include the size of the process that started this one."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:"))
