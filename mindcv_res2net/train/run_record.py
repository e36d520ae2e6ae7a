"""A run's identity as data: ``run.json`` in its folder, ``{"id", "model", "created", "status"}``, written
atomically by the run and read back with bounds (a user may touch the file); and the error of a run folder.

``status`` is ``running`` while a process trains the run (or after one died or failed without a word: only a
live process holds the folder's ``.lock``), ``stopped`` after a signal stopped it, ``finished`` after its last
epoch, ``failed`` after an error ended it. Folders written before ``run.json`` name their run on the first
line of ``config.yaml`` (``# run <id>, model <name>``), which ``legacy_identity`` reads.
"""
import datetime
import json
import os
import re
import stat
from dataclasses import asdict, dataclass
from typing import Optional

from ..utils.errors import UserError
from ..utils.fileio import OWNER_PATTERN, atomic_path

RUN_FILE = "run.json"
MAX_RUN_FILE_BYTES = 4096  # ours are about 100 bytes
STATUSES = ("running", "stopped", "finished", "failed")
MODEL_NAME = re.compile(r"\S{1,100}")
MAX_CREATED_CHARS = 64
_LEGACY_LINE = re.compile(r"^# run ([A-Za-z0-9_-]{1,64}), model (\S{1,100})$")


class RunFolderError(UserError):
    """A run may not write in its ``--ckpt_save_dir``: the folder holds another run's files, another process
    trains there, or its ``run.json`` cannot be read."""


@dataclass(frozen=True, slots=True)
class RunRecord:
    """Which run a folder holds: its ``id`` (also in every checkpoint's metadata), the ``model`` it trains, when
    it was ``created`` (ISO 8601, local time with offset) and its ``status`` (``STATUSES``). A folder written
    before run.json has neither of the last two (None)."""

    id: str
    model: str
    created: Optional[str] = None
    status: Optional[str] = None


def now() -> str:
    """The current local time as run.json's ``created`` stores it."""
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def write_run_record(record: RunRecord, path: str, *, replace: bool = True) -> None:
    """Write ``record`` to ``path`` atomically. ``replace=False``: a file created there meanwhile (by another
    run claiming the folder) is kept, and that is a ``WriteError``."""
    with atomic_path(path, owner=record.id, replace=replace) as tmp, open(tmp, "w") as f:
        json.dump(asdict(record), f)
        f.write("\n")


def _problem(value) -> Optional[str]:
    """What makes a parsed run.json no run record (None: nothing)."""
    if not isinstance(value, dict):
        return "not a JSON object"
    missing = [key for key in ("id", "model", "created", "status") if key not in value]
    if missing:
        return f"no {', '.join(missing)}"
    if not isinstance(value["id"], str) or not OWNER_PATTERN.fullmatch(value["id"]):
        return "'id' is not 1 to 64 letters, digits, _ or -"
    if not isinstance(value["model"], str) or not MODEL_NAME.fullmatch(value["model"]):
        return "'model' is not a name of 1 to 100 characters without spaces"
    created = value["created"]
    if created is not None and not (isinstance(created, str) and 0 < len(created) <= MAX_CREATED_CHARS):
        return f"'created' is not null or a time of at most {MAX_CREATED_CHARS} characters"
    if value["status"] not in STATUSES:
        return f"'status' is not one of {', '.join(STATUSES)}"
    return None


def read_run_record(path: str) -> RunRecord:
    """The record in ``path`` (a regular file of at most ``MAX_RUN_FILE_BYTES``, UTF-8 JSON; other keys are
    ignored). Anything else is a one-line ``RunFolderError`` naming the file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO in its place is named, never waited on
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise RunFolderError(f"{path}: not a regular file, so no run record")
        with os.fdopen(fd, "rb") as f:
            data = f.read(MAX_RUN_FILE_BYTES + 1)
    except OSError as exc:
        raise RunFolderError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if len(data) > MAX_RUN_FILE_BYTES:
        problem: Optional[str] = f"more than {MAX_RUN_FILE_BYTES} bytes"
    else:
        try:
            value = json.loads(data.decode("utf-8"))
            problem = _problem(value)
        except (UnicodeDecodeError, ValueError, RecursionError):
            problem = "not UTF-8 JSON"
    if problem:
        raise RunFolderError(f"{path}: not a run record ({problem}); it names the run its folder holds: restore it, "
                             "or choose another --ckpt_save_dir")
    return RunRecord(value["id"], value["model"], value["created"], value["status"])


def legacy_identity(config_path: str) -> Optional[RunRecord]:
    """The run named by the first line of a ``config.yaml`` written before run.json existed; None without."""
    try:
        with open(config_path, errors="replace") as f:
            match = _LEGACY_LINE.match(f.readline(256).rstrip("\n"))
    except OSError:
        return None
    return RunRecord(match.group(1), match.group(2)) if match else None
