"""The training job behind train.py: data, model, optimizer, loop, validation, checkpoints, logs."""
import os
import random
import re
import shutil
import time

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
from ..utils.checkpoint import atomic_path, save_weights
from ..utils.device import resolve_amp_level, set_device
from ..utils.logger import MetricsCSV, setup_logger
from .evaluate import evaluate
from .train_step import TrainStep, top_k_correct

OPTIMIZER_PREFIX = "optimizer."


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    ms.set_seed(seed)
    ds.config.set_seed(seed)


def checkpoint_state(model, optimizer) -> dict:
    """Model parameters by name plus optimizer state under ``optimizer.`` (step counter, moments)."""
    state = {p.name: p.asnumpy() for p in model.get_parameters()}
    model_ids = {id(p) for p in model.get_parameters()}
    for p in optimizer.get_parameters():
        if id(p) not in model_ids:
            state[OPTIMIZER_PREFIX + p.name] = p.asnumpy()
    return state


class CheckpointKeeper:
    """Writes ``<model>-<epoch>_<step>.ckpt`` every epoch (newest ``keep`` kept) and ``<model>-best.ckpt``."""

    def __init__(self, folder: str, model_name: str, keep: int) -> None:
        self.folder, self.model_name, self.keep = folder, model_name, max(1, keep)
        self.pattern = re.compile(rf"^{re.escape(model_name)}-(\d+)_(\d+)\.ckpt$")

    def epoch_checkpoints(self):
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


def train(args) -> dict:
    """Train ``args.model`` as configured; returns the summary (best/last top-1, seconds, paths)."""
    unsupported = [flag for flag, used in (("--resume", args.resume), ("--resume_opt", args.resume_opt),
                                           ("--ema", args.ema), ("--dynamic_loss_scale", args.dynamic_loss_scale),
                                           ("--aug_repeats", args.aug_repeats > 1)) if used]
    if unsupported:
        raise ValueError(f"{', '.join(unsupported)}: not supported by this version of train.py yet")
    device = set_device(args.device_target, args.mode)
    set_seed(args.seed)
    rank, group_size = 0, 1
    if args.distribute:
        from mindspore.communication import get_group_size, get_rank, init

        init()
        rank, group_size = get_rank(), get_group_size()
        ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True,
                                     device_num=group_size)
    is_main = rank == 0
    logger = setup_logger(args.ckpt_save_dir if is_main else None, enabled=is_main)
    model_cfg = get_pretrained_cfg(args.model)
    shards = dict(num_shards=group_size, shard_id=rank) if group_size > 1 else {}
    train_data = create_loader(args, args.train_split, True, model_cfg, **shards)
    class_names = train_data.class_names
    num_classes = args.num_classes or len(class_names)
    if num_classes < len(class_names):
        raise ValueError(f"--num_classes {num_classes} is smaller than the {len(class_names)} classes of "
                         f"{args.dataset}")
    val_data = create_loader(args, args.val_split, False, model_cfg, class_names) if args.val_while_train else None

    model = create_model(args.model, pretrained=args.pretrained, num_classes=num_classes,
                         in_channels=args.in_channels, checkpoint_path=args.ckpt_path or None,
                         drop_rate=args.drop_rate or 0.0, drop_path_rate=args.drop_path_rate or 0.0)
    amp_level, amp_note = resolve_amp_level(device, args.amp_level)
    if amp_level != "O0":
        ms.amp.auto_mixed_precision(model, amp_level)
    lr = create_scheduler(args.scheduler, args.lr, train_data.steps, args.epoch_size, args.warmup_epochs,
                          args.warmup_factor, args.min_lr, args.decay_epochs, args.decay_rate,
                          args.multi_step_decay_milestones, args.lr_epoch_stair)
    optimizer = create_optimizer(model.trainable_params(), args.opt, lr, args.weight_decay, args.momentum,
                                 args.use_nesterov, args.filter_bias_and_bn, args.eps)
    soft_targets = args.mixup > 0 or args.cutmix > 0
    loss_fn = create_loss(args.loss, num_classes, args.label_smoothing, soft_targets)
    val_loss_fn = create_loss("CE", num_classes)
    reducer = ms.nn.DistributedGradReducer(optimizer.parameters, mean=True, degree=group_size) \
        if group_size > 1 else None
    train_step = TrainStep(model, loss_fn, optimizer, args.loss_scale, args.clip_grad, args.clip_value, reducer)

    keeper = CheckpointKeeper(args.ckpt_save_dir, args.model, args.keep_checkpoint_max)
    metrics = MetricsCSV(os.path.join(args.ckpt_save_dir, "metrics.csv")) if is_main else None
    if is_main:
        save_config(args, os.path.join(args.ckpt_save_dir, "config.yaml"))
        logger.info("config:\n" + format_config(args))
        if amp_note:
            logger.info(amp_note)
        logger.info(f"{args.model}: {sum(p.size for p in model.trainable_params()):,} parameters, "
                    f"{num_classes} classes; {train_data.num_images} training images x {group_size} device(s), "
                    f"{train_data.steps} steps per epoch; mode {'Graph' if args.mode == 0 else 'PyNative'}")

    summary = dict(best_top1=None, best_epoch=None, last_top1=None, best_checkpoint=None, last_checkpoint=None)
    run_start = time.perf_counter()
    for epoch in range(1, args.epoch_size + 1):
        train_step.set_train(True)
        loss_sum, correct, seen = 0.0, 0, 0
        start = time.perf_counter()
        with tqdm(total=train_data.steps, desc=f"epoch {epoch}/{args.epoch_size}", disable=not is_main,
                  dynamic_ncols=True) as bar:
            for images, labels in iterate_batches(train_data.dataset):
                step_index = (epoch - 1) * train_data.steps + bar.n
                loss, logits = train_step(images, labels)
                n = int(images.shape[0])
                loss_value = float(loss.asnumpy())
                if not np.isfinite(loss_value):
                    raise RuntimeError(f"training diverged: loss is {loss_value} at epoch {epoch}, step {bar.n + 1}; "
                                       "lower --lr or use --clip_grad")
                loss_sum += loss_value * n
                correct += top_k_correct(logits, labels, 1)
                seen += n
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr[min(step_index, len(lr) - 1)]:.3g}",
                                img_s=f"{seen * group_size / (time.perf_counter() - start):.1f}")
        epoch_seconds = time.perf_counter() - start
        row = dict(epoch=epoch, train_loss=f"{loss_sum / max(seen, 1):.5f}", train_top1=f"{100.0 * correct / max(seen, 1):.3f}",
                   lr=f"{lr[min(epoch * train_data.steps, len(lr)) - 1]:.6g}", epoch_seconds=f"{epoch_seconds:.2f}",
                   img_per_s=f"{seen * group_size / epoch_seconds:.2f}")
        val = None
        if val_data is not None and (epoch % args.val_interval == 0 or epoch == args.epoch_size):
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
                            best_top1=summary["best_top1"], config={k: v for k, v in vars(args).items()})
            summary["last_checkpoint"] = keeper.save(checkpoint_state(model, optimizer), metadata, epoch,
                                                     train_data.steps, is_best)
            if is_best:
                summary["best_checkpoint"] = os.path.join(args.ckpt_save_dir, f"{args.model}-best.ckpt")
        metrics.append(**row)
        logger.info(f"epoch {epoch}/{args.epoch_size}: train loss {row['train_loss']}, train top-1 "
                    f"{row['train_top1']}%, lr {row['lr']}, {epoch_seconds:.1f} s, {row['img_per_s']} img/s"
                    + (f"; val loss {val['loss']:.4f}, top-1 {val['top1']:.2f}%, top-5 {val['top5']:.2f}%"
                       if val else ""))
    summary["seconds"] = time.perf_counter() - run_start
    if is_main:
        logger.info(f"done in {summary['seconds']:.0f} s: best val top-1 "
                    + (f"{summary['best_top1']:.2f}% at epoch {summary['best_epoch']} ({summary['best_checkpoint']})"
                       if summary["best_top1"] is not None else "n/a (no validation)")
                    + f"; last checkpoint {summary['last_checkpoint']}")
    return summary

