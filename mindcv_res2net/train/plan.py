"""A training job's plan, decided once before anything is built: its settings (a resumed run's own, with the
flags that may change applied), its run folder and identity, and the checkpoint it continues (``plan_run``);
and, once the data is checked, the run folder made or locked, and checked to be still as planned
(``claim_run_folder``)."""
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, FrozenSet, Mapping, Optional, Tuple

from ..config import (ConfigError, Settings, absolute_paths, check_flags_used, load_yaml_config,
                      resolve_stored_paths, resumed_config, resuming, shown_value)
from ..models.registry import resolve_name
from ..weights import CheckpointError, read_checkpoint_metadata
from .run_folder import (RUNS_FOLDER, RunFolder, RunFolderError, RunLock, default_run_folder, make_run_folder,
                         new_run_id, run_metadata, runs_of)
from .run_record import RunRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class RunPlan:
    """What a training job does: its ``settings``, the run it trains (``run_id``; ``continues``: an existing
    run's, resumed or started again by --resume auto before its first checkpoint, whose run.json says when it
    was ``created``), the ``checkpoint`` it resumes (None: from its starting weights) with that checkpoint's
    checked ``metadata``, and the lines its log starts with: the settings the flags changed (``changes``,
    ``key old -> new``), stored relative paths read here (``warnings``) and other ``remarks`` (a new run's
    settings as the console shows them among them, ``_settings_line``). ``new_folder``:
    the run folder (``settings.run.ckpt_save_dir``) is a new default one, made under the first free name when the
    run claims it (``claim_run_folder``)."""

    settings: Settings
    run_id: str
    new_folder: bool = False
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


Notes = Tuple[str, ...]


def check_save_dir(path: str) -> None:
    """Refuse (one-line ``RunFolderError``) a --ckpt_save_dir that is a file, or lies under one; without
    --ckpt_save_dir (``path`` ''), a ``runs`` that is no folder."""
    probe = path or os.path.abspath(RUNS_FOLDER)
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    if os.path.exists(probe) and not os.path.isdir(probe):
        if not path:
            raise RunFolderError(f"{probe}: is a file, not a folder; without --ckpt_save_dir, train.py makes each run's "
                                 f"folder in {RUNS_FOLDER}/ of the current folder: move the file, or give --ckpt_save_dir")
        where = "" if probe == path else f"{probe} "
        raise RunFolderError(f"--ckpt_save_dir {path}: {where}is a file, not a folder")


def shown_path(path: str) -> str:
    """``path`` as the log shows a folder: relative to the current folder when it lies inside it."""
    relative = os.path.relpath(path)
    return path if relative.startswith(os.pardir) else relative


def _default_folder(settings: Settings) -> Tuple[Settings, bool, Notes]:
    """Without --ckpt_save_dir: (the settings with the run's folder, whether it is a new one, the line that says
    which). --resume auto takes the newest run folder of the model on the data set under runs/ (``runs_of``), or
    says there is none and starts a new run; any other run gets a new folder (``default_run_folder``)."""
    model, dataset = settings.model.model, settings.data.dataset
    found = runs_of(os.path.abspath(RUNS_FOLDER), model, dataset) if settings.run.resume == "auto" else []
    if found:
        which = f"newest of {len(found)} runs" if len(found) > 1 else "the only run"
        return settings.replace(ckpt_save_dir=found[-1]), False, (
            f"--resume auto: continuing {shown_path(found[-1])} ({which} of {model} on {dataset})",)
    remarks = (f"--resume auto: no run of {model} on {dataset} in {shown_path(os.path.abspath(RUNS_FOLDER))}/ yet, "
               "starting a new run",) if settings.run.resume == "auto" else ()
    return settings.replace(ckpt_save_dir=default_run_folder(model, dataset)), True, remarks


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

    The run folder is --ckpt_save_dir, or without it a new one under runs/ (--resume auto: the newest there of the
    model on the data set, ``_default_folder``). The checkpoint resumed is --resume's (``auto``: the folder's
    newest, of the model its run.json names) or, with --resume_opt, --ckpt_path; its metadata is read here, once.
    The run is the checkpoint's, or with --resume auto before the first checkpoint the folder's (same model), else
    a new one.
    """
    new_folder, remarks = False, ()  # type: Tuple[bool, Notes]
    if not settings.run.ckpt_save_dir:
        settings, new_folder, remarks = _default_folder(settings)
    folder = RunFolder(settings.run.ckpt_save_dir, settings.model.model)
    record = None if new_folder else folder.identity()
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
    if not checkpoint and not new_folder and settings.run.resume == "auto":
        remarks += (f"--resume auto: no checkpoint in {settings.run.ckpt_save_dir} yet, starting from scratch",)
    if not checkpoint and not continues:
        remarks += (_settings_line(settings),)
    return RunPlan(settings=settings, run_id=run_id, new_folder=new_folder, continues=continues,
                   created=record.created if record is not None and record.id == run_id else None,
                   checkpoint=checkpoint, metadata=metadata, changes=changes, warnings=warnings, remarks=remarks)


def _settings_line(settings: Settings) -> str:
    """A new run's settings in one line: its recipe (``-c``) or the defaults, and the settings the flags changed
    from them, ``key value`` by key (the run folder is said apart; every setting goes to train.log and
    config.yaml)."""
    recipe = settings.run.config
    base = absolute_paths(Settings.from_mapping(load_yaml_config(recipe, "train") if recipe else {}))
    changed = [f"{key} {shown_value(value)}" for key, value in sorted(settings.to_mapping().items())
               if key not in ("config", "ckpt_save_dir") and value != base.value(key)]
    return (f"settings ({f'from {recipe}' if recipe else 'defaults'}"
            + (f", changed by flags: {', '.join(changed)}" if changed else "") + "); all of them: train.log, config.yaml")


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


def claim_run_folder(plan: RunPlan) -> Tuple[RunPlan, RunLock]:
    """Rank 0, once the data is checked and before anything is written: make the run folder (a new default one
    under the first free name, ``make_run_folder``; a --ckpt_save_dir that does not exist) and take its lock (a
    folder made here is removed again by ``RunLock.release`` if the run writes nothing in it); then check that
    --resume auto would still take the planned checkpoint (a process that held the lock may have written another)
    and that the folder is this run's (``RunFolder.check_owner``). Returns the plan with the folder made, and the
    lock held, which the caller releases."""
    settings, made = plan.settings, plan.new_folder or not os.path.isdir(plan.settings.run.ckpt_save_dir)
    if plan.new_folder:
        plan = dataclasses.replace(plan, settings=settings.replace(ckpt_save_dir=make_run_folder(
            settings.run.ckpt_save_dir)))
    folder = plan.folder
    lock = RunLock(folder.folder, made_folder=made)
    try:
        lock.acquire()  # before the folder is read again: a process that waited for it sees the files as they are
        if plan.settings.run.resume == "auto":
            newest = folder.resume_path()
            if newest != plan.checkpoint:
                raise RunFolderError(f"--ckpt_save_dir {folder.folder}: its newest checkpoint changed while this "
                                     f"process started ({plan.checkpoint} -> {newest}); run the command again")
        folder.check_owner(plan.run_id, plan.checkpoint)
    except BaseException:
        lock.release()
        raise
    return plan, lock
