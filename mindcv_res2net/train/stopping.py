"""Stopping a training run on SIGINT (Ctrl-C) or SIGTERM (a cluster's preemption) at a step boundary."""
import signal
from typing import Optional

import mindspore as ms
from mindspore import ops

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """While active (``with StopSignals() as stop:``), SIGINT and SIGTERM only record that a stop was asked
    for; the training loop asks ``agreed(group_size)`` after every step and stops there.

    The handlers are installed explicitly, so a SIGINT inherited as ignored (a job started with ``&`` from a
    script) stops the run too. A second signal while the checkpoint is written changes nothing (checkpoints
    are written under a temporary name and renamed; SIGKILL still ends the process at once). The previous
    handlers are restored on leaving the block. MindSpore 2.10 turns a SIGINT that arrives while it runs a step
    into a SIGTERM to its own process, so a Ctrl-C is mostly recorded as SIGTERM.
    """

    def __init__(self) -> None:
        self.signum: Optional[int] = None  # the first signal received
        self._previous: dict = {}
        self._all_reduce: Optional[ops.AllReduce] = None

    def __enter__(self) -> "StopSignals":
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._record)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _record(self, signum, _frame) -> None:
        if self.signum is None:
            self.signum = signum

    def agreed(self, group_size: int = 1) -> bool:
        """Whether the run stops now: this process received a signal, or (data-parallel) any rank did.

        With several ranks every rank must call it at the same steps: one all-reduce (sum; MindSpore's CPU
        AllReduce takes float32 only) of a (2,) float32 vector counting SIGINT and SIGTERM, so that all ranks
        stop after the same step; a rank that received none takes the signal most ranks received.
        """
        if group_size == 1:
            return self.signum is not None
        if self._all_reduce is None:
            self._all_reduce = ops.AllReduce(ops.ReduceOp.SUM)
        counts = self._all_reduce(ms.Tensor([float(self.signum == s) for s in STOP_SIGNALS], ms.float32)).asnumpy()
        if counts.max() > 0 and self.signum is None:
            self.signum = signal.SIGINT if counts[0] > counts[1] else signal.SIGTERM
        return bool(counts.max() > 0)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    @property
    def exit_code(self) -> int:
        """The shell's code for a process ended by the signal: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + int(self.signum) if self.signum else 0
