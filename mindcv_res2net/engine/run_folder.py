"""The files of a training run in its folder: rotation, resume discovery and run identity.

``<model>-<epoch>_<steps>.ckpt`` is an epoch checkpoint (its layout: ``weights.checkpoint_layout``).
``<model>-<epoch>_<step>-interrupted.ckpt`` is written when a signal stops the run at step ``<step>`` of
epoch ``<epoch>`` (its metadata: ``epoch`` is the last completed one, ``step`` counts every step, and
``epoch_progress`` holds the partial epoch's sums for its metrics row); it is resumed like the others and
removed once a newer checkpoint of its run is written.

``<model>-best.ckpt`` is a copy of the run's best validated epoch. Every checkpoint a run writes
carries its identity, and so does the first line of its ``config.yaml`` (``# run <id>, model <name>``):
a run starts only in a folder that holds no other run's files (``RunFolder.check_owner``), and counts,
rotates, repairs and resumes only its own.
"""
import logging
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..config import ConfigError, config_from_mapping
from ..weights import CheckpointError, read_checkpoint_metadata, save_weights
from ..weights.checkpoint_layout import checked_metadata
from ..weights.formats import brief
from ..utils.fileio import PARTIAL_PREFIX, atomic_path, stale_partial_files

CONFIG_FILE, METRICS_FILE, LOG_FILE = "config.yaml", "metrics.csv", "train.log"  # with the checkpoints: a run's files
INTERRUPTED_SUFFIX = "-interrupted.ckpt"
# <model>-<epoch>_<steps>.ckpt, <model>-<epoch>_<step>-interrupted.ckpt, <model>-best.ckpt
_ANY_CHECKPOINT = re.compile(r"^(.+)-(?:(\d+)_\d+(?:-interrupted)?|best)\.ckpt$")
_CONFIG_OWNER = re.compile(r"^# run ([A-Za-z0-9_-]{1,64}), model (\S{1,100})$")


class RunFolderError(ValueError):
    """A run may not write in its ``--ckpt_save_dir``: the folder holds another run's files."""


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


def kept_checkpoints(epochs: int, start_epoch: int, save_interval: int, keep: int) -> int:
    """How many epoch checkpoints a run from ``start_epoch`` to ``epochs`` keeps at most: it saves every
    ``save_interval`` epochs and at its last, and keeps the newest ``keep``."""
    saves = len({e for e in range(start_epoch, epochs + 1) if e % save_interval == 0 or e == epochs})
    return min(keep, saves)


def config_owner_line(run_id: str, model_name: str) -> str:
    """The first line of a run's ``config.yaml`` (after ``# ``): the run it belongs to."""
    return f"run {run_id}, model {model_name}"


@dataclass(frozen=True)
class RunFile:
    """A file of some run in a run folder, and what it says about its run.

    ``run_id`` is None when the file names no run: ``metrics.csv`` and ``train.log`` never do, nor a
    ``config.yaml`` without its run line; a checkpoint without a run id (or unreadable) is ``claims_run``
    with ``run_id`` None, a run that cannot be continued.
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

    def config_owner(self) -> Optional[Tuple[str, str]]:
        """(run id, model) named by the first line of the folder's ``config.yaml``; None without."""
        try:
            with open(self.config_path, errors="replace") as f:
                match = _CONFIG_OWNER.match(f.readline(256).rstrip("\n"))
        except OSError:
            return None
        return (match.group(1), match.group(2)) if match else None

    def run_files(self) -> List[RunFile]:
        """Every file of a run in the folder, whichever model: ``<model>-<epoch>_<steps>.ckpt``,
        ``<model>-best.ckpt``, config.yaml, metrics.csv and train.log. Temporary files (``.partial-*``) are
        leftovers of killed processes, not a run's files."""
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
            elif name == CONFIG_FILE:
                owner = self.config_owner()
                files.append(RunFile(name, owner is not None, *(owner or ())))
            elif name in (METRICS_FILE, LOG_FILE):
                files.append(RunFile(name, False))
        return files

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
        if not os.path.isdir(self.folder):
            return {}
        runs: Dict[Optional[str], List[Tuple[int, str]]] = {}
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
        return {run: [(epoch, path) for epoch, _, path in sorted(files)] for run, files in runs.items()}

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
    newest epoch checkpoint, for a run without validation). The folder's model is the one its
    ``config.yaml`` names (``model_name``, when given, must agree). Errors name ``flag`` and the path."""
    if not os.path.isdir(path):
        return path
    folder = RunFolder(path, model_name or "?")
    owner = folder.config_owner()
    if owner is None:
        raise CheckpointError(f"{flag} {path}: is a folder but not a training run's (no {CONFIG_FILE} naming "
                              "its run); give a checkpoint file")
    if model_name and owner[1] != model_name:
        raise CheckpointError(f"{flag} {path}: is a run of model '{owner[1]}', not '{model_name}'")
    folder = RunFolder(path, owner[1])
    if os.path.isfile(folder.best_path):
        return folder.best_path
    newest = folder.resume_path()
    if newest is None:
        raise CheckpointError(f"{flag} {path}: the run of {owner[1]} has written no checkpoint yet")
    return newest


def recorded_model(path: str) -> Optional[str]:
    """The model a train.py checkpoint (``.ckpt``) names in its metadata; None for other files or without."""
    if not path.endswith(".ckpt") or not os.path.isfile(path):
        return None
    return run_metadata(read_checkpoint_metadata(path), path).get("model")


class RunCheckpoints(RunFolder):
    """The files of one run (``run_id``): ``<model>-<epoch>_<steps>.ckpt`` at every save, the newest
    ``keep`` of *this run* kept, and ``<model>-best.ckpt``. Other runs' files are never deleted."""

    def __init__(self, folder: str, model_name: str, keep: int, run_id: str, logger: logging.Logger) -> None:
        super().__init__(folder, model_name)
        if keep < 1:
            raise ValueError(f"--keep_checkpoint_max must be at least 1, got {keep}")
        self.keep, self.run_id, self.logger = keep, run_id, logger

    def remove_leftovers(self) -> None:
        """Temporary files that this run's own killed processes left behind (never a folder, nor a file
        that a live process is still writing)."""
        for path in stale_partial_files(self.folder, self.run_id):
            os.remove(path)
            self.logger.info(f"removed {path}, left by a killed process of this run")

    def save(self, state: Dict[str, np.ndarray], metadata: dict, epoch: int, steps: int, is_best: bool) -> str:
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

    def save_interrupted(self, state: Dict[str, np.ndarray], metadata: dict, epoch: int, step: int) -> str:
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
