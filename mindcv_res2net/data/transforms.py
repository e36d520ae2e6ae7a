"""Image transforms (HWC uint8 in, CHW float32 out) and batch mixing (mixup / cutmix with soft targets)."""
import math
from typing import List, Optional, Sequence

import numpy as np
from mindspore.dataset import vision

INTERPOLATIONS = {"bilinear": vision.Inter.BILINEAR, "bicubic": vision.Inter.BICUBIC,
                  "nearest": vision.Inter.NEAREST, "area": vision.Inter.AREA}
SMALL_DATASETS = ("digits", "mnist", "fashion_mnist")


def _interpolation(name: str):
    if name not in INTERPOLATIONS:
        raise ValueError(f"--interpolation must be one of {', '.join(INTERPOLATIONS)}, got '{name}'")
    return INTERPOLATIONS[name]


def _normalize(mean: Sequence[float], std: Sequence[float]) -> List:
    return [vision.Normalize(mean=list(mean), std=list(std), is_hwc=True), vision.HWC2CHW()]


def imagenet_train_transforms(size: int, mean, std, scale=(0.08, 1.0), ratio=(0.75, 1.333), hflip=0.5, vflip=0.0,
                              color_jitter: Optional[float] = None, auto_augment: Optional[str] = None,
                              re_prob=0.0, re_scale=(0.02, 0.33), re_ratio=(0.3, 3.3), re_value=0.0,
                              re_max_attempts=10, interpolation="bilinear") -> List:
    """RandomResizedCrop, flips, optional colour jitter / AutoAugment / RandAugment, normalise, random erasing."""
    ops = [vision.RandomResizedCrop(size, scale=tuple(scale), ratio=tuple(ratio),
                                    interpolation=_interpolation(interpolation))]
    if hflip > 0:
        ops.append(vision.RandomHorizontalFlip(prob=hflip))
    if vflip > 0:
        ops.append(vision.RandomVerticalFlip(prob=vflip))
    if auto_augment:
        if auto_augment.startswith("randaug"):
            ops.append(vision.RandAugment())
        elif auto_augment.startswith("autoaug"):
            ops.append(vision.AutoAugment(vision.AutoAugmentPolicy.IMAGENET))
        else:
            raise ValueError(f"--auto_augment must start with 'randaug' or 'autoaug', got '{auto_augment}'")
    elif color_jitter:
        ops.append(vision.RandomColorAdjust(brightness=color_jitter, contrast=color_jitter,
                                            saturation=color_jitter))
    ops += _normalize(mean, std)
    if re_prob > 0:
        ops.append(vision.RandomErasing(prob=re_prob, scale=tuple(re_scale), ratio=tuple(re_ratio),
                                        value=int(re_value), max_attempts=re_max_attempts))
    return ops


def eval_transforms(size: int, mean, std, crop_pct: float = 0.875, interpolation="bilinear") -> List:
    """Resize the short side to ``size / crop_pct``, centre-crop ``size``, normalise."""
    resize = int(math.floor(size / crop_pct))
    return [vision.Resize(resize, interpolation=_interpolation(interpolation)), vision.CenterCrop(size)] + \
        _normalize(mean, std)


def cifar_train_transforms(size: int, mean, std, hflip=0.5, interpolation="bilinear") -> List:
    """Random 32 px crop after 4 px zero padding, flip; resized to ``size`` when it is not 32."""
    ops = [vision.RandomCrop(32, padding=4)]
    if hflip > 0:
        ops.append(vision.RandomHorizontalFlip(prob=hflip))
    if size != 32:
        ops.append(vision.Resize((size, size), interpolation=_interpolation(interpolation)))
    return ops + _normalize(mean, std)


def resize_transforms(size: int, mean, std, interpolation="bilinear") -> List:
    """Small scans (digits, MNIST): resize to ``size`` x ``size`` and normalise, no augmentation."""
    return [vision.Resize((size, size), interpolation=_interpolation(interpolation))] + _normalize(mean, std)


def create_transforms(dataset: str, train: bool, args, mean, std, crop_pct: float) -> List:
    """The transform list for a dataset and split, from the config ``args``."""
    size = args.image_resize
    if dataset in SMALL_DATASETS:
        return resize_transforms(size, mean, std, args.interpolation)
    if dataset.startswith("cifar"):
        if train:
            return cifar_train_transforms(size, mean, std, args.hflip, args.interpolation)
        return resize_transforms(size, mean, std, args.interpolation) if size != 32 else _normalize(mean, std)
    if train:
        return imagenet_train_transforms(size, mean, std, args.scale, args.ratio, args.hflip, args.vflip,
                                         args.color_jitter, args.auto_augment, args.re_prob, args.re_scale,
                                         args.re_ratio, args.re_value, args.re_max_attempts, args.interpolation)
    return eval_transforms(size, mean, std, crop_pct, args.interpolation)


class BatchMixer:
    """Mixup / cutmix on a batch with soft, label-smoothed targets (as timm's Mixup, batch mode).

    ``__call__(images (B, C, H, W) float32, labels (B,) int) -> (images, targets (B, num_classes) float32)``.
    With probability ``prob`` the batch is mixed with its reverse; cutmix is chosen with probability
    0.5 when both alphas are set.
    """

    def __init__(self, num_classes: int, mixup_alpha=0.0, cutmix_alpha=0.0, prob=1.0, label_smoothing=0.0,
                 seed: int = 0) -> None:
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
