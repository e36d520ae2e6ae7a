"""The training job behind train.py: set-up, one epoch, end of epoch (validation, metrics, checkpoint)."""
import os
import random
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Optional, Tuple

import mindspore as ms
import mindspore.dataset as ds
import numpy as np

from ..config import data_config, format_config, save_config
from ..data.loader import Loader, create_loader, iterate_batches
from ..loss import create_loss
from ..models import create_model, get_pretrained_cfg
from ..models.registry import resolve_name
from ..optim import create_optimizer
from ..scheduler import create_scheduler
from ..weights import CheckpointError, read_checkpoint
from ..utils.device import TrainingPlan, plan_training, set_device
from ..utils.logger import MetricsCSV, log_to_file, progress_bar, setup_logger
from .checkpointing import (RunCheckpoints, RunFolder, checkpoint_bytes, config_owner_line, new_run_id,
                            kept_checkpoints, restore_training_state, run_metadata, training_state)
from .evaluate import evaluate
from .train_step import TrainStep, device_normalize, top_k_correct


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


def train_batches(train_step: TrainStep, dataset, steps: int, accumulation: int = 1, sink: bool = False):
    """One epoch of training steps, yielding (loss, logits, labels) after each.

    ``sink`` (GPU/Ascend): batches go to the device through MindSpore's data queue (``ms.data_sink``, one
    step per call) instead of being fed from the host; otherwise an update is applied every
    ``accumulation`` batches and at the end of the epoch.
    """
    if sink:
        def step_with_labels(images, labels):
            loss, logits = train_step(images, labels)
            return loss, logits, labels

        run_step = ms.data_sink(step_with_labels, dataset, sink_size=1)
        for _ in range(steps):
            yield run_step()
        return
    for step, (images, labels) in enumerate(iterate_batches(dataset), 1):
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
    continues_run: bool = False  # run_id is an existing run's (resumed, or --resume auto before its first epoch)
    checkpoints: Optional[RunCheckpoints] = None  # rank 0 only
    metrics: Optional[MetricsCSV] = None  # rank 0 only
    summary: dict = field(default_factory=lambda: dict(best_top1=None, best_epoch=None, last_top1=None,
                                                       best_checkpoint=None, last_checkpoint=None))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _resume_source(args, folder: RunFolder, logger) -> Optional[str]:
    """The checkpoint to continue from (or None), from --resume PATH|auto or --ckpt_path + --resume_opt."""
    if args.resume == "auto":
        found = folder.resume_path()
        if not found:
            logger.info(f"--resume auto: no checkpoint in {args.ckpt_save_dir} yet, starting from scratch")
        return found
    if args.resume:
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


def set_up(args) -> TrainingRun:
    """Check the config, start the devices, read the resume checkpoint, build data, model and optimizer."""
    resolve_name(args.model)  # a misspelled model name is the first error
    if args.aug_repeats > 1:
        raise ValueError("--aug_repeats (repeated augmentation) is not supported; use 0")
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
    folder = RunFolder(args.ckpt_save_dir, args.model)
    resume_path = _resume_source(args, folder, logger)
    resume_state, resume_meta = read_checkpoint(resume_path) if resume_path else ({}, {})
    resume_meta = run_metadata(resume_meta, resume_path) if resume_path else {}
    if resume_meta.get("model") not in (None, args.model):
        raise CheckpointError(f"{resume_path}: written for model '{resume_meta['model']}', not '{args.model}'")
    run_id, continues_run = _run_identity(args, folder, resume_meta)
    if is_main:
        folder.check_owner(run_id, resume_path)  # before anything is written there

    model_cfg = get_pretrained_cfg(args.model)
    data = data_config(args)
    shards = dict(num_shards=group_size, shard_id=rank) if group_size > 1 else {}
    train_data = create_loader(data, args.train_split, True, model_cfg, resume_meta.get("class_names"), **shards)
    class_names = train_data.class_names
    num_classes = train_data.num_classes
    val_data = create_loader(data, args.val_split, False, model_cfg, class_names) if args.val_while_train else None
    normalize = device_normalize(data, model_cfg)

    model = create_model(args.model, pretrained=args.pretrained and not resume_path, num_classes=num_classes,
                         in_channels=args.in_channels,
                         checkpoint_path=(args.ckpt_path or None) if not resume_path else None,
                         drop_rate=args.drop_rate or 0.0, drop_path_rate=args.drop_path_rate or 0.0)
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
        restore_training_state(train_step, resume_path, resume_state, (run.start_epoch - 1) * updates_per_epoch)
        del resume_state  # up to 4x the weights (optimizer state, EMA); not needed any more
        run.summary.update(best_top1=resume_meta.get("best_top1"), best_epoch=resume_meta.get("best_epoch"))
    if is_main:
        _set_up_files(run, resume_path, resume_meta)
    return run


def _set_up_files(run: TrainingRun, resume_path: Optional[str], resume_meta: dict) -> None:
    """Rank 0: the run's checkpoint folder, metrics file, saved config and first log lines."""
    args, logger = run.args, run.logger
    run.checkpoints = files = RunCheckpoints(args.ckpt_save_dir, args.model, args.keep_checkpoint_max, run.run_id,
                                             logger)
    # the config first: a fresh run's claim on the folder, which fails if another run made one meanwhile
    save_config(args, files.config_path, config_owner_line(run.run_id, args.model), replace=run.continues_run)
    log_to_file(logger, files.log_path)
    files.remove_leftovers()
    if resume_path:
        files.repair_best(run.summary["best_epoch"])
    run.metrics = MetricsCSV(files.metrics_path, keep_until_epoch=run.start_epoch - 1 if resume_path else None,
                             owner=run.run_id)
    logger.info("config:\n" + format_config(args))
    for note in run.plan.notes:
        logger.info(note)
    data = run.train_data
    logger.info(f"{args.model}: {sum(p.size for p in run.model.trainable_params()):,} parameters, "
                f"{run.num_classes} classes; {data.num_images} training images x {run.group_size} device(s), "
                f"{data.steps} steps per epoch; mode {'Graph' if args.mode == 0 else 'PyNative'}; run {run.run_id}")
    _log_disk_needed(run)
    if resume_path:
        logger.info(f"resuming from {resume_path}: epoch {run.start_epoch - 1} done")
        before = resume_meta.get("steps_per_epoch")
        if before is not None and before != data.steps:
            logger.info(f"steps per epoch changed from {before} (in the checkpoint) to {data.steps} (batch size, "
                        f"samples or devices): the learning-rate schedule is rebuilt for {data.steps} and continues "
                        f"at the start of epoch {run.start_epoch}")


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


def train_epoch(run: TrainingRun, epoch: int) -> dict:
    """One epoch of training; its metrics row (loss, top-1, lr, seconds, img/s)."""
    args, data, accumulation = run.args, run.train_data, run.args.gradient_accumulation_steps
    run.train_step.set_train(True)
    loss_sum, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    with progress_bar(data.steps, f"epoch {epoch}/{args.epoch_size}", run.is_main) as bar:
        batches = train_batches(run.train_step, data.for_epoch(epoch), data.steps, accumulation,
                                run.plan.dataset_sink_mode)
        for step, (loss, logits, labels) in enumerate(batches, 1):
            loss_value = float(loss.asnumpy())
            if not np.isfinite(loss_value) and not run.plan.dynamic_loss_scale:
                raise RuntimeError(f"training diverged: loss is {loss_value} at epoch {epoch}, step {step}; "
                                   "lower --lr or use --clip_grad")
            n = int(labels.shape[0])
            loss_sum += loss_value * n
            correct += top_k_correct(logits, labels, 1)
            seen += n
            update_index = (epoch - 1) * run.updates_per_epoch + (step - 1) // accumulation
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{run.lr[min(update_index, len(run.lr) - 1)]:.3g}",
                            img_s=f"{seen * run.group_size / (time.perf_counter() - start):.1f}", refresh=False)
            bar.update(1)
    seconds = time.perf_counter() - start
    return dict(epoch=epoch, train_loss=f"{loss_sum / max(seen, 1):.5f}",
                train_top1=f"{100.0 * correct / max(seen, 1):.3f}",
                lr=f"{run.lr[min(epoch * run.updates_per_epoch, len(run.lr)) - 1]:.6g}", epoch_seconds=f"{seconds:.2f}",
                img_per_s=f"{seen * run.group_size / seconds:.2f}")


def end_epoch(run: TrainingRun, epoch: int, row: dict) -> None:
    """Validate, then (rank 0) record the metrics row, write the checkpoint and the best copy, and log.

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
    if epoch % args.ckpt_save_interval == 0 or epoch == args.epoch_size:
        data = run.train_data
        metadata = dict(model=args.model, epoch=epoch, step=epoch * data.steps, steps_per_epoch=data.steps,
                        updates_per_epoch=run.updates_per_epoch, num_classes=run.num_classes,
                        in_channels=args.in_channels, class_names=data.class_names,
                        val_top1=val["top1"] if val else None, best_top1=summary["best_top1"],
                        best_epoch=summary["best_epoch"], ema=run.train_step.use_ema, config=dict(vars(args)),
                        optimizer_state=args.save_optimizer_state)
        state = training_state(run.train_step, args.save_optimizer_state)
        summary["last_checkpoint"] = run.checkpoints.save(state, metadata, epoch, data.steps, is_best)
        if is_best:
            summary["best_checkpoint"] = run.checkpoints.best_path
    run.logger.info(
        f"epoch {epoch}/{args.epoch_size}: train loss {row['train_loss']}, train top-1 {row['train_top1']}%, "
        f"lr {row['lr']}, {row['epoch_seconds']} s, {row['img_per_s']} img/s"
        + (f"; val loss {val['loss']:.4f}, top-1 {val['top1']:.2f}%, top-5 {val['top5']:.2f}%"
           + (" (EMA weights)" if run.train_step.use_ema else "") if val else ""))


def train(args, on_finish: Optional[Callable[[ms.nn.Cell, int], None]] = None) -> dict:
    """Train ``args.model`` as configured; returns the summary (best/last top-1, seconds, paths).

    ``on_finish(model, rank)`` is called on every rank after the last epoch.
    """
    run = set_up(args)
    start = time.perf_counter()
    for epoch in range(run.start_epoch, args.epoch_size + 1):
        end_epoch(run, epoch, train_epoch(run, epoch))
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

