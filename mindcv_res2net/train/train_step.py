"""One optimisation step as a Cell, compiled whole in Graph mode (with the input normalisation, when batches are uint8)."""
from typing import Optional, Sequence

import mindspore as ms
import numpy as np
from mindspore import Parameter, nn, ops

from ..evaluate import Normalize
from ..weights.checkpoint_layout import EMA_PREFIX


class TrainStep(nn.Cell):
    """Forward, scaled backward, unscale, optional clip, optimizer update, EMA update.

    ``construct(images (N, C, H, W), labels, apply_update=True) -> (loss scalar, logits (N, K))``.

    - ``loss_scale``: fixed scale, or the initial scale of a dynamic one (``dynamic_loss_scale``, GPU/Ascend:
      halved and the update skipped on overflow, doubled after 1000 finite steps).
    - ``accumulation_steps`` N > 1: gradients are summed over N calls and applied (divided by N) on the
      call with ``apply_update=True``: the same update as one batch N times larger (without BatchNorm).
    - ``ema_decay`` > 0: after each update ``ema = decay * ema + (1 - decay) * weight`` for every
      parameter (BatchNorm statistics included), kept in ``ema.*`` parameters.
    - ``grad_reducer`` averages gradients across data-parallel ranks.
    - ``normalize``: a ``Normalize`` applied to the images first (uint8 batches), or None.
    """

    def __init__(self, model: nn.Cell, loss_fn: nn.Cell, optimizer: nn.Optimizer, *, loss_scale: float = 1.0,
                 dynamic_loss_scale: bool = False, clip_grad: bool = False, clip_value: float = 15.0,
                 accumulation_steps: int = 1, ema_decay: float = 0.0, grad_reducer: Optional[nn.Cell] = None,
                 normalize: Optional[Normalize] = None) -> None:
        super().__init__(auto_prefix=False)
        if accumulation_steps < 1:
            raise ValueError(f"--gradient_accumulation_steps must be at least 1, got {accumulation_steps}")
        self.model = model
        self.normalize = normalize
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.weights = optimizer.parameters
        self.loss_scale = float(loss_scale)
        self.dynamic = dynamic_loss_scale
        self.scaler = ms.amp.DynamicLossScaler(self.loss_scale, 2, 1000) if dynamic_loss_scale else None
        self.inverse_scale = ms.Tensor(1.0 / self.loss_scale, ms.float32)
        self.hyper_map = ops.HyperMap()
        self.clip_grad = clip_grad
        self.clip_value = float(clip_value)
        self.grad_reducer = grad_reducer
        self.accumulation_steps = accumulation_steps
        if accumulation_steps > 1:
            self.accumulated = self.weights.clone(prefix="accumulated", init="zeros")
            self.inverse_steps = ms.Tensor(1.0 / accumulation_steps, ms.float32)
        self.use_ema = ema_decay > 0
        if self.use_ema:
            self.ema_sources = ms.ParameterTuple(list(model.get_parameters()))
            self.ema = ms.ParameterTuple([Parameter(p.data.copy(), name=EMA_PREFIX + p.name, requires_grad=False)
                                          for p in self.ema_sources])
            self.ema_decay = ms.Tensor(ema_decay, ms.float32)
        self.grad_fn = ops.value_and_grad(self._scaled_loss, None, self.weights, has_aux=True)

    def _scaled_loss(self, images, labels):
        if self.normalize is not None:
            images = self.normalize(images)
        logits = self.model(images)
        loss = self.loss_fn(logits, labels)
        scaled = self.scaler.scale(loss) if self.dynamic else loss * self.loss_scale
        return scaled, loss, logits

    def _update(self, grads):
        if self.clip_grad:
            grads = ops.clip_by_global_norm(grads, self.clip_value)
        self.optimizer(grads)
        if self.use_ema:
            self.hyper_map(ops.partial(_ema_update, self.ema_decay), self.ema, self.ema_sources)
        return True

    def construct(self, images, labels, apply_update=True):
        (_, loss, logits), grads = self.grad_fn(images, labels)
        if self.grad_reducer is not None:
            grads = self.grad_reducer(grads)
        if self.dynamic:
            grads = self.scaler.unscale(grads)
        elif self.loss_scale != 1.0:
            grads = self.hyper_map(ops.partial(ops.mul, self.inverse_scale), grads)
        if self.accumulation_steps > 1:
            self.hyper_map(ops.assign_add, self.accumulated, grads)
            if not apply_update:
                return loss, logits
            grads = self.hyper_map(ops.partial(ops.mul, self.inverse_steps), self.accumulated)
            self.hyper_map(ops.partial(_zero), self.accumulated)
        if self.dynamic:
            finite = ms.amp.all_finite(grads)
            self.scaler.adjust(finite)
            if finite:
                self._update(grads)
        else:
            self._update(grads)
        return loss, logits


def _ema_update(decay, ema, weight):
    return ops.assign(ema, ema * decay + weight.astype(ema.dtype) * (1.0 - decay))


def _zero(buffer):
    return ops.assign(buffer, ops.zeros_like(buffer))
