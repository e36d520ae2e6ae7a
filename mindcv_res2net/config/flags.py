"""The flags of train.py and validate.py (names as mindcv's), as data: ``FLAGS``, what each takes (type,
default, choices, help, group), which program reads which, and the flags a program would ignore. Defaults of
the data flags are ``DataConfig``'s; choices are the names their modules implement. ``cli.parser`` builds the
command-line parser from this table; YAML recipes and stored configs are read with it."""
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

from ..data import DATASETS
from ..data.datasets import FOLDER_DATASET, dataset_names
from ..data.settings import DataConfig
from ..models.base import FROZEN_STAGES
from ..optim import OPTIMIZER_FLAGS, OPTIMIZERS
from ..scheduler import SCHEDULER_FLAGS, SCHEDULERS
from ..utils.argtypes import (MAX_IMAGE_SIZE, MIN_CROP_PCT, MIN_IMAGE_SIZE, ConfigError, finite_float, image_size,
                              optional_crop_pct, optional_float, optional_int, optional_positive_int, optional_str,
                              positive_int, str2bool)
from ..utils.device import AMP_LEVELS, MODES
from ..utils.engines import INFERENCE_ENGINES


_DATA = DataConfig()  # the defaults of the flags that configure the data layer: DataConfig's own

# The flags validate.py reads; train.py reads all others. Each program's --help lists only its own, and
# its command line refuses the other's, while a YAML file may hold every key (one recipe drives both).
VALIDATE_KEYS = frozenset((
    "config", "help", "mode", "device_target", "seed", "dataset", "data_dir", "val_split", "dataset_download",
    "num_parallel_workers", "num_samples", "batch_size", "skip_corrupt_images", "normalize_on_device",
    "image_resize", "interpolation", "mean", "std", "crop_pct", "model", "num_classes", "in_channels",
    "pretrained", "ckpt_path", "engine", "onnx_path"))
VALIDATE_ONLY_KEYS = frozenset(("engine", "onnx_path"))
PROGRAMS = ("train", "validate")


def _argument(key: str) -> property:
    return property(lambda flag: flag.kwargs.get(key), doc=f"``add_argument``'s ``{key}`` (None if not given)")


@dataclass(eq=False)
class Flag:
    """One flag: its option strings, its group in --help, and what ``argparse``'s ``add_argument`` takes
    (``type``, ``default``, ``choices``, ``nargs``, ``help`` ...)."""
    names: Tuple[str, ...]
    group: str
    kwargs: dict = field(default_factory=dict)
    type = _argument("type")
    default = _argument("default")
    choices = _argument("choices")
    nargs = _argument("nargs")

    @property
    def dest(self) -> str:
        return self.names[-1].lstrip("-")

    @property
    def takes_list(self) -> bool:
        """Several values (``nargs`` a count or ``+``): a list on the command line, a tuple in the config."""
        return self.nargs not in (None, "?")


class _Group:
    """Collects the flags of one --help group, declared with ``add_argument``'s arguments."""

    def __init__(self, title: str, flags: List[Flag]) -> None:
        self.title, self.flags = title, flags

    def add_argument(self, *names: str, **kwargs) -> None:
        self.flags.append(Flag(names, self.title, kwargs))


def _bool(group: _Group, name: str, default: bool, help_text: str) -> None:
    group.add_argument(name, type=str2bool, nargs="?", const=True, default=default, metavar="{true,false}",
                       help=help_text)


def hidden_keys(program: str) -> frozenset:
    """The flags ``program`` does not read: its --help leaves them out and its command line refuses them
    (none for ``""``, every key of both programs)."""
    if program not in ("",) + PROGRAMS:
        raise ValueError(f"program must be one of {PROGRAMS} or '', got {program!r}")
    if not program:
        return frozenset()
    return frozenset(set(FLAGS) - VALIDATE_KEYS) if program == "validate" else VALIDATE_ONLY_KEYS


# fmt: off
def _declare() -> Dict[str, Flag]:
    """Every flag of train.py and validate.py (``-c/--config`` and ``--help`` are the parser's own), by name,
    in --help order."""
    flags: List[Flag] = []
    g = _Group("system", flags)
    g.add_argument("--mode", type=int, default=0, choices=tuple(MODES), help="0: Graph mode, 1: PyNative mode")
    g.add_argument("--device_target", type=str, default="CPU", help="CPU, GPU or Ascend")
    _bool(g, "--distribute", False, "data-parallel training, started with msrun")
    _bool(g, "--val_while_train", True, "validate during training")
    g.add_argument("--val_interval", type=positive_int, default=1, help="validate every N epochs")
    g.add_argument("--log_interval", type=positive_int, default=100, help="steps between log lines")
    g.add_argument("--seed", type=int, default=_DATA.seed, help="seed of python, numpy and mindspore")
    _bool(g, "--enable_modelarts", False, "accepted for mindcv compatibility; true is refused (no ModelArts)")
    g.add_argument("--engine", type=str, default="mindspore", choices=INFERENCE_ENGINES,
                   help="validate.py: mindspore, or onnxruntime to run an ONNX export on the CPU")
    g.add_argument("--onnx_path", type=str, default="",
                   help="validate.py --engine onnxruntime: an exported .onnx file (default: --ckpt_path exported "
                        "once into ~/.cache/mindcv_res2net/onnx, BatchNorm folded)")

    g = _Group("dataset", flags)
    g.add_argument("--dataset", type=str, default=_DATA.dataset, choices=DATASETS, help="data set")
    g.add_argument("--data_dir", type=str, default=_DATA.data_dir,
                   help=f"dataset folder (not needed for {'/'.join(dataset_names(lambda s: not s.reads_data_dir))})")
    g.add_argument("--train_split", type=str, default=_DATA.train_split, help="train split / sub-folder")
    g.add_argument("--val_split", type=str, default=_DATA.val_split, help="validation split / sub-folder")
    _bool(g, "--dataset_download", _DATA.dataset_download,
          f"download {'/'.join(dataset_names(lambda s: s.download is not None))} if missing")
    g.add_argument("--num_parallel_workers", type=positive_int, default=_DATA.num_parallel_workers, help="data workers")
    _bool(g, "--shuffle", _DATA.shuffle, "shuffle the training set")
    g.add_argument("--num_samples", type=optional_positive_int, default=_DATA.num_samples,
                   help="use only N samples of each split")
    g.add_argument("--train_num_samples", type=optional_positive_int, default=_DATA.train_num_samples,
                   help="use only N samples of the training split (wins over --num_samples there; validation "
                        "keeps the whole split unless --num_samples is set)")
    g.add_argument("--batch_size", type=positive_int, default=_DATA.batch_size, help="batch size per device")
    _bool(g, "--drop_remainder", _DATA.drop_remainder, "drop the last incomplete training batch")
    g.add_argument("--aug_repeats", type=int, default=0,
                   help="accepted for mindcv compatibility; any value but 0 is refused")
    _bool(g, "--skip_corrupt_images", _DATA.skip_corrupt_images,
          "skip unreadable images with a warning instead of stopping")
    _bool(g, "--normalize_on_device", _DATA.normalize_on_device, "batches cross to the device as uint8 and are "
          "normalised inside the compiled step; false: normalised float32 from the host")

    g = _Group("augmentation", flags)
    g.add_argument("--image_resize", type=image_size, default=_DATA.image_resize,
                   help=f"training and validation image size, {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} pixels")
    g.add_argument("--scale", type=finite_float, nargs=2, default=_DATA.scale, help="RandomResizedCrop area range")
    g.add_argument("--ratio", type=finite_float, nargs=2, default=_DATA.ratio, help="RandomResizedCrop aspect range")
    g.add_argument("--hflip", type=finite_float, default=_DATA.hflip, help="horizontal flip probability")
    g.add_argument("--vflip", type=finite_float, default=_DATA.vflip, help="vertical flip probability")
    g.add_argument("--color_jitter", type=optional_float, default=_DATA.color_jitter,
                   help="brightness/contrast/saturation jitter")
    g.add_argument("--interpolation", type=str, default=_DATA.interpolation, help="resize interpolation")
    g.add_argument("--auto_augment", type=optional_str, default=_DATA.auto_augment,
                   help="'autoaug' (ImageNet AutoAugment) or 'randaug' (RandAugment)")
    g.add_argument("--re_prob", type=finite_float, default=_DATA.re_prob, help="random erasing probability")
    g.add_argument("--re_scale", type=finite_float, nargs=2, default=_DATA.re_scale, help="random erasing area range")
    g.add_argument("--re_ratio", type=finite_float, nargs=2, default=_DATA.re_ratio, help="random erasing aspect range")
    g.add_argument("--re_value", type=finite_float, default=_DATA.re_value, help="random erasing fill value")
    g.add_argument("--re_max_attempts", type=int, default=_DATA.re_max_attempts, help="random erasing attempts")
    g.add_argument("--mean", type=finite_float, nargs="+", default=_DATA.mean,
                   help="per-channel mean on the 0-255 scale (default: the model's, x255)")
    g.add_argument("--std", type=finite_float, nargs="+", default=_DATA.std,
                   help="per-channel std on the 0-255 scale (default: the model's, x255)")
    g.add_argument("--crop_pct", type=optional_crop_pct, default=_DATA.crop_pct,
                   help=f"eval centre-crop fraction, {MIN_CROP_PCT:g} to 1 (default: the model's, 0.875)")
    g.add_argument("--mixup", type=finite_float, default=_DATA.mixup, help="mixup alpha (0: off)")
    g.add_argument("--cutmix", type=finite_float, default=_DATA.cutmix, help="cutmix alpha (0: off)")
    g.add_argument("--cutmix_prob", type=finite_float, default=_DATA.cutmix_prob, help="probability to mix a batch")

    g = _Group("model", flags)
    g.add_argument("--model", type=str, default="res2net50", help="registered model name")
    g.add_argument("--num_classes", type=optional_positive_int, default=_DATA.num_classes,
                   help="classes (default: the dataset's)")
    g.add_argument("--in_channels", type=positive_int, default=_DATA.in_channels,
                   help="input channels; 1 keeps grey images grey")
    g.add_argument("--drop_rate", type=optional_float, default=None, help="dropout before the classifier")
    g.add_argument("--drop_path_rate", type=optional_float, default=None, help="stochastic depth of the last block")
    g.add_argument("--frozen_stages", type=int, default=-1, choices=FROZEN_STAGES,
                   help="train.py (mmpretrain's): -1 nothing frozen, 0 the stem, i the stem and stages 1..i: their "
                        "weights and BatchNorm statistics never change (Res2Net-DLA: only -1)")
    _bool(g, "--norm_eval", False, "train.py (mmpretrain's): every BatchNorm stays in eval mode, so running "
          "statistics never change; its affine weights still train unless frozen")
    _bool(g, "--pretrained", False, "start from the published ImageNet weights")
    g.add_argument("--ckpt_path", type=str, default="",
                   help="start from (or validate) this weight file; validate.py: or a run's folder (its best)")
    g.add_argument("--amp_level", type=str, default="O0", choices=AMP_LEVELS,
                   help="automatic mixed precision level")
    _bool(g, "--ema", False, "keep an exponential moving average of the weights")
    g.add_argument("--ema_decay", type=finite_float, default=0.9999, help="EMA decay")

    g = _Group("optimizer", flags)
    g.add_argument("--opt", type=str, default="momentum", choices=OPTIMIZERS,
                   help="optimizer")
    g.add_argument("--momentum", type=finite_float, default=0.9, help="momentum")
    g.add_argument("--weight_decay", type=finite_float, default=1e-4, help="weight decay")
    _bool(g, "--filter_bias_and_bn", True, "no weight decay on biases and BatchNorm")
    _bool(g, "--use_nesterov", False, "Nesterov momentum")
    g.add_argument("--eps", type=finite_float, default=1e-8, help="epsilon of adam/adamw/rmsprop")
    g.add_argument("--loss_scale", type=finite_float, default=1.0, help="fixed loss scale")
    _bool(g, "--dynamic_loss_scale", False, "dynamic loss scale (GPU/Ascend only)")
    _bool(g, "--clip_grad", False, "clip gradients by global norm")
    g.add_argument("--clip_value", type=finite_float, default=15.0, help="global-norm clip value")

    g = _Group("scheduler", flags)
    g.add_argument("--scheduler", type=str, default="cosine_decay",
                   choices=SCHEDULERS,
                   help="learning-rate schedule, per step")
    g.add_argument("--lr", type=finite_float, default=0.1, help="peak learning rate")
    g.add_argument("--min_lr", type=finite_float, default=0.0, help="final lr of cosine_decay")
    g.add_argument("--warmup_epochs", type=int, default=0, help="linear warm-up epochs")
    g.add_argument("--warmup_factor", type=finite_float, default=0.0, help="warm-up starts at lr x this")
    g.add_argument("--decay_epochs", type=optional_int, default=None,
                   help="epochs of decay after warm-up (default: epoch_size - warmup_epochs)")
    g.add_argument("--decay_rate", type=finite_float, default=0.1, help="factor of step and multi-step decay")
    g.add_argument("--multi_step_decay_milestones", type=int, nargs="+", default=(30, 60, 90),
                   help="epochs at which multi_step_decay multiplies the lr by decay_rate")
    _bool(g, "--lr_epoch_stair", False, "change the lr once per epoch instead of every step")

    g = _Group("loss", flags)
    g.add_argument("--loss", type=str, default="CE", choices=("CE",), help="cross-entropy")
    g.add_argument("--label_smoothing", type=finite_float, default=_DATA.label_smoothing, help="label smoothing")
    g.add_argument("--reduction", type=str, default="mean", choices=("mean",), help="loss reduction (mean)")

    g = _Group("training", flags)
    g.add_argument("--epoch_size", type=positive_int, default=90, help="training epochs")
    _bool(g, "--dataset_sink_mode", False, "dataset sink mode (GPU/Ascend; CPU ignores it)")
    g.add_argument("--gradient_accumulation_steps", type=positive_int, default=1,
                   help="sum gradients over N batches per update: an N-times larger batch")
    g.add_argument("--resume", type=str, default="",
                   help="continue exactly from a checkpoint of this run, or 'auto': the newest in --ckpt_save_dir")
    _bool(g, "--resume_opt", False, "with --ckpt_path: also restore optimizer, epoch and lr position (mindcv style)")

    g = _Group("checkpoints", flags)
    g.add_argument("--ckpt_save_dir", type=str, default="./ckpt", help="checkpoint and log folder")
    g.add_argument("--keep_checkpoint_max", type=positive_int, default=10, help="newest checkpoints kept")
    g.add_argument("--ckpt_save_interval", type=positive_int, default=1, help="save every N epochs")
    g.add_argument("--ckpt_save_policy", type=str, default="latest_k", choices=("latest_k", "top_k"),
                   help="latest_k: the newest --keep_checkpoint_max checkpoints, and the best one always (top_k is "
                        "refused)")
    _bool(g, "--save_optimizer_state", True, "store the optimizer's state in checkpoints so that they can be "
          "resumed (false: weights, EMA and metadata only, about a third of the size)")
    return {flag.dest: flag for flag in flags}
# fmt: on


FLAGS = _declare()


def resuming(args) -> bool:
    """True if train.py continues a run (--resume, or --resume_opt with --ckpt_path)."""
    return bool(args.resume or (args.resume_opt and args.ckpt_path))


_IMAGE_FOLDERS = " or ".join(dataset_names(lambda spec: spec.image_folder))
_NO_FOLDER = "/".join(name + (" (the default)" if name == _DATA.dataset else "")
                      for name in dataset_names(lambda spec: not spec.reads_data_dir))


def _only_some_read(flags_by_name: dict, key: str, flag: str) -> str:
    """``only --opt sgd and momentum use it``: the names of ``flags_by_name`` whose flags include ``key``."""
    names = [name for name, keys in flags_by_name.items() if key in keys]
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    return f"only {flag} {listed} {'uses' if len(names) == 1 else 'use'} it"


# fmt: off
# Flags read only under a condition, as (key, programs, is it read?, why not). A value other than the default
# where the flag is not read would be ignored: that is an error (a flag at its default never is).
_READ_ONLY_IF = (
    ("data_dir", PROGRAMS, lambda a: DATASETS[a.dataset].reads_data_dir,
     f"--dataset {_NO_FOLDER} reads no folder; for a folder of <split>/<class>/<image> files add "
     f"--dataset {FOLDER_DATASET}"),
    ("dataset_download", PROGRAMS, lambda a: DATASETS[a.dataset].download is not None,
     f"only {' and '.join(dataset_names(lambda spec: spec.download is not None))} are downloaded"),
    ("skip_corrupt_images", PROGRAMS, lambda a: DATASETS[a.dataset].image_folder, "only image folders are decoded "
     f"(--dataset {_IMAGE_FOLDERS})"),
    ("hflip", ("train",), lambda a: DATASETS[a.dataset].augmented,
     f"--dataset {'/'.join(dataset_names(lambda spec: not spec.augmented))} is trained without augmentation"),
    *((key, ("train",), lambda a: DATASETS[a.dataset].image_folder, f"only image folders (--dataset {_IMAGE_FOLDERS}) "
       "get this augmentation") for key in ("scale", "ratio", "vflip", "color_jitter", "auto_augment", "re_prob")),
    ("val_interval", ("train",), lambda a: a.val_while_train, "--val_while_train is false"),
    ("cutmix_prob", ("train",), lambda a: a.mixup > 0 or a.cutmix > 0, "neither --mixup nor --cutmix is on"),
    ("re_scale", ("train",), lambda a: a.re_prob > 0, "--re_prob is 0 (random erasing off)"),
    ("re_ratio", ("train",), lambda a: a.re_prob > 0, "--re_prob is 0 (random erasing off)"),
    ("re_value", ("train",), lambda a: a.re_prob > 0, "--re_prob is 0 (random erasing off)"),
    ("re_max_attempts", ("train",), lambda a: a.re_prob > 0, "--re_prob is 0 (random erasing off)"),
    ("ema_decay", ("train",), lambda a: a.ema, "--ema is off"),
    ("clip_value", ("train",), lambda a: a.clip_grad, "--clip_grad is off"),
    *((key, ("train",), lambda a, key=key: key in OPTIMIZER_FLAGS[a.opt],
       _only_some_read(OPTIMIZER_FLAGS, key, "--opt"))
      for key in ("momentum", "use_nesterov", "eps")),
    *((key, ("train",), lambda a, key=key: key in SCHEDULER_FLAGS[a.scheduler],
       _only_some_read(SCHEDULER_FLAGS, key, "--scheduler"))
      for key in ("min_lr", "decay_epochs", "decay_rate", "multi_step_decay_milestones")),
    ("warmup_factor", ("train",), lambda a: a.warmup_epochs > 0, "--warmup_epochs is 0"),
    ("resume_opt", ("train",), lambda a: bool(a.ckpt_path), "it restores the state of --ckpt_path, which is not given"),
    ("enable_modelarts", ("train",), lambda a: False, "ModelArts is not supported"),
    ("ckpt_save_policy", ("train",), lambda a: False,
     "the newest --keep_checkpoint_max checkpoints are kept, and the best one always (top_k is not supported)"),
    ("aug_repeats", ("train",), lambda a: False, "repeated augmentation is not supported; use 0"),
)
# fmt: on


def check_flags_used(args, program: str) -> None:
    """Refuse (``ConfigError``) a flag or YAML value, other than its default, that ``program`` would not read."""
    for key, programs, is_read, why_not in _READ_ONLY_IF:
        value = getattr(args, key)
        if program in programs and value != FLAGS[key].default and not is_read(args):
            shown = " ".join(str(v) for v in value) if isinstance(value, tuple) else value
            raise ConfigError(f"--{key} {shown}: would be ignored: {why_not}")


def data_config(args):
    """The data layer's typed settings (a ``DataConfig``) from a parsed config."""
    return DataConfig.from_mapping(vars(args))


def format_config(args) -> str:
    return "\n".join(f"  {k}: {v}" for k, v in sorted(vars(args).items()))
