"""Train and inference timing of one network in MindSpore (``measure_model``), run in a worker process."""
import dataclasses
import sys
from typing import Callable, List, Optional, Tuple

import mindspore as ms
import numpy as np
from mindspore import nn
from tqdm import tqdm

from ..train.train_step import TrainStep
from ..loss import create_loss
from ..models import create_model
from ..models.fuse import fuse_batchnorm
from ..optim import create_optimizer
from ..utils.device import MODE_BY_NAME, set_device
from ..utils.flops import count_macs
from .mindcv_compare import mindcv_network
from .plan import CHECKPOINTED, FOLDED, MINDCV, ModelRun
from .timing import peak_memory_mb, reset_peak_memory, timed


def our_network(run: ModelRun) -> Tuple[nn.Cell, Callable[[], nn.Cell]]:
    """(model, train-step maker) as train.py trains: 1000 classes, cross-entropy, momentum SGD (lr 0.01,
    wd 1e-4) through its TrainStep; every block recomputed in the backward pass for ``CHECKPOINTED``."""
    model = create_model(run.model, num_classes=1000)
    if run.impl == CHECKPOINTED:
        model.set_grad_checkpointing()
    optimizer = create_optimizer(model.trainable_params(), "momentum", 0.01, weight_decay=1e-4)
    return model, lambda: TrainStep(model, create_loss("CE", 1000), optimizer)


def inference_row(fields: dict, *, impl: str, engine: str, precision: str, params: int, macs: float,
                  batch_s: float, one_s: float, compile_s: Optional[float]) -> dict:
    """A row with inference figures only: ``batch_s`` seconds per batch of ``fields["batch_size"]``, ``one_s``
    per single image, ``compile_s`` the first call (None: not measured); the training columns stay empty."""
    return dict(fields, impl=impl, engine=engine, precision=precision, params=params, gflops=macs / 1e9,
                infer_compile_s=compile_s, train_compile_s=None, infer_ms_per_image_b1=one_s * 1e3,
                infer_ms_per_batch=batch_s * 1e3, infer_img_per_s=fields["batch_size"] / batch_s,
                train_ms_per_step=None, train_img_per_s=None, train_s_per_epoch=None, train_peak_memory_mb=None)


def _loss(output):
    """The loss of a train step's output (ours returns (loss, logits), mindcv's the loss alone)."""
    return output[0] if isinstance(output, tuple) else output


def measure_model(run: ModelRun) -> List[dict]:
    """Rows of one configuration, measured in this process: inference (batch, then batch 1), then training.

    With ``run.fuse_bn`` (our implementation only) a second row gives inference with every BatchNorm
    folded into its convolution (``models.fuse``), measured after training. "train peak mem" counts the
    train steps alone (the peak counter is reset after inference); "peak mem" the whole run.
    """
    set_device(run.device_target, MODE_BY_NAME[run.mode])
    size, batch, steps, warmup = run.image_size, run.batch_size, run.steps, run.warmup
    model, make_train_step = mindcv_network(run.model) if run.impl == MINDCV else our_network(run)
    params = sum(p.size for p in model.trainable_params())
    macs, _ = count_macs(model, (1, 3, size, size))
    rng = np.random.default_rng(0)
    images = ms.Tensor(rng.standard_normal((batch, 3, size, size)).astype(np.float32))
    single = ms.Tensor(rng.standard_normal((1, 3, size, size)).astype(np.float32))
    labels = ms.Tensor(rng.integers(0, 1000, batch).astype(np.int32))
    phases = 5 if run.fuse_bn else 3
    fields = dataclasses.asdict(run)
    with tqdm(total=phases * (1 + warmup + steps), desc=f"{run.impl} {run.model} {run.mode}", unit="step",
              file=sys.stderr, delay=5, leave=False, dynamic_ncols=True) as progress:
        model.set_train(False)
        repeat = dict(repeats=steps, warmup=warmup, progress=progress)
        infer_first, infer_batch = timed(lambda: model(images).asnumpy(), **repeat)
        _, infer_one = timed(lambda: model(single).asnumpy(), **repeat)
        step = make_train_step()
        step.set_train(True)
        peak_before_train = peak_memory_mb()
        counted = reset_peak_memory()
        train_first, train_step = timed(lambda: _loss(step(images, labels)).asnumpy(), **repeat)
        train_peak = peak_memory_mb() if counted else None
        img_per_s = batch / train_step
        rows = [dict(fields, params=params, gflops=macs / 1e9, infer_compile_s=infer_first,
                     train_compile_s=train_first, infer_ms_per_image_b1=infer_one * 1e3,
                     infer_ms_per_batch=infer_batch * 1e3, infer_img_per_s=batch / infer_batch,
                     train_ms_per_step=train_step * 1e3, train_img_per_s=img_per_s,
                     train_s_per_epoch=run.epoch_images / img_per_s, train_peak_memory_mb=train_peak,
                     engine=run.engine, precision="fp32")]
        if run.fuse_bn:
            fused = fuse_batchnorm(model)  # a new graph: the folded weights are constants of a new compile
            fused_batch = timed(lambda: fused(images).asnumpy(), **repeat)[1]
            fused_one = timed(lambda: fused(single).asnumpy(), **repeat)[1]
            rows.append(inference_row(fields, impl=FOLDED, engine=run.engine, precision="fp32", params=params,
                                      macs=macs, batch_s=fused_batch, one_s=fused_one, compile_s=None))
    peak = max(peak_before_train, peak_memory_mb())
    return [dict(row, peak_host_memory_mb=peak) for row in rows]
