"""The data layer's settings as one typed value, and the one rule for evaluation preprocessing."""
import dataclasses
import math
from dataclasses import dataclass
from typing import Mapping, Optional, Tuple

from ..utils.argtypes import MIN_CROP_PCT
from ..utils.errors import shown
from .datasets import DEFAULT_DATASET, PRETRAINED_DATASET, dataset_spec
from .image_files import MAX_RESIZED_SIDE, DatasetError


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """Everything the loaders read. Field names are the flag / YAML key names of train.py, so a
    parsed config or a training run's stored ``config.yaml`` maps onto it key for key; the defaults
    here are the flags' defaults (``config/flags.py`` reads them from this class).

    Sizes are pixels; ``mean`` / ``std`` are per channel on the 0-255 scale (None: the model's).
    """

    dataset: str = DEFAULT_DATASET
    data_dir: str = ""
    train_split: str = "train"
    val_split: str = "val"
    dataset_download: bool = False
    num_parallel_workers: int = 2
    shuffle: bool = True
    num_samples: Optional[int] = None
    train_num_samples: Optional[int] = None
    batch_size: int = 32
    drop_remainder: bool = True
    skip_corrupt_images: bool = False
    reduced_decode: bool = True
    normalize_on_device: bool = True
    seed: int = 42
    num_classes: Optional[int] = None
    in_channels: int = 3
    image_resize: int = 224
    interpolation: str = "bilinear"
    crop_pct: Optional[float] = None
    mean: Optional[Tuple[float, ...]] = None
    std: Optional[Tuple[float, ...]] = None
    scale: Tuple[float, float] = (0.08, 1.0)
    ratio: Tuple[float, float] = (0.75, 1.333)
    hflip: float = 0.5
    vflip: float = 0.0
    color_jitter: Optional[float] = None
    auto_augment: Optional[str] = None
    re_prob: float = 0.0
    re_scale: Tuple[float, float] = (0.02, 0.33)
    re_ratio: Tuple[float, float] = (0.3, 3.3)
    re_value: float = 0.0
    re_max_attempts: int = 10
    mixup: float = 0.0
    cutmix: float = 0.0
    cutmix_prob: float = 1.0
    label_smoothing: float = 0.0

    @classmethod
    def from_mapping(cls, values: Mapping, **overrides) -> "DataConfig":
        """The fields found in ``values`` (e.g. ``vars(args)`` or a run's config.yaml); others keep their
        defaults. Lists become tuples."""
        names = {f.name for f in dataclasses.fields(cls)}
        chosen = {k: v for k, v in dict(values, **overrides).items() if k in names}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in chosen.items()})

    @classmethod
    def for_model(cls, model_cfg: dict, **overrides) -> "DataConfig":
        """ImageNet-style evaluation at the model's own input size and interpolation."""
        return cls.from_mapping(dict(dataset=PRETRAINED_DATASET, image_resize=model_cfg["input_size"][-1],
                                     interpolation=model_cfg.get("interpolation", "bilinear")), **overrides)

    @property
    def mixing(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0


@dataclass(frozen=True, kw_only=True)
class EvalPreprocessing:
    """How an evaluation image becomes the network's input.

    ``resize``: the short side in pixels, then a ``size`` centre crop (ImageNet style); or None with
    ``stretch`` True: the whole image resized to ``size`` x ``size`` (small scans, CIFAR); or neither:
    the image is used as it is (CIFAR at 32 px). ``mean``/``std``: per channel, 0-255 scale.
    ``reduced_decode``: a JPEG file at least twice ``resize`` on its shorter side is decoded at the DCT
    scale (1/2, 1/4, 1/8) that keeps it at least ``resize`` (``data.scaled_decode``).
    """

    size: int
    resize: Optional[int]
    stretch: bool
    interpolation: str
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    crop_pct: Optional[float] = None  # the fraction ``size / resize`` was decided from (None without a crop)
    reduced_decode: bool = True

    def describe(self, normalization: str) -> str:
        """``64 px (resize 73, crop_pct 0.875, bilinear, mean/std NORMALIZATION)``: what an evaluation image
        goes through; ``normalization`` says whose mean/std they are."""
        how = (f"resize {self.resize}, crop_pct {self.crop_pct:g}" if self.resize is not None
               else "whole image stretched" if self.stretch else "as stored")
        return f"{self.size} px ({how}, {self.interpolation}, mean/std {normalization})"


def normalization(data: DataConfig, model_cfg: dict) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """Mean/std on the 0-255 scale, one per input channel: the config's, else the model's default x 255."""
    mean = data.mean if data.mean is not None else tuple(255.0 * m for m in model_cfg["mean"])
    std = data.std if data.std is not None else tuple(255.0 * s for s in model_cfg["std"])
    if len(mean) != len(std):
        raise DatasetError(f"--mean has {len(mean)} values but --std has {len(std)}")
    if any(s <= 0 for s in std):
        raise DatasetError(f"--std values must be positive, got {list(std)}")
    if len(mean) != data.in_channels:
        mean = (float(sum(mean) / len(mean)),) * data.in_channels
        std = (float(sum(std) / len(std)),) * data.in_channels
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def eval_preprocessing(data: DataConfig, model_cfg: dict, origin: str = "--crop_pct") -> EvalPreprocessing:
    """The one rule of evaluation preprocessing, used by the validation loader, validate.py and predict:

    - arrays of images (digits, MNIST, CIFAR: ``DatasetSpec.image_folder`` False): as stored at their own
      ``image_size`` (CIFAR at 32 px), else stretched to ``image_resize`` squared;
    - image folders (ImageNet): short side to ``floor(image_resize / crop_pct)``, centre crop
      ``image_resize``; ``crop_pct`` is the config's, else the model's (0.875 for every Res2Net), from
      ``MIN_CROP_PCT`` to 1, and the resize at most ``MAX_RESIZED_SIDE`` px. ``origin`` names where
      ``data.crop_pct`` came from in an error.
    """
    crop_pct = data.crop_pct if data.crop_pct is not None else model_cfg.get("crop_pct", 0.875)
    if not MIN_CROP_PCT <= crop_pct <= 1.0:
        raise DatasetError(f"{origin} must be from {MIN_CROP_PCT:g} to 1, got {crop_pct}")
    size = data.image_resize
    mean, std = normalization(data, model_cfg)
    spec = dataset_spec(data.dataset)
    if not spec.image_folder:
        return EvalPreprocessing(size=size, resize=None, stretch=size != spec.image_size,
                                 interpolation=data.interpolation, mean=mean, std=std)
    resize = int(math.floor(size / crop_pct))
    if resize > MAX_RESIZED_SIDE:
        raise DatasetError(f"{origin} {crop_pct:g} at image size {size} px would resize the shorter side to {resize} "
                           f"px, more than {MAX_RESIZED_SIDE}")
    return EvalPreprocessing(size=size, resize=resize, stretch=False, interpolation=data.interpolation, mean=mean,
                             std=std, crop_pct=crop_pct, reduced_decode=data.reduced_decode)


# The settings of how a checkpoint's images are prepared (keys of DataConfig and of a run's config.yaml)
EVAL_KEYS = ("image_resize", "crop_pct", "mean", "std", "interpolation")


@dataclass(frozen=True, kw_only=True)
class CheckpointEval:
    """How one checkpoint is evaluated (see ``checkpoint_eval``): the data settings, their preprocessing,
    the line saying what was taken from where, and one warning per flag that overrode the run's value."""

    data: DataConfig
    preprocessing: EvalPreprocessing
    line: str
    warnings: Tuple[str, ...]


def checkpoint_eval(source: str, run_config: Optional[Mapping], model_cfg: dict, *, given: Optional[Mapping] = None,
                    flags: Optional[Mapping[str, str]] = None, **fixed) -> CheckpointEval:
    """The one rule by which validate, predict, export and ONNX Runtime evaluate a checkpoint ``source``:

    the data settings of its run (``run_config``, the checkpoint's stored config: data set, folder, split,
    samples, image size, crop_pct, mean/std, interpolation), else the model's defaults (ImageNet style
    at its input size); then every value the user set (``given``: flags / YAML keys that differ from
    their defaults) wins, and each that changes one of the run's ``EVAL_KEYS`` yields a warning naming
    the flag (``flags[key]``, default ``--key``) and both values; then ``fixed`` (the caller's own:
    in_channels, batch size, workers...).
    """
    given = dict(given or {})
    base = DataConfig.from_mapping(run_config) if run_config else DataConfig.for_model(model_cfg)
    warnings = []
    for key in EVAL_KEYS:
        if run_config and key in given and given[key] != getattr(base, key):
            flag = (flags or {}).get(key, f"--{key}")
            warnings.append(f"{flag} {shown(given[key])} overrides the {shown(getattr(base, key))} "
                            f"that {source} was trained with")
    data = dataclasses.replace(DataConfig.from_mapping(dataclasses.asdict(base), **given), **fixed)
    origin = (flags or {}).get("crop_pct", "--crop_pct") if "crop_pct" in given or not run_config \
        else f"the crop_pct stored with {source}"
    pre = eval_preprocessing(data, model_cfg, origin)
    norm = ("of the flags" if "mean" in given or "std" in given else "of the run" if run_config
            else "of the model")
    return CheckpointEval(data=data, preprocessing=pre, line=f"evaluating at {pre.describe(norm)} from {source}",
                          warnings=tuple(warnings))
