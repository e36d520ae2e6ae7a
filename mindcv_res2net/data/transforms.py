"""Image transforms and batch mixing (mixup / cutmix with soft targets).

In: HWC uint8 images, or encoded file bytes decoded here. Out: CHW uint8 (normalised later, inside the
compiled step), or CHW float32 normalised on the host.
"""
import math
from typing import List, Sequence

import numpy as np
from mindspore.dataset import vision

from ..utils.argtypes import ConfigError
from .datasets import dataset_spec
from .settings import DataConfig, EvalPreprocessing

INTERPOLATIONS = {"bilinear": vision.Inter.BILINEAR, "bicubic": vision.Inter.BICUBIC,
                  "nearest": vision.Inter.NEAREST, "area": vision.Inter.AREA}


def _interpolation(name: str):
    if name not in INTERPOLATIONS:
        raise ConfigError(f"--interpolation must be one of {', '.join(INTERPOLATIONS)}, got '{name}'")
    return INTERPOLATIONS[name]


def to_network_layout(mean: Sequence[float], std: Sequence[float], *, on_host: bool) -> List:
    """HWC uint8 -> CHW: normalised float32 when ``on_host``, else uint8 (normalised in the compiled step)."""
    return ([vision.Normalize(mean=list(mean), std=list(std), is_hwc=True)] if on_host else []) + [vision.HWC2CHW()]


def _to_grey(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H, W, 1): the channel mean, as the array sources' channel adapter does."""
    return image.mean(axis=-1, keepdims=True).astype(np.uint8)


def train_transforms(data: DataConfig, mean, std, *, encoded: bool = False, decoder=None) -> List:
    """The training transforms of ``data.dataset`` (see ``DatasetSpec``): small scans only resized; other
    arrays of images randomly cropped (padded by 1/8 of their side: CIFAR's 4 px) and flipped; image
    folders with ImageNet's augmentation. ``encoded``: images arrive as file bytes and are decoded here, in
    MindSpore's C++ workers (fused with the random crop for image folders), or by ``decoder``, a
    ``ScaledCropDecode`` that decodes and crops the random box, which is then resized."""
    size, on_host = data.image_resize, not data.normalize_on_device
    spec = dataset_spec(data.dataset)
    if not spec.augmented:
        return [vision.Resize((size, size), interpolation=_interpolation(data.interpolation))] + \
            to_network_layout(mean, std, on_host=on_host)
    if not spec.image_folder:
        ops = [vision.RandomCrop(spec.image_size, padding=spec.image_size // 8)]
        if data.hflip > 0:
            ops.append(vision.RandomHorizontalFlip(prob=data.hflip))
        if size != spec.image_size:
            ops.append(vision.Resize((size, size), interpolation=_interpolation(data.interpolation)))
        return ops + to_network_layout(mean, std, on_host=on_host)
    if decoder is not None:
        ops = [decoder, vision.Resize((size, size), interpolation=_interpolation(data.interpolation))]
    else:
        crop = vision.RandomCropDecodeResize if encoded else vision.RandomResizedCrop
        ops = [crop(size, scale=tuple(data.scale), ratio=tuple(data.ratio),
                    interpolation=_interpolation(data.interpolation))]
    if data.hflip > 0:
        ops.append(vision.RandomHorizontalFlip(prob=data.hflip))
    if data.vflip > 0:
        ops.append(vision.RandomVerticalFlip(prob=data.vflip))
    if data.auto_augment:
        if data.auto_augment.startswith("randaug"):
            ops.append(vision.RandAugment())
        elif data.auto_augment.startswith("autoaug"):
            ops.append(vision.AutoAugment(vision.AutoAugmentPolicy.IMAGENET))
        else:
            raise ConfigError(f"--auto_augment must start with 'randaug' or 'autoaug', got '{data.auto_augment}'")
    elif data.color_jitter:
        ops.append(vision.RandomColorAdjust(brightness=data.color_jitter, contrast=data.color_jitter,
                                            saturation=data.color_jitter))
    if encoded and data.in_channels == 1:
        ops.append(_to_grey)
    ops += to_network_layout(mean, std, on_host=on_host)
    if data.re_prob > 0:
        # the fill is re_value in normalised units: 0 erases to the mean colour, on host and on device alike
        value = int(data.re_value) if on_host else \
            tuple(int(np.clip(round(data.re_value * s + m), 0, 255)) for m, s in zip(mean, std))
        ops.append(vision.RandomErasing(prob=data.re_prob, scale=tuple(data.re_scale), ratio=tuple(data.re_ratio),
                                        value=value, max_attempts=data.re_max_attempts))
    return ops


def eval_transforms(pre: EvalPreprocessing, *, on_host: bool, encoded: bool = False, in_channels: int = 3,
                    decoder=None) -> List:
    """Evaluation transforms of ``pre`` (see ``eval_preprocessing``); ``encoded``: decode file bytes first, with
    MindSpore's ``Decode`` or ``decoder`` (a ``ScaledDecode``)."""
    ops = [decoder or vision.Decode()] if encoded else []
    inter = _interpolation(pre.interpolation)
    if pre.resize is not None:
        ops += [vision.Resize(pre.resize, interpolation=inter), vision.CenterCrop(pre.size)]
    elif pre.stretch:
        ops.append(vision.Resize((pre.size, pre.size), interpolation=inter))
    if encoded and in_channels == 1:
        ops.append(_to_grey)
    return ops + to_network_layout(pre.mean, pre.std, on_host=on_host)


class BatchMixer:
    """Mixup / cutmix on a batch with soft, label-smoothed targets (as timm's Mixup, batch mode).

    ``__call__(images (B, C, H, W) uint8 or float32, labels (B,) int) -> (images float32, targets (B, num_classes)
    float32)``. Mixing commutes with the (affine) normalisation, so it may come before or after it.
    With probability ``prob`` the batch is mixed with its reverse; cutmix is chosen with probability
    0.5 when both alphas are set.
    """

    def __init__(self, num_classes: int, *, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0, prob: float = 1.0,
                 label_smoothing: float = 0.0, seed: int = 0) -> None:
        self.num_classes, self.mixup_alpha, self.cutmix_alpha = num_classes, mixup_alpha, cutmix_alpha
        self.prob, self.smoothing = prob, label_smoothing
        self.rng = np.random.default_rng(seed)

    def _one_hot(self, labels: np.ndarray) -> np.ndarray:
        off = self.smoothing / self.num_classes
        targets = np.full((len(labels), self.num_classes), off, np.float32)
        targets[np.arange(len(labels)), labels] += 1.0 - self.smoothing
        return targets

    def __call__(self, images: np.ndarray, labels: np.ndarray):
        images = np.asarray(images, np.float32)
        targets = self._one_hot(np.asarray(labels).astype(np.int64))
        if self.rng.random() >= self.prob:
            return images, targets
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha <= 0 or self.rng.random() < 0.5)
        lam = float(self.rng.beta(*(2 * [self.cutmix_alpha if use_cutmix else self.mixup_alpha])))
        flipped = images[::-1]
        if use_cutmix:
            h, w = images.shape[2:]
            cut = math.sqrt(1.0 - lam)
            ch, cw = int(h * cut), int(w * cut)
            cy, cx = int(self.rng.integers(h)), int(self.rng.integers(w))
            y0, y1 = np.clip([cy - ch // 2, cy + ch // 2], 0, h)
            x0, x1 = np.clip([cx - cw // 2, cx + cw // 2], 0, w)
            images = images.copy()
            images[:, :, y0:y1, x0:x1] = flipped[:, :, y0:y1, x0:x1]
            lam = 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)
        else:
            images = images * lam + flipped * (1.0 - lam)
        return images.astype(np.float32), (targets * lam + targets[::-1] * (1.0 - lam)).astype(np.float32)
