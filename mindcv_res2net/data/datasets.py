"""The data sets, as data: one ``DatasetSpec`` per name in ``DATASETS``.

Every fact of a data set lives in its entry here (its reader and files, splits, image size, classes,
download, how it is augmented and evaluated), and every other module reads it here: the loader, the
transforms, evaluation preprocessing, the flags (``--dataset`` choices, the flags a data set would
ignore) and the benchmark. Adding a data set is one entry below (and a reader in ``sources`` for a new
file format).
"""
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from .image_files import DatasetError
from .sources import (CifarFiles, Download, IdxFiles, SourceOptions, cifar_source, digits_source, folder_source,
                      idx_source)

DEFAULT_DATASET = "digits"  # train.py's --dataset: bundled with scikit-learn, a run takes seconds on a CPU
FOLDER_DATASET = "imagefolder"  # any <split>/<class>/<image> tree: the benchmark's --data_only default
PRETRAINED_DATASET = "imagenet"  # what a model's default_cfg (input size, crop_pct, mean/std) describes


@dataclass(frozen=True, kw_only=True)
class DatasetSpec:
    """One data set.

    ``read(spec, split, options)``: the reader of its files (``sources``), ``files`` their description for it;
    ``image_size``: px per side of its (square) images, None for image files of any size; ``class_names``:
    its classes in label order (empty: one per class folder); ``download``: where --dataset_download
    fetches it (None: not downloaded); ``reads_data_dir``: False for data bundled with a package;
    ``default_data_dir``: the folder read when --data_dir is empty ('': none); ``image_folder``: image
    files decoded in the pipeline, trained with ImageNet's augmentation, evaluated by resize and centre
    crop; ``augmented``: trained with random crops and flips (False: small scans, only resized);
    ``mindcv_name``: mindcv's ``create_dataset`` name for the same files (the benchmark's --compare mindcv).
    """

    name: str
    read: Callable[["DatasetSpec", str, SourceOptions], object]
    files: object = None
    image_size: Optional[int] = None
    class_names: Tuple[str, ...] = ()
    download: Optional[Download] = None
    reads_data_dir: bool = True
    default_data_dir: str = ""
    image_folder: bool = False
    augmented: bool = True
    mindcv_name: Optional[str] = None


def _numbered(count: int) -> Tuple[str, ...]:
    return tuple(str(i) for i in range(count))


DATASETS: Dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec(name="digits", read=digits_source, image_size=8, class_names=_numbered(10), reads_data_dir=False,
                augmented=False),
    DatasetSpec(name="cifar10", read=cifar_source, image_size=32, class_names=_numbered(10), default_data_dir=".",
                files=CifarFiles(folder="cifar-10-batches-bin", label_bytes=1, label_offset=0,
                                 train=tuple(f"data_batch_{i}.bin" for i in range(1, 6)), val=("test_batch.bin",),
                                 names_file="batches.meta.txt", pickled_folder="cifar-10-batches-py",
                                 pickled_train=tuple(f"data_batch_{i}" for i in range(1, 6)), pickled_val=("test_batch",),
                                 pickled_labels="labels", pickled_meta="batches.meta", pickled_names="label_names"),
                download=Download("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
                                  "c32a1d4ab5d03f1284b67883e8d87530")),
    DatasetSpec(name="cifar100", read=cifar_source, image_size=32, class_names=_numbered(100), default_data_dir=".",
                files=CifarFiles(folder="cifar-100-binary", label_bytes=2, label_offset=1, train=("train.bin",),
                                 val=("test.bin",), names_file="fine_label_names.txt",  # labels: coarse, fine
                                 pickled_folder="cifar-100-python", pickled_train=("train",), pickled_val=("test",),
                                 pickled_labels="fine_labels", pickled_meta="meta", pickled_names="fine_label_names"),
                download=Download("https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
                                  "03b5dce01913d631647c71ecec9e9cb8")),
    DatasetSpec(name="mnist", read=idx_source, image_size=28, class_names=_numbered(10), files=IdxFiles(),
                augmented=False),
    DatasetSpec(name="fashion_mnist", read=idx_source, image_size=28, augmented=False,
                class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                             "Bag", "Ankle boot"),
                files=IdxFiles(system_folder="/usr/share/datasets/fashion-mnist",
                               system_package="dataset-fashion-mnist")),
    DatasetSpec(name="imagenet", read=folder_source, image_folder=True, mindcv_name="imagenet"),
    DatasetSpec(name="imagefolder", read=folder_source, image_folder=True, mindcv_name="imagenet"),
)}


def dataset_spec(name: str) -> DatasetSpec:
    """The data set ``name``; any other name is a ``DatasetError`` naming --dataset and the choices."""
    if name not in DATASETS:
        raise DatasetError(f"--dataset must be one of {', '.join(DATASETS)}, got '{name}'")
    return DATASETS[name]


def dataset_names(where: Callable[[DatasetSpec], bool]) -> Tuple[str, ...]:
    """The names of the data sets for which ``where(spec)`` holds, in the order of ``DATASETS``."""
    return tuple(name for name, spec in DATASETS.items() if where(spec))
