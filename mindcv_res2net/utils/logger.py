"""Logging to the console and a run's log file, the per-epoch metrics CSV, and copies of a user's files set
aside before they are replaced."""
import csv
import io
import itertools
import logging
import os
import shutil
import sys
import time
from typing import List, Optional, Sequence, TextIO, Tuple

from tqdm import tqdm

from .fileio import atomic_path

LOGGER_NAME = "mindcv_res2net"
FILE_ONLY = {"file_only": True}  # ``logger.info(text, extra=FILE_ONLY)``: a line for the log file, not the console


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

    def __init__(self, total: Optional[int], desc: str, stream: TextIO, *, interval: float = 60.0,
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


def progress_bar(total: Optional[int], desc: str, *, enabled: bool = True, leave: bool = True, initial: int = 0):
    """A tqdm bar (on stderr) when stdout is a terminal, else ``PlainProgress`` lines on stdout, between the
    log's own lines: no carriage returns in a log file or a pipe. ``enabled=False``: silent; ``initial``: steps
    already done (a resumed epoch)."""
    if sys.stdout.isatty():
        return tqdm(total=total, desc=desc, disable=not enabled, leave=leave, dynamic_ncols=True, initial=initial)
    return PlainProgress(total, desc, sys.stdout, enabled=enabled, initial=initial)


def setup_logger(enabled: bool = True) -> logging.Logger:
    """The package logger: INFO to stdout (but records logged with ``extra=FILE_ONLY``), every record also held
    for ``log_to_file``.

    ``enabled=False`` (data-parallel ranks other than 0) logs warnings only, to stderr, and holds nothing.
    """
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.INFO if enabled else logging.WARNING)
    console = logging.StreamHandler(sys.stdout if enabled else sys.stderr)
    console.setFormatter(logging.Formatter("%(message)s"))
    console.addFilter(lambda record: not getattr(record, "file_only", False))
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


def timestamp() -> str:
    """The local time as ``YYYYmmdd-HHMMSS``, for the names of files set aside."""
    return time.strftime("%Y%m%d-%H%M%S")


def keep_copy(path: str, label: str) -> str:
    """Copy ``path`` byte for byte to a new file ``<path>.<label>-<timestamp>`` beside it (``-2``, ``-3``... when
    that name is taken: an existing file is never replaced); returns the copy's path."""
    stamp = timestamp()
    for n in itertools.count(1):
        target = f"{path}.{label}-{stamp}" + (f"-{n}" if n > 1 else "")
        if os.path.lexists(target):
            continue
        with atomic_path(target, replace=False) as tmp:
            shutil.copyfile(path, tmp)
        return target


METRICS_FIELDS = ("epoch", "train_loss", "train_top1", "lr", "val_loss", "val_top1", "val_top5", "epoch_seconds",
                  "img_per_s")
_ALWAYS_WRITTEN = ("train_loss", "train_top1", "lr", "epoch_seconds", "img_per_s")  # val_* only when validated
MAX_METRICS_BYTES = 16 << 20  # a row is about 100 bytes: 160,000 epochs


def metrics_epoch(row: dict) -> Optional[int]:
    """A metrics row's epoch (``3``, or ``3.0`` as a spreadsheet may write it); None if it is not one."""
    try:
        value = float(str(row.get("epoch", "")).strip())
    except ValueError:
        return None
    return int(value) if value.is_integer() and 1 <= value < 1e9 else None


def read_metrics(path: str) -> Tuple[Optional[List[str]], List[dict], Optional[str]]:
    """A run's ``metrics.csv`` as train.py writes it or as a user's tools save it back: UTF-8 with or without
    a byte-order mark, CRLF or LF line ends, quoted fields, extra or reordered columns, blank lines.

    Returns (its columns, its rows as {column: text}, None); or, when it cannot be read as a metrics file,
    (the columns or None, the complete rows that could be read, what is wrong).
    """
    with open(path, "rb") as f:
        data = f.read(MAX_METRICS_BYTES + 1)
    if len(data) > MAX_METRICS_BYTES:
        return None, [], f"larger than {MAX_METRICS_BYTES} bytes"
    try:
        text = data.decode("utf-8-sig")
        lines = [row for row in csv.reader(io.StringIO(text, newline=""), strict=True)
                 if any(cell.strip() for cell in row)]
    except UnicodeDecodeError as exc:
        return None, [], f"not UTF-8 text (byte {exc.start})"
    except csv.Error as exc:
        return None, [], f"not CSV ({exc})"
    if not lines:
        return None, [], "no header line"
    header = [name.strip() for name in lines[0]]
    named = [name for name in header if name]
    missing = [name for name in METRICS_FIELDS if name not in named]
    if missing or len(set(named)) < len(named):
        what = f"no column {', '.join(missing)}" if missing else "a column name given twice"
        return None, [], f"its header {','.join(header)[:200]!r} has {what}"
    rows, problem = [], None
    for number, cells in enumerate(lines[1:], 2):
        extra = any(cell.strip() for cell in cells[len(header):])
        row = {name: cell for name, cell in zip(header, cells) if name}
        complete = not extra and metrics_epoch(row) is not None and all(row.get(k, "").strip() for k in _ALWAYS_WRITTEN)
        if complete and not any(cell.strip() for name, cell in zip(header, cells) if not name):
            rows.append({name: row.get(name, "") for name in named})
        elif problem is None:
            problem = f"row {number} ({','.join(cells)[:100]!r}) is not a complete metrics row"
    return named, rows, problem


class MetricsCSV:
    """One row per epoch in ``path`` (header written once), each row flushed as it is appended.

    An existing file is continued: read as ``read_metrics`` reads it (a user's tools may have saved it back),
    its columns kept in their order. ``keep_until_epoch`` (resuming): the rows of later epochs, which the run
    trains again, are dropped (the caller keeps a copy of them); the file is then rewritten atomically, so a
    kill at any moment never loses the earlier rows. A file that cannot be read as metrics (a row cut short by
    a kill, other bytes) is kept as ``metrics.csv.unreadable-<time>`` beside the new one, with a warning
    naming both, and the new file starts with the rows that could be read.
    """

    FIELDS = METRICS_FIELDS

    def __init__(self, path: str, keep_until_epoch: Optional[int] = None, owner: str = "anon") -> None:
        self.path, self.owner, self.fields = path, owner, list(self.FIELDS)
        if not os.path.lexists(path) or os.path.getsize(path) == 0:
            self._rewrite(self.fields, [])
            return
        fields, rows, problem = read_metrics(path)
        kept = [r for r in rows if keep_until_epoch is None or metrics_epoch(r) <= keep_until_epoch]
        self.fields = fields or self.fields
        if problem:
            aside = keep_copy(path, "unreadable")
            logging.getLogger(LOGGER_NAME).warning(
                f"{path}: cannot be read as this run's metrics: {problem}; the file is kept as {aside}, and "
                f"{os.path.basename(path)} goes on with the {len(kept)} complete row(s) read from it")
            self._rewrite(self.fields, kept)
        elif len(kept) < len(rows):
            self._rewrite(self.fields, kept)
        else:  # continued as it is: rows are appended after its own bytes
            with open(path, "rb+") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) not in (b"\n", b"\r"):
                    f.write(b"\r\n")

    def _rewrite(self, fields: Sequence[str], rows: List[dict]) -> None:
        with atomic_path(self.path, owner=self.owner) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)

    def append(self, **row) -> None:
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.fields).writerow({k: row.get(k, "") for k in self.fields})
