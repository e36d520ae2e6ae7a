"""JPEGs decoded at the scale the transform needs (``--reduced_decode``, on by default).

libjpeg-turbo's DCT scaling (1/2, 1/4, 1/8 of each side, as Pillow's ``Image.draft`` uses) decodes a large
JPEG in a fraction of a full decode's time, and is used only where its result still covers every pixel the
transform needs: the reduction never introduces upsampling.

- Training: RandomResizedCrop's box is chosen on the full-size geometry first (``crop_box``: MindSpore's
  rule, scale and ratio as its ``RandomResizedCrop``), from a random generator seeded by (seed, epoch, sample
  index), so the box does not depend on which worker runs it; the file is decoded at the largest reduction
  that keeps the box's shorter side at least the output size, and the scaled box is cropped (then resized by
  MindSpore's ``Resize``, as its own crop op would).
- Evaluation: decoded at the largest reduction that keeps the shorter side at least the resize target.

Only the JPEGs that the pre-scan hands to MindSpore's decoder (grey or RGB, checked at 1/8 scale with every
libjpeg warning an error) are scaled; every other file arrives as it would without the reduction (PNG
bytes, or Pillow's pixels as BMP) and is decoded in full by Pillow, which gives the pixels MindSpore's
decoder gives (checked by the pre-scan). EXIF orientation is ignored, as MindSpore's decoder and Pillow
ignore it. The loader uses these map ops only where they pay (``worth_scaling``).
"""
import math
from typing import Callable, Sequence, Tuple

import numpy as np

from .image_files import DatasetError, decode_jpeg_scaled, decode_with_pillow, reduction

JPEG_MAGIC = b"\xff\xd8\xff"


# Per image of a split, the pixels of JPEGs that can be reduced for the map ops below to pay: measured on a
# 2-core Xeon, the Python op costs about 0.5 ms of CPU per image more than MindSpore's C++ ops, and a reduced
# decode saves about 1.4 ms per megapixel in training (12 MP photos at 224 px; more in evaluation)
MIN_REDUCIBLE_PIXELS = 400_000


def worth_scaling(sizes: np.ndarray, scalable: np.ndarray, need: int) -> bool:
    """Whether a split of images (``sizes``: (N, 2) width and height, px; ``scalable``: (N,) the JPEGs that may
    be decoded scaled) goes through the map ops below: when the JPEGs that can be reduced (shorter side at
    least twice ``need`` px) hold at least ``MIN_REDUCIBLE_PIXELS`` per image of the split. Below that, the
    Python op's own cost (1.5x the C++ ops' time on a ~500x375 JPEG) outweighs what the reduction saves."""
    reducible = scalable & (sizes.min(axis=1) >= 2 * need)
    return bool(sizes[reducible].prod(axis=1).sum() >= MIN_REDUCIBLE_PIXELS * len(sizes))


def crop_box(width: int, height: int, rng: np.random.Generator, *, scale: Sequence[float],
             ratio: Sequence[float], attempts: int = 10) -> Tuple[int, int, int, int]:
    """RandomResizedCrop's box ``(x, y, w, h)`` in px of a ``width`` x ``height`` image, by MindSpore's rule:
    up to ``attempts`` draws of an area fraction (uniform in ``scale``) and an aspect w/h (log-uniform in
    ``ratio``), the first that fits placed uniformly at random; else the whole image clamped to ``ratio``,
    centred."""
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(attempts):
        area = rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = max(1, math.floor(math.sqrt(height * width * area * aspect) + 0.5))
        h = max(1, math.floor(w / aspect + 0.5))
        if w <= width and h <= height:
            return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
    w, h = width, height
    if width / height < ratio[0]:
        h = max(1, math.floor(width / ratio[0] + 0.5))
    elif width / height > ratio[1]:
        w = max(1, math.floor(height * ratio[1] + 0.5))
    return math.floor((width - w) / 2 + 0.5), math.floor((height - h) / 2 + 0.5), w, h


def jpeg_size(data, path: str) -> Tuple[int, int]:
    """(width, height) of a JPEG stream from its header; ``DatasetError`` naming ``path`` if it has none."""
    import simplejpeg

    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError as exc:
        raise DatasetError(f"cannot decode image {path}: {exc}") from None
    return width, height


def _decode_jpeg(data, path: str, *, width: int, height: int, denominator: int) -> np.ndarray:
    image = decode_jpeg_scaled(data, path, width=width, height=height, denominator=denominator)
    if image is None:
        raise DatasetError(f"cannot decode image {path}: libjpeg-turbo cannot decode it at 1/{denominator} scale")
    return image


def _changed(exc: DatasetError) -> DatasetError:
    """The error of a file that passed the pre-scan and fails in the pipeline."""
    return DatasetError(f"{exc} (it passed the pre-scan: changed on disk since?); move it out of the folder (the "
                        "pipeline cannot continue after a decode error) and resume with --resume auto")


class ScaledDecode:
    """Map op of evaluation: (file bytes (N,) uint8, sample index) -> (H', W', 3) uint8, a JPEG decoded at the
    largest reduction that keeps its shorter side at least ``short_side`` px (``reduction``), any other file
    in full. ``path(index)`` names the file in errors."""

    def __init__(self, path: Callable[[int], str], *, short_side: int) -> None:
        self.path, self.short_side = path, short_side

    def __call__(self, data: np.ndarray, index: np.ndarray) -> np.ndarray:
        path = self.path(int(index))
        try:
            if bytes(data[:3]) != JPEG_MAGIC:
                return decode_with_pillow(data, path)
            width, height = jpeg_size(data, path)
            return _decode_jpeg(data, path, width=width, height=height,
                                denominator=reduction(min(width, height), self.short_side))
        except DatasetError as exc:
            raise _changed(exc) from None


class ScaledCropDecode:
    """Map op of training: (file bytes (N,) uint8, sample index) -> the RandomResizedCrop box of the image,
    (h', w', 3) uint8 at the scale it was decoded at, still to be resized to ``size`` squared.

    The box (``crop_box`` with ``scale``, ``ratio``) is drawn on the full-size image by a generator seeded
    with ``[seed, epoch, index]``; a JPEG is then decoded at the largest reduction that keeps the box's
    shorter side at least ``size`` px, and the box is scaled with it (edges rounded outwards); any other
    file is decoded in full. ``path(index)`` names the file in errors."""

    def __init__(self, path: Callable[[int], str], *, size: int, scale: Sequence[float], ratio: Sequence[float],
                 seed: int, epoch: int) -> None:
        self.path, self.size, self.scale, self.ratio = path, size, tuple(scale), tuple(ratio)
        self.seed, self.epoch = seed, epoch

    def __call__(self, data: np.ndarray, index: np.ndarray) -> np.ndarray:
        index = int(index)
        path = self.path(index)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        try:
            if bytes(data[:3]) != JPEG_MAGIC:
                image = decode_with_pillow(data, path)
                x, y, w, h = crop_box(image.shape[1], image.shape[0], rng, scale=self.scale, ratio=self.ratio)
                return np.ascontiguousarray(image[y:y + h, x:x + w])
            width, height = jpeg_size(data, path)
            x, y, w, h = crop_box(width, height, rng, scale=self.scale, ratio=self.ratio)
            d = reduction(min(w, h), self.size)
            image = _decode_jpeg(data, path, width=width, height=height, denominator=d)
        except DatasetError as exc:
            raise _changed(exc) from None
        return np.ascontiguousarray(image[y // d:-(-(y + h) // d), x // d:-(-(x + w) // d)])
