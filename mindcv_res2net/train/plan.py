"""A training job's plan, decided once before anything is built: its settings (a resumed run's own, with the
flags that may change applied), its run folder and identity, and the checkpoint it continues (``plan_run``);
and, once the folder's lock is held, the check that the folder still is as planned (``claim_run_folder``)."""
import os
from dataclasses import dataclass, field
from typing import Any, FrozenSet, Mapping, Optional, Tuple

from ..config import (ConfigError, Settings, check_flags_used, load_yaml_config, resolve_stored_paths,
                      resumed_config, resuming)
from ..models.registry import resolve_name
from ..weights import CheckpointError, read_checkpoint_metadata
from .run_folder import RunFolder, RunFolderError, RunLock, new_run_id, run_metadata
from .run_record import RunRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class RunPlan:
    """What a training job does: its ``settings``, the run it trains (``run_id``; ``continues``: an existing
    run's, resumed or started again by --resume auto before its first checkpoint, whose run.json says when it
    was ``created``), the ``checkpoint`` it resumes (None: from its starting weights) with that checkpoint's
    checked ``metadata``, and the lines its log starts with: the settings the flags changed (``changes``,
    ``key old -> new``), stored relative paths read here (``warnings``) and other ``remarks``."""

    settings: Settings
    run_id: str
    continues: bool = False
    created: Optional[str] = None
    checkpoint: Optional[str] = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    changes: Tuple[str, ...] = ()
    warnings: Tuple[str, ...] = ()
    remarks: Tuple[str, ...] = ()

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.settings.run.ckpt_save_dir, self.settings.model.model)

    @property
    def epochs_done(self) -> int:
        """Epochs the resumed checkpoint completed (0 without one)."""
        return self.metadata.get("epoch", 0) if self.checkpoint else 0

    @property
    def finished(self) -> bool:
        """The resumed checkpoint ends the last epoch: nothing is left to train."""
        return bool(self.checkpoint) and self.epochs_done >= self.settings.run.epoch_size


def check_save_dir(path: str) -> None:
    """Refuse (one-line ``RunFolderError``) a --ckpt_save_dir that is a file, or lies under one."""
    probe = path
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    if os.path.exists(probe) and not os.path.isdir(probe):
        where = "" if probe == path else f"{probe} "
        raise RunFolderError(f"--ckpt_save_dir {path}: {where}is a file, not a folder")


def _resume_source(settings: Settings, folder: RunFolder) -> Optional[str]:
    """The checkpoint to continue from (or None), from --resume PATH|auto or --ckpt_path + --resume_opt."""
    resume = settings.run.resume
    if resume == "auto":
        return folder.resume_path()
    if resume:
        if os.path.isdir(resume):
            raise CheckpointError(f"--resume {resume}: is a directory; give a checkpoint file, or "
                                  f"--ckpt_save_dir {resume} --resume auto for its newest")
        if not os.path.isfile(resume):
            raise CheckpointError(f"--resume: checkpoint file not found: {resume}")
        return resume
    if settings.run.resume_opt and settings.model.ckpt_path:
        return settings.model.ckpt_path
    return None


Notes = Tuple[str, ...]


def _stored_settings(settings: Settings, given: FrozenSet[str], folder: RunFolder, *, checkpoint: Optional[str],
                     metadata: Mapping, owner: Optional[RunRecord]) -> Tuple[Settings, Notes, Notes]:
    """(settings, changes, warnings) of a resumed run: its stored config (the checkpoint's; before its first
    checkpoint, the folder's config.yaml, if it was written) with the ``given`` keys checked against it
    (``config.resumed_config``; a class count the run stored as None is the one it trained with, in the
    checkpoint's metadata)."""
    if checkpoint:
        origin, stored = checkpoint, metadata.get("config") or {}
    elif owner is not None and os.path.isfile(folder.config_path):
        origin, stored = folder.config_path, load_yaml_config(folder.config_path, "train")
    else:
        return settings, (), ()
    stored, warnings = resolve_stored_paths(stored, origin, given)
    settings, changes = resumed_config(settings, given, dict(stored, model=stored.get("model", settings.model.model)),
                                       origin=origin, effective=dict(num_classes=metadata.get("num_classes")))
    return settings, tuple(changes), tuple(warnings)


def plan_run(settings: Settings, given: Optional[FrozenSet[str]] = None) -> RunPlan:
    """The plan of a training job with ``settings`` (paths absolute). ``given``: the keys the user set
    (``cli.parser.parse_config``); a resumed run takes every other from its stored config (None: ``settings`` as
    they are). Nothing is written; every contradiction is a one-line error (``UserError``).

    The checkpoint resumed is --resume's (``auto``: the folder's newest, of the model its run.json names) or, with
    --resume_opt, --ckpt_path; its metadata is read here, once. The run is the checkpoint's, or with --resume auto
    before the first checkpoint the folder's (same model), else a new one.
    """
    folder = RunFolder(settings.run.ckpt_save_dir, settings.model.model)
    record = folder.identity()
    owner = record if settings.run.resume == "auto" else None
    keys = given if given is not None and resuming(settings) else None  # the settings come from the run
    if keys is not None and owner is not None:  # the folder's run names its model (another --model is refused)
        settings = resumed_config(settings, keys, dict(model=owner.model), origin=_owner_origin(folder))[0]
        folder = RunFolder(folder.folder, settings.model.model)
    checkpoint = _resume_source(settings, folder)
    metadata = run_metadata(read_checkpoint_metadata(checkpoint), checkpoint) if checkpoint else {}
    changes: Notes = ()
    warnings: Notes = ()
    if keys is not None:
        settings, changes, warnings = _stored_settings(settings, keys, folder, checkpoint=checkpoint,
                                                       metadata=metadata, owner=owner)
        check_flags_used(settings, "train")  # on the run's settings, which the parser has not seen
    _check_resumed(settings, checkpoint, metadata)
    run_id, continues = new_run_id(), False
    if metadata.get("run_id"):
        run_id, continues = metadata["run_id"], True
    elif owner is not None and owner.model == settings.model.model:
        run_id, continues = owner.id, True
    remarks = () if checkpoint or settings.run.resume != "auto" else (
        f"--resume auto: no checkpoint in {settings.run.ckpt_save_dir} yet, starting from scratch",)
    return RunPlan(settings=settings, run_id=run_id, continues=continues,
                   created=record.created if record is not None and record.id == run_id else None,
                   checkpoint=checkpoint, metadata=metadata, changes=changes, warnings=warnings, remarks=remarks)


def _check_resumed(settings: Settings, checkpoint: Optional[str], metadata: Mapping) -> None:
    """Refuse a misspelled model name (the first error of a fresh run), a checkpoint of another model, and one
    past the last epoch."""
    model = settings.model.model
    resolve_name(model)
    if metadata.get("model") not in (None, model):
        raise CheckpointError(f"{checkpoint}: written for model '{metadata['model']}', not '{model}'")
    if checkpoint and metadata.get("epoch", 0) > settings.run.epoch_size:
        raise ConfigError(f"--epoch_size {settings.run.epoch_size}: {checkpoint} has done {metadata['epoch']} epochs "
                          "already; give a larger --epoch_size to continue it, or --resume an earlier checkpoint of "
                          "the run")


def _owner_origin(folder: RunFolder) -> str:
    """The file that names the folder's run: its run.json, or an older run's config.yaml."""
    return folder.record_path if os.path.lexists(folder.record_path) else folder.config_path


def claim_run_folder(plan: RunPlan, lock: RunLock) -> None:
    """Rank 0, before anything is written: take the run folder's lock (when the folder exists; a new folder is
    locked when it is made), check that --resume auto would still take the planned checkpoint (a process that
    held the lock may have written another) and that the folder is this run's (``RunFolder.check_owner``)."""
    folder = plan.folder
    if os.path.isdir(folder.folder):
        lock.acquire()  # before the folder is read again: a process that waited for it sees the files as they are
    if plan.settings.run.resume == "auto":
        newest = folder.resume_path()
        if newest != plan.checkpoint:
            raise RunFolderError(f"--ckpt_save_dir {folder.folder}: its newest checkpoint changed while this process "
                                 f"started ({plan.checkpoint} -> {newest}); run the command again")
    folder.check_owner(plan.run_id, plan.checkpoint)
