"""Logging to the console and a run's log file, and the per-epoch metrics CSV."""
import csv
import logging
import os
import sys

from .fileio import atomic_path

LOGGER_NAME = "mindcv_res2net"


def setup_logger(log_dir: str = None, file_name: str = "train.log", enabled: bool = True) -> logging.Logger:
    """The package logger: INFO to stdout and, with ``log_dir``, to ``log_dir/file_name``.

    ``enabled=False`` (data-parallel ranks other than 0) logs warnings only, to stderr.
    """
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.INFO if enabled else logging.WARNING)
    console = logging.StreamHandler(sys.stdout if enabled else sys.stderr)
    console.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(console)
    if log_dir and enabled:
        os.makedirs(log_dir, exist_ok=True)
        handler = logging.FileHandler(os.path.join(log_dir, file_name))
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    return logger


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
