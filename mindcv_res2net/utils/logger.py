"""Logging to the console and a run's log file, and the per-epoch metrics CSV."""
import csv
import logging
import os
import sys
import time
from typing import Optional, TextIO

from tqdm import tqdm

from .fileio import atomic_path

LOGGER_NAME = "mindcv_res2net"


class _HeldRecords(logging.Handler):
    """The records logged before a run may write its log file (its folder not yet known to be its own),
    kept for that file: at most ``limit``, the rest counted."""

    def __init__(self, limit: int = 100_000) -> None:
        super().__init__()
        self.records, self.limit, self.dropped = [], limit, 0

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.records) < self.limit:
            self.records.append(record)
        else:
            self.dropped += 1


class PlainProgress:
    """Progress as plain lines, for a log file or a pipe: ``DESC: STEP/TOTAL steps (P%), S s, key=value...``,
    written when the step count crosses a tenth of ``total`` or ``interval`` seconds after the last line
    (only the latter when ``total`` is unknown). The same calls as a tqdm bar (``update``, ``set_postfix``)."""

    def __init__(self, total: Optional[int], desc: str, stream: TextIO, interval: float = 60.0,
                 enabled: bool = True, initial: int = 0) -> None:
        self.total, self.desc, self.stream, self.interval, self.enabled = total, desc, stream, interval, enabled
        self.n, self.postfix = initial, {}
        self.start = self.last_line = time.perf_counter()

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def set_postfix(self, refresh: bool = True, **values) -> None:
        """Values shown on the next line (``refresh`` is tqdm's; a plain line is written only by ``update``)."""
        self.postfix = values

    def update(self, n: int = 1) -> None:
        before, self.n = self.n, self.n + n
        now = time.perf_counter()
        tenth = bool(self.total) and self.n * 10 // self.total > before * 10 // self.total
        if not self.enabled or not (tenth or now - self.last_line >= self.interval):
            return
        self.last_line = now
        of = f"/{self.total} steps ({100 * self.n // self.total}%)" if self.total else " steps"
        values = "".join(f", {key}={value}" for key, value in self.postfix.items())
        print(f"{self.desc}: {self.n}{of}, {now - self.start:.0f} s{values}", file=self.stream, flush=True)


def progress_bar(total: Optional[int], desc: str, enabled: bool = True, leave: bool = True, initial: int = 0):
    """A tqdm bar (on stderr) when stdout is a terminal, else ``PlainProgress`` lines on stdout, between the
    log's own lines: no carriage returns in a log file or a pipe. ``enabled=False``: silent; ``initial``: steps
    already done (a resumed epoch)."""
    if sys.stdout.isatty():
        return tqdm(total=total, desc=desc, disable=not enabled, leave=leave, dynamic_ncols=True, initial=initial)
    return PlainProgress(total, desc, sys.stdout, enabled=enabled, initial=initial)


def setup_logger(enabled: bool = True) -> logging.Logger:
    """The package logger: INFO to stdout, every record also held for ``log_to_file``.

    ``enabled=False`` (data-parallel ranks other than 0) logs warnings only, to stderr, and holds nothing.
    """
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.INFO if enabled else logging.WARNING)
    console = logging.StreamHandler(sys.stdout if enabled else sys.stderr)
    console.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(console)
    if enabled:
        logger.addHandler(_HeldRecords())
    return logger


def log_to_file(logger: logging.Logger, path: str) -> None:
    """From now on, append the logger's records to ``path`` too; the records held so far go first."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    for held in [h for h in logger.handlers if isinstance(h, _HeldRecords)]:
        for record in held.records:
            handler.handle(record)
        if held.dropped:
            handler.handle(logger.makeRecord(logger.name, logging.WARNING, __file__, 0,
                                             f"{held.dropped} earlier lines went to the console only", (), None))
        logger.removeHandler(held)
    logger.addHandler(handler)


class MetricsCSV:
    """One row per epoch in ``path`` (header written once), each row flushed as it is appended.

    ``keep_until_epoch`` (resuming): the rows of later epochs, which the run will train again, are
    dropped; the file is rewritten atomically, so a kill at any moment never loses the earlier rows.
    A row cut short by a kill is dropped when the file is read back.
    """

    FIELDS = ("epoch", "train_loss", "train_top1", "lr", "val_loss", "val_top1", "val_top5", "epoch_seconds",
              "img_per_s")

    def __init__(self, path: str, keep_until_epoch: int = None, owner: str = "anon") -> None:
        self.path = path
        rows = []
        if keep_until_epoch is not None and os.path.isfile(path):
            with open(path, newline="", errors="replace") as f:
                rows = [r for r in csv.DictReader(f) if self._complete(r) and int(r["epoch"]) <= keep_until_epoch]
        with atomic_path(path, owner=owner) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.FIELDS)
            writer.writeheader()
            writer.writerows(rows)

    def _complete(self, row: dict) -> bool:
        return str(row.get("epoch", "")).isdigit() and row.get(self.FIELDS[-1]) not in (None, "")

    def append(self, **row) -> None:
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.FIELDS).writerow({k: row.get(k, "") for k in self.FIELDS})
