"""Build a batched MindSpore dataset for a named data set and split from the config."""
import os
import re
from typing import List, Optional

import mindspore.dataset as ds
import numpy as np

from .sources import CIFAR, DatasetError, ImageFolderSource, cifar_source, digits_source, mnist_source
from .transforms import BatchMixer, create_transforms

DATASETS = ("digits", "cifar10", "cifar100", "mnist", "fashion_mnist", "imagenet", "imagefolder")


class Loader:
    """One split, batched. ``for_epoch(e)`` builds epoch ``e``'s dataset: its order, augmentation and
    mixing depend only on the seed and ``e``, so a resumed run sees the same batches as an unbroken one.
    Each data-parallel rank gets its own equal-sized share of every epoch's order.
    """

    def __init__(self, build, class_names: List[str], num_images: int, steps: int, num_classes: int) -> None:
        self.build = build
        self.class_names = class_names
        self.num_images = num_images  # per rank
        self.steps = steps  # batches per epoch
        self.num_classes = num_classes  # the model's: at least len(class_names)

    def for_epoch(self, epoch: int) -> ds.Dataset:
        """Yields (image (B, C, H, W) float32, label (B,) int32 or soft targets (B, K) float32)."""
        return self.build(epoch)

    @property
    def dataset(self) -> ds.Dataset:
        return self.build(0)


def create_source(name: str, split: str, data_dir: str = "", download: bool = False,
                  class_names: Optional[List[str]] = None, skip_corrupt: bool = False):
    """Random-access source of (HWC uint8 image, label) pairs with ``class_names``."""
    if name not in DATASETS:
        raise DatasetError(f"--dataset must be one of {', '.join(DATASETS)}, got '{name}'")
    if name == "digits":
        return digits_source(split)
    if name in CIFAR:
        return cifar_source(name, data_dir or ".", split, download)
    if name in ("mnist", "fashion_mnist"):
        return mnist_source(name, data_dir, split)
    if not data_dir:
        raise DatasetError(f"--dataset {name} needs --data_dir (a folder with {split}/<class>/<image> files)")
    return ImageFolderSource(os.path.join(data_dir, split), class_names, skip_corrupt)


class SubsetSource:
    """The images ``indices`` of ``source``, read on demand (images may differ in size)."""

    def __init__(self, source, indices) -> None:
        self.source, self.indices = source, [int(i) for i in indices]
        self.class_names = source.class_names

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int):
        return self.source[self.indices[index]]


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


def normalization(args, model_cfg: dict, in_channels: int):
    """Mean/std on the 0-255 scale: the config's, else the model's default config x 255."""
    mean = args.mean if args.mean is not None else tuple(255.0 * m for m in model_cfg["mean"])
    std = args.std if args.std is not None else tuple(255.0 * s for s in model_cfg["std"])
    if len(mean) != len(std):
        raise DatasetError(f"--mean has {len(mean)} values but --std has {len(std)}")
    if len(mean) != in_channels:
        mean, std = (float(np.mean(mean)),) * in_channels, (float(np.mean(std)),) * in_channels
    return mean, std


def eval_crop_pct(args, model_cfg: dict) -> float:
    """The centre-crop fraction of evaluation: the config's ``crop_pct``, else the model's."""
    crop_pct = args.crop_pct if args.crop_pct is not None else model_cfg.get("crop_pct", 0.875)
    if not 0.0 < crop_pct <= 1.0:
        raise DatasetError(f"--crop_pct must be in (0, 1], got {crop_pct}")
    return crop_pct


def create_loader(args, split: str, train: bool, model_cfg: dict, class_names: Optional[List[str]] = None,
                  num_shards: Optional[int] = None, shard_id: Optional[int] = None) -> Loader:
    """Batched dataset of one split: transforms of the data set, mixup/cutmix when training.

    The class count is ``--num_classes`` (default: the data set's); mixup/cutmix targets have that width.
    """
    source = create_source(args.dataset, split, args.data_dir, args.dataset_download, class_names,
                           args.skip_corrupt_images)
    names = source.class_names
    num_classes = args.num_classes or len(names)
    if num_classes < len(names):
        raise DatasetError(f"--num_classes {num_classes} is smaller than the {len(names)} classes of {args.dataset}")
    limit = (args.train_num_samples or args.num_samples) if train else args.num_samples
    if limit:
        source = SubsetSource(source, np.sort(np.random.default_rng(args.seed).permutation(len(source))[:limit]))
    mean, std = normalization(args, model_cfg, args.in_channels)
    crop_pct = eval_crop_pct(args, model_cfg)
    transforms = create_transforms(args.dataset, train, args, mean, std, crop_pct)
    total = len(source)
    shards, shard = (num_shards or 1), (shard_id or 0)
    num_images = total // shards  # equal shares: every rank runs the same steps
    workers = max(1, min(args.num_parallel_workers, os.cpu_count() or 1))
    drop = bool(train and args.drop_remainder)
    if drop and num_images < args.batch_size:
        raise DatasetError(f"--batch_size {args.batch_size} is larger than the {num_images} training images "
                           f"(with --drop_remainder no batch would remain)")
    mixing = train and (args.mixup > 0 or args.cutmix > 0)
    adapted = _ChannelAdapter(source, args.in_channels)

    def build(epoch: int) -> ds.Dataset:
        ds.config.set_seed(args.seed + epoch)
        order = np.random.default_rng([args.seed, epoch]).permutation(total) if train and args.shuffle \
            else np.arange(total)
        indices = order[: num_images * shards][shard::shards].tolist()
        dataset = ds.GeneratorDataset(adapted, column_names=["image", "label"], sampler=ds.SubsetSampler(indices),
                                      python_multiprocessing=False)
        dataset = dataset.map(operations=transforms, input_columns="image", num_parallel_workers=workers)
        if not mixing:
            return dataset.batch(args.batch_size, drop_remainder=drop)
        mixer = BatchMixer(num_classes, args.mixup, args.cutmix, args.cutmix_prob, args.label_smoothing,
                           seed=args.seed * 100003 + epoch)
        return dataset.batch(args.batch_size, drop_remainder=drop, input_columns=["image", "label"],
                             output_columns=["image", "label"],
                             per_batch_map=lambda images, labels, _info: mixer(np.stack(images), np.stack(labels)))

    steps = num_images // args.batch_size if drop else -(-num_images // args.batch_size)
    return Loader(build, names, num_images, steps, num_classes)


def iterate_batches(dataset: ds.Dataset):
    """One epoch of (images, labels) Tensors; a data error inside MindSpore's pipeline (corrupt image,
    unreadable file) comes out as a one-line ``DatasetError`` naming the file."""
    iterator = dataset.create_tuple_iterator(num_epochs=1)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except RuntimeError as exc:
            found = re.search(r"(?:DatasetError|ValueError|OSError): ([^\n]+)", str(exc))
            if found:
                raise DatasetError(found.group(1).strip()) from None
            raise
        yield batch
