"""The settings of train.py and validate.py as one typed, frozen value: ``Settings``, made of four sections:
``data`` (the data layer's ``DataConfig``), ``model``, ``optimization`` and ``run``.

Each field is the flag and YAML key of the same name (mindcv's); its type and default are declared once, on
the field. Its flag (--help group and text, choices, a narrower converter than the type's, the programs that
read it) is declared beside it with ``flag``; ``DataConfig``, which lives below this layer and knows no
flags, gets its flags in ``DATA_FLAGS``. ``config.flags.FLAGS`` is derived from these.
"""
from dataclasses import KW_ONLY, dataclass, field, fields
from typing import Any, Callable, Collection, Dict, Mapping, Optional, Tuple

from ..data import DATASETS
from ..data.datasets import dataset_names
from ..data.settings import DataConfig
from ..models.base import FROZEN_STAGES
from ..optim import OPTIMIZERS
from ..scheduler import SCHEDULERS
from ..utils.argtypes import (MAX_IMAGE_SIZE, MIN_CROP_PCT, MIN_IMAGE_SIZE, image_size, optional_crop_pct,
                              optional_positive_int, positive_int)
from ..utils.device import AMP_LEVELS, MODES
from ..utils.engines import INFERENCE_ENGINES

PROGRAMS = ("train", "validate")
TRAIN, BOTH, VALIDATE = ("train",), PROGRAMS, ("validate",)  # which programs read a flag

# The --help groups, in order
GROUPS = ("system", "dataset", "augmentation", "model", "optimizer", "scheduler", "loss", "training", "checkpoints")


@dataclass(frozen=True, slots=True)
class FlagSpec:
    """How a field is given on the command line: its --help ``group`` and ``help``, its ``choices``, a
    ``converter`` of the one value given into the field's value, narrower than its type's (``positive_int``
    for an ``int``; for a tuple, one text such as ``1,8,32`` instead of several values), the ``programs`` that
    read it (None: those its table names for a flag that names none), its --help placeholder (``metavar``;
    default: by type), and, for a flag shown among another section's in its group, the flag it follows in
    --help (``after``). Any settings class declares its fields' flags with it (``flag``)."""

    group: str
    help: str
    _: KW_ONLY
    converter: Optional[Callable] = None
    choices: Optional[Collection[Any]] = None  # a live mapping (the data sets) is read at each parse
    programs: Optional[Tuple[str, ...]] = None
    metavar: str = ""
    after: str = ""


def flag(default: Any, group: str, help: str, **spec: Any) -> Any:
    """A settings field with ``default`` and its flag (``FlagSpec``'s ``group``, ``help`` and ``spec``)."""
    return field(default=default, metadata={"flag": FlagSpec(group, help, **spec)})


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSettings:
    """The network: which one, what it starts from, what is frozen (its class count and input channels are
    the data's: ``DataConfig.num_classes``, ``in_channels``)."""

    model: str = flag("res2net50", "model", "registered model name", programs=BOTH)
    drop_rate: Optional[float] = flag(None, "model", "dropout before the classifier")
    drop_path_rate: Optional[float] = flag(None, "model", "stochastic depth of the last block")
    frozen_stages: int = flag(-1, "model", "train.py (mmpretrain's): -1 nothing frozen, 0 the stem, i the stem and "
                              "stages 1..i: their weights and BatchNorm statistics never change (Res2Net-DLA: only -1)",
                              choices=FROZEN_STAGES)
    norm_eval: bool = flag(False, "model", "train.py (mmpretrain's): every BatchNorm stays in eval mode, so running "
                           "statistics never change; its affine weights still train unless frozen")
    pretrained: bool = flag(False, "model", "start from the published ImageNet weights", programs=BOTH)
    ckpt_path: str = flag("", "model", "start from (or validate) this weight file; validate.py: or a run's folder "
                          "(its best)", programs=BOTH)


@dataclass(frozen=True, slots=True, kw_only=True)
class OptimizationSettings:
    """How the weights are updated: precision, EMA, optimizer, learning-rate schedule, loss, accumulation,
    loss scale and clipping."""

    amp_level: str = flag("O0", "model", "automatic mixed precision level", choices=AMP_LEVELS)
    ema: bool = flag(False, "model", "keep an exponential moving average of the weights")
    ema_decay: float = flag(0.9999, "model", "EMA decay")
    opt: str = flag("momentum", "optimizer", "optimizer", choices=OPTIMIZERS)
    momentum: float = flag(0.9, "optimizer", "momentum")
    weight_decay: float = flag(1e-4, "optimizer", "weight decay")
    filter_bias_and_bn: bool = flag(True, "optimizer", "no weight decay on biases and BatchNorm")
    use_nesterov: bool = flag(False, "optimizer", "Nesterov momentum")
    eps: float = flag(1e-8, "optimizer", "epsilon of adam/adamw/rmsprop")
    loss_scale: float = flag(1.0, "optimizer", "fixed loss scale")
    dynamic_loss_scale: bool = flag(False, "optimizer", "dynamic loss scale (GPU/Ascend only)")
    clip_grad: bool = flag(False, "optimizer", "clip gradients by global norm")
    clip_value: float = flag(15.0, "optimizer", "global-norm clip value")
    scheduler: str = flag("cosine_decay", "scheduler", "learning-rate schedule, per step", choices=SCHEDULERS)
    lr: float = flag(0.1, "scheduler", "peak learning rate")
    min_lr: float = flag(0.0, "scheduler", "final lr of cosine_decay")
    warmup_epochs: int = flag(0, "scheduler", "linear warm-up epochs")
    warmup_factor: float = flag(0.0, "scheduler", "warm-up starts at lr x this")
    decay_epochs: Optional[int] = flag(None, "scheduler", "epochs of decay after warm-up (default: epoch_size - "
                                       "warmup_epochs)")
    decay_rate: float = flag(0.1, "scheduler", "factor of step and multi-step decay")
    multi_step_decay_milestones: Tuple[int, ...] = flag((30, 60, 90), "scheduler", "epochs at which multi_step_decay "
                                                        "multiplies the lr by decay_rate")
    lr_epoch_stair: bool = flag(False, "scheduler", "change the lr once per epoch instead of every step")
    loss: str = flag("CE", "loss", "cross-entropy", choices=("CE",))
    reduction: str = flag("mean", "loss", "loss reduction (mean)", choices=("mean",))
    gradient_accumulation_steps: int = flag(1, "training", "sum gradients over N batches per update: an N-times "
                                            "larger batch", converter=positive_int, after="dataset_sink_mode")


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSettings:
    """Where and how long the job runs: device and mode, epochs, validation, logging, checkpoints, resuming,
    validate.py's engine, the ``-c`` file, and mindcv's keys accepted for compatibility (refused unless at
    their defaults)."""

    mode: int = flag(0, "system", "0: Graph mode, 1: PyNative mode", choices=tuple(MODES), programs=BOTH)
    device_target: str = flag("CPU", "system", "CPU, GPU or Ascend", programs=BOTH)
    distribute: bool = flag(False, "system", "data-parallel training, started with msrun")
    val_while_train: bool = flag(True, "system", "validate during training")
    val_interval: int = flag(1, "system", "validate every N epochs", converter=positive_int)
    log_interval: int = flag(100, "system", "steps between log lines", converter=positive_int)
    enable_modelarts: bool = flag(False, "system", "accepted for mindcv compatibility; true is refused (no ModelArts)")
    engine: str = flag("mindspore", "system", "validate.py: mindspore, or onnxruntime to run an ONNX export on the CPU",
                       choices=INFERENCE_ENGINES, programs=VALIDATE)
    onnx_path: str = flag("", "system", "validate.py --engine onnxruntime: an exported .onnx file (default: "
                          "--ckpt_path exported once into ~/.cache/mindcv_res2net/onnx, BatchNorm folded)",
                          programs=VALIDATE)
    aug_repeats: int = flag(0, "dataset", "accepted for mindcv compatibility; any value but 0 is refused",
                            after="drop_remainder")
    epoch_size: int = flag(90, "training", "training epochs", converter=positive_int)
    dataset_sink_mode: bool = flag(False, "training", "dataset sink mode (GPU/Ascend; CPU ignores it)")
    resume: str = flag("", "training", "continue exactly from a checkpoint of this run, or 'auto': the newest in "
                       "--ckpt_save_dir (without it: in the newest run folder of --model on --dataset in runs/)")
    resume_opt: bool = flag(False, "training", "with --ckpt_path: also restore optimizer, epoch and lr position "
                            "(mindcv style)")
    ckpt_save_dir: str = flag("", "checkpoints", "the run's folder: checkpoints, train.log, metrics.csv, config.yaml "
                              "(default: a new runs/<model>-<dataset>-<YYYYmmdd-HHMMSS> in the current folder)")
    keep_checkpoint_max: int = flag(10, "checkpoints", "newest checkpoints kept", converter=positive_int)
    ckpt_save_interval: int = flag(1, "checkpoints", "save every N epochs", converter=positive_int)
    ckpt_save_policy: str = flag("latest_k", "checkpoints", "latest_k: the newest --keep_checkpoint_max checkpoints, "
                                 "and the best one always (top_k is refused)", choices=("latest_k", "top_k"))
    save_optimizer_state: bool = flag(True, "checkpoints", "store the optimizer's state in checkpoints so that they "
                                      "can be resumed (false: weights, EMA and metadata only, about a third of the "
                                      "size)")
    config: str = ""  # the -c file the settings were read from (the parser's own flag, never stored)


# The flags of DataConfig's fields, in --help order within their groups
DATA_FLAGS = {
    "dataset": FlagSpec("dataset", "data set", choices=DATASETS, programs=BOTH),
    "data_dir": FlagSpec("dataset", "dataset folder (not needed for "
                        f"{'/'.join(dataset_names(lambda spec: not spec.reads_data_dir))})", programs=BOTH),
    "train_split": FlagSpec("dataset", "train split / sub-folder"),
    "val_split": FlagSpec("dataset", "validation split / sub-folder", programs=BOTH),
    "dataset_download": FlagSpec("dataset", f"download {'/'.join(dataset_names(lambda spec: spec.download is not None))} "
                                "if missing", programs=BOTH),
    "num_parallel_workers": FlagSpec("dataset", "data workers", converter=positive_int, programs=BOTH),
    "shuffle": FlagSpec("dataset", "shuffle the training set"),
    "num_samples": FlagSpec("dataset", "use only N samples of each split", converter=optional_positive_int,
                            programs=BOTH),
    "train_num_samples": FlagSpec("dataset", "use only N samples of the training split (wins over --num_samples "
                                  "there; validation keeps the whole split unless --num_samples is set)",
                                  converter=optional_positive_int),
    "batch_size": FlagSpec("dataset", "batch size per device", converter=positive_int, programs=BOTH),
    "drop_remainder": FlagSpec("dataset", "drop the last incomplete training batch"),
    "skip_corrupt_images": FlagSpec("dataset", "skip unreadable images with a warning instead of stopping",
                                    programs=BOTH),
    "reduced_decode": FlagSpec("dataset", "decode a large JPEG at the DCT scale (1/2, 1/4, 1/8) that still covers "
                               "what its crop needs (false: every image in full)", programs=BOTH),
    "normalize_on_device": FlagSpec("dataset", "batches cross to the device as uint8 and are normalised inside the "
                                    "compiled step; false: normalised float32 from the host", programs=BOTH),
    "image_resize": FlagSpec("augmentation", f"training and validation image size, {MIN_IMAGE_SIZE} to "
                             f"{MAX_IMAGE_SIZE} pixels", converter=image_size, programs=BOTH),
    "scale": FlagSpec("augmentation", "RandomResizedCrop area range"),
    "ratio": FlagSpec("augmentation", "RandomResizedCrop aspect range"),
    "hflip": FlagSpec("augmentation", "horizontal flip probability"),
    "vflip": FlagSpec("augmentation", "vertical flip probability"),
    "color_jitter": FlagSpec("augmentation", "brightness/contrast/saturation jitter"),
    "interpolation": FlagSpec("augmentation", "resize interpolation", programs=BOTH),
    "auto_augment": FlagSpec("augmentation", "'autoaug' (ImageNet AutoAugment) or 'randaug' (RandAugment)"),
    "re_prob": FlagSpec("augmentation", "random erasing probability"),
    "re_scale": FlagSpec("augmentation", "random erasing area range"),
    "re_ratio": FlagSpec("augmentation", "random erasing aspect range"),
    "re_value": FlagSpec("augmentation", "random erasing fill value"),
    "re_max_attempts": FlagSpec("augmentation", "random erasing attempts"),
    "mean": FlagSpec("augmentation", "per-channel mean on the 0-255 scale (default: the model's, x255)",
                     programs=BOTH),
    "std": FlagSpec("augmentation", "per-channel std on the 0-255 scale (default: the model's, x255)", programs=BOTH),
    "crop_pct": FlagSpec("augmentation", f"eval centre-crop fraction, {MIN_CROP_PCT:g} to 1 (default: the model's, "
                         "0.875)", converter=optional_crop_pct, programs=BOTH),
    "mixup": FlagSpec("augmentation", "mixup alpha (0: off)"),
    "cutmix": FlagSpec("augmentation", "cutmix alpha (0: off)"),
    "cutmix_prob": FlagSpec("augmentation", "probability to mix a batch"),
    "seed": FlagSpec("system", "seed of python, numpy and mindspore", programs=BOTH, after="log_interval"),
    "num_classes": FlagSpec("model", "classes (default: the dataset's)", converter=optional_positive_int,
                            programs=BOTH, after="model"),
    "in_channels": FlagSpec("model", "input channels; 1 keeps grey images grey", converter=positive_int,
                            programs=BOTH, after="num_classes"),
    "label_smoothing": FlagSpec("loss", "label smoothing", after="loss"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything train.py and validate.py read, by section. Built once from the command line and the ``-c``
    file (``cli.parser``), or from a run's stored config; flat ``{key: value}`` mappings (YAML recipes, a run's
    config.yaml, a checkpoint's stored config) map to it key for key (``from_mapping``, ``to_mapping``)."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSettings = field(default_factory=ModelSettings)
    optimization: OptimizationSettings = field(default_factory=OptimizationSettings)
    run: RunSettings = field(default_factory=RunSettings)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "Settings":
        """The settings of flat ``values`` (key: value, each converted as its flag converts); keys not given keep
        their defaults. A key that is no setting is a ``KeyError`` (callers pass checked keys)."""
        unknown = sorted(set(values) - set(SECTION_OF))
        if unknown:
            raise KeyError(f"not settings: {', '.join(unknown)}")
        return cls(**{name: section(**{k: v for k, v in values.items() if SECTION_OF[k] == name})
                      for name, section in SECTIONS.items()})

    def to_mapping(self) -> Dict[str, Any]:
        """Every setting as a flat ``{key: value}`` (as ``vars`` of a parsed command line)."""
        return {f.name: getattr(section, f.name) for section in (self.data, self.model, self.optimization, self.run)
                for f in fields(section)}

    def replace(self, **values: Any) -> "Settings":
        """A copy with the flat keys of ``values`` changed."""
        return Settings.from_mapping({**self.to_mapping(), **values})

    def value(self, key: str) -> Any:
        """The setting of flat ``key``."""
        return getattr(getattr(self, SECTION_OF[key]), key)


SECTIONS: Dict[str, Any] = {f.name: f.type for f in fields(Settings)}  # section name: its dataclass
SECTION_OF: Dict[str, str] = {f.name: name for name, section in SECTIONS.items() for f in fields(section)}
