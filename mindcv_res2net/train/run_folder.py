"""The files of a training run in its folder: rotation, resume discovery and run identity.

``<model>-<epoch>_<steps>.ckpt`` is an epoch checkpoint (its layout: ``weights.checkpoint_layout``).
``<model>-<epoch>_<step>-interrupted.ckpt`` is written when a signal stops the run at step ``<step>`` of
epoch ``<epoch>`` (its metadata: ``epoch`` is the last completed one, ``step`` counts every step, and
``epoch_progress`` holds the partial epoch's sums for its metrics row); it is resumed like the others and
removed once a newer checkpoint of its run is written.

``<model>-best.ckpt`` is a copy of the run's best validated epoch. Every checkpoint a run writes
carries its identity, and so does its ``run.json`` (``run_record``; a folder written before run.json names
its run on the first line of ``config.yaml``): a run starts only in a folder that holds no other run's files
(``RunFolder.check_owner``), and counts, rotates, repairs and resumes only its own.

Without --ckpt_save_dir, a run gets a new folder of its own, ``runs/<model>-<dataset>-<YYYYmmdd-HHMMSS>`` in the
current folder (``default_run_folder``; ``make_run_folder`` adds ``-2``, ``-3``... to a name taken), and --resume
auto continues the newest of them (``runs_of``).

One process at a time trains in a run folder: it holds ``RunLock`` (``.lock``, not a run file). A run continued
from a checkpoint older than its newest sets the later ones aside in ``abandoned-<time>/``
(``RunCheckpoints.set_aside_later``), so that the folder always holds one line of epochs.
"""
import contextlib
import datetime
import errno
import fcntl
import itertools
import logging
import os
import re
import shutil
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from ..config import (INVOCATION_KEYS, SETTINGS_DIGEST, ConfigError, config_from_mapping, load_yaml_config,
                      resolve_stored_paths, settings_digest, shown_value)
from ..weights import CheckpointError, read_checkpoint_metadata, save_weights
from ..weights.checkpoint_layout import checked_metadata
from ..weights.formats import brief
from ..utils.fileio import PARTIAL_PREFIX, atomic_path, stale_partial_files
from ..utils.logger import metrics_epoch, read_metrics, timestamp
from .run_record import RUN_FILE, RunFolderError, RunRecord, legacy_identity, read_run_record

CONFIG_FILE, METRICS_FILE, LOG_FILE = "config.yaml", "metrics.csv", "train.log"  # with the checkpoints: a run's files
LOCK_FILE = ".lock"
ABANDONED_PREFIX = "abandoned-"
INTERRUPTED_SUFFIX = "-interrupted.ckpt"
# <model>-<epoch>_<steps>.ckpt, <model>-<epoch>_<step>-interrupted.ckpt, <model>-best.ckpt
_ANY_CHECKPOINT = re.compile(r"^(.+)-(?:(\d+)_\d+(?:-interrupted)?|best)\.ckpt$")


class RunLock:
    """The claim of the one process that trains in a run folder: ``fcntl.flock`` on ``<folder>/.lock``, held
    until ``release`` or the process's death (the kernel drops it then, whatever killed it).

    The file holds the holder's pid, host and start time, only for the message of a process that finds the
    lock taken. ``release`` removes it; a process that opened the removed file re-opens the new one, so two
    processes never hold it at once.
    """

    def __init__(self, folder: str, *, made_folder: bool = False) -> None:
        self.folder, self.path = folder, os.path.join(folder, LOCK_FILE)
        self.made_folder = made_folder  # made for this run: ``release`` removes it while it holds nothing
        self._fd: Optional[int] = None
        self._unsupported = False  # the file system has no locks (said once)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock (creating the folder if needed); nothing if it is held already. Another process's lock
        is a one-line ``RunFolderError`` naming the folder and the holder; a file system without locks gets a
        warning, and the run goes on unlocked."""
        if self._fd is not None or self._unsupported:
            return
        try:
            os.makedirs(self.folder, exist_ok=True)
            while True:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
                    os.close(fd)
                    if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                        self._unsupported = True
                        logging.getLogger(__package__.split(".")[0]).warning(
                            f"cannot lock {self.path} ({exc.strerror}): nothing stops a second process from training "
                            "in this run folder at the same time")
                        return
                    raise RunFolderError(f"--ckpt_save_dir {self.folder}: another process trains in this run folder "
                                         f"({holder or 'holder unknown'}); wait until it ends, or stop it, before "
                                         "continuing the run") from None
                if self._is_current(fd):
                    break
                os.close(fd)  # released and removed by its holder since we opened it: open the new one
        except OSError as exc:
            raise RunFolderError(f"--ckpt_save_dir {self.folder}: cannot lock {self.path} "
                                 f"({exc.strerror or exc})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
                  .encode(), 0)
        self._fd = fd

    def _is_current(self, fd: int) -> bool:
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)

    def release(self) -> None:
        """Remove the file and drop the lock (nothing if not held); then remove a folder made for the run
        (``made_folder``) that holds nothing: a run that failed before writing leaves no empty folder."""
        if self._fd is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass  # removed by hand, or a read-only folder: the lock is dropped all the same
            os.close(self._fd)
            self._fd = None
        if self.made_folder:
            with contextlib.suppress(OSError):  # not empty: the run's files are in it
                os.rmdir(self.folder)


RUNS_FOLDER = "runs"  # the default run folders' parent, in the current folder
_STAMP_FORMAT = "%Y%m%d-%H%M%S"  # ``utils.logger.timestamp``'s


def default_run_folder(model: str, dataset: str) -> str:
    """The folder a new run of ``model`` on ``dataset`` takes without --ckpt_save_dir (absolute):
    ``runs/<model>-<dataset>-<YYYYmmdd-HHMMSS>``, the time now (``make_run_folder`` makes it)."""
    return os.path.abspath(os.path.join(RUNS_FOLDER, f"{model}-{dataset}-{timestamp()}"))


def make_run_folder(path: str) -> str:
    """Make the new, empty folder ``path`` (and its parent), or ``path-2``, ``path-3``... the first name free: two
    runs started in the same second never share a folder. Returns the folder made; one that cannot be made is a
    one-line ``RunFolderError``."""
    folder, suffixes = path, itertools.count(2)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        while True:
            try:
                os.mkdir(folder)
                return folder
            except FileExistsError:
                folder = f"{path}-{next(suffixes)}"
    except OSError as exc:
        raise RunFolderError(f"cannot make the run folder {folder} ({exc.strerror or exc}); give --ckpt_save_dir "
                             "a folder where it can be made") from None


def _started(created: Optional[str], stamp: str) -> Optional[float]:
    """When a run started (seconds since the epoch): its run.json's ``created``, else the time its folder's name
    says (``stamp``); None if neither is a time."""
    if created:
        with contextlib.suppress(ValueError, OverflowError):
            return datetime.datetime.fromisoformat(created).timestamp()
    try:
        return time.mktime(time.strptime(stamp, _STAMP_FORMAT))
    except (ValueError, OverflowError):
        return None


def runs_of(root: str, model: str, dataset: str) -> List[str]:
    """The run folders of ``model`` on ``dataset`` in ``root`` named as ``default_run_folder`` names them (with
    ``make_run_folder``'s suffix), oldest first: by their run.json's ``created``, else the time in the name. A
    folder whose run.json (or older config.yaml) names no run of ``model`` is left out (an unreadable run.json
    is a ``RunFolderError`` naming it)."""
    pattern = re.compile(rf"{re.escape(model)}-{re.escape(dataset)}-([0-9]{{8}}-[0-9]{{6}})(?:-([0-9]{{1,9}}))?")
    found = []
    for name in os.listdir(root) if os.path.isdir(root) else ():
        match, path = pattern.fullmatch(name), os.path.join(root, name)
        if not match or not os.path.isdir(path):
            continue
        record = RunFolder(path, model).identity()
        started = _started(record.created, match.group(1)) if record is not None else None
        if record is not None and record.model == model and started is not None:
            found.append((started, int(match.group(2) or 1), path))
    return [path for *_, path in sorted(found)]


def new_run_id() -> str:
    """A fresh run identity (12 hex digits)."""
    return uuid.uuid4().hex[:12]


def run_config(config: Optional[dict], path: str) -> Optional[dict]:
    """A checkpoint's stored training config (metadata ``config``, a JSON object) checked and converted as
    a YAML config is; None stays None. A wrong key or value is a one-line ``CheckpointError`` naming ``path``."""
    if config is None:
        return None
    try:
        return config_from_mapping(config, f"{path} (metadata 'config')", strict=False)
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None


def run_metadata(metadata, path: str) -> dict:
    """``metadata`` as read from ``path`` (``weights.read_checkpoint``), checked (``checked_metadata``), with
    its ``config`` converted (``run_config``); {} when absent. Errors are one-line ``CheckpointError``s."""
    checked = checked_metadata(metadata, path)
    if checked.get("config") is not None:
        checked["config"] = run_config(checked["config"], path)
    return checked


def kept_checkpoints(epochs: int, *, start_epoch: int, save_interval: int, keep: int) -> int:
    """How many epoch checkpoints a run from ``start_epoch`` to ``epochs`` keeps at most: it saves every
    ``save_interval`` epochs and at its last, and keeps the newest ``keep``."""
    saves = len({e for e in range(start_epoch, epochs + 1) if e % save_interval == 0 or e == epochs})
    return min(keep, saves)


@dataclass(frozen=True)
class RunFile:
    """A file of some run in a run folder, and what it says about its run.

    ``run_id`` is None when the file names no run: ``metrics.csv`` and ``train.log`` never do, nor a
    ``config.yaml`` (unless a folder written before run.json names its run on its first line); a checkpoint
    without a run id (or unreadable) is ``claims_run`` with ``run_id`` None, a run that cannot be continued.
    """

    name: str
    claims_run: bool
    run_id: Optional[str] = None
    model: Optional[str] = None
    epoch: Optional[int] = None  # of an epoch checkpoint


class RunFolder:
    """The files of the runs in ``folder``: checkpoints of model ``model_name`` by run (rotation, resume
    discovery), and every run's files (ownership)."""

    def __init__(self, folder: str, model_name: str) -> None:
        self.folder, self.model_name = folder, model_name
        self.pattern = re.compile(rf"^{re.escape(model_name)}-(\d+)_(\d+)(?:-interrupted)?\.ckpt$")
        self._metadata_cache: Dict[Tuple[str, int, int], dict] = {}

    @property
    def best_path(self) -> str:
        return os.path.join(self.folder, f"{self.model_name}-best.ckpt")

    @property
    def config_path(self) -> str:
        return os.path.join(self.folder, CONFIG_FILE)

    @property
    def metrics_path(self) -> str:
        return os.path.join(self.folder, METRICS_FILE)

    @property
    def log_path(self) -> str:
        return os.path.join(self.folder, LOG_FILE)

    @property
    def record_path(self) -> str:
        return os.path.join(self.folder, RUN_FILE)

    def identity(self) -> Optional[RunRecord]:
        """The run the folder holds, as its ``run.json`` says (an unreadable one is a ``RunFolderError``), or,
        in a folder written before run.json, the first line of its ``config.yaml``; None without either."""
        if os.path.lexists(self.record_path):
            return read_run_record(self.record_path)
        return legacy_identity(self.config_path)

    def run_files(self) -> List[RunFile]:
        """Every file of a run in the folder, whichever model: ``<model>-<epoch>_<steps>.ckpt``,
        ``<model>-best.ckpt``, run.json, config.yaml, metrics.csv and train.log. Temporary files (``.partial-*``) are
        leftovers of killed processes, not a run's files, nor are ``.lock``, ``abandoned-*/`` and the copies
        set aside beside a run's files."""
        if not os.path.isdir(self.folder):
            return []
        files = []
        for name in sorted(os.listdir(self.folder)):
            if name.startswith(PARTIAL_PREFIX):
                continue
            match = _ANY_CHECKPOINT.match(name)
            if match:
                path = os.path.join(self.folder, name)
                metadata = (self.metadata(path) if os.path.isfile(path) else None) or {}
                epoch = metadata.get("epoch", int(match.group(2))) if match.group(2) else None
                files.append(RunFile(name, True, metadata.get("run_id"), metadata.get("model", match.group(1)), epoch))
            elif name == RUN_FILE:
                record = read_run_record(self.record_path)
                files.append(RunFile(name, True, record.id, record.model))
            elif name == CONFIG_FILE:
                owner = None if os.path.lexists(self.record_path) else legacy_identity(self.config_path)
                files.append(RunFile(name, owner is not None, *((owner.id, owner.model) if owner else ())))
            elif name in (METRICS_FILE, LOG_FILE):
                files.append(RunFile(name, False))
        return files

    def config_edits(self, run_settings: Mapping, settings: Mapping) -> Optional[str]:
        """What writing ``settings`` (flat keys, ``Settings.to_mapping``) as the folder's config.yaml would replace
        of a hand edit (None: nothing): the values, ``key: file's -> new``, where the file differs from both the
        run's own settings ``run_settings`` (the resumed checkpoint's) and ``settings``; or that it does not load.
        A file whose ``settings digest`` line matches its settings is as train.py wrote it, whatever its comments
        and layout; for a file without that line (written before it existed), every value that differs from the
        run's counts as an edit."""
        if not os.path.isfile(self.config_path):
            return None
        try:
            loaded = load_yaml_config(self.config_path, "train")
            with open(self.config_path, errors="replace") as f:
                head = [f.readline(256).rstrip("\n") for _ in range(2)]
        except (ConfigError, OSError) as exc:
            return f"replaced a hand-edited file that does not load ({exc})"
        recorded = next((m.group(1) for m in map(SETTINGS_DIGEST.match, head) if m), None)
        if recorded == settings_digest(loaded):
            return None
        loaded = resolve_stored_paths(loaded, self.config_path)[0]  # an older run's relative paths are no edit
        replaced = [f"{key}: {shown_value(loaded.get(key, '(absent)'))} -> {shown_value(settings[key])}"
                    for key in sorted(settings) if key not in INVOCATION_KEYS
                    and loaded.get(key) != run_settings.get(key, settings[key]) and loaded.get(key) != settings[key]]
        return f"replaced the hand-edited values {', '.join(replaced)}" if replaced else None

    def check_owner(self, run_id: str, resuming: Optional[str] = None) -> None:
        """Refuse (``RunFolderError``) unless the folder is empty or run ``run_id``'s: every file that names
        a run names this one, and files that name none (metrics.csv, train.log) come with one that does.

        Called before the run writes anything there. ``resuming``: the checkpoint run ``run_id`` continues
        from (None: a fresh run), for the message.
        """
        files = self.run_files()
        ours = any(f.run_id == run_id for f in files)
        foreign = [f for f in files if (f.run_id != run_id if f.claims_run else not ours)]
        if not foreign:
            return
        runs: Dict[Optional[str], List[RunFile]] = {}
        for f in foreign:
            if f.claims_run:
                runs.setdefault(f.run_id, []).append(f)
        whose = "; ".join(self._describe(run, run_files) for run, run_files in runs.items()) or "naming no run"
        held = f"{self.folder} holds " + ("another run's files" if len(runs) < 2 else f"the files of {len(runs)} "
                                          "other runs") + f" ({whose}: {brief(f.name for f in foreign)})"
        if resuming:
            raise RunFolderError(f"--ckpt_save_dir: {held}; run {run_id}, resumed from {resuming}, never writes "
                                 "over them: choose another --ckpt_save_dir")
        way_on = "choose another --ckpt_save_dir"
        if len(runs) == 1 and None not in runs:
            models = {f.model for f in next(iter(runs.values())) if f.model}
            model = f"--model {next(iter(models)):.100} " if len(models) == 1 and models != {self.model_name} else ""
            way_on = f"continue it with {model}--resume auto, or {way_on}"
        raise RunFolderError(f"--ckpt_save_dir: {held}; a fresh run never writes over them: {way_on}")

    @staticmethod
    def _describe(run: Optional[str], files: List[RunFile]) -> str:
        models = sorted({f"{f.model:.100}" for f in files if f.model})
        epochs = [f.epoch for f in files if f.epoch is not None]
        newest = f"newest epoch {max(epochs)}" if epochs else "no epoch checkpoint"
        return f"run {run or '(no id)'}, {', '.join(models) or 'model unknown'}, {newest}"

    def epoch_path(self, epoch: int, steps: int) -> str:
        return os.path.join(self.folder, f"{self.model_name}-{epoch}_{steps}.ckpt")

    def interrupted_path(self, epoch: int, step: int) -> str:
        """The checkpoint of a run stopped after step ``step`` of epoch ``epoch`` (both from 1)."""
        return os.path.join(self.folder, f"{self.model_name}-{epoch}_{step}{INTERRUPTED_SUFFIX}")

    @staticmethod
    def is_interrupted(path: str) -> bool:
        return path.endswith(INTERRUPTED_SUFFIX)

    def metadata(self, path: str) -> Optional[dict]:
        """A checkpoint's validated metadata ({} without), or None if the file is unreadable or crafted."""
        try:
            info = os.stat(path)
            key = (path, info.st_mtime_ns, info.st_size)
            if key not in self._metadata_cache:
                self._metadata_cache[key] = run_metadata(read_checkpoint_metadata(path), path)
            return self._metadata_cache[key]
        except (OSError, CheckpointError) as exc:
            logging.getLogger(__package__.split(".")[0]).warning(f"ignoring {path}: {exc}")
            return None

    def runs(self) -> Dict[Optional[str], List[Tuple[int, str]]]:
        """{run id (None: files without one): [(epoch, path), ...] oldest first} of the epoch and interrupted
        checkpoints; ``epoch`` is the last completed one, the order that of their ``step`` metadata."""
        return {run: [(epoch, path) for epoch, _, path in files] for run, files in self.positions().items()}

    def positions(self) -> Dict[Optional[str], List[Tuple[int, int, str]]]:
        """As ``runs``, with each checkpoint's ``step`` (steps done in all; 0 when its metadata has none):
        [(epoch, step, path), ...] oldest first."""
        if not os.path.isdir(self.folder):
            return {}
        runs: Dict[Optional[str], List[Tuple[int, int, str]]] = {}
        for name in sorted(os.listdir(self.folder)):
            match = self.pattern.match(name)
            path = os.path.join(self.folder, name)
            if not match or not os.path.isfile(path):
                continue
            metadata = self.metadata(path)
            if metadata is None:
                continue
            epoch = metadata.get("epoch", int(match.group(1)))
            runs.setdefault(metadata.get("run_id"), []).append((epoch, metadata.get("step", 0), path))
        return {run: sorted(files) for run, files in runs.items()}

    def resume_path(self) -> Optional[str]:
        """The newest checkpoint of the one run in the folder (``--resume auto``); None if there is none.

        With checkpoints of several runs it refuses, listing them: it never guesses whose weights to take.
        """
        runs = self.runs()
        if len(runs) > 1:
            listed = "; ".join(
                f"run {run or '(no id)'}: epochs {files[0][0]}-{files[-1][0]}, newest {os.path.basename(files[-1][1])}"
                for run, files in sorted(runs.items(), key=lambda item: item[1][-1][1]))
            raise CheckpointError(f"--resume auto: {self.folder} holds {self.model_name} checkpoints of {len(runs)} "
                                  f"runs ({listed}); choose one with --resume PATH")
        return next(iter(runs.values()))[-1][1] if runs else None


def checkpoint_to_evaluate(path: str, flag: str = "--ckpt_path", model_name: str = "") -> str:
    """``path`` itself when it is a file; for a training run's folder, its best checkpoint (else its
    newest epoch checkpoint, for a run without validation). The folder's model is the one its ``run.json``
    (or an older run's ``config.yaml``) names (``model_name``, when given, must agree). Errors name ``flag``
    and the path."""
    if not os.path.isdir(path):
        return path
    owner = RunFolder(path, model_name or "?").identity()
    if owner is None:
        raise CheckpointError(f"{flag} {path}: is a folder but not a training run's (no {RUN_FILE} or "
                              f"{CONFIG_FILE} naming its run); give a checkpoint file")
    if model_name and owner.model != model_name:
        raise CheckpointError(f"{flag} {path}: is a run of model '{owner.model}', not '{model_name}'")
    folder = RunFolder(path, owner.model)
    if os.path.isfile(folder.best_path):
        return folder.best_path
    newest = folder.resume_path()
    if newest is None:
        raise CheckpointError(f"{flag} {path}: the run of {owner.model} has written no checkpoint yet")
    return newest


class RunCheckpoints(RunFolder):
    """The files of one run (``run_id``): ``<model>-<epoch>_<steps>.ckpt`` at every save, the newest
    ``keep`` of *this run* kept, and ``<model>-best.ckpt``. Other runs' files are never deleted."""

    def __init__(self, folder: str, model_name: str, *, keep: int, run_id: str, logger: logging.Logger) -> None:
        super().__init__(folder, model_name)
        self.keep, self.run_id, self.logger = keep, run_id, logger

    def remove_leftovers(self) -> None:
        """Temporary files that this run's own killed processes left behind (never a folder, nor a file
        that a live process is still writing)."""
        for path in stale_partial_files(self.folder, self.run_id):
            os.remove(path)
            self.logger.info(f"removed {path}, left by a killed process of this run")

    def save(self, state: Dict[str, np.ndarray], metadata: dict, *, epoch: int, steps: int, is_best: bool) -> str:
        """Write the epoch's checkpoint, then the best copy, then drop this run's oldest epoch checkpoints and
        its interrupted ones."""
        path = self.epoch_path(epoch, steps)
        if os.path.isfile(path) and (self.metadata(path) or {}).get("run_id") != self.run_id:
            self.logger.warning(f"replacing {path}, a checkpoint of another run")
        save_weights(state, path, metadata=dict(metadata, run_id=self.run_id), owner=self.run_id)
        if is_best:
            self._copy_to_best(path)
        own = [p for _, p in self.runs().get(self.run_id, []) if not self.is_interrupted(p)]
        for old in own[:-self.keep] + self._interrupted_files():
            if old != path:
                os.remove(old)
        return path

    def save_interrupted(self, state: Dict[str, np.ndarray], metadata: dict, *, epoch: int, step: int) -> str:
        """Write the checkpoint of a run stopped after step ``step`` of epoch ``epoch``; drop this run's older
        interrupted checkpoints."""
        path = self.interrupted_path(epoch, step)
        older = self._interrupted_files()
        save_weights(state, path, metadata=dict(metadata, run_id=self.run_id), owner=self.run_id)
        for old in older:
            if old != path:
                os.remove(old)
        return path

    def _interrupted_files(self) -> List[str]:
        return [p for _, p in self.runs().get(self.run_id, []) if self.is_interrupted(p)]

    def _copy_to_best(self, path: str) -> None:
        with atomic_path(self.best_path, owner=self.run_id) as tmp:
            os.remove(tmp)
            try:
                os.link(path, tmp)  # instant; the file is never modified in place, only replaced
            except OSError:
                shutil.copyfile(path, tmp)

    def set_aside_later(self, epoch: int, step: int, origin: Optional[str]) -> None:
        """End the line of epochs this run trained past the point it now continues from (``epoch`` completed,
        ``step`` steps in all, in checkpoint ``origin``; 0, 0 and None for a start from scratch): its later
        checkpoints (interrupted ones included), the best copy if it is one of them, and a copy of metrics.csv
        if it holds rows of later epochs (``MetricsCSV`` then drops them) go into a new subfolder
        ``abandoned-<time>/``. One log line says what went where; nothing happens when nothing is later."""
        later = [path for e, s, path in self.positions().get(self.run_id, []) if (e, s) > (epoch, step)]
        best = self.metadata(self.best_path) if os.path.isfile(self.best_path) else None
        if best and best.get("run_id") == self.run_id and (best.get("epoch", 0), best.get("step", 0)) > (epoch, step):
            later.append(self.best_path)
        epochs = {metrics_epoch(row) for row in read_metrics(self.metrics_path)[1]} \
            if os.path.isfile(self.metrics_path) else set()
        rows = sorted(e for e in epochs if e is not None and e > epoch)
        if not later and not rows:
            return
        stamp = timestamp()
        for n in itertools.count(1):
            aside = os.path.join(self.folder, f"{ABANDONED_PREFIX}{stamp}" + (f"-{n}" if n > 1 else ""))
            if not os.path.lexists(aside):
                os.mkdir(aside)
                break
        if rows:
            shutil.copyfile(self.metrics_path, os.path.join(aside, METRICS_FILE))
        for path in later:
            os.rename(path, os.path.join(aside, os.path.basename(path)))
        what = [brief(os.path.basename(p) for p in later)] if later else []
        if rows:
            span = f"{rows[0]}-{rows[-1]}" if len(rows) > 2 and rows[-1] - rows[0] == len(rows) - 1 else \
                ", ".join(map(str, rows[:10])) + (" ..." if len(rows) > 10 else "")
            what.append(f"a copy of {METRICS_FILE} (its rows of epoch{'s' if len(rows) > 1 else ''} {span} are "
                        "dropped from the run's)")
        start = f"continuing from {origin} (epoch {epoch} done)" if origin else "starting again from scratch"
        self.logger.info(f"{start}: set aside what this run had trained after that in {aside}/: {'; '.join(what)}")

    def repair_best(self, best_epoch: Optional[int]) -> None:
        """Make ``<model>-best.ckpt`` this run's ``best_epoch`` again, after a kill fell between an epoch's
        checkpoint and its best copy (or another run replaced the file)."""
        if best_epoch is None:
            return
        current = self.metadata(self.best_path) if os.path.isfile(self.best_path) else None
        if current and current.get("run_id") == self.run_id and current.get("epoch") == best_epoch:
            return
        epoch_files = [p for e, p in self.runs().get(self.run_id, []) if e == best_epoch and not self.is_interrupted(p)]
        source = epoch_files[0] if epoch_files else None
        if source is None:
            self.logger.warning(f"{self.best_path} does not hold this run's best epoch {best_epoch}, and that "
                                "epoch's checkpoint is gone; it will be written again at the next best epoch")
            return
        self._copy_to_best(source)
        self.logger.info(f"restored {self.best_path} from {source} (best epoch {best_epoch})")
