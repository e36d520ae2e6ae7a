"""The evaluation loop shared by training and validation: top-1, top-5, loss, images, seconds, throughput;
and the input normalisation that runs inside the compiled steps."""
import time
from typing import Optional, Sequence

import mindspore as ms
import numpy as np
from mindspore import nn

from .data.image_files import DatasetError
from .data.settings import normalization
from .data.loader import iterate_batches
from .utils.logger import progress_bar


class Normalize(nn.Cell):
    """``(N, C, H, W)`` uint8 or float32 on the 0-255 scale -> float32 ``(x - mean) / std``, per channel.

    Runs inside the compiled train and eval steps, on the device, so that batches cross from the host
    as uint8: a quarter of the bytes of float32. Holds no parameters (nothing enters a checkpoint).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.mean = ms.Tensor(np.asarray(mean, np.float32).reshape(1, -1, 1, 1))
        self.std = ms.Tensor(np.asarray(std, np.float32).reshape(1, -1, 1, 1))

    def construct(self, x):
        return (x.astype(ms.float32) - self.mean) / self.std


def device_normalize(data, model_cfg: dict) -> Optional[Normalize]:
    """The ``Normalize`` the steps need for a ``DataConfig``; None when the host normalises."""
    return Normalize(*normalization(data, model_cfg)) if data.normalize_on_device else None


def top_k_correct(logits: ms.Tensor, labels: ms.Tensor, k: int) -> int:
    """How many rows of ``logits`` have their label (index, or argmax of soft targets) in the top ``k``."""
    logits = logits.asnumpy()
    labels = labels.asnumpy()
    if labels.ndim == 2:
        labels = labels.argmax(-1)
    k = min(k, logits.shape[1])
    top = (-logits).argsort(axis=1)[:, :k]
    return int((top == labels[:, None]).any(axis=1).sum())


def evaluate(model: nn.Cell, dataset, loss_fn: nn.Cell, *, steps: Optional[int] = None, progress: bool = True,
             desc: str = "validate", normalize: Optional[nn.Cell] = None) -> dict:
    """Run ``model`` in eval mode over ``dataset`` (image, index label) batches; ``normalize`` (a
    ``Normalize`` or None) turns uint8 batches into the network's input.

    Returns top1 / top5 (percent), loss (mean per image), images, seconds, img_per_s.
    """
    was_training = model.training
    model.set_train(False)
    correct1 = correct5 = images = 0
    loss_sum = 0.0
    start = time.perf_counter()
    try:
        with progress_bar(steps, desc, enabled=progress, leave=False) as bar:
            for batch, labels in iterate_batches(dataset):
                logits = model(batch if normalize is None else normalize(batch))
                n = int(labels.shape[0])
                loss_sum += float(loss_fn(logits, labels).asnumpy()) * n
                correct1 += top_k_correct(logits, labels, 1)
                correct5 += top_k_correct(logits, labels, 5)
                images += n
                bar.update(1)
    finally:
        model.set_train(was_training)
    seconds = time.perf_counter() - start
    if images == 0:
        raise DatasetError("the validation set is empty")
    return dict(top1=100.0 * correct1 / images, top5=100.0 * correct5 / images, loss=loss_sum / images,
                images=images, seconds=seconds, img_per_s=images / seconds)
