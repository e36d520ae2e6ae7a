"""Build a batched MindSpore dataset for a named data set and split from the config."""
import os
import re
import warnings
from typing import List, Optional

import mindspore.dataset as ds
import numpy as np

from .datasets import dataset_spec
from .image_files import DatasetError, DataWarning, encode_bmp
from .settings import DataConfig, eval_preprocessing, normalization
from .sources import SourceOptions
from .scaled_decode import ScaledCropDecode, ScaledDecode, worth_scaling
from .transforms import BatchMixer, eval_transforms, train_transforms


class Loader:
    """One split, batched. ``for_epoch(e)`` builds epoch ``e``'s dataset: its order, augmentation and
    mixing depend only on the seed and ``e``, so a resumed run sees the same batches as an unbroken one.
    Each data-parallel rank gets its own equal-sized share of every epoch's order.
    """

    def __init__(self, build, *, class_names: List[str], num_images: int, steps: int, num_classes: int) -> None:
        self.build = build
        self.class_names = class_names
        self.num_images = num_images  # per rank
        self.steps = steps  # batches per epoch
        self.num_classes = num_classes  # the model's: at least len(class_names)

    def for_epoch(self, epoch: int) -> ds.Dataset:
        """Yields (image (B, C, H, W) uint8, or float32 when normalised on the host or mixed; label (B,) int32
        or soft targets (B, K) float32)."""
        return self.build(epoch)

    @property
    def dataset(self) -> ds.Dataset:
        return self.build(0)


def create_source(name: str, split: str, data_dir: str = "", *, download: bool = False,
                  class_names: Optional[List[str]] = None, skip_corrupt: bool = False, scan_threads: int = 1,
                  resize: Optional[int] = None):
    """Random-access source of (HWC uint8 image, label) pairs with ``class_names``, read by the data set's
    reader (``datasets.DATASETS``); an image folder's files are checked first by ``scan_threads`` threads,
    against the evaluation's shorter side ``resize`` (px) too (see ``ImageFolderSource``)."""
    spec = dataset_spec(name)
    return spec.read(spec, split, SourceOptions(data_dir=data_dir, download=download, class_names=class_names,
                                                skip_corrupt=skip_corrupt, scan_threads=scan_threads, resize=resize))


class SubsetSource:
    """The images ``indices`` of ``source``, read on demand (images may differ in size)."""

    def __init__(self, source, indices) -> None:
        self.source, self.indices = source, [int(i) for i in indices]
        self.class_names = source.class_names

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int):
        return self.source[self.indices[index]]

    @property
    def labels(self) -> np.ndarray:
        return self.source.labels[self.indices]

    @property
    def encoded(self) -> bool:
        return getattr(self.source, "encoded", False)

    @property
    def sizes(self) -> np.ndarray:
        return self.source.sizes[self.indices]

    @property
    def scalable(self) -> np.ndarray:
        return self.source.scalable[self.indices]

    def path(self, index: int) -> str:
        return self.source.path(self.indices[index])

    def decode(self, index: int) -> np.ndarray:
        return self.source.decode(self.indices[index])


class _Indexed:
    """A source's rows with their index: (image, label, index), for the map ops that draw per-image randomness."""

    def __init__(self, source) -> None:
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        image, label = self.source[index]
        return image, label, np.int64(index)


class _ScaledAsBitmap:
    """The evaluation rows of a split that keeps MindSpore's ``Decode``: its few JPEGs large enough to be
    reduced (``short_side``: the resize target, px) are decoded here at the reduced scale, as ``ScaledDecode``
    decodes them, and handed over as lossless BMP, so that every file gives the tensor predict gives."""

    def __init__(self, source, short_side: int) -> None:
        self.source = source
        self.decode = ScaledDecode(source.path, short_side=short_side)
        self.reduced = source.scalable & (source.sizes.min(axis=1) >= 2 * short_side)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        data, label = self.source[index]
        return (encode_bmp(self.decode(data, np.int64(index))) if self.reduced[index] else data), label


class _ChannelAdapter:
    """Repeat grey images to 3 channels (or keep 1 channel), keeping random access."""

    def __init__(self, source, in_channels: int) -> None:
        self.source, self.in_channels = source, in_channels

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        image, label = self.source[index]
        if image.shape[-1] != self.in_channels:
            image = np.repeat(image[..., :1], self.in_channels, axis=-1) if self.in_channels != 1 \
                else image.mean(axis=-1, keepdims=True).astype(np.uint8)
        return image, label


def create_loader(data: DataConfig, split: str, *, train: bool, model_cfg: dict,
                  class_names: Optional[List[str]] = None, num_shards: Optional[int] = None,
                  shard_id: Optional[int] = None) -> Loader:
    """Batched dataset of one split: transforms of the data set, mixup/cutmix when training.

    Images reach the step as CHW uint8 (``data.normalize_on_device``: the step normalises them) or as
    normalised float32; mixed batches are float32 on the 0-255 scale. Image folders are decoded in
    MindSpore's C++ workers, or, with ``data.reduced_decode`` on a split where it pays (``worth_scaling``), by
    a Python map op in the same workers, large JPEGs at a reduced DCT scale (``scaled_decode``; in evaluation
    the few large JPEGs of any other split are decoded so by the generator and handed over as BMP); every
    split's images are bounded by the evaluation resize (see ``ImageFolderSource``). The class count is ``data.num_classes`` (default: the data set's). A
    training split of a single class gets a ``DataWarning``.
    """
    workers = max(1, min(data.num_parallel_workers, os.cpu_count() or 1))
    pre = eval_preprocessing(data, model_cfg)
    source = create_source(data.dataset, split, data.data_dir, download=data.dataset_download,
                           class_names=class_names, skip_corrupt=data.skip_corrupt_images, scan_threads=workers,
                           resize=pre.resize)
    names = source.class_names
    num_classes = data.num_classes or len(names)
    if num_classes < len(names):
        raise DatasetError(f"--num_classes {num_classes} is smaller than the {len(names)} classes of {data.dataset}")
    limit = (data.train_num_samples or data.num_samples) if train else data.num_samples
    if limit:
        source = SubsetSource(source, np.sort(np.random.default_rng(data.seed).permutation(len(source))[:limit]))
    present = np.unique(source.labels) if train else None
    if present is not None and len(present) == 1:
        warnings.warn(f"{data.dataset}/{split}: every training image is of one class ('{names[present[0]]}'): "
                      + ("cross-entropy over a single class is always 0, so the network learns nothing"
                         if num_classes == 1 else f"the network can only learn to predict it ({num_classes} "
                                                  "classes)"), DataWarning, stacklevel=2)
    encoded = getattr(source, "encoded", False)  # file bytes, decoded by the transforms
    # large JPEGs decoded at a reduced scale by a Python map op, which then decodes every image of the split
    need = data.image_resize if train else pre.resize
    scaled = encoded and data.reduced_decode and worth_scaling(source.sizes, source.scalable, need)
    mean, std = normalization(data, model_cfg)

    def transforms(epoch: int) -> List:
        if train:
            decoder = ScaledCropDecode(source.path, size=data.image_resize, scale=data.scale, ratio=data.ratio,
                                       seed=data.seed, epoch=epoch) if scaled else None
            return train_transforms(data, mean, std, encoded=encoded, decoder=decoder)
        return eval_transforms(pre, on_host=not data.normalize_on_device, encoded=encoded, in_channels=data.in_channels,
                               decoder=ScaledDecode(source.path, short_side=need) if scaled else None)

    total = len(source)
    shards, shard = (num_shards or 1), (shard_id or 0)
    num_images = total // shards  # equal shares: every rank runs the same steps
    batch_size = data.batch_size
    drop = bool(train and data.drop_remainder)
    if drop and num_images < batch_size:
        raise DatasetError(f"--batch_size {batch_size} is larger than the {num_images} training images "
                           f"(with --drop_remainder no batch would remain)")
    mixing = train and data.mixing
    if scaled:
        rows = _Indexed(source)
    elif encoded and data.reduced_decode and not train:
        rows = _ScaledAsBitmap(source, need)
    else:
        rows = source if encoded else _ChannelAdapter(source, data.in_channels)

    def build(epoch: int) -> ds.Dataset:
        ds.config.set_seed(data.seed + epoch)
        order = np.random.default_rng([data.seed, epoch]).permutation(total) if train and data.shuffle \
            else np.arange(total)
        indices = order[: num_images * shards][shard::shards].tolist()
        columns = ["image", "label", "index"] if scaled else ["image", "label"]
        dataset = ds.GeneratorDataset(rows, column_names=columns, sampler=ds.SubsetSampler(indices),
                                      python_multiprocessing=False)
        dataset = dataset.map(operations=transforms(epoch), input_columns=["image", "index"] if scaled else "image",
                              output_columns=["image"] if scaled else None, num_parallel_workers=workers)
        if mixing:
            mixer = BatchMixer(num_classes, mixup_alpha=data.mixup, cutmix_alpha=data.cutmix, prob=data.cutmix_prob,
                               label_smoothing=data.label_smoothing, seed=data.seed * 100003 + epoch)
            dataset = dataset.batch(batch_size, drop_remainder=drop, input_columns=["image", "label"],
                                    output_columns=["image", "label"],
                                    per_batch_map=lambda images, labels, _info: mixer(np.stack(images),
                                                                                      np.stack(labels)))
        else:
            dataset = dataset.batch(batch_size, drop_remainder=drop)
        if encoded:
            dataset.find_unreadable = lambda batches_done: _find_unreadable(source, indices[batches_done * batch_size:])
        return dataset

    steps = num_images // batch_size if drop else -(-num_images // batch_size)
    return Loader(build, class_names=names, num_images=num_images, steps=steps, num_classes=num_classes)


def _find_unreadable(source, indices, limit: int = 4096) -> Optional[str]:
    """The first of ``indices`` (at most ``limit``) that MindSpore's decoder refuses, if any: a file that passed
    the pre-scan but failed inside the C++ pipeline, found by decoding the epoch's next images again."""
    for index in indices[:limit]:
        try:
            source.decode(index)
        except (RuntimeError, DatasetError):
            return source.path(index)
    return None


def iterate_batches(dataset: ds.Dataset, skip: int = 0):
    """One epoch of (images, labels) Tensors, without its first ``skip`` batches: they are read and dropped,
    so their random augmentation runs and the batches that follow are those of an unbroken epoch (the
    position of a run resumed mid-epoch). A data error inside MindSpore's pipeline (corrupt image,
    unreadable file) comes out as a one-line ``DatasetError`` naming the file. The Tensors share the
    pipeline's buffers (``do_copy=False``, as ``mindspore.Model.train`` iterates): no copy of every batch."""
    iterator = dataset.create_tuple_iterator(num_epochs=1, do_copy=False)
    batches_done = 0
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except RuntimeError as exc:
            # the message of the last Python error raised inside the pipeline (a map op's comes after its traceback)
            found = [m for m in re.findall(r"(?:DatasetError|ValueError|OSError): ([^\n]+)", str(exc))
                     if not m.startswith("Traceback (most recent call last)")]
            if found:
                raise DatasetError(found[-1].strip()) from None
            locate = getattr(dataset, "find_unreadable", None)
            path = locate(batches_done) if locate else None
            if path:
                raise DatasetError(f"cannot decode image {path}: MindSpore's decoder failed on it although it passed "
                                   "the pre-scan; move it out of the folder (the pipeline cannot continue after a "
                                   "decode error) and resume with --resume auto") from None
            raise
        batches_done += 1
        if batches_done > skip:
            yield batch
