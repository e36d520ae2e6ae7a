"""Readers of the data sets' files: ``read(spec, split, options)`` gives a random-access source,
``source[i] -> (HWC uint8 image, int label)``, plus ``class_names``.

scikit-learn's bundled digits, CIFAR files (binary or python version, any record count), idx-ubyte files (MNIST's format) and
image folder trees (ImageNet). What each data set's files are (names, download, classes) is its entry in
``datasets``; a reader names the file and says how to get the data when something is missing or broken.
Reading one image file: ``image_files``.
"""
import gzip
import os
import tarfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence, Tuple

import numpy as np

from ..utils.download import download_file
from ..weights.array_pickle import load_array_pickle
from ..weights.torch_file import UnsafePickleError
from .image_files import (IMAGE_EXTENSIONS, PILLOW, DatasetError, DataWarning, encode_bmp, is_regular_file, list_images,
                          load_rgb, scan_file)

if TYPE_CHECKING:
    from .datasets import DatasetSpec


@dataclass(frozen=True)
class Download:
    """Where ``--dataset_download`` fetches a data set: an archive at ``url`` with this ``md5``."""

    url: str
    md5: str


@dataclass(frozen=True, kw_only=True)
class CifarFiles:
    """A CIFAR data set in either of its two versions.

    The binary version: records of ``label_bytes`` label bytes (the label at ``label_offset``) and a
    3x32x32 image, in the ``train`` and ``val`` files of ``folder``; class names one a line in ``names_file``.
    The python version (what torchvision downloads): pickled dicts holding the images as ``data``, (N, 3072)
    uint8, and their labels under ``pickled_labels``, in the ``pickled_train`` and ``pickled_val`` files of
    ``pickled_folder``; class names under ``pickled_names`` of the dict in ``pickled_meta``.
    """

    folder: str
    label_bytes: int
    label_offset: int
    train: Tuple[str, ...]
    val: Tuple[str, ...]
    names_file: str
    pickled_folder: str
    pickled_train: Tuple[str, ...]
    pickled_val: Tuple[str, ...]
    pickled_labels: str
    pickled_meta: str
    pickled_names: str


@dataclass(frozen=True, kw_only=True)
class IdxFiles:
    """An MNIST-format data set: ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` in --data_dir, else in
    ``system_folder``, where the Debian package ``system_package`` installs them ('' for none)."""

    system_folder: str = ""
    system_package: str = ""


@dataclass(frozen=True, kw_only=True)
class SourceOptions:
    """What a reader is asked besides the data set and split: ``data_dir`` (--data_dir), ``download``
    (--dataset_download); for image folders ``class_names`` (the training classes, in label order),
    ``skip_corrupt``, ``scan_threads`` and ``resize`` (see ``ImageFolderSource``)."""

    data_dir: str = ""
    download: bool = False
    class_names: Optional[Sequence[str]] = None
    skip_corrupt: bool = False
    scan_threads: int = 1
    resize: Optional[int] = None


class ArraySource:
    """Images held in memory: ``images`` (N, H, W, C) uint8, ``labels`` (N,) int."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> None:
        self.images = images
        self.labels = labels.astype(np.int32)
        self.class_names = list(class_names)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> Tuple[np.ndarray, np.int32]:
        return self.images[index], self.labels[index]


def _is_train(split: str) -> bool:
    return split.lower().startswith("train")


# ---------------------------------------------------------------------------------------------- digits


def digits_source(spec: "DatasetSpec", split: str, options: SourceOptions) -> ArraySource:
    """scikit-learn's 8x8 digit scans, a stratified 80/20 train/val split with a fixed seed (0)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]  # (N, 8, 8, 1)
    index = np.arange(len(images))
    train_idx, val_idx = train_test_split(index, test_size=0.2, stratify=digits.target, random_state=0)
    chosen = np.sort(train_idx if _is_train(split) else val_idx)
    return ArraySource(images[chosen], digits.target[chosen], spec.class_names)


# ---------------------------------------------------------------------------------------------- CIFAR


def _find_cifar_folder(files: CifarFiles, data_dir: str) -> Tuple[str, bool]:
    """The folder of ``data_dir`` (itself, or the version's folder in it) holding the validation files of the
    binary version, else of the python version, and whether it is the python version; ("", False) if none."""
    for pickled, folder, val in ((False, files.folder, files.val), (True, files.pickled_folder, files.pickled_val)):
        for candidate in (os.path.join(data_dir, folder), data_dir):
            if all(os.path.isfile(os.path.join(candidate, f)) for f in val):
                return candidate, pickled
    return "", False


def download_cifar(spec: "DatasetSpec", data_dir: str) -> str:
    """Fetch and unpack ``spec``'s CIFAR binary archive into ``data_dir`` (md5 checked)."""
    url = spec.download.url
    archive = download_file(url, os.path.join(data_dir, url.rsplit("/", 1)[-1]), md5=spec.download.md5)
    with tarfile.open(archive) as tar:
        tar.extractall(data_dir, filter="data")
    os.remove(archive)
    return os.path.join(data_dir, spec.files.folder)


def _binary_records(path: str, files: CifarFiles, name: str) -> Tuple[np.ndarray, np.ndarray]:
    """(images (N, 32, 32, 3) uint8, labels (N,)) of a CIFAR binary file."""
    record = files.label_bytes + 3072
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % record:
        raise DatasetError(f"{name}: {path} is not a CIFAR binary file ({raw.size} bytes is not a multiple "
                           f"of the {record}-byte record)")
    raw = raw.reshape(-1, record)
    return raw[:, files.label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), \
        raw[:, files.label_offset].astype(np.int32)


_MAX_LABEL = np.iinfo(np.int32).max


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def read_cifar_pickle(path: str, name: str) -> dict:
    """The dict a CIFAR python-version file holds, its keys as str (Python 2 wrote them as bytes), read by an
    unpickler that builds numpy arrays, lists and dicts and refuses anything else (``weights.array_pickle``:
    no code runs). A file that is not such a pickle is a one-line ``DatasetError`` (``UnsafePickleError`` when it
    asks to run code) naming ``path``; ``name``: the data set."""
    what = f"{name}: {path} is not a CIFAR python-version file (a pickled dict)"
    try:
        with open(path, "rb") as f:
            obj = load_array_pickle(f, source="CIFAR python-version files", encoding="bytes")
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{name}: {path}: {exc}") from None
    except OSError:
        raise
    except Exception as exc:  # truncated, corrupt or crafted: the unpickler raises errors of many types
        raise DatasetError(f"{what}: {' '.join(str(exc).split()) or type(exc).__name__}") from None
    if not isinstance(obj, dict) or not all(isinstance(key, (bytes, str)) for key in obj):
        raise DatasetError(f"{what}: it holds a {type(obj).__name__}")
    return {_text(key): value for key, value in obj.items()}


def _pickled_records(path: str, files: CifarFiles, name: str) -> Tuple[np.ndarray, np.ndarray]:
    """(images (N, 32, 32, 3) uint8, labels (N,)) of a CIFAR python-version batch file."""
    batch = read_cifar_pickle(path, name)
    data, labels = batch.get("data"), batch.get(files.pickled_labels)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shown = f"a {data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else \
            ("no 'data'" if data is None else f"a {type(data).__name__}")
        raise DatasetError(f"{name}: {path}: 'data' must be (N, 3072) uint8 images, the file holds {shown}")
    if isinstance(labels, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in labels):
        in_range = all(0 <= v <= _MAX_LABEL for v in labels)
    elif isinstance(labels, np.ndarray) and labels.ndim == 1 and labels.dtype.kind in "iu":
        in_range = not labels.size or (labels.min() >= 0 and labels.max() <= _MAX_LABEL)
    else:
        raise DatasetError(f"{name}: {path}: '{files.pickled_labels}' must be a list of integer labels")
    if not in_range:
        raise DatasetError(f"{name}: {path}: '{files.pickled_labels}' holds a label below 0 or above {_MAX_LABEL}")
    if not len(data):
        raise DatasetError(f"{name}: {path} holds no images")
    if len(labels) != len(data):
        raise DatasetError(f"{name}: {path} has {len(data)} images but {len(labels)} labels")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), np.asarray(labels, dtype=np.int32)


def _cifar_class_names(folder: str, files: CifarFiles, *, pickled: bool, name: str) -> Optional[list]:
    """The class names the folder's names file (binary) or meta file (python version) gives, None without one."""
    if not pickled:
        path = os.path.join(folder, files.names_file)
        return [n.strip() for n in open(path).read().splitlines() if n.strip()] if os.path.isfile(path) else None
    path = os.path.join(folder, files.pickled_meta)
    if not os.path.isfile(path):
        return None
    names = read_cifar_pickle(path, name).get(files.pickled_names)
    if not isinstance(names, list) or not all(isinstance(n, (bytes, str)) for n in names):
        raise DatasetError(f"{name}: {path}: '{files.pickled_names}' must be a list of class names")
    return [_text(n) for n in names]


def cifar_source(spec: "DatasetSpec", split: str, options: SourceOptions) -> ArraySource:
    """A CIFAR data set (``spec.files``), its binary or python version, under --data_dir (default:
    ``spec.default_data_dir``), the binary version downloaded with ``options.download`` if neither is there;
    ``spec.class_names`` when its names file is missing."""
    files, name = spec.files, spec.name
    data_dir = options.data_dir or spec.default_data_dir
    folder, pickled = _find_cifar_folder(files, data_dir)
    if not folder and options.download:
        folder = download_cifar(spec, data_dir)
    if not folder:
        fetch = f"pass --dataset_download to fetch {spec.download.url}, or " if spec.download else ""
        raise DatasetError(f"{name} not found: looked for the binary version "
                           f"{os.path.join(data_dir, files.folder)}/{files.val[0]} and the python version "
                           f"{os.path.join(data_dir, files.pickled_folder)}/{files.pickled_val[0]}; "
                           f"{fetch}unpack either under --data_dir")
    train = _is_train(split)
    file_names = (files.pickled_train if train else files.pickled_val) if pickled else \
        (files.train if train else files.val)
    names = _cifar_class_names(folder, files, pickled=pickled, name=name) or list(spec.class_names)
    images, labels = [], []
    for file_name in file_names:
        path = os.path.join(folder, file_name)
        if not os.path.isfile(path):
            raise DatasetError(f"{name}: missing file {path}")
        batch_images, batch_labels = (_pickled_records if pickled else _binary_records)(path, files, name)
        if batch_labels.max() >= len(names):
            raise DatasetError(f"{name}: {path}: label {batch_labels.max()} out of range ({len(names)} classes)")
        images.append(batch_images)
        labels.append(batch_labels)
    return ArraySource(np.concatenate(images), np.concatenate(labels), names)


# ---------------------------------------------------------------------------------------------- MNIST


def _read_idx(path: str, magic: int) -> np.ndarray:
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    if len(raw) < 8 or int.from_bytes(raw[:4], "big") != magic:
        raise DatasetError(f"{path} is not an idx-ubyte file (bad magic number)")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DatasetError(f"{path} is truncated ({data.size} of {int(np.prod(dims))} values)")
    return data.reshape(dims)


def idx_source(spec: "DatasetSpec", split: str, options: SourceOptions) -> ArraySource:
    """An MNIST-format data set (``spec.files``): the train or t10k files of --data_dir, else of its system
    folder; labels named by ``spec.class_names``."""
    files, name = spec.files, spec.name
    prefix = "train" if _is_train(split) else "t10k"
    folders = [folder for folder in (options.data_dir, files.system_folder) if folder]
    for folder in folders:
        for suffix in ("", ".gz"):
            images = os.path.join(folder, f"{prefix}-images-idx3-ubyte{suffix}")
            labels = os.path.join(folder, f"{prefix}-labels-idx1-ubyte{suffix}")
            if os.path.isfile(images) and os.path.isfile(labels):
                x, y = _read_idx(images, 0x803), _read_idx(labels, 0x801)
                if len(x) != len(y):
                    raise DatasetError(f"{images} has {len(x)} images but {labels} has {len(y)} labels")
                return ArraySource(x[..., None], y, spec.class_names)
    hint = (f"install Debian's {files.system_package} (apt-get install {files.system_package}) or pass --data_dir"
            if files.system_package else "pass --data_dir with the four idx-ubyte files (optionally .gz)")
    raise DatasetError(f"{name} not found: looked for {prefix}-images-idx3-ubyte[.gz] in "
                       f"{', '.join(folders) or '(no --data_dir given)'}; {hint}")


# ---------------------------------------------------------------------------------------------- folders


def folder_source(spec: "DatasetSpec", split: str, options: SourceOptions) -> "ImageFolderSource":
    """The ``split`` folder of --data_dir, ``<class>/<image>`` files (see ``ImageFolderSource``)."""
    data_dir = options.data_dir
    if not data_dir:
        raise DatasetError(f"--dataset {spec.name} needs --data_dir (a folder with {split}/<class>/<image> files)")
    root = os.path.join(data_dir, split)
    parent = os.path.dirname(os.path.abspath(data_dir))
    if not os.path.isdir(root) and os.path.isdir(os.path.join(parent, split)):  # --data_dir .../train
        raise DatasetError(f"--data_dir {data_dir}: has no {split}/ folder, but {parent} has: --data_dir is the "
                           f"folder above the splits ({parent}, holding {split}/<class>/<image>), not a split folder")
    return ImageFolderSource(root, class_names=options.class_names, skip_corrupt=options.skip_corrupt,
                             scan_threads=options.scan_threads, resize=options.resize)



_SCAN_CHUNK = 4096  # files scanned per batch of threads (a future per file of ImageNet would cost a GB)


def _scan_or_error(path: str, resize: Optional[int]):
    """``scan_file(path, resize)``, or the ``DatasetError`` it raised."""
    try:
        return scan_file(path, resize)
    except DatasetError as exc:
        return exc


class ImageFolderSource:
    """``root/<class>/<image>`` tree of encoded images: ``source[i] -> (file bytes as 1-D uint8, label)``,
    decoded later in MindSpore's C++ workers (grey, palette and RGBA become RGB there).

    Every file is checked once by decoding it when the source is made (see ``scan_file``; ``resize``:
    the evaluation's shorter side in px, which bounds how elongated an image may be; ``scan_seconds``
    records the cost; ``sizes``: (N, 2) width and height of every image, px; ``scalable``: (N,) which are
    JPEGs the C++ decoder reads). An unreadable, corrupt or refused file stops with its name, or with
    ``skip_corrupt`` is left out with a ``DataWarning`` naming it. Files the C++ decoder would not read
    exactly as Pillow does (16-bit, CMYK, WebP, ...) are decoded by Pillow here and handed over as BMP
    bytes.
    """

    encoded = True

    def __init__(self, root: str, *, class_names: Optional[Sequence[str]] = None, skip_corrupt: bool = False,
                 scan_threads: int = 1, resize: Optional[int] = None) -> None:
        if not os.path.isdir(root):
            raise DatasetError(f"image folder not found: {root}")
        found = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        self.class_names = list(class_names) if class_names else found
        index = {name: i for i, name in enumerate(self.class_names)}
        samples = []
        for name in found:
            if name not in index:
                raise DatasetError(f"{root}: class folder '{name}' is not among the training classes")
            images = list_images(os.path.join(root, name))
            if not images:
                raise DatasetError(f"class folder {os.path.join(root, name)} holds no images "
                                   f"({', '.join(IMAGE_EXTENSIONS)}); remove it or add its images")
            samples += [(path, index[name]) for path in images]
        if not samples:
            raise DatasetError(f"no images found under {root} (expected {root}/<class>/<image>.jpg)")
        self.skip_corrupt = skip_corrupt
        start = time.perf_counter()
        self.samples, self.decoders, kept, skipped = [], [], [], []
        with ThreadPoolExecutor(scan_threads) as pool:  # Pillow and libjpeg-turbo decode without the GIL
            for first in range(0, len(samples), _SCAN_CHUNK):
                chunk = samples[first:first + _SCAN_CHUNK]
                scans = pool.map(_scan_or_error, [p for p, _ in chunk], [resize] * len(chunk))
                for (path, label), scanned in zip(chunk, scans):
                    if isinstance(scanned, DatasetError):
                        if not skip_corrupt:
                            pool.shutdown(cancel_futures=True)
                            raise DatasetError(f"{scanned} (pass --skip_corrupt_images to leave such files out)")
                        skipped.append(str(scanned))
                        warnings.warn(f"left out: {scanned}", DataWarning, stacklevel=2)
                        continue
                    self.samples.append((path, label))
                    self.decoders.append(scanned.kind)
                    kept.append(scanned)
        self.scan_seconds = time.perf_counter() - start
        if skipped:
            warnings.warn(f"{root}: left out {len(skipped)} of {len(samples)} images (each named "
                          "above)", DataWarning, stacklevel=2)
        if not self.samples:
            raise DatasetError(f"no readable image under the {len(samples)} files of {root}")
        self.labels = np.array([label for _, label in self.samples], np.int32)
        self.sizes = np.array([(scan.width, scan.height) for scan in kept], np.int64)
        self.scalable = np.array([scan.scalable for scan in kept], bool)

    def __len__(self) -> int:
        return len(self.samples)

    def path(self, index: int) -> str:
        return self.samples[index][0]

    def read(self, index: int) -> np.ndarray:
        """The bytes the C++ decoder gets for image ``index`` (1-D uint8)."""
        path = self.samples[index][0]
        if self.decoders[index] == PILLOW:
            return encode_bmp(load_rgb(path))
        if not is_regular_file(path):  # changed since the scan: never open a FIFO
            raise DatasetError(f"cannot read image {path}: not a regular file or gone")
        try:
            return np.fromfile(path, np.uint8)
        except OSError as exc:
            raise DatasetError(f"cannot read image {path}: {exc}") from None

    def __getitem__(self, index: int):
        """Image ``index``; with ``skip_corrupt`` one that became unreadable after the scan is replaced by the next."""
        for step in range(len(self.samples)):
            where = (index + step) % len(self.samples)
            try:
                return self.read(where), np.int32(self.samples[where][1])
            except DatasetError as exc:
                if not self.skip_corrupt:
                    raise
                warnings.warn(f"skipping unreadable image: {exc}", DataWarning, stacklevel=2)
        raise DatasetError(f"no readable image under the {len(self.samples)} files of the image folder")

    def decode(self, index: int) -> np.ndarray:
        """Image ``index`` decoded as the pipeline decodes it: (H, W, 3) uint8."""
        from mindspore.dataset import vision

        return vision.Decode()(self.read(index))
