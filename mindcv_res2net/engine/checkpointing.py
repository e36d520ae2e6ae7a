"""The training checkpoint: its layout, its metadata, and the files of one run in its folder.

``<model>-<epoch>_<steps>.ckpt`` is a MindSpore checkpoint (written by ``weights.save_weights``)
holding, in this order:

- ``metadata``: a JSON object, schema in ``METADATA_SCHEMA``; ``run_id`` names the run that wrote it;
- the network's parameters under their own names;
- ``optimizer.<name>``: the optimizer's state (step counter, moments), not its learning-rate table;
- ``ema.<name>``: the weight averages, with ``--ema``.

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
import math
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import mindspore as ms
import numpy as np

from ..weights import CheckpointError, read_checkpoint_metadata, save_weights
from ..weights.formats import brief
from ..weights.names import paddle_classifier
from ..utils.fileio import OWNER_PATTERN, PARTIAL_PREFIX, atomic_path, stale_partial_files

OPTIMIZER_PREFIX = "optimizer."
EMA_PREFIX = "ema."
_MAX_COUNT = 10 ** 9

CONFIG_FILE, METRICS_FILE, LOG_FILE = "config.yaml", "metrics.csv", "train.log"  # with the checkpoints: a run's files
INTERRUPTED_SUFFIX = "-interrupted.ckpt"
# <model>-<epoch>_<steps>.ckpt, <model>-<epoch>_<step>-interrupted.ckpt, <model>-best.ckpt
_ANY_CHECKPOINT = re.compile(r"^(.+)-(?:(\d+)_\d+(?:-interrupted)?|best)\.ckpt$")
_CONFIG_OWNER = re.compile(r"^# run ([A-Za-z0-9_-]{1,64}), model (\S{1,100})$")


class RunFolderError(ValueError):
    """A run may not write in its ``--ckpt_save_dir``: the folder holds another run's files."""


def _int_in(low: int, high: int) -> Callable:
    def check(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    check.__doc__ = f"an integer from {low} to {high}"
    return check


def _optional(check: Callable) -> Callable:
    def optional(value) -> bool:
        return value is None or check(value)
    optional.__doc__ = f"null or {check.__doc__}"
    return optional


def _percent(value) -> bool:
    """a percentage from 0 to 100"""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and 0 <= value <= 100


def _text(value) -> bool:
    """a string"""
    return isinstance(value, str)


def _run_id(value) -> bool:
    """letters, digits, '-' and '_' (at most 64)"""
    return isinstance(value, str) and bool(OWNER_PATTERN.match(value))  # it names temporary files too


def _names(value) -> bool:
    """a list of strings"""
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _flag(value) -> bool:
    """true or false"""
    return isinstance(value, bool)


def _epoch_progress(value) -> bool:
    """an object of the partial epoch's loss_sum, correct, seen (images) and seconds"""
    if not isinstance(value, dict) or set(value) != {"loss_sum", "correct", "seen", "seconds"}:
        return False
    count = _int_in(0, _MAX_COUNT)
    return count(value["correct"]) and count(value["seen"]) and value["correct"] <= value["seen"] and all(
        isinstance(value[k], (int, float)) and not isinstance(value[k], bool) and math.isfinite(value[k])
        and value[k] >= 0 for k in ("loss_sum", "seconds"))


def _mapping(value) -> bool:
    """a JSON object"""
    return isinstance(value, dict)


# key: what a valid value is. Every key is optional when read (files of other tools hold a few or none).
METADATA_SCHEMA: Dict[str, Callable] = {
    "model": _text, "run_id": _run_id, "epoch": _int_in(0, _MAX_COUNT), "step": _int_in(0, _MAX_COUNT),
    "steps_per_epoch": _int_in(1, _MAX_COUNT), "updates_per_epoch": _int_in(1, _MAX_COUNT),
    "num_classes": _int_in(1, 10 ** 6), "in_channels": _int_in(1, 4096), "class_names": _optional(_names),
    "val_top1": _optional(_percent), "best_top1": _optional(_percent), "best_epoch": _optional(_int_in(1, _MAX_COUNT)),
    "ema": _flag, "config": _optional(_mapping), "source": _text, "optimizer_state": _flag,
    "num_devices": _int_in(1, 10 ** 6), "epoch_progress": _epoch_progress,
}


def new_run_id() -> str:
    """A fresh run identity (12 hex digits)."""
    return uuid.uuid4().hex[:12]


def run_metadata(metadata, path: str) -> dict:
    """``metadata`` as read from ``path`` (``weights.read_checkpoint``), checked against
    ``METADATA_SCHEMA``; its ``config`` checked and converted as a YAML config is. {} when absent.

    Anything else (not an object, a wrong type, an impossible value) is a one-line ``CheckpointError``.
    """
    from ..config import ConfigError, config_from_mapping

    if metadata is None or metadata == {}:
        return {}
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path}: its metadata is a JSON {type(metadata).__name__}, not an object")
    for key, check in METADATA_SCHEMA.items():
        if key in metadata and not check(metadata[key]):
            raise CheckpointError(f"{path}: metadata '{key}' must be {check.__doc__}, got {metadata[key]!r:.80}")
    checked = dict(metadata)
    names, classes = checked.get("class_names"), checked.get("num_classes")
    if names is not None and classes is not None and len(names) > classes:
        raise CheckpointError(f"{path}: metadata holds {len(names)} class names for {classes} classes")
    if checked.get("config") is not None:
        try:
            checked["config"] = config_from_mapping(checked["config"], f"{path} (metadata 'config')", strict=False)
        except ConfigError as exc:
            raise CheckpointError(str(exc)) from None
    return checked


def network_weights(state: Dict[str, np.ndarray], ema: Optional[bool] = None,
                    path: str = "checkpoint") -> Dict[str, np.ndarray]:
    """The network's tensors of a state dict (mindcv's ``ema`` flag, with one default of ours).

    ``ema=None``: the ``ema.*`` averages of a training checkpoint with EMA (as validation during
    training used them), else the state without optimizer entries. ``ema=True``: the averages, and a
    ``CheckpointError`` naming ``path`` when it has none. ``ema=False``: the trained weights themselves.
    """
    averages = {k[len(EMA_PREFIX):]: v for k, v in state.items() if k.startswith(EMA_PREFIX)}
    if ema is True and not averages:
        raise CheckpointError(f"{path}: holds no EMA weights (ema.*); load it with ema=False")
    if averages and ema is not False:
        return averages
    return {k: v for k, v in state.items() if not k.startswith((OPTIMIZER_PREFIX, EMA_PREFIX))}


def describe_checkpoint(state: Dict[str, np.ndarray], metadata, path: str) -> dict:
    """``num_classes``, ``in_channels``, ``class_names`` and the training ``config`` (or None) of a weight
    file, from what ``read_checkpoint`` returned for it.

    From the metadata of a checkpoint written by train.py, else from the classifier (``fc``, mindcv's
    ``classifier``, mmpretrain's ``head.fc``, PaddleClas' transposed ``out``) and first-convolution
    shapes; ``num_classes`` is 0 for a head-less file.
    """
    metadata = run_metadata(metadata, path)
    state = network_weights(state)
    head = next((state[k] for k in ("fc.weight", "classifier.weight", "head.fc.weight") if k in state), None)
    if head is None and "out.weight" in state and state["out.weight"].ndim == 2:  # PaddleClas: (in, out)
        try:
            head = paddle_classifier(state["out.weight"], state.get("out.bias"))
        except ValueError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
    stem = next((state[k] for k in ("conv1.weight", "conv1.0.weight") if k in state and state[k].ndim == 4), None)
    found = dict(num_classes=0 if head is None else int(head.shape[0]),
                 in_channels=3 if stem is None else int(stem.shape[1]))
    for key, value in found.items():  # the metadata may not claim another network than the tensors hold
        if metadata.get(key) is not None and (head if key == "num_classes" else stem) is not None \
                and metadata[key] != value:
            raise CheckpointError(f"{path}: metadata '{key}' is {metadata[key]} but its tensors have {value}")
    return dict(found, class_names=metadata.get("class_names"), config=metadata.get("config"))


# ---------------------------------------------------------------------------------------------- state


def _optimizer_state(train_step) -> list:
    """Optimizer parameters that are state (step counter, moments): not network weights, and not the
    learning-rate table, which the config rebuilds."""
    model_ids = {id(p) for p in train_step.model.get_parameters()}
    return [p for p in train_step.optimizer.get_parameters()
            if id(p) not in model_ids and p.name != "learning_rate"]


def _checkpoint_entries(train_step, optimizer_state: bool = True) -> List[Tuple[str, ms.Parameter]]:
    """(checkpoint name, parameter) of everything a training checkpoint holds: the weights by name,
    ``optimizer.*`` state (unless ``optimizer_state`` is False) and, with EMA, the ``ema.*`` averages."""
    entries = [(p.name, p) for p in train_step.model.get_parameters()]
    if optimizer_state:
        entries += [(OPTIMIZER_PREFIX + p.name, p) for p in _optimizer_state(train_step)]
    if train_step.use_ema:
        entries += [(p.name, p) for p in train_step.ema]
    return entries


def training_state(train_step, optimizer_state: bool = True) -> Dict[str, np.ndarray]:
    """A ``TrainStep``'s checkpoint tensors (see ``_checkpoint_entries``)."""
    return {name: param.asnumpy() for name, param in _checkpoint_entries(train_step, optimizer_state)}


def checkpoint_bytes(train_step, optimizer_state: bool = True) -> int:
    """Bytes of tensor data one training checkpoint of ``train_step`` holds (see ``_checkpoint_entries``);
    the file adds names, shapes and metadata (a few kB)."""
    return sum(int(param.nbytes) for _, param in _checkpoint_entries(train_step, optimizer_state))


def kept_checkpoints(epochs: int, start_epoch: int, save_interval: int, keep: int) -> int:
    """How many epoch checkpoints a run from ``start_epoch`` to ``epochs`` keeps at most: it saves every
    ``save_interval`` epochs and at its last, and keeps the newest ``keep``."""
    saves = len({e for e in range(start_epoch, epochs + 1) if e % save_interval == 0 or e == epochs})
    return min(keep, saves)


def restore_training_state(train_step, path: str, state: Dict[str, np.ndarray], updates_done: int) -> None:
    """Put a checkpoint of this run back into ``train_step`` from ``state``, the tensors read from ``path``:
    weights, optimizer state and EMA (strict; a clear error if absent). The optimizer's step counter is
    set to ``updates_done``, the position of the resumed epoch in this configuration's learning-rate
    schedule (it differs from the file's when the steps per epoch changed)."""
    missing = {}  # name: what the file holds instead
    for name, param in _checkpoint_entries(train_step):
        value = state.get(name)
        if value is not None and value.shape == (1,) and tuple(param.shape) == ():
            value = value.reshape(())  # a scalar as the writer of 048cc05 stored it (shape [1])
        if value is None or tuple(value.shape) != tuple(param.shape):
            missing[name] = "" if value is None else f" (shape {tuple(value.shape)}, not {tuple(param.shape)})"
            continue
        param.set_data(ms.Tensor(value, dtype=param.dtype))
    if missing and all(m.startswith(OPTIMIZER_PREFIX) for m in missing) \
            and not any(k.startswith(OPTIMIZER_PREFIX) for k in state):
        raise CheckpointError(f"{path}: holds no optimizer state (written with --save_optimizer_state false), so "
                              "it cannot be resumed; start a new run from its weights with --ckpt_path")
    if missing:
        hint = " (was it written with --ema?)" if any(m.startswith(EMA_PREFIX) for m in missing) else ""
        raise CheckpointError(f"{path}: cannot resume, {len(missing)} entries missing or of another shape"
                              f"{hint}: {', '.join(m + missing[m] for m in sorted(missing)[:6])}")
    step = getattr(train_step.optimizer, "global_step", None)
    if step is not None:
        step.set_data(ms.Tensor(np.full(step.shape, updates_done), dtype=step.dtype))


# ---------------------------------------------------------------------------------------------- files


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
