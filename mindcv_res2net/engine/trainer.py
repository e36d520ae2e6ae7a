"""The training job behind train.py: data, model, optimizer, loop, validation, checkpoints, logs, resume."""
import hashlib
import os
import random
import re
import shutil
import time
from contextlib import contextmanager
from typing import Dict

import mindspore as ms
import mindspore.dataset as ds
import numpy as np
from tqdm import tqdm

from ..config import format_config, save_config
from ..data.loader import create_loader, iterate_batches
from ..loss import create_loss
from ..models import create_model, get_pretrained_cfg
from ..optim import create_optimizer
from ..scheduler import create_scheduler
from ..utils.checkpoint import CheckpointError, atomic_path, read_checkpoint, save_weights
from ..utils.device import plan_training, set_device
from ..utils.logger import MetricsCSV, setup_logger
from .evaluate import evaluate
from .train_step import TrainStep, top_k_correct

OPTIMIZER_PREFIX = "optimizer."
DIGEST_ENV = "MINDCV_RES2NET_WEIGHT_DIGEST_DIR"  # tests: each rank writes a digest of its trained weights here


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    ms.set_seed(seed)
    ds.config.set_seed(seed)


def _optimizer_state(train_step: TrainStep) -> list:
    """Optimizer parameters that are state (step counter, moments): not network weights, and not the
    learning-rate table, which the config rebuilds."""
    model_ids = {id(p) for p in train_step.model.get_parameters()}
    return [p for p in train_step.optimizer.get_parameters()
            if id(p) not in model_ids and p.name != "learning_rate"]


def checkpoint_state(train_step: TrainStep) -> dict:
    """Weights by name, optimizer state as ``optimizer.*`` and, with EMA, the averages as ``ema.*``."""
    state = {p.name: p.asnumpy() for p in train_step.model.get_parameters()}
    state.update({OPTIMIZER_PREFIX + p.name: p.asnumpy() for p in _optimizer_state(train_step)})
    if train_step.use_ema:
        state.update({p.name: p.asnumpy() for p in train_step.ema})
    return state


def restore_state(train_step: TrainStep, path: str, state: Dict[str, np.ndarray],
                  restore_optimizer: bool = True) -> None:
    """Put a checkpoint of this run back from ``state``, the tensors read from ``path``: weights,
    optimizer state and EMA (strict; a clear error if absent)."""
    targets = list(train_step.model.get_parameters())
    if restore_optimizer:
        targets += [(OPTIMIZER_PREFIX, p) for p in _optimizer_state(train_step)]
    if train_step.use_ema:
        targets += list(train_step.ema)
    missing = []
    for target in targets:
        prefix, param = target if isinstance(target, tuple) else ("", target)
        value = state.get(prefix + param.name)
        if value is None or tuple(value.shape) != tuple(param.shape):
            missing.append(prefix + param.name)
            continue
        param.set_data(ms.Tensor(value, dtype=param.dtype))
    if missing:
        hint = " (was it written with --ema?)" if any(m.startswith("ema.") for m in missing) else ""
        raise CheckpointError(f"{path}: cannot resume, {len(missing)} entries missing or of another shape"
                              f"{hint}: {', '.join(sorted(missing)[:6])}")


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


class CheckpointKeeper:
    """Writes ``<model>-<epoch>_<step>.ckpt`` every epoch (newest ``keep`` kept) and ``<model>-best.ckpt``."""

    def __init__(self, folder: str, model_name: str, keep: int) -> None:
        self.folder, self.model_name, self.keep = folder, model_name, max(1, keep)
        self.pattern = re.compile(rf"^{re.escape(model_name)}-(\d+)_(\d+)\.ckpt$")

    def remove_partial_files(self) -> None:
        """Temporary files left by a run that was killed while writing."""
        if os.path.isdir(self.folder):
            for name in os.listdir(self.folder):
                if name.startswith(".partial-"):
                    os.remove(os.path.join(self.folder, name))

    def epoch_checkpoints(self):
        if not os.path.isdir(self.folder):
            return []
        found = [(int(m.group(1)), f) for f in os.listdir(self.folder) if (m := self.pattern.match(f))]
        return [os.path.join(self.folder, f) for _, f in sorted(found)]

    def save(self, state: dict, metadata: dict, epoch: int, steps: int, is_best: bool) -> str:
        path = os.path.join(self.folder, f"{self.model_name}-{epoch}_{steps}.ckpt")
        save_weights(state, path, metadata=metadata)
        for old in self.epoch_checkpoints()[: -self.keep]:
            os.remove(old)
        if is_best:
            with atomic_path(os.path.join(self.folder, f"{self.model_name}-best.ckpt")) as tmp:
                shutil.copyfile(path, tmp)
        return path


def _resume_source(args, keeper: CheckpointKeeper, logger):
    """(checkpoint to continue from or None, restore the optimizer?) from --resume / --ckpt_path + --resume_opt."""
    if args.resume == "auto":
        found = keeper.epoch_checkpoints()
        if not found:
            logger.info(f"--resume auto: no checkpoint in {args.ckpt_save_dir} yet, starting from scratch")
            return None
        return found[-1]
    if args.resume:
        if not os.path.isfile(args.resume):
            raise CheckpointError(f"--resume: checkpoint file not found: {args.resume}")
        return args.resume
    if args.resume_opt and args.ckpt_path:
        return args.ckpt_path
    return None


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


def train(args) -> dict:
    """Train ``args.model`` as configured; returns the summary (best/last top-1, seconds, paths)."""
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
    logger = setup_logger(args.ckpt_save_dir if is_main else None, enabled=is_main)
    keeper = CheckpointKeeper(args.ckpt_save_dir, args.model, args.keep_checkpoint_max)
    if is_main:
        keeper.remove_partial_files()
    resume_path = _resume_source(args, keeper, logger)
    resume_state, resume_meta = read_checkpoint(resume_path) if resume_path else ({}, {})
    if resume_path and resume_meta.get("model") not in (None, args.model):
        raise CheckpointError(f"{resume_path}: written for model '{resume_meta['model']}', not '{args.model}'")

    model_cfg = get_pretrained_cfg(args.model)
    shards = dict(num_shards=group_size, shard_id=rank) if group_size > 1 else {}
    train_data = create_loader(args, args.train_split, True, model_cfg, resume_meta.get("class_names"), **shards)
    class_names = train_data.class_names
    num_classes = args.num_classes or len(class_names)
    if num_classes < len(class_names):
        raise ValueError(f"--num_classes {num_classes} is smaller than the {len(class_names)} classes of "
                         f"{args.dataset}")
    val_data = create_loader(args, args.val_split, False, model_cfg, class_names) if args.val_while_train else None

    model = create_model(args.model, pretrained=args.pretrained and not resume_path, num_classes=num_classes,
                         in_channels=args.in_channels,
                         checkpoint_path=(args.ckpt_path or None) if not resume_path else None,
                         drop_rate=args.drop_rate or 0.0, drop_path_rate=args.drop_path_rate or 0.0)
    if plan.amp_level != "O0":
        ms.amp.auto_mixed_precision(model, plan.amp_level)
    accumulation = args.gradient_accumulation_steps
    updates_per_epoch = max(1, -(-train_data.steps // accumulation))
    lr = create_scheduler(args.scheduler, args.lr, updates_per_epoch, args.epoch_size, args.warmup_epochs,
                          args.warmup_factor, args.min_lr, args.decay_epochs, args.decay_rate,
                          args.multi_step_decay_milestones, args.lr_epoch_stair)
    optimizer = create_optimizer(model.trainable_params(), args.opt, lr, args.weight_decay, args.momentum,
                                 args.use_nesterov, args.filter_bias_and_bn, args.eps)
    loss_fn = create_loss(args.loss, num_classes, args.label_smoothing, soft_targets=args.mixup > 0 or args.cutmix > 0)
    val_loss_fn = create_loss("CE", num_classes)
    reducer = ms.nn.DistributedGradReducer(optimizer.parameters, mean=True, degree=group_size) \
        if group_size > 1 else None
    train_step = TrainStep(model, loss_fn, optimizer, plan.loss_scale, plan.dynamic_loss_scale, args.clip_grad,
                           args.clip_value, accumulation, args.ema_decay if args.ema else 0.0, reducer)

    start_epoch = 1
    summary = dict(best_top1=None, best_epoch=None, last_top1=None, best_checkpoint=None, last_checkpoint=None)
    if resume_path:
        restore_state(train_step, resume_path, resume_state, restore_optimizer=True)
        del resume_state  # up to 4x the weights (optimizer state, EMA); not needed any more
        start_epoch = int(resume_meta.get("epoch", 0)) + 1
        summary.update(best_top1=resume_meta.get("best_top1"), best_epoch=resume_meta.get("best_epoch"))
    metrics = MetricsCSV(os.path.join(args.ckpt_save_dir, "metrics.csv"),
                         keep_until_epoch=start_epoch - 1 if resume_path else None) if is_main else None
    if is_main:
        save_config(args, os.path.join(args.ckpt_save_dir, "config.yaml"))
        logger.info("config:\n" + format_config(args))
        for note in plan.notes:
            logger.info(note)
        logger.info(f"{args.model}: {sum(p.size for p in model.trainable_params()):,} parameters, "
                    f"{num_classes} classes; {train_data.num_images} training images x {group_size} device(s), "
                    f"{train_data.steps} steps per epoch; mode {'Graph' if args.mode == 0 else 'PyNative'}")
        if resume_path:
            logger.info(f"resuming from {resume_path}: epoch {start_epoch - 1} done")

    run_start = time.perf_counter()
    for epoch in range(start_epoch, args.epoch_size + 1):
        train_step.set_train(True)
        loss_sum, correct, seen = 0.0, 0, 0
        start = time.perf_counter()
        with tqdm(total=train_data.steps, desc=f"epoch {epoch}/{args.epoch_size}", disable=not is_main,
                  dynamic_ncols=True) as bar:
            for step, (loss, logits, labels) in enumerate(
                    train_batches(train_step, train_data.for_epoch(epoch), train_data.steps, accumulation,
                                  plan.dataset_sink_mode), 1):
                loss_value = float(loss.asnumpy())
                if not np.isfinite(loss_value) and not plan.dynamic_loss_scale:
                    raise RuntimeError(f"training diverged: loss is {loss_value} at epoch {epoch}, step {step}; "
                                       "lower --lr or use --clip_grad")
                n = int(labels.shape[0])
                loss_sum += loss_value * n
                correct += top_k_correct(logits, labels, 1)
                seen += n
                bar.update(1)
                update_index = (epoch - 1) * updates_per_epoch + (step - 1) // accumulation
                bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr[min(update_index, len(lr) - 1)]:.3g}",
                                img_s=f"{seen * group_size / (time.perf_counter() - start):.1f}")
        epoch_seconds = time.perf_counter() - start
        row = dict(epoch=epoch, train_loss=f"{loss_sum / max(seen, 1):.5f}",
                   train_top1=f"{100.0 * correct / max(seen, 1):.3f}",
                   lr=f"{lr[min(epoch * updates_per_epoch, len(lr)) - 1]:.6g}", epoch_seconds=f"{epoch_seconds:.2f}",
                   img_per_s=f"{seen * group_size / epoch_seconds:.2f}")
        val = None
        if val_data is not None and (epoch % args.val_interval == 0 or epoch == args.epoch_size):
            with ema_weights(train_step):
                val = evaluate(model, val_data.dataset, val_loss_fn, val_data.steps, progress=is_main)
            row.update(val_loss=f"{val['loss']:.5f}", val_top1=f"{val['top1']:.3f}", val_top5=f"{val['top5']:.3f}")
            summary["last_top1"] = val["top1"]
        if not is_main:
            continue
        is_best = val is not None and (summary["best_top1"] is None or val["top1"] > summary["best_top1"])
        if is_best:
            summary.update(best_top1=val["top1"], best_epoch=epoch)
        if epoch % args.ckpt_save_interval == 0 or epoch == args.epoch_size:
            metadata = dict(model=args.model, epoch=epoch, step=epoch * train_data.steps,
                            steps_per_epoch=train_data.steps, num_classes=num_classes, in_channels=args.in_channels,
                            class_names=class_names, val_top1=val["top1"] if val else None,
                            best_top1=summary["best_top1"], best_epoch=summary["best_epoch"], ema=train_step.use_ema,
                            config=dict(vars(args)))
            summary["last_checkpoint"] = keeper.save(checkpoint_state(train_step), metadata, epoch,
                                                     train_data.steps, is_best)
            if is_best:
                summary["best_checkpoint"] = os.path.join(args.ckpt_save_dir, f"{args.model}-best.ckpt")
        metrics.append(**row)
        logger.info(f"epoch {epoch}/{args.epoch_size}: train loss {row['train_loss']}, train top-1 "
                    f"{row['train_top1']}%, lr {row['lr']}, {epoch_seconds:.1f} s, {row['img_per_s']} img/s"
                    + (f"; val loss {val['loss']:.4f}, top-1 {val['top1']:.2f}%, top-5 {val['top5']:.2f}%"
                       + (" (EMA weights)" if train_step.use_ema else "") if val else ""))
    summary["seconds"] = time.perf_counter() - run_start
    if os.environ.get(DIGEST_ENV):
        digest = hashlib.sha256(b"".join(p.asnumpy().tobytes() for p in model.trainable_params())).hexdigest()
        with atomic_path(os.path.join(os.environ[DIGEST_ENV], f"rank_{rank}.sha256")) as tmp, open(tmp, "w") as f:
            f.write(digest)
    if is_main:
        logger.info(f"done in {summary['seconds']:.0f} s: best val top-1 "
                    + (f"{summary['best_top1']:.2f}% at epoch {summary['best_epoch']}"
                       if summary["best_top1"] is not None else "n/a (no validation)")
                    + f"; last checkpoint {summary['last_checkpoint']}")
    return summary
