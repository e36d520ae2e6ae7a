"""The training job behind train.py: plan the run (``plan``), start the devices, check the data, claim the run
folder, build the model and optimizer (``set_up``), then epochs with validation, metrics and checkpoints (an
estimate of their time after the first steps), and the stop on SIGINT/SIGTERM with a checkpoint at the step
reached."""
import contextlib
import dataclasses
import logging
import os
import random
import shlex
import shutil
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, FrozenSet, Iterator, Optional, Tuple

import mindspore as ms
import mindspore.dataset as ds
import numpy as np
from mindspore import ops
from tqdm import tqdm

from ..config import (ConfigError, Settings, absolute_paths, format_config, resolve_stored_paths, save_config,
                      stored_config)
from ..data.image_files import DataWarning
from ..data.loader import Loader, create_loader, iterate_batches
from ..evaluate import device_normalize, evaluate, top_k_correct
from ..loss import create_loss
from ..models import create_model, get_pretrained_cfg
from ..optim import create_optimizer
from ..scheduler import create_scheduler
from ..utils.cli import error_message
from ..utils.device import TrainingPlan, plan_training, set_device
from ..utils.errors import UserError
from ..utils.logger import FILE_ONLY, MetricsCSV, keep_copy, log_to_file, progress_bar, setup_logger
from ..weights import CheckpointError, read_checkpoint
from .plan import RunPlan, check_save_dir, claim_run_folder, plan_run, shown_path
from .run_folder import RunCheckpoints, RunLock, kept_checkpoints
from .run_record import RunRecord, now, write_run_record
from .stopping import StopSignals
from .train_step import TrainStep
from .training_state import checkpoint_bytes, restore_training_state, training_state


PATH_MAX_BYTES = 4096  # Linux's longest path: a run folder's path has fewer bytes


@contextmanager
def _data_warnings_logged(logger: logging.Logger) -> Iterator[None]:
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
def ema_weights(train_step: TrainStep) -> Iterator[None]:
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


def train_batches(train_step: TrainStep, dataset, steps: int, *, accumulation: int = 1, sink: bool = False,
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


@dataclass(frozen=True, slots=True)
class Devices:
    """Where a job runs: what the device takes of the requested precision, loss scale and data feeding
    (``device``), and this process's ``rank`` among ``group_size`` data-parallel processes."""

    device: TrainingPlan
    rank: int = 0
    group_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def start_devices(settings: Settings) -> Devices:
    """Set the device, execution mode and seeds, decide what the device supports, and start the data-parallel
    group with --distribute."""
    run, optimization = settings.run, settings.optimization
    target = set_device(run.device_target, run.mode)
    set_seed(settings.data.seed)
    device = plan_training(target, amp_level=optimization.amp_level, loss_scale=optimization.loss_scale,
                           dynamic_loss_scale=optimization.dynamic_loss_scale, dataset_sink_mode=run.dataset_sink_mode)
    if device.dataset_sink_mode and optimization.gradient_accumulation_steps > 1:
        raise ConfigError("--dataset_sink_mode cannot be combined with --gradient_accumulation_steps > 1; "
                          "set --dataset_sink_mode False")
    if not run.distribute:
        return Devices(device)
    from mindspore.communication import get_group_size, get_rank, init

    init()
    group_size = get_group_size()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True,
                                 device_num=group_size)
    return Devices(device, get_rank(), group_size)


@dataclass(frozen=True, slots=True)
class RunFiles:
    """What rank 0 writes in the run folder: checkpoints, metrics.csv, and run.json (``record``)."""

    checkpoints: RunCheckpoints
    metrics: MetricsCSV
    record: RunRecord

    def set_status(self, status: str) -> None:
        """Record in run.json that the run is ``status`` now (``run_record.STATUSES``)."""
        write_run_record(dataclasses.replace(self.record, status=status), self.checkpoints.record_path)


ESTIMATE_STEPS, ESTIMATE_SECONDS = 5, 10.0  # steps timed (or their seconds) before the estimate of the run's time


@dataclass
class FirstSteps:
    """The time of a job's first training steps, for the estimate of its epochs' time: every step but the job's
    first (the one that compiles, in Graph mode; PyNative's first is slow too), until ``ESTIMATE_STEPS`` are timed
    or ``ESTIMATE_SECONDS`` have passed in them. The pause between epochs (validation, checkpoint) is no step's."""

    timed: int = 0
    seconds: float = 0.0
    last: Optional[float] = None  # when the previous step ended (None: before the job's first step)
    logged: bool = False

    def epoch_starts(self) -> None:
        if self.last is not None:
            self.last = time.perf_counter()

    def step_ended(self) -> bool:
        """Time the step that just ended; True when the estimate is due (enough steps timed, not yet logged)."""
        now = time.perf_counter()
        if self.last is not None:
            self.timed, self.seconds = self.timed + 1, self.seconds + now - self.last
        self.last = now
        return not self.logged and (self.timed >= ESTIMATE_STEPS or self.seconds >= ESTIMATE_SECONDS)


@dataclass(kw_only=True)
class TrainingRun:
    """Everything one training job holds between epochs."""

    plan: RunPlan
    devices: Devices
    logger: logging.Logger
    train_data: Loader
    val_data: Optional[Loader]
    model: ms.nn.Cell
    train_step: TrainStep
    lr: np.ndarray  # per optimizer update
    updates_per_epoch: int
    val_loss_fn: ms.nn.Cell
    start_epoch: int = 1
    first_step: int = 0  # steps of start_epoch done before a mid-epoch resume
    epoch_progress: Optional[dict] = None  # their loss_sum, correct, seen, seconds (checkpoint metadata)
    files: Optional[RunFiles] = None  # rank 0 only
    first_steps: FirstSteps = field(default_factory=FirstSteps)
    summary: dict = field(default_factory=lambda: dict(best_top1=None, best_epoch=None, last_top1=None,
                                                       best_checkpoint=None, last_checkpoint=None))

    @property
    def settings(self) -> Settings:
        return self.plan.settings

    @property
    def is_main(self) -> bool:
        return self.devices.is_main

    @property
    def num_classes(self) -> int:
        return self.train_data.num_classes


def finished_run(plan: RunPlan, devices: Devices, logger: logging.Logger) -> dict:
    """The summary of a run resumed at its end (``plan.finished``), with one log line that says so and how
    to train it further; nothing is written."""
    meta, folder, epochs = plan.metadata, plan.folder, plan.settings.run.epoch_size
    best = folder.metadata(folder.best_path) if os.path.isfile(folder.best_path) else None
    best_path = folder.best_path if best and best.get("run_id") == plan.run_id \
        and best.get("epoch") == meta.get("best_epoch") else None
    summary = dict(best_top1=meta.get("best_top1"), best_epoch=meta.get("best_epoch"), last_top1=meta.get("val_top1"),
                   best_checkpoint=best_path, last_checkpoint=plan.checkpoint, seconds=0.0)
    if devices.is_main:
        best_text = (f"best val top-1 {summary['best_top1']:.2f}% at epoch {summary['best_epoch']}"
                     + (f" ({best_path})" if best_path else "") if summary["best_top1"] is not None
                     else "no validation")
        more = _continue_command(folder.folder, devices.group_size) + " --epoch_size N"
        logger.info(f"run {plan.run_id} is finished: epoch {plan.epochs_done} of {epochs} done ({plan.checkpoint}); "
                    f"{best_text}; nothing to train: it continues only with a larger --epoch_size ({more}, "
                    f"N > {plan.epochs_done})")
    return summary


def _loaders(plan: RunPlan, devices: Devices, *, model_cfg: dict,
             logger: logging.Logger) -> Tuple[Loader, Optional[Loader]]:
    """The training split (this rank's share, in the resumed run's class order) and, with --val_while_train,
    the validation split."""
    data = plan.settings.data
    shards = dict(num_shards=devices.group_size, shard_id=devices.rank) if devices.group_size > 1 else {}
    with _data_warnings_logged(logger):
        train_data = create_loader(data, data.train_split, train=True, model_cfg=model_cfg,
                                   class_names=plan.metadata.get("class_names"), **shards)
        val_data = create_loader(data, data.val_split, train=False, model_cfg=model_cfg,
                                 class_names=train_data.class_names) if plan.settings.run.val_while_train else None
    return train_data, val_data


def _network(plan: RunPlan, device: TrainingPlan, num_classes: int) -> ms.nn.Cell:
    """The model to train: from its starting weights (--pretrained, --ckpt_path), or shaped for the resumed
    checkpoint's (restored later), in the device's precision."""
    model_settings, resumed = plan.settings.model, bool(plan.checkpoint)
    model = create_model(model_settings.model, pretrained=model_settings.pretrained and not resumed,
                         num_classes=num_classes, in_channels=plan.settings.data.in_channels,
                         checkpoint_path=None if resumed else (model_settings.ckpt_path or None),
                         drop_rate=model_settings.drop_rate or 0.0, drop_path_rate=model_settings.drop_path_rate or 0.0,
                         frozen_stages=model_settings.frozen_stages, norm_eval=model_settings.norm_eval)
    if device.amp_level != "O0":
        ms.amp.auto_mixed_precision(model, device.amp_level)
    return model


def _train_step(settings: Settings, devices: Devices, model: ms.nn.Cell, *, num_classes: int, updates_per_epoch: int,
                model_cfg: dict) -> Tuple[TrainStep, np.ndarray]:
    """The compiled step (loss, optimizer, loss scale, clipping, accumulation, EMA, gradient averaging across
    ranks, the input normalisation) and its learning rate per update."""
    opt, device = settings.optimization, devices.device
    lr = create_scheduler(opt.scheduler, opt.lr, steps_per_epoch=updates_per_epoch, epochs=settings.run.epoch_size,
                          warmup_epochs=opt.warmup_epochs, warmup_factor=opt.warmup_factor, min_lr=opt.min_lr,
                          decay_epochs=opt.decay_epochs, decay_rate=opt.decay_rate,
                          milestones=opt.multi_step_decay_milestones, lr_epoch_stair=opt.lr_epoch_stair)
    optimizer = create_optimizer(model.trainable_params(), opt.opt, lr, weight_decay=opt.weight_decay,
                                 momentum=opt.momentum, nesterov=opt.use_nesterov,
                                 filter_bias_and_bn=opt.filter_bias_and_bn, eps=opt.eps)
    loss_fn = create_loss(opt.loss, num_classes, label_smoothing=settings.data.label_smoothing,
                          soft_targets=settings.data.mixing)
    reducer = ms.nn.DistributedGradReducer(optimizer.parameters, mean=True, degree=devices.group_size) \
        if devices.group_size > 1 else None
    step = TrainStep(model, loss_fn, optimizer, loss_scale=device.loss_scale,
                     dynamic_loss_scale=device.dynamic_loss_scale, clip_grad=opt.clip_grad, clip_value=opt.clip_value,
                     accumulation_steps=opt.gradient_accumulation_steps, ema_decay=opt.ema_decay if opt.ema else 0.0,
                     grad_reducer=reducer, normalize=device_normalize(settings.data, model_cfg))
    return step, lr


def set_up(plan: RunPlan, devices: Devices, *, loaders: Tuple[Loader, Optional[Loader]],
           logger: logging.Logger) -> TrainingRun:
    """Build the model and optimizer of a planned job (``plan_run``) for its data (``loaders``: training and
    validation, ``_loaders``) on its started devices; nothing is read from the run folder or written yet
    (``start_run`` does that, once the folder is claimed)."""
    settings = plan.settings
    model_cfg = get_pretrained_cfg(settings.model.model)
    train_data, val_data = loaders
    model = _network(plan, devices.device, train_data.num_classes)
    updates_per_epoch = max(1, -(-train_data.steps // settings.optimization.gradient_accumulation_steps))
    train_step, lr = _train_step(settings, devices, model, num_classes=train_data.num_classes,
                                 updates_per_epoch=updates_per_epoch, model_cfg=model_cfg)
    run = TrainingRun(plan=plan, devices=devices, logger=logger, train_data=train_data, val_data=val_data, model=model,
                      train_step=train_step, lr=lr, updates_per_epoch=updates_per_epoch,
                      val_loss_fn=create_loss("CE", train_data.num_classes))
    return run


def start_run(run: TrainingRun) -> None:
    """Once the run folder is claimed (``claim_run_folder``): restore the resumed checkpoint and (rank 0) set up
    the run's files."""
    if run.plan.checkpoint:
        _restore(run, run.plan.checkpoint)
    if run.is_main:
        run.files = _set_up_files(run)


def _restore(run: TrainingRun, path: str) -> None:
    """Continue from checkpoint ``path``: its position (epoch, step), tensors and best epoch."""
    meta = run.plan.metadata
    run.start_epoch = run.plan.epochs_done + 1
    run.first_step, run.epoch_progress = _resume_position(run, path)
    updates_done = (run.start_epoch - 1) * run.updates_per_epoch \
        + run.first_step // run.settings.optimization.gradient_accumulation_steps
    restore_training_state(run.train_step, path, read_checkpoint(path)[0], updates_done=updates_done)
    run.summary.update(best_top1=meta.get("best_top1"), best_epoch=meta.get("best_epoch"),
                       last_checkpoint=path)  # until a newer one is written


def _resume_position(run: TrainingRun, path: str) -> Tuple[int, Optional[dict]]:
    """(steps of epoch ``run.start_epoch`` done, their ``epoch_progress``) of a checkpoint written mid-epoch
    (its ``step`` is past its last completed ``epoch``); (0, None) at an epoch boundary, or when this run's
    epoch would be made of other batches (batch size, devices, samples or accumulation changed): the epoch
    then starts again from its first batch, from the checkpoint's weights, and the log says so."""
    meta = run.plan.metadata
    if "step" not in meta or "steps_per_epoch" not in meta:
        return 0, None
    before, epoch = meta["steps_per_epoch"], run.start_epoch
    done = meta["step"] - (epoch - 1) * before
    if done == 0:
        return 0, None
    if not 0 < done < before or "epoch_progress" not in meta:
        raise CheckpointError(f"{path}: metadata 'step' {meta['step']} is not a step of epoch {epoch} "
                              f"({before} steps per epoch) with its 'epoch_progress'")
    batch_size, steps, group_size = run.settings.data.batch_size, run.train_data.steps, run.devices.group_size
    batch_before = (meta.get("config") or {}).get("batch_size", batch_size)
    devices_before = meta.get("num_devices", 1)
    same_batches = (before, batch_before, devices_before, meta.get("updates_per_epoch")) == \
        (steps, batch_size, group_size, run.updates_per_epoch)
    if same_batches and done % run.settings.optimization.gradient_accumulation_steps == 0:
        return done, meta["epoch_progress"]
    run.logger.info(f"{path} stopped after step {done} of epoch {epoch} ({before} steps of batch {batch_before} on "
                    f"{devices_before} device(s)); this run has {steps} steps of batch {batch_size} on "
                    f"{group_size} device(s), {run.updates_per_epoch} updates: epoch {epoch} starts again from "
                    "its first batch, from the weights of that step")
    return 0, None


def _set_up_files(run: TrainingRun) -> RunFiles:
    """Rank 0, in the run's claimed folder: run.json, config.yaml, log file, metrics file, the later epochs of a
    run continued from an earlier checkpoint set aside, and the first log lines."""
    plan, settings, logger = run.plan, run.settings, run.logger
    files = RunCheckpoints(settings.run.ckpt_save_dir, settings.model.model, keep=settings.run.keep_checkpoint_max,
                           run_id=plan.run_id, logger=logger)
    if plan.checkpoint:  # the run's settings are its checkpoint's: config.yaml says them again, hand edits or not
        _keep_hand_edits(files, plan, logger)
    # run.json first: a fresh run's claim on the folder, which fails if another run made one meanwhile
    record = RunRecord(plan.run_id, settings.model.model, plan.created if plan.continues else now(), "running")
    write_run_record(record, files.record_path, replace=plan.continues)
    save_config(settings, files.config_path, replace=plan.continues)
    log_to_file(logger, files.log_path)
    _log_start(run)
    files.remove_leftovers()
    if plan.continues:
        files.set_aside_later(plan.epochs_done, plan.metadata.get("step", 0), plan.checkpoint)
    if plan.checkpoint:
        files.repair_best(run.summary["best_epoch"])
        best = files.metadata(files.best_path) if os.path.isfile(files.best_path) else None
        if best and best.get("run_id") == plan.run_id and best.get("epoch") == run.summary["best_epoch"]:
            run.summary["best_checkpoint"] = files.best_path
    metrics = MetricsCSV(files.metrics_path, keep_until_epoch=run.start_epoch - 1 if plan.continues else None,
                         owner=plan.run_id)
    return RunFiles(files, metrics, record)


def _keep_hand_edits(files: RunCheckpoints, plan: RunPlan, logger: logging.Logger) -> None:
    """A hand-edited config.yaml about to be rewritten with the run's settings is kept beside it, and a warning
    names the values replaced."""
    run_settings = resolve_stored_paths(plan.metadata.get("config") or {}, plan.checkpoint or "")[0]
    edits = files.config_edits(run_settings, plan.settings.to_mapping())
    if edits:
        logger.warning(f"{files.config_path}: {edits} (a run's settings come from its checkpoint; change those "
                       f"that may change with flags); the edited file is kept as "
                       f"{keep_copy(files.config_path, 'edited')}")


def _log_start(run: TrainingRun) -> None:
    """The first lines of the run's log: its folder, its settings (every one in the log file only), what the device
    changed, the model and data, what the resume changed, the disk needed, and where it resumes."""
    plan, settings, logger, data = run.plan, run.settings, run.logger, run.train_data
    logger.info(f"run folder: {shown_path(settings.run.ckpt_save_dir)}")
    logger.info("config:\n" + format_config(settings), extra=FILE_ONLY)
    for note in run.devices.device.notes:
        logger.info(note)
    logger.info(f"{settings.model.model}: {sum(p.size for p in run.model.trainable_params()):,} parameters, "
                f"{run.num_classes} classes; {data.num_images} training images x {run.devices.group_size} device(s), "
                f"{data.steps} steps per epoch; mode {'Graph' if settings.run.mode == 0 else 'PyNative'}; "
                f"run {plan.run_id}")
    if plan.changes:
        logger.info(f"resumed with the run's own settings, except: {'; '.join(plan.changes)}")
    for warning in plan.warnings:
        logger.warning(warning)
    _log_disk_needed(run)
    if plan.checkpoint:
        logger.info(f"resuming from {plan.checkpoint}: epoch {run.start_epoch - 1} done"
                    + (f", epoch {run.start_epoch} continues after step {run.first_step}" if run.first_step else ""))
        before = plan.metadata.get("steps_per_epoch")
        if before is not None and before != data.steps:
            logger.info(f"steps per epoch changed from {before} (in the checkpoint) to {data.steps} (batch size, "
                        f"samples or devices): the learning-rate schedule is rebuilt for {data.steps} and continues "
                        f"at the start of epoch {run.start_epoch}")


def _log_disk_needed(run: TrainingRun) -> None:
    """One log line: the size of a checkpoint and the most the run's kept checkpoints and best copy take
    in its folder, beside the free space there (a warning if that is less)."""
    settings, folder = run.settings.run, run.settings.run.ckpt_save_dir
    each = checkpoint_bytes(run.train_step, optimizer_state=settings.save_optimizer_state)
    kept = kept_checkpoints(settings.epoch_size, start_epoch=run.start_epoch, save_interval=settings.ckpt_save_interval,
                            keep=settings.keep_checkpoint_max)
    best = run.val_data is not None
    total = each * (kept + best)
    free = shutil.disk_usage(folder).free
    what = "weights and optimizer state" if settings.save_optimizer_state else "weights"
    line = (f"disk: at most {total / 1e6:,.1f} MB for checkpoints in {folder} ({kept} kept"
            + (" + the best copy" if best else "") + f", {each / 1e6:,.1f} MB each of {what}); "
            f"{free / 1e6:,.0f} MB free there")
    (run.logger.warning if free < total else run.logger.info)(line + (" -- not enough" if free < total else ""))


def train_epoch(run: TrainingRun, epoch: int, stop: StopSignals) -> Tuple[dict, int]:
    """Epoch ``epoch`` from step ``run.first_step`` + 1 until its end, or until a stop agreed by every rank at
    an update boundary (with gradient accumulation no partial sum of gradients is left to store).

    Returns its progress (``loss_sum``, ``correct``, ``seen`` images, ``seconds``: of the whole epoch so far,
    a resumed one's included) and its steps done. The job's first steps are timed for the estimate of its time
    (``log_estimate``).
    """
    data, accumulation = run.train_data, run.settings.optimization.gradient_accumulation_steps
    first_step, group_size, timer = run.first_step, run.devices.group_size, run.first_steps
    progress = dict(run.epoch_progress or dict(loss_sum=0.0, correct=0, seen=0, seconds=0.0))
    run.first_step, run.epoch_progress = 0, None  # the next epochs start at their first step
    run.train_step.set_train(True)
    timer.epoch_starts()
    start, seen_here, step = time.perf_counter(), 0, first_step
    with progress_bar(data.steps, f"epoch {epoch}/{run.settings.run.epoch_size}", enabled=run.is_main,
                      initial=first_step) as bar:
        batches = train_batches(run.train_step, data.for_epoch(epoch), data.steps, accumulation=accumulation,
                                sink=run.devices.device.dataset_sink_mode, first_step=first_step)
        for step, (loss, logits, labels) in enumerate(batches, first_step + 1):
            loss_value = float(loss.asnumpy())
            if not np.isfinite(loss_value) and not run.devices.device.dynamic_loss_scale:
                raise ConfigError(f"training diverged: loss is {loss_value} at epoch {epoch}, step {step}; "
                                  "lower --lr or use --clip_grad")
            n = int(labels.shape[0])
            progress["loss_sum"] += loss_value * n
            progress["correct"] += top_k_correct(logits, labels, 1)
            progress["seen"] += n
            seen_here += n
            update_index = (epoch - 1) * run.updates_per_epoch + (step - 1) // accumulation
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{run.lr[min(update_index, len(run.lr) - 1)]:.3g}",
                            img_s=f"{seen_here * group_size / (time.perf_counter() - start):.1f}", refresh=False)
            bar.update(1)
            if timer.step_ended() and run.is_main:
                log_estimate(run, epoch=epoch, step=step)
            if stop.agreed(group_size) and step % accumulation == 0 and step < data.steps:
                break
    progress["seconds"] += time.perf_counter() - start
    if step == data.steps and timer.timed and not timer.logged and run.is_main:  # an epoch of fewer steps
        log_estimate(run, epoch=epoch, step=step)
    return progress, step


def _duration(seconds: float) -> str:
    """``0.4 s``, ``12 s``, ``4 min``, ``3 h 20 min``."""
    if round(seconds) < 60:
        return f"{seconds:.1f} s" if seconds < 9.95 else f"{seconds:.0f} s"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{minutes} min" if not hours else f"{hours} h" + (f" {minutes} min" if minutes else "")


def log_estimate(run: TrainingRun, *, epoch: int, step: int) -> None:
    """Log once, after step ``step`` of epoch ``epoch``, the estimated time of an epoch (its steps x the time per
    step of those timed, ``FirstSteps``) and of the job's steps: every epoch's for a new run, those left when it
    started for a resumed one."""
    timer, steps, epochs = run.first_steps, run.train_data.steps, run.settings.run.epoch_size
    timer.logged = True
    per_step = timer.seconds / timer.timed
    job_steps = timer.timed + 1 + (steps - step) + (epochs - epoch) * steps  # every step but the first is timed
    if run.plan.checkpoint:
        epochs_left = f"epoch {epochs}" if run.start_epoch == epochs else f"epochs {run.start_epoch}-{epochs}"
        span = f"the {job_steps} steps left ({epochs_left} of {epochs})"
    else:
        span = f"{epochs} epoch{'s' if epochs > 1 else ''}"
    line = (f"estimated {_duration(steps * per_step)} per epoch ({steps} steps x {per_step:.3g} s), "
            f"{_duration(job_steps * per_step)} for {span}" + (", plus validation" if run.val_data is not None else ""))
    with tqdm.external_write_mode():  # between the lines of a progress bar on a terminal
        run.logger.info(line)


def _epoch_row(run: TrainingRun, epoch: int, progress: dict) -> dict:
    """The metrics row of a completed epoch (loss, top-1, lr, seconds, img/s) from its progress."""
    seen, seconds = max(progress["seen"], 1), max(progress["seconds"], 1e-9)
    return dict(epoch=epoch, train_loss=f"{progress['loss_sum'] / seen:.5f}",
                train_top1=f"{100.0 * progress['correct'] / seen:.3f}",
                lr=f"{run.lr[min(epoch * run.updates_per_epoch, len(run.lr)) - 1]:.6g}",
                epoch_seconds=f"{progress['seconds']:.2f}",
                img_per_s=f"{progress['seen'] * run.devices.group_size / seconds:.2f}")


def _checkpoint_metadata(run: TrainingRun, *, epochs_done: int, step: int, val_top1: Optional[float]) -> dict:
    """A training checkpoint's metadata after ``epochs_done`` epochs and ``step`` steps in all."""
    settings, data, summary = run.settings, run.train_data, run.summary
    return dict(model=settings.model.model, epoch=epochs_done, step=step, steps_per_epoch=data.steps,
                updates_per_epoch=run.updates_per_epoch, num_devices=run.devices.group_size,
                num_classes=run.num_classes, in_channels=settings.data.in_channels, class_names=data.class_names,
                val_top1=val_top1, best_top1=summary["best_top1"], best_epoch=summary["best_epoch"],
                ema=run.train_step.use_ema, config=stored_config(settings),
                optimizer_state=settings.run.save_optimizer_state)


def end_epoch(run: TrainingRun, epoch: int, row: dict, *, force_checkpoint: bool = False) -> None:
    """Validate, then (rank 0) record the metrics row, write the checkpoint (every ``--ckpt_save_interval``
    epochs, the last, and with ``force_checkpoint``) and the best copy, and log.

    The row is written before the checkpoint: a run killed in between resumes from the previous
    checkpoint and writes that epoch's row again, so ``metrics.csv`` never lacks a completed epoch.
    """
    settings, summary, epochs = run.settings.run, run.summary, run.settings.run.epoch_size
    val = None
    if run.val_data is not None and (epoch % settings.val_interval == 0 or epoch == epochs):
        with ema_weights(run.train_step):
            val = evaluate(run.model, run.val_data.dataset, run.val_loss_fn, steps=run.val_data.steps,
                           progress=run.is_main, normalize=run.train_step.normalize)
        row.update(val_loss=f"{val['loss']:.5f}", val_top1=f"{val['top1']:.3f}", val_top5=f"{val['top5']:.3f}")
        summary["last_top1"] = val["top1"]
    files = run.files
    if files is None:  # ranks other than 0 write nothing
        return
    is_best = val is not None and (summary["best_top1"] is None or val["top1"] > summary["best_top1"])
    if val is not None and is_best:
        summary.update(best_top1=val["top1"], best_epoch=epoch)
    files.metrics.append(**row)
    if epoch % settings.ckpt_save_interval == 0 or epoch == epochs or force_checkpoint:
        steps = run.train_data.steps
        metadata = _checkpoint_metadata(run, epochs_done=epoch, step=epoch * steps,
                                        val_top1=val["top1"] if val else None)
        state = training_state(run.train_step, optimizer_state=settings.save_optimizer_state)
        summary["last_checkpoint"] = files.checkpoints.save(state, metadata, epoch=epoch, steps=steps,
                                                            is_best=is_best)
        if is_best:
            summary["best_checkpoint"] = files.checkpoints.best_path
    run.logger.info(
        f"epoch {epoch}/{epochs}: train loss {row['train_loss']}, train top-1 {row['train_top1']}%, "
        f"lr {row['lr']}, {row['epoch_seconds']} s, {row['img_per_s']} img/s"
        + (f"; val loss {val['loss']:.4f}, top-1 {val['top1']:.2f}%, top-5 {val['top5']:.2f}%"
           + (" (EMA weights)" if run.train_step.use_ema else "") if val else ""))


def train(settings: Settings, *, on_finish: Optional[Callable[[ms.nn.Cell, int], None]] = None,
          given: Optional[FrozenSet[str]] = None) -> dict:
    """Train ``settings.model.model`` as configured; returns the summary (best/last top-1, seconds, paths).

    Paths are made absolute first: the run stores them, and is read from other folders. ``given``: the keys the
    user set (``cli.parser.parse_config``); a resumed run takes every other from its checkpoint (None: the
    settings as they are). ``on_finish(model, rank)`` is called on every rank after the last epoch. A run
    resumed at its last epoch is finished: it says so and trains nothing. Without --ckpt_save_dir the run gets a
    new folder under runs/ (``plan_run``), made once the data and the model are checked.
    """
    settings = absolute_paths(settings)
    check_save_dir(settings.run.ckpt_save_dir)
    plan = plan_run(settings, given)
    devices = start_devices(plan.settings)
    logger = setup_logger(enabled=devices.is_main)  # train.log is written once the folder is known to be this run's
    for remark in plan.remarks:
        logger.info(remark)
    lock: Optional[RunLock] = None
    try:  # Ctrl-C during set-up ends at once: no step to save yet
        if plan.finished:
            if devices.is_main:
                plan, lock = claim_run_folder(plan)
            return finished_run(plan, devices, logger)
        # the data and the model are checked before the run folder is made or claimed: a wrong --data_dir is the
        # first error, and a run that fails its checks leaves no folder
        loaders = _loaders(plan, devices, model_cfg=get_pretrained_cfg(plan.settings.model.model), logger=logger)
        run = set_up(plan, devices, loaders=loaders, logger=logger)
        if devices.is_main:
            run.plan, lock = claim_run_folder(plan)
        if plan.new_folder and devices.group_size > 1:
            run.plan = _rank0_folder(run.plan, devices)
        start_run(run)
        return _train_epochs(run, on_finish)
    finally:
        if lock is not None:
            lock.release()


def _train_epochs(run: TrainingRun, on_finish: Optional[Callable[[ms.nn.Cell, int], None]]) -> dict:
    """The epochs of a set-up run, from ``run.start_epoch``, until the last or a stop signal; run.json says how
    the run ended (finished, stopped, failed)."""
    try:
        summary = _epochs(run)
    except Exception:
        if run.files is not None:
            with contextlib.suppress(OSError):  # the error that ended the run is the one to see
                run.files.set_status("failed")
        raise
    if "exit_code" in summary:
        return summary
    if run.files is not None:
        run.files.set_status("finished")
    if on_finish is not None:
        on_finish(run.model, run.devices.rank)
    if run.is_main:
        run.logger.info(f"done in {summary['seconds']:.0f} s: best val top-1 "
                        + (f"{summary['best_top1']:.2f}% at epoch {summary['best_epoch']}"
                           if summary["best_top1"] is not None else "n/a (no validation)")
                        + f"; last checkpoint {summary['last_checkpoint']}; validate it with: "
                        + shlex.join(["python", "validate.py", "--ckpt_path", run.settings.run.ckpt_save_dir]))
    return summary


def _rank0_folder(plan: RunPlan, devices: Devices) -> RunPlan:
    """The plan with rank 0's run folder on every rank: a new default folder is named by rank 0 when it makes it
    (its time, a suffix if taken), and every rank's messages name that folder. One all-reduce (sum) of the
    path's bytes, as float32 (MindSpore's CPU AllReduce takes no integers), zeros from the other ranks."""
    encoded = np.zeros(PATH_MAX_BYTES, np.float32)
    if devices.is_main:
        path = plan.settings.run.ckpt_save_dir.encode()
        encoded[:len(path)] = np.frombuffer(path, np.uint8)
    summed = ops.AllReduce(ops.ReduceOp.SUM)(ms.Tensor(encoded)).asnumpy()
    folder = bytes(summed.astype(np.uint8)).rstrip(b"\0").decode()
    return dataclasses.replace(plan, settings=plan.settings.replace(ckpt_save_dir=folder))


def _epochs(run: TrainingRun) -> dict:
    """Train epoch after epoch; the summary, with an ``exit_code`` when a signal stopped the run."""
    start, epochs, group_size = time.perf_counter(), run.settings.run.epoch_size, run.devices.group_size
    with StopSignals() as stop:
        for epoch in range(run.start_epoch, epochs + 1):
            try:
                progress, steps_done = train_epoch(run, epoch, stop)
            except RuntimeError as exc:
                if group_size == 1:
                    raise
                # another rank died or lost contact: an error of the job's environment, said on one line (OSError)
                raise ConnectionError(f"rank {run.devices.rank} of {group_size}: epoch {epoch} failed: "
                                      f"{error_message(exc)}; once every rank runs again, continue from the newest "
                                      f"checkpoint with: {_continue_command(run.settings.run.ckpt_save_dir, group_size)}"
                                      ) from exc
            if steps_done < run.train_data.steps:
                return _stop(run, stop, epoch=epoch, step=steps_done, progress=progress)
            stopping = stop.agreed(group_size) and epoch < epochs
            end_epoch(run, epoch, _epoch_row(run, epoch, progress), force_checkpoint=stopping)
            if stopping:
                return _stop(run, stop, epoch=epoch, step=steps_done)
    run.summary["seconds"] = time.perf_counter() - start
    return run.summary


def _stop(run: TrainingRun, stop: StopSignals, *, epoch: int, step: int, progress: Optional[dict] = None) -> dict:
    """End a run that a signal stopped after step ``step`` of epoch ``epoch``: (rank 0) write the checkpoint
    of that step unless the epoch's own was just written (``progress`` None), and log the line that says
    where it stopped and how to continue. The summary's ``exit_code`` is the signal's (130, 143)."""
    summary = dict(run.summary, exit_code=stop.exit_code)
    if run.files is not None:
        _write_stop(run, run.files, stop, epoch=epoch, step=step, progress=progress, summary=summary)
    else:  # other ranks log warnings only
        run.logger.warning(f"rank {run.devices.rank}: stopped by {stop.name} after epoch {epoch}, step {step}; rank 0 "
                           "writes the checkpoint")
    if run.devices.group_size > 1:  # no rank exits before rank 0's checkpoint is written: msrun SIGKILLs the others
        stop.agreed(run.devices.group_size)  # when the first worker exits with a non-zero code
    return summary


def _write_stop(run: TrainingRun, files: RunFiles, stop: StopSignals, *, epoch: int, step: int,
                progress: Optional[dict], summary: dict) -> None:
    """Rank 0's part of ``_stop``: the checkpoint (its path into ``summary``), run.json, and the last line."""
    if progress is not None:
        state = training_state(run.train_step, optimizer_state=run.settings.run.save_optimizer_state)
        steps = run.train_data.steps
        metadata = dict(_checkpoint_metadata(run, epochs_done=epoch - 1, step=(epoch - 1) * steps + step,
                                             val_top1=None), epoch_progress=progress)
        summary["last_checkpoint"] = files.checkpoints.save_interrupted(state, metadata, epoch=epoch, step=step)
    files.set_status("stopped")
    run.logger.info(f"stopped by {stop.name} after epoch {epoch}, step {step} of {run.train_data.steps}: "
                    f"checkpoint {summary['last_checkpoint']}; continue with: "
                    f"{_continue_command(run.settings.run.ckpt_save_dir, run.devices.group_size)}")


def _continue_command(folder: str, group_size: int) -> str:
    """The command that continues the run in ``folder`` from its newest checkpoint (its settings come from the
    checkpoint), under msrun when it trains on ``group_size`` > 1 devices."""
    resume = ["train.py", "--ckpt_save_dir", folder, "--resume", "auto"]
    return f"msrun <its flags> {shlex.join(resume)}" if group_size > 1 else shlex.join(["python"] + resume)
