"""The training job behind train.py: set-up, one epoch, end of epoch (validation, metrics, checkpoint), and
the stop on SIGINT/SIGTERM with a checkpoint at the step reached."""
import os
import random
import shlex
import shutil
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, FrozenSet, List, Optional, Tuple

import mindspore as ms
import mindspore.dataset as ds
import numpy as np

from ..config import (ConfigError, absolute_paths, check_flags_used, data_config, format_config, load_yaml_config,
                      resolve_stored_paths, resumed_config, resuming, save_config, stored_config)
from ..data.image_files import DataWarning
from ..data.loader import Loader, create_loader, iterate_batches
from ..loss import create_loss
from ..models import create_model, get_pretrained_cfg
from ..models.registry import resolve_name
from ..optim import create_optimizer
from ..scheduler import create_scheduler
from ..weights import CheckpointError, read_checkpoint
from ..utils.device import TrainingPlan, plan_training, set_device
from ..utils.cli import error_message
from ..utils.logger import MetricsCSV, keep_copy, log_to_file, progress_bar, setup_logger
from .run_folder import (RunCheckpoints, RunFolder, RunFolderError, RunLock, config_owner_line, kept_checkpoints,
                         new_run_id, run_metadata)
from .training_state import checkpoint_bytes, restore_training_state, training_state
from ..evaluate import device_normalize, evaluate, top_k_correct
from .stopping import StopSignals
from .train_step import TrainStep


@contextmanager
def _data_warnings_logged(logger):
    """The ``DataWarning``s raised inside (images left out, a single class) become lines of the log, so
    train.log keeps them; other warnings show as usual."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        try:
            yield
        finally:
            for caught_warning in caught:
                if issubclass(caught_warning.category, DataWarning):
                    logger.warning(str(caught_warning.message))
                else:
                    warnings.showwarning(caught_warning.message, caught_warning.category, caught_warning.filename,
                                         caught_warning.lineno)


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    ms.set_seed(seed)
    ds.config.set_seed(seed)


@contextmanager
def ema_weights(train_step: TrainStep):
    """Swap the EMA averages into the model for the duration of the block (nothing without EMA)."""
    if not train_step.use_ema:
        yield
        return

    def swap():
        for ema, weight in zip(train_step.ema, train_step.ema_sources):
            saved = weight.asnumpy()
            weight.set_data(ms.Tensor(ema.asnumpy(), dtype=weight.dtype))
            ema.set_data(ms.Tensor(saved, dtype=ema.dtype))

    swap()
    try:
        yield
    finally:
        swap()


def train_batches(train_step: TrainStep, dataset, steps: int, accumulation: int = 1, sink: bool = False,
                  first_step: int = 0):
    """One epoch of training steps from step ``first_step`` + 1 (the earlier batches are skipped), yielding
    (loss, logits, labels) after each.

    ``sink`` (GPU/Ascend): batches go to the device through MindSpore's data queue (``ms.data_sink``, one
    step per call) instead of being fed from the host; otherwise an update is applied every
    ``accumulation`` batches and at the end of the epoch.
    """
    if sink:
        def step_with_labels(images, labels):
            loss, logits = train_step(images, labels)
            return loss, logits, labels

        run_step = ms.data_sink(step_with_labels, dataset.skip(first_step) if first_step else dataset, sink_size=1)
        for _ in range(first_step, steps):
            yield run_step()
        return
    for step, (images, labels) in enumerate(iterate_batches(dataset, first_step), first_step + 1):
        loss, logits = train_step(images, labels, step % accumulation == 0 or step == steps)
        yield loss, logits, labels


@dataclass
class TrainingRun:
    """Everything one training job holds between epochs."""

    args: object
    plan: TrainingPlan
    rank: int
    group_size: int
    logger: object
    run_id: str
    train_data: Loader
    val_data: Optional[Loader]
    num_classes: int
    model: ms.nn.Cell
    train_step: TrainStep
    lr: np.ndarray  # per optimizer update
    updates_per_epoch: int
    val_loss_fn: ms.nn.Cell
    start_epoch: int = 1
    first_step: int = 0  # steps of start_epoch done before a mid-epoch resume
    epoch_progress: Optional[dict] = None  # their loss_sum, correct, seen, seconds (checkpoint metadata)
    continues_run: bool = False  # run_id is an existing run's (resumed, or --resume auto before its first epoch)
    checkpoints: Optional[RunCheckpoints] = None  # rank 0 only
    metrics: Optional[MetricsCSV] = None  # rank 0 only
    summary: dict = field(default_factory=lambda: dict(best_top1=None, best_epoch=None, last_top1=None,
                                                       best_checkpoint=None, last_checkpoint=None))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _resume_source(args, folder: RunFolder, logger=None) -> Optional[str]:
    """The checkpoint to continue from (or None), from --resume PATH|auto or --ckpt_path + --resume_opt;
    ``logger`` says when --resume auto finds none."""
    if args.resume == "auto":
        found = folder.resume_path()
        if not found and logger is not None:
            logger.info(f"--resume auto: no checkpoint in {args.ckpt_save_dir} yet, starting from scratch")
        return found
    if args.resume:
        if os.path.isdir(args.resume):
            raise CheckpointError(f"--resume {args.resume}: is a directory; give a checkpoint file, or "
                                  f"--ckpt_save_dir {args.resume} --resume auto for its newest")
        if not os.path.isfile(args.resume):
            raise CheckpointError(f"--resume: checkpoint file not found: {args.resume}")
        return args.resume
    if args.resume_opt and args.ckpt_path:
        return args.ckpt_path
    return None


def _run_identity(args, folder: RunFolder, resume_meta: dict) -> Tuple[str, bool]:
    """(run id, True if it is an existing run's): the resumed checkpoint's; with --resume auto before the
    folder's run wrote its first checkpoint, the run its config.yaml names (same model); else a new one."""
    if resume_meta.get("run_id"):
        return resume_meta["run_id"], True
    owner = folder.config_owner() if args.resume == "auto" else None
    if owner is not None and owner[1] == args.model:
        return owner[0], True
    return new_run_id(), False


@dataclass
class Continuation:
    """A resumed run's settings as ``continue_config`` found them."""

    args: object
    notes: List[str] = field(default_factory=list)  # the settings the flags changed
    warnings: List[str] = field(default_factory=list)  # stored relative paths resolved against the current folder
    checkpoint: Optional[str] = None  # the checkpoint they were read from (None: config.yaml, or no resume)


def continue_config(args, given: FrozenSet[str]) -> Continuation:
    """With --resume (or --resume_opt): the run's own config, read from the checkpoint's stored config (with
    --resume auto before the first checkpoint, from the folder's config.yaml), and the ``given`` keys checked
    against it (``config.resumed_config``; a class count the run stored as None is the one it trained with, in
    the checkpoint's metadata). Unchanged without resume."""
    if not resuming(args):
        return Continuation(args)
    folder = RunFolder(args.ckpt_save_dir, args.model)
    owner = folder.config_owner() if args.resume == "auto" else None
    if owner is not None:  # the folder's run names its model (a --model that contradicts it is refused)
        args = resumed_config(args, given, dict(model=owner[1]), folder.config_path)[0]
        folder = RunFolder(args.ckpt_save_dir, args.model)
    path = _resume_source(args, folder)
    origin, stored, metadata = path, None, {}
    if path:
        metadata = folder.metadata(path) or {}
        stored = metadata.get("config") or {}
    elif owner is not None:
        origin, stored = folder.config_path, load_yaml_config(folder.config_path, "train")
    continuation = Continuation(args, checkpoint=path)
    if stored is not None:
        stored, continuation.warnings = resolve_stored_paths(stored, origin, given)
        continuation.args, continuation.notes = resumed_config(
            args, given, dict(stored, model=stored.get("model", args.model)), origin,
            effective=dict(num_classes=metadata.get("num_classes")))
    check_flags_used(continuation.args, "train")  # on the run's settings, which parse_config has not seen
    return continuation


def check_save_dir(path: str) -> None:
    """Refuse (one-line ``RunFolderError``) a --ckpt_save_dir that is a file, or lies under one."""
    probe = path
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    if os.path.exists(probe) and not os.path.isdir(probe):
        where = "" if probe == path else f"{probe} "
        raise RunFolderError(f"--ckpt_save_dir {path}: {where}is a file, not a folder")


@dataclass
class RunStart:
    """A training job's first decisions, before its data and model are built: where it runs (rank 0 holds the
    run folder's lock), which run it is and what it continues."""

    args: object
    plan: TrainingPlan
    rank: int
    group_size: int
    logger: object
    run_id: str
    continues_run: bool
    resume_path: Optional[str] = None
    resume_state: dict = field(default_factory=dict)
    resume_meta: dict = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        """The resumed checkpoint ends the last epoch: nothing is left to train."""
        return bool(self.resume_path) and self.resume_meta.get("epoch", 0) >= self.args.epoch_size


def start_run(args, lock: RunLock, continuation: Optional[Continuation] = None) -> RunStart:
    """Check the model name, start the devices (the data-parallel group with --distribute), take the run
    folder's lock (rank 0, when the folder exists; a new folder is locked when it is made), read the
    checkpoint to resume and check that the folder is this run's. ``continuation``: the checkpoint the
    settings were read from, which must still be the one resumed once the lock is held."""
    resolve_name(args.model)  # a misspelled model name is the first error
    device = set_device(args.device_target, args.mode)
    set_seed(args.seed)
    plan = plan_training(device, args.amp_level, args.loss_scale, args.dynamic_loss_scale, args.dataset_sink_mode)
    if plan.dataset_sink_mode and args.gradient_accumulation_steps > 1:
        raise ValueError("--dataset_sink_mode cannot be combined with --gradient_accumulation_steps > 1; "
                         "set --dataset_sink_mode False")
    rank, group_size = 0, 1
    if args.distribute:
        from mindspore.communication import get_group_size, get_rank, init

        init()
        rank, group_size = get_rank(), get_group_size()
        ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True,
                                     device_num=group_size)
    is_main = rank == 0
    logger = setup_logger(enabled=is_main)  # train.log is written once the folder is known to be this run's
    if is_main and os.path.isdir(args.ckpt_save_dir):
        lock.acquire()  # before the folder is read: a process that waited for it sees the files as they are now
    folder = RunFolder(args.ckpt_save_dir, args.model)
    resume_path = _resume_source(args, folder, logger)
    if continuation is not None and resuming(args) and resume_path != continuation.checkpoint:
        raise RunFolderError(f"--ckpt_save_dir {args.ckpt_save_dir}: its newest checkpoint changed while this process "
                             f"started ({continuation.checkpoint} -> {resume_path}); run the command again")
    resume_state, resume_meta = read_checkpoint(resume_path) if resume_path else ({}, {})
    resume_meta = run_metadata(resume_meta, resume_path) if resume_path else {}
    if resume_meta.get("model") not in (None, args.model):
        raise CheckpointError(f"{resume_path}: written for model '{resume_meta['model']}', not '{args.model}'")
    run_id, continues_run = _run_identity(args, folder, resume_meta)
    if is_main:
        folder.check_owner(run_id, resume_path)  # before anything is written there
    done = resume_meta.get("epoch", 0)
    if resume_path and done > args.epoch_size:
        raise ConfigError(f"--epoch_size {args.epoch_size}: {resume_path} has done {done} epochs already; give a "
                          f"larger --epoch_size to continue it, or --resume an earlier checkpoint of the run")
    return RunStart(args, plan, rank, group_size, logger, run_id, continues_run, resume_path, resume_state,
                    resume_meta)


def finished_run(start: RunStart) -> dict:
    """The summary of a run resumed at its end (``start.finished``), with one log line that says so and how
    to train it further; nothing is written."""
    args, meta, folder = start.args, start.resume_meta, RunFolder(start.args.ckpt_save_dir, start.args.model)
    best = folder.metadata(folder.best_path) if os.path.isfile(folder.best_path) else None
    best_path = folder.best_path if best and best.get("run_id") == start.run_id \
        and best.get("epoch") == meta.get("best_epoch") else None
    summary = dict(best_top1=meta.get("best_top1"), best_epoch=meta.get("best_epoch"), last_top1=meta.get("val_top1"),
                   best_checkpoint=best_path, last_checkpoint=start.resume_path, seconds=0.0)
    if start.rank == 0:
        epochs = meta.get("epoch", 0)
        best_text = (f"best val top-1 {summary['best_top1']:.2f}% at epoch {summary['best_epoch']}"
                     + (f" ({best_path})" if best_path else "") if summary["best_top1"] is not None
                     else "no validation")
        more = _continue_command(args.ckpt_save_dir, start.group_size) + " --epoch_size N"
        start.logger.info(f"run {start.run_id} is finished: epoch {epochs} of {args.epoch_size} done "
                          f"({start.resume_path}); {best_text}; nothing to train: it continues only with a larger "
                          f"--epoch_size ({more}, N > {epochs})")
    return summary


def set_up(start: RunStart, lock: RunLock, continuation: Optional[Continuation] = None) -> TrainingRun:
    """Build the data, model and optimizer of a started job (``start_run``), restore the resumed checkpoint and
    (rank 0) set up the run's files. ``continuation``: the resumed settings' notes and warnings, logged once."""
    args, rank, group_size, is_main = start.args, start.rank, start.group_size, start.rank == 0
    plan, logger, resume_path, resume_meta = start.plan, start.logger, start.resume_path, start.resume_meta
    run_id, continues_run = start.run_id, start.continues_run
    model_cfg = get_pretrained_cfg(args.model)
    data = data_config(args)
    shards = dict(num_shards=group_size, shard_id=rank) if group_size > 1 else {}
    with _data_warnings_logged(logger):
        train_data = create_loader(data, args.train_split, train=True, model_cfg=model_cfg,
                                   class_names=resume_meta.get("class_names"), **shards)
        class_names = train_data.class_names
        num_classes = train_data.num_classes
        val_data = create_loader(data, args.val_split, train=False, model_cfg=model_cfg,
                                 class_names=class_names) if args.val_while_train else None
    normalize = device_normalize(data, model_cfg)

    model = create_model(args.model, pretrained=args.pretrained and not resume_path, num_classes=num_classes,
                         in_channels=args.in_channels,
                         checkpoint_path=(args.ckpt_path or None) if not resume_path else None,
                         drop_rate=args.drop_rate or 0.0, drop_path_rate=args.drop_path_rate or 0.0,
                         frozen_stages=args.frozen_stages, norm_eval=args.norm_eval)
    if plan.amp_level != "O0":
        ms.amp.auto_mixed_precision(model, plan.amp_level)
    updates_per_epoch = max(1, -(-train_data.steps // args.gradient_accumulation_steps))
    lr = create_scheduler(args.scheduler, args.lr, updates_per_epoch, args.epoch_size, args.warmup_epochs,
                          args.warmup_factor, args.min_lr, args.decay_epochs, args.decay_rate,
                          args.multi_step_decay_milestones, args.lr_epoch_stair)
    optimizer = create_optimizer(model.trainable_params(), args.opt, lr, args.weight_decay, args.momentum,
                                 args.use_nesterov, args.filter_bias_and_bn, args.eps)
    loss_fn = create_loss(args.loss, num_classes, args.label_smoothing, soft_targets=args.mixup > 0 or args.cutmix > 0)
    reducer = ms.nn.DistributedGradReducer(optimizer.parameters, mean=True, degree=group_size) \
        if group_size > 1 else None
    train_step = TrainStep(model, loss_fn, optimizer, plan.loss_scale, plan.dynamic_loss_scale, args.clip_grad,
                           args.clip_value, args.gradient_accumulation_steps, args.ema_decay if args.ema else 0.0,
                           reducer, normalize)
    run = TrainingRun(args, plan, rank, group_size, logger, run_id, train_data, val_data, num_classes, model,
                      train_step, lr, updates_per_epoch, create_loss("CE", num_classes), continues_run=continues_run)
    if resume_path:
        run.start_epoch = resume_meta.get("epoch", 0) + 1
        run.first_step, run.epoch_progress = _resume_position(run, resume_meta, resume_path)
        restore_training_state(train_step, resume_path, start.resume_state, (run.start_epoch - 1) * updates_per_epoch
                               + run.first_step // args.gradient_accumulation_steps)
        start.resume_state = {}  # up to 4x the weights (optimizer state, EMA); not needed any more
        run.summary.update(best_top1=resume_meta.get("best_top1"), best_epoch=resume_meta.get("best_epoch"),
                           last_checkpoint=resume_path)  # until a newer one is written
    if is_main:
        _set_up_files(run, lock, resume_path, resume_meta, continuation or Continuation(args))
    return run


def _resume_position(run: TrainingRun, meta: dict, path: str) -> Tuple[int, Optional[dict]]:
    """(steps of epoch ``run.start_epoch`` done, their ``epoch_progress``) of a checkpoint written mid-epoch
    (its ``step`` is past its last completed ``epoch``); (0, None) at an epoch boundary, or when this run's
    epoch would be made of other batches (batch size, devices, samples or accumulation changed): the epoch
    then starts again from its first batch, from the checkpoint's weights, and the log says so."""
    if "step" not in meta or "steps_per_epoch" not in meta:
        return 0, None
    before, epoch = meta["steps_per_epoch"], run.start_epoch
    done = meta["step"] - (epoch - 1) * before
    if done == 0:
        return 0, None
    if not 0 < done < before or "epoch_progress" not in meta:
        raise CheckpointError(f"{path}: metadata 'step' {meta['step']} is not a step of epoch {epoch} "
                              f"({before} steps per epoch) with its 'epoch_progress'")
    args, steps = run.args, run.train_data.steps
    batch_before = (meta.get("config") or {}).get("batch_size", args.batch_size)
    devices_before = meta.get("num_devices", 1)
    same_batches = (before, batch_before, devices_before, meta.get("updates_per_epoch")) == \
        (steps, args.batch_size, run.group_size, run.updates_per_epoch)
    if same_batches and done % args.gradient_accumulation_steps == 0:
        return done, meta["epoch_progress"]
    run.logger.info(f"{path} stopped after step {done} of epoch {epoch} ({before} steps of batch {batch_before} on "
                    f"{devices_before} device(s)); this run has {steps} steps of batch {args.batch_size} on "
                    f"{run.group_size} device(s), {run.updates_per_epoch} updates: epoch {epoch} starts again from "
                    "its first batch, from the weights of that step")
    return 0, None


def _set_up_files(run: TrainingRun, lock: RunLock, resume_path: Optional[str], resume_meta: dict,
                  continuation: Continuation) -> None:
    """Rank 0: the run's folder (locked), saved config, log file, metrics file, the later epochs of a run
    continued from an earlier checkpoint set aside, and the first log lines."""
    args, logger = run.args, run.logger
    run.checkpoints = files = RunCheckpoints(args.ckpt_save_dir, args.model, args.keep_checkpoint_max, run.run_id,
                                             logger)
    lock.acquire()  # a new folder: made now
    if resume_path:  # the run's settings are its checkpoint's: config.yaml says them again, hand edits or not
        run_settings = resolve_stored_paths(resume_meta.get("config") or {}, resume_path)[0]
        edits = files.config_edits(run_settings, vars(args))
        if edits:
            logger.warning(f"{files.config_path}: {edits} (a run's settings come from its checkpoint; change those "
                           f"that may change with flags); the edited file is kept as "
                           f"{keep_copy(files.config_path, 'edited')}")
    # the config first: a fresh run's claim on the folder, which fails if another run made one meanwhile
    save_config(args, files.config_path, config_owner_line(run.run_id, args.model), replace=run.continues_run)
    log_to_file(logger, files.log_path)
    logger.info("config:\n" + format_config(args))
    for note in run.plan.notes:
        logger.info(note)
    data = run.train_data
    logger.info(f"{args.model}: {sum(p.size for p in run.model.trainable_params()):,} parameters, "
                f"{run.num_classes} classes; {data.num_images} training images x {run.group_size} device(s), "
                f"{data.steps} steps per epoch; mode {'Graph' if args.mode == 0 else 'PyNative'}; run {run.run_id}")
    if continuation.notes:
        logger.info(f"resumed with the run's own settings, except: {'; '.join(continuation.notes)}")
    for warning in continuation.warnings:
        logger.warning(warning)
    _log_disk_needed(run)
    if resume_path:
        logger.info(f"resuming from {resume_path}: epoch {run.start_epoch - 1} done"
                    + (f", epoch {run.start_epoch} continues after step {run.first_step}" if run.first_step else ""))
        before = resume_meta.get("steps_per_epoch")
        if before is not None and before != data.steps:
            logger.info(f"steps per epoch changed from {before} (in the checkpoint) to {data.steps} (batch size, "
                        f"samples or devices): the learning-rate schedule is rebuilt for {data.steps} and continues "
                        f"at the start of epoch {run.start_epoch}")
    files.remove_leftovers()
    if run.continues_run:
        files.set_aside_later(resume_meta.get("epoch", 0), resume_meta.get("step", 0), resume_path)
    if resume_path:
        files.repair_best(run.summary["best_epoch"])
        best = files.metadata(files.best_path) if os.path.isfile(files.best_path) else None
        if best and best.get("run_id") == run.run_id and best.get("epoch") == run.summary["best_epoch"]:
            run.summary["best_checkpoint"] = files.best_path
    run.metrics = MetricsCSV(files.metrics_path, keep_until_epoch=run.start_epoch - 1 if run.continues_run else None,
                             owner=run.run_id)


def _log_disk_needed(run: TrainingRun) -> None:
    """One log line: the size of a checkpoint and the most the run's kept checkpoints and best copy take
    in its folder, beside the free space there (a warning if that is less)."""
    args = run.args
    each = checkpoint_bytes(run.train_step, args.save_optimizer_state)
    kept = kept_checkpoints(args.epoch_size, run.start_epoch, args.ckpt_save_interval, args.keep_checkpoint_max)
    best = run.val_data is not None
    total = each * (kept + best)
    free = shutil.disk_usage(args.ckpt_save_dir).free
    what = "weights and optimizer state" if args.save_optimizer_state else "weights"
    line = (f"disk: at most {total / 1e6:,.1f} MB for checkpoints in {args.ckpt_save_dir} ({kept} kept"
            + (" + the best copy" if best else "") + f", {each / 1e6:,.1f} MB each of {what}); "
            f"{free / 1e6:,.0f} MB free there")
    (run.logger.warning if free < total else run.logger.info)(line + (" -- not enough" if free < total else ""))


def train_epoch(run: TrainingRun, epoch: int, stop: StopSignals) -> Tuple[dict, int]:
    """Epoch ``epoch`` from step ``run.first_step`` + 1 until its end, or until a stop agreed by every rank at
    an update boundary (with gradient accumulation no partial sum of gradients is left to store).

    Returns its progress (``loss_sum``, ``correct``, ``seen`` images, ``seconds``: of the whole epoch so far,
    a resumed one's included) and its steps done.
    """
    args, data, accumulation = run.args, run.train_data, run.args.gradient_accumulation_steps
    first_step = run.first_step
    progress = dict(run.epoch_progress or dict(loss_sum=0.0, correct=0, seen=0, seconds=0.0))
    run.first_step, run.epoch_progress = 0, None  # the next epochs start at their first step
    run.train_step.set_train(True)
    start, seen_here, step = time.perf_counter(), 0, first_step
    with progress_bar(data.steps, f"epoch {epoch}/{args.epoch_size}", run.is_main, initial=first_step) as bar:
        batches = train_batches(run.train_step, data.for_epoch(epoch), data.steps, accumulation,
                                run.plan.dataset_sink_mode, first_step)
        for step, (loss, logits, labels) in enumerate(batches, first_step + 1):
            loss_value = float(loss.asnumpy())
            if not np.isfinite(loss_value) and not run.plan.dynamic_loss_scale:
                raise RuntimeError(f"training diverged: loss is {loss_value} at epoch {epoch}, step {step}; "
                                   "lower --lr or use --clip_grad")
            n = int(labels.shape[0])
            progress["loss_sum"] += loss_value * n
            progress["correct"] += top_k_correct(logits, labels, 1)
            progress["seen"] += n
            seen_here += n
            update_index = (epoch - 1) * run.updates_per_epoch + (step - 1) // accumulation
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{run.lr[min(update_index, len(run.lr) - 1)]:.3g}",
                            img_s=f"{seen_here * run.group_size / (time.perf_counter() - start):.1f}", refresh=False)
            bar.update(1)
            if stop.agreed(run.group_size) and step % accumulation == 0 and step < data.steps:
                break
    progress["seconds"] += time.perf_counter() - start
    return progress, step


def _epoch_row(run: TrainingRun, epoch: int, progress: dict) -> dict:
    """The metrics row of a completed epoch (loss, top-1, lr, seconds, img/s) from its progress."""
    seen, seconds = max(progress["seen"], 1), max(progress["seconds"], 1e-9)
    return dict(epoch=epoch, train_loss=f"{progress['loss_sum'] / seen:.5f}",
                train_top1=f"{100.0 * progress['correct'] / seen:.3f}",
                lr=f"{run.lr[min(epoch * run.updates_per_epoch, len(run.lr)) - 1]:.6g}",
                epoch_seconds=f"{progress['seconds']:.2f}",
                img_per_s=f"{progress['seen'] * run.group_size / seconds:.2f}")


def _checkpoint_metadata(run: TrainingRun, epochs_done: int, step: int, val_top1: Optional[float]) -> dict:
    """A training checkpoint's metadata after ``epochs_done`` epochs and ``step`` steps in all."""
    args, data, summary = run.args, run.train_data, run.summary
    return dict(model=args.model, epoch=epochs_done, step=step, steps_per_epoch=data.steps,
                updates_per_epoch=run.updates_per_epoch, num_devices=run.group_size, num_classes=run.num_classes,
                in_channels=args.in_channels, class_names=data.class_names, val_top1=val_top1,
                best_top1=summary["best_top1"], best_epoch=summary["best_epoch"], ema=run.train_step.use_ema,
                config=stored_config(args), optimizer_state=args.save_optimizer_state)


def end_epoch(run: TrainingRun, epoch: int, row: dict, force_checkpoint: bool = False) -> None:
    """Validate, then (rank 0) record the metrics row, write the checkpoint (every ``--ckpt_save_interval``
    epochs, the last, and with ``force_checkpoint``) and the best copy, and log.

    The row is written before the checkpoint: a run killed in between resumes from the previous
    checkpoint and writes that epoch's row again, so ``metrics.csv`` never lacks a completed epoch.
    """
    args, summary = run.args, run.summary
    val = None
    if run.val_data is not None and (epoch % args.val_interval == 0 or epoch == args.epoch_size):
        with ema_weights(run.train_step):
            val = evaluate(run.model, run.val_data.dataset, run.val_loss_fn, run.val_data.steps, progress=run.is_main,
                           normalize=run.train_step.normalize)
        row.update(val_loss=f"{val['loss']:.5f}", val_top1=f"{val['top1']:.3f}", val_top5=f"{val['top5']:.3f}")
        summary["last_top1"] = val["top1"]
    if not run.is_main:
        return
    is_best = val is not None and (summary["best_top1"] is None or val["top1"] > summary["best_top1"])
    if is_best:
        summary.update(best_top1=val["top1"], best_epoch=epoch)
    run.metrics.append(**row)
    if epoch % args.ckpt_save_interval == 0 or epoch == args.epoch_size or force_checkpoint:
        data = run.train_data
        metadata = _checkpoint_metadata(run, epoch, epoch * data.steps, val["top1"] if val else None)
        state = training_state(run.train_step, args.save_optimizer_state)
        summary["last_checkpoint"] = run.checkpoints.save(state, metadata, epoch, data.steps, is_best)
        if is_best:
            summary["best_checkpoint"] = run.checkpoints.best_path
    run.logger.info(
        f"epoch {epoch}/{args.epoch_size}: train loss {row['train_loss']}, train top-1 {row['train_top1']}%, "
        f"lr {row['lr']}, {row['epoch_seconds']} s, {row['img_per_s']} img/s"
        + (f"; val loss {val['loss']:.4f}, top-1 {val['top1']:.2f}%, top-5 {val['top5']:.2f}%"
           + (" (EMA weights)" if run.train_step.use_ema else "") if val else ""))


def train(args, on_finish: Optional[Callable[[ms.nn.Cell, int], None]] = None,
          given: Optional[FrozenSet[str]] = None) -> dict:
    """Train ``args.model`` as configured; returns the summary (best/last top-1, seconds, paths).

    Paths are made absolute first: the run stores them, and is read from other folders. ``on_finish(model,
    rank)`` is called on every rank after the last epoch. ``given``: the keys the user set
    (``config.parse_config``); a resumed run takes every other from its checkpoint (None: ``args`` as is).
    A run resumed at its last epoch is finished: it says so and trains nothing.
    """
    args = absolute_paths(args)
    check_save_dir(args.ckpt_save_dir)
    continuation = continue_config(args, given) if given is not None else None
    args = continuation.args if continuation is not None else args
    lock = RunLock(args.ckpt_save_dir)
    try:
        start = start_run(args, lock, continuation)  # Ctrl-C during set-up ends at once: no step to save yet
        if start.finished:
            return finished_run(start)
        return _train_epochs(set_up(start, lock, continuation), on_finish)
    finally:
        lock.release()


def _train_epochs(run: TrainingRun, on_finish: Optional[Callable[[ms.nn.Cell, int], None]]) -> dict:
    """The epochs of a set-up run, from ``run.start_epoch``, until the last or a stop signal."""
    args, start = run.args, time.perf_counter()
    with StopSignals() as stop:
        for epoch in range(run.start_epoch, args.epoch_size + 1):
            try:
                progress, steps_done = train_epoch(run, epoch, stop)
            except RuntimeError as exc:
                if run.group_size == 1:
                    raise
                raise RuntimeError(f"rank {run.rank} of {run.group_size}: epoch {epoch} failed: {error_message(exc)}; "
                                   f"once every rank runs again, continue from the newest checkpoint with: "
                                   f"{_continue_command(args.ckpt_save_dir, run.group_size)}") from exc
            if steps_done < run.train_data.steps:
                return _stop(run, stop, epoch, steps_done, progress)
            stopping = stop.agreed(run.group_size) and epoch < args.epoch_size
            end_epoch(run, epoch, _epoch_row(run, epoch, progress), force_checkpoint=stopping)
            if stopping:
                return _stop(run, stop, epoch, steps_done)
    summary = run.summary
    summary["seconds"] = time.perf_counter() - start
    if on_finish is not None:
        on_finish(run.model, run.rank)
    if run.is_main:
        run.logger.info(f"done in {summary['seconds']:.0f} s: best val top-1 "
                        + (f"{summary['best_top1']:.2f}% at epoch {summary['best_epoch']}"
                           if summary["best_top1"] is not None else "n/a (no validation)")
                        + f"; last checkpoint {summary['last_checkpoint']}")
    return summary


def _stop(run: TrainingRun, stop: StopSignals, epoch: int, step: int, progress: Optional[dict] = None) -> dict:
    """End a run that a signal stopped after step ``step`` of epoch ``epoch``: (rank 0) write the checkpoint
    of that step unless the epoch's own was just written (``progress`` None), and log the line that says
    where it stopped and how to continue. The summary's ``exit_code`` is the signal's (130, 143)."""
    summary = dict(run.summary, exit_code=stop.exit_code)
    if run.is_main:
        _write_stop(run, stop, epoch, step, progress, summary)
    else:  # other ranks log warnings only
        run.logger.warning(f"rank {run.rank}: stopped by {stop.name} after epoch {epoch}, step {step}; rank 0 "
                           "writes the checkpoint")
    if run.group_size > 1:  # no rank exits before rank 0's checkpoint is written: msrun SIGKILLs the others
        stop.agreed(run.group_size)  # when the first worker exits with a non-zero code
    return summary


def _write_stop(run: TrainingRun, stop: StopSignals, epoch: int, step: int, progress: Optional[dict],
                summary: dict) -> None:
    """Rank 0's part of ``_stop``: the checkpoint (its path into ``summary``) and the last line."""
    if progress is not None:
        state = training_state(run.train_step, run.args.save_optimizer_state)
        metadata = dict(_checkpoint_metadata(run, epoch - 1, (epoch - 1) * run.train_data.steps + step, None),
                        epoch_progress=progress)
        summary["last_checkpoint"] = run.checkpoints.save_interrupted(state, metadata, epoch, step)
    run.logger.info(f"stopped by {stop.name} after epoch {epoch}, step {step} of {run.train_data.steps}: "
                    f"checkpoint {summary['last_checkpoint']}; continue with: "
                    f"{_continue_command(run.args.ckpt_save_dir, run.group_size)}")


def _continue_command(folder: str, group_size: int) -> str:
    """The command that continues the run in ``folder`` from its newest checkpoint (its settings come from the
    checkpoint), under msrun when it trains on ``group_size`` > 1 devices."""
    resume = ["train.py", "--ckpt_save_dir", folder, "--resume", "auto"]
    return f"msrun <its flags> {shlex.join(resume)}" if group_size > 1 else shlex.join(["python"] + resume)
