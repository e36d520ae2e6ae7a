"""The one configuration parser of train.py and validate.py (flag names and YAML keys as mindcv's).

Precedence: command line > YAML (``-c/--config FILE``) > defaults. Every key of mindcv's
``configs/res2net/*.yaml`` is accepted. A positional ``key=value`` is read as ``--key=value``.
"""
import argparse
import difflib
import math
import os
import reprlib
import stat
import sys
from typing import FrozenSet, List, Optional, Sequence, Tuple

import yaml

from .data.config import SMALL_DATASETS
from .models.base import FROZEN_STAGES
from .utils.engines import INFERENCE_ENGINES
from .utils.fileio import atomic_path


MAX_IMAGE_SIZE = 4096  # pixels per side: larger inputs would only exhaust memory
MAX_RECIPE_BYTES = 64 << 10  # a YAML recipe's size (mindcv's are 1 to 3 KB)
MAX_RECIPE_NESTING = 32  # [ and { levels of a recipe: PyYAML's scanner takes time quadratic in them
MAX_RECIPE_EXPANDED = 2 * MAX_RECIPE_BYTES  # characters and values of a recipe with every alias (*name) expanded
_QUOTE = reprlib.Repr()  # values quoted in messages: short whatever their size or nesting
_QUOTE.maxlevel, _QUOTE.maxlist, _QUOTE.maxtuple, _QUOTE.maxdict = 2, 4, 4, 4
_QUOTE.maxstring, _QUOTE.maxother = 60, 60


class ConfigError(ValueError):
    """A bad flag, YAML key or value."""


def str2bool(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("yes", "true", "1", "on"):
        return True
    if text in ("no", "false", "0", "off", "none", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got '{value}'")


def positive_int(value) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


def image_size(value) -> int:
    size = positive_int(value)
    if size > MAX_IMAGE_SIZE:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_IMAGE_SIZE} pixels, got {value}")
    return size


def finite_float(value) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {value}") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {value}")
    return number


def _is_none(value) -> bool:
    return value is None or str(value).strip().lower() in ("none", "null", "")


def optional_int(value):
    return None if _is_none(value) else int(value)


def optional_positive_int(value):
    return None if _is_none(value) else positive_int(value)


def optional_float(value):
    return None if _is_none(value) else finite_float(value)


def optional_str(value):
    return None if value is None or str(value).strip().lower() in ("none", "null") else str(value)


# The flags validate.py reads; train.py reads all others. Each program's --help lists only its own, and
# its command line refuses the other's, while a YAML file may hold every key (one recipe drives both).
VALIDATE_KEYS = frozenset((
    "config", "help", "mode", "device_target", "seed", "dataset", "data_dir", "val_split", "dataset_download",
    "num_parallel_workers", "num_samples", "batch_size", "skip_corrupt_images", "normalize_on_device",
    "image_resize", "interpolation", "mean", "std", "crop_pct", "model", "num_classes", "in_channels",
    "pretrained", "ckpt_path", "engine", "onnx_path"))
VALIDATE_ONLY_KEYS = frozenset(("engine", "onnx_path"))
PROGRAMS = ("train", "validate")

EPILOG = """Flags may also be written key=value (batch_size=64). Precedence: command line > the YAML file of
-c/--config (any key of mindcv's configs/res2net/*.yaml) > the defaults shown. Booleans take
true/false (yes/no, 1/0); a bare --flag means true."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block
        raise ConfigError(message)


class ToolParser(_Parser):
    """The parser of a tool (convert_weights, plot_metrics): one-line errors (``ConfigError``), no flag
    abbreviations, and an unknown flag named (with the closest known ones) before a missing argument."""

    def __init__(self, **kwargs):
        super().__init__(allow_abbrev=False, **kwargs)

    def parse_args(self, args=None, namespace=None):
        argv = list(sys.argv[1:] if args is None else args)
        known = [name[2:] for action in self._actions for name in action.option_strings if name.startswith("--")]
        for arg in argv:
            key = arg[2:].split("=", 1)[0]
            if arg.startswith("--") and key and key not in known:
                raise ConfigError(f"unknown flag '--{key}'{_suggest(key, known, '--')}")
        return super().parse_args(argv, namespace)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The help layout of every program: the description as written, and each flag's help ending with its
    default (unless the text states it, or the flag is required or a switch)."""

    def __init__(self, prog, max_help_position=36, width=100):
        super().__init__(prog, max_help_position=max_help_position, width=width)

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or not action.option_strings or action.default is argparse.SUPPRESS \
                or action.required or action.nargs == 0 or action.dest in ("help", "config"):
            return text
        value = action.default
        if isinstance(value, (list, tuple)):
            value = " ".join(str(v) for v in value)
        elif isinstance(value, bool):
            value = str(value).lower()
        elif value is None or value == "":
            value = "none"
        return f"{text} (default {value})".replace("%", "%%").strip()


USAGE = "%(prog)s [-h] [-c CONFIG.yaml] [--flag VALUE ...] [key=value ...]"
_PATH_KEYS = ("config", "data_dir", "ckpt_path", "onnx_path", "ckpt_save_dir", "resume")


def _metavar(action: argparse.Action) -> str:
    """A short placeholder by the flag's type: N (integer), X (number), PATH, or TEXT."""
    if action.dest in _PATH_KEYS:
        return "PATH"
    if action.type in (int, positive_int, image_size, optional_int, optional_positive_int):
        return "N"
    if action.type in (finite_float, optional_float, float):
        return "X"
    return "TEXT"


def _bool(group, name, default, help_text):
    group.add_argument(name, type=str2bool, nargs="?", const=True, default=default, metavar="{true,false}",
                       help=help_text)


def _hidden_keys(parser: argparse.ArgumentParser, program: str) -> frozenset:
    if program not in PROGRAMS:
        raise ValueError(f"program must be one of {PROGRAMS}, got {program!r}")
    dests = {a.dest for a in parser._actions}
    return frozenset(dests - VALIDATE_KEYS) if program == "validate" else VALIDATE_ONLY_KEYS


# fmt: off
def create_parser(description: str = "Res2Net training and validation", program: str = "") -> argparse.ArgumentParser:
    """The flags of train.py (``program="train"``), validate.py (``"validate"``), or every key (``""``)."""
    parser = _Parser(description=description, allow_abbrev=False, epilog=EPILOG, usage=USAGE,
                     formatter_class=HelpFormatter)
    parser.add_argument("-c", "--config", type=str, default="", help="YAML file of defaults (flags override it)")

    g = parser.add_argument_group("system")
    g.add_argument("--mode", type=int, default=0, choices=(0, 1), help="0: Graph mode, 1: PyNative mode (default 0)")
    g.add_argument("--device_target", type=str, default="CPU", help="CPU, GPU or Ascend (default CPU)")
    _bool(g, "--distribute", False, "data-parallel training, started with msrun (default false)")
    _bool(g, "--val_while_train", True, "validate during training (default true)")
    g.add_argument("--val_interval", type=positive_int, default=1, help="validate every N epochs (default 1)")
    g.add_argument("--log_interval", type=positive_int, default=100, help="steps between log lines (default 100)")
    g.add_argument("--seed", type=int, default=42, help="seed of python, numpy and mindspore (default 42)")
    _bool(g, "--enable_modelarts", False, "accepted for mindcv compatibility; true is refused (no ModelArts)")
    g.add_argument("--engine", type=str, default="mindspore", choices=INFERENCE_ENGINES,
                   help="validate.py: mindspore, or onnxruntime (an ONNX export run on the CPU; default mindspore)")
    g.add_argument("--onnx_path", type=str, default="",
                   help="validate.py --engine onnxruntime: an exported .onnx file (default: --ckpt_path exported "
                        "once into ~/.cache/mindcv_res2net/onnx, BatchNorm folded)")

    g = parser.add_argument_group("dataset")
    g.add_argument("--dataset", type=str, default="digits",
                   help="digits, cifar10, cifar100, mnist, fashion_mnist, imagenet or imagefolder (default digits)")
    g.add_argument("--data_dir", type=str, default="", help="dataset folder (not needed for digits)")
    g.add_argument("--train_split", type=str, default="train", help="train split / sub-folder (default train)")
    g.add_argument("--val_split", type=str, default="val", help="validation split / sub-folder (default val)")
    _bool(g, "--dataset_download", False, "download cifar10/cifar100 if missing (default false)")
    g.add_argument("--num_parallel_workers", type=positive_int, default=2, help="data workers (default 2)")
    _bool(g, "--shuffle", True, "shuffle the training set (default true)")
    g.add_argument("--num_samples", type=optional_positive_int, default=None, help="use only N samples of each split")
    g.add_argument("--train_num_samples", type=optional_positive_int, default=None,
                   help="use only N samples of the training split (wins over --num_samples there; validation "
                        "keeps the whole split unless --num_samples is set)")
    g.add_argument("--batch_size", type=positive_int, default=32, help="batch size per device (default 32)")
    _bool(g, "--drop_remainder", True, "drop the last incomplete training batch (default true)")
    g.add_argument("--aug_repeats", type=int, default=0,
                   help="accepted for mindcv compatibility; any value but 0 is refused")
    _bool(g, "--skip_corrupt_images", False, "skip unreadable images with a warning instead of stopping")
    _bool(g, "--normalize_on_device", True, "batches cross to the device as uint8 and are normalised inside the "
          "compiled step; false: normalised float32 from the host (default true)")

    g = parser.add_argument_group("augmentation")
    g.add_argument("--image_resize", type=image_size, default=224, help="training and validation image size (default 224)")
    g.add_argument("--scale", type=finite_float, nargs=2, default=(0.08, 1.0), help="RandomResizedCrop area range")
    g.add_argument("--ratio", type=finite_float, nargs=2, default=(0.75, 1.333), help="RandomResizedCrop aspect range")
    g.add_argument("--hflip", type=finite_float, default=0.5, help="horizontal flip probability (default 0.5)")
    g.add_argument("--vflip", type=finite_float, default=0.0, help="vertical flip probability (default 0)")
    g.add_argument("--color_jitter", type=optional_float, default=None, help="brightness/contrast/saturation jitter")
    g.add_argument("--interpolation", type=str, default="bilinear", help="resize interpolation (default bilinear)")
    g.add_argument("--auto_augment", type=optional_str, default=None,
                   help="'autoaug' (ImageNet AutoAugment) or 'randaug' (RandAugment); default none")
    g.add_argument("--re_prob", type=finite_float, default=0.0, help="random erasing probability (default 0)")
    g.add_argument("--re_scale", type=finite_float, nargs=2, default=(0.02, 0.33), help="random erasing area range")
    g.add_argument("--re_ratio", type=finite_float, nargs=2, default=(0.3, 3.3), help="random erasing aspect range")
    g.add_argument("--re_value", type=finite_float, default=0.0, help="random erasing fill value (default 0)")
    g.add_argument("--re_max_attempts", type=int, default=10, help="random erasing attempts (default 10)")
    g.add_argument("--mean", type=finite_float, nargs="+", default=None,
                   help="per-channel mean on the 0-255 scale (default: the model's, x255)")
    g.add_argument("--std", type=finite_float, nargs="+", default=None,
                   help="per-channel std on the 0-255 scale (default: the model's, x255)")
    g.add_argument("--crop_pct", type=optional_float, default=None,
                   help="eval centre-crop fraction (default: the model's, 0.875)")
    g.add_argument("--mixup", type=finite_float, default=0.0, help="mixup alpha (0: off)")
    g.add_argument("--cutmix", type=finite_float, default=0.0, help="cutmix alpha (0: off)")
    g.add_argument("--cutmix_prob", type=finite_float, default=1.0, help="probability to mix a batch (default 1)")

    g = parser.add_argument_group("model")
    g.add_argument("--model", type=str, default="res2net50", help="registered model name (default res2net50)")
    g.add_argument("--num_classes", type=optional_positive_int, default=None, help="classes (default: the dataset's)")
    g.add_argument("--in_channels", type=positive_int, default=3, help="input channels; 1 keeps grey images grey")
    g.add_argument("--drop_rate", type=optional_float, default=None, help="dropout before the classifier")
    g.add_argument("--drop_path_rate", type=optional_float, default=None, help="stochastic depth of the last block")
    g.add_argument("--frozen_stages", type=int, default=-1, choices=FROZEN_STAGES,
                   help="train.py (mmpretrain's): -1 nothing frozen, 0 the stem, i the stem and stages 1..i: their "
                        "weights and BatchNorm statistics never change (Res2Net-DLA: only -1)")
    _bool(g, "--norm_eval", False, "train.py (mmpretrain's): every BatchNorm stays in eval mode, so running "
          "statistics never change; its affine weights still train unless frozen (default false)")
    _bool(g, "--pretrained", False, "start from the published ImageNet weights (default false)")
    g.add_argument("--ckpt_path", type=str, default="",
                   help="start from (or validate) this weight file; validate.py: or a run's folder (its best)")
    g.add_argument("--amp_level", type=str, default="O0", choices=("O0", "O1", "O2", "O3"),
                   help="automatic mixed precision level (default O0)")
    _bool(g, "--ema", False, "keep an exponential moving average of the weights")
    g.add_argument("--ema_decay", type=finite_float, default=0.9999, help="EMA decay (default 0.9999)")

    g = parser.add_argument_group("optimizer")
    g.add_argument("--opt", type=str, default="momentum", choices=("sgd", "momentum", "adam", "adamw", "rmsprop"),
                   help="optimizer (default momentum)")
    g.add_argument("--momentum", type=finite_float, default=0.9, help="momentum (default 0.9)")
    g.add_argument("--weight_decay", type=finite_float, default=1e-4, help="weight decay (default 1e-4)")
    _bool(g, "--filter_bias_and_bn", True, "no weight decay on biases and BatchNorm (default true)")
    _bool(g, "--use_nesterov", False, "Nesterov momentum (default false)")
    g.add_argument("--eps", type=finite_float, default=1e-8, help="epsilon of adam/adamw/rmsprop (default 1e-8)")
    g.add_argument("--loss_scale", type=finite_float, default=1.0, help="fixed loss scale (default 1)")
    _bool(g, "--dynamic_loss_scale", False, "dynamic loss scale (GPU/Ascend only)")
    _bool(g, "--clip_grad", False, "clip gradients by global norm (default false)")
    g.add_argument("--clip_value", type=finite_float, default=15.0, help="global-norm clip value (default 15)")

    g = parser.add_argument_group("scheduler")
    g.add_argument("--scheduler", type=str, default="cosine_decay",
                   choices=("cosine_decay", "step_decay", "multi_step_decay", "constant"),
                   help="learning-rate schedule, per step (default cosine_decay)")
    g.add_argument("--lr", type=finite_float, default=0.1, help="peak learning rate (default 0.1)")
    g.add_argument("--min_lr", type=finite_float, default=0.0, help="final lr of cosine_decay (default 0)")
    g.add_argument("--warmup_epochs", type=int, default=0, help="linear warm-up epochs (default 0)")
    g.add_argument("--warmup_factor", type=finite_float, default=0.0, help="warm-up starts at lr x this (default 0)")
    g.add_argument("--decay_epochs", type=optional_int, default=None,
                   help="epochs of decay after warm-up (default: epoch_size - warmup_epochs)")
    g.add_argument("--decay_rate", type=finite_float, default=0.1, help="factor of step and multi-step decay (default 0.1)")
    g.add_argument("--multi_step_decay_milestones", type=int, nargs="+", default=(30, 60, 90),
                   help="epochs at which multi_step_decay multiplies the lr by decay_rate")
    _bool(g, "--lr_epoch_stair", False, "change the lr once per epoch instead of every step")

    g = parser.add_argument_group("loss")
    g.add_argument("--loss", type=str, default="CE", choices=("CE",), help="cross-entropy (default CE)")
    g.add_argument("--label_smoothing", type=finite_float, default=0.0, help="label smoothing (default 0)")
    g.add_argument("--reduction", type=str, default="mean", choices=("mean",), help="loss reduction (mean)")

    g = parser.add_argument_group("training")
    g.add_argument("--epoch_size", type=positive_int, default=90, help="training epochs (default 90)")
    _bool(g, "--dataset_sink_mode", False, "dataset sink mode (GPU/Ascend; CPU ignores it)")
    g.add_argument("--gradient_accumulation_steps", type=positive_int, default=1,
                   help="sum gradients over N batches per update: an N-times larger batch (default 1)")
    g.add_argument("--resume", type=str, default="",
                   help="continue exactly from a checkpoint of this run, or 'auto': the newest in --ckpt_save_dir")
    _bool(g, "--resume_opt", False, "with --ckpt_path: also restore optimizer, epoch and lr position (mindcv style)")

    g = parser.add_argument_group("checkpoints")
    g.add_argument("--ckpt_save_dir", type=str, default="./ckpt", help="checkpoint and log folder (default ./ckpt)")
    g.add_argument("--keep_checkpoint_max", type=positive_int, default=10, help="newest checkpoints kept (default 10)")
    g.add_argument("--ckpt_save_interval", type=positive_int, default=1, help="save every N epochs (default 1)")
    g.add_argument("--ckpt_save_policy", type=str, default="latest_k", choices=("latest_k", "top_k"),
                   help="latest_k: the newest --keep_checkpoint_max checkpoints, and the best one always (top_k is "
                        "refused)")
    _bool(g, "--save_optimizer_state", True, "store the optimizer's state in checkpoints so that they can be "
          "resumed (false: weights, EMA and metadata only, about a third of the size)")
    for action in parser._actions:
        if action.option_strings and action.metavar is None and action.choices is None:
            action.metavar = _metavar(action)
    if program:
        for action in parser._actions:
            if action.dest in _hidden_keys(parser, program):
                action.help = argparse.SUPPRESS
        for group in parser._action_groups:  # a group whose flags are all hidden loses its heading too
            if all(a.help is argparse.SUPPRESS for a in group._group_actions):
                group._group_actions.clear()
    return parser
# fmt: on


def _quote(value) -> str:
    """``repr(value)`` cut short (at most about 80 characters, in bounded time even for aliased YAML)."""
    text = _QUOTE.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _known_keys(parser: argparse.ArgumentParser) -> dict:
    return {a.dest: a for a in parser._actions if a.dest not in ("help", "config")}


def _suggest(name: str, known, prefix: str = "") -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(prefix + c for c in close)}?)" if close else ""


def _normalize_argv(argv: Sequence[str], known: dict, hidden: frozenset = frozenset(), program: str = "") -> List[str]:
    """Turn positional ``key=value`` into ``--key=value``; reject unknown flags with suggestions, and the
    other program's flags (``hidden``) with a word on where they belong."""
    shown = {k: v for k, v in known.items() if k not in hidden}
    out = []
    for arg in argv:
        if not arg.startswith("-") and "=" in arg:
            key = arg.split("=", 1)[0]
            if key not in known:
                raise ConfigError(f"unknown argument '{arg}'{_suggest(key, shown)}")
            arg = "--" + arg
        if arg.startswith("--"):
            key = arg[2:].split("=", 1)[0]
            if key in hidden:
                other = "validate.py" if program == "train" else "train.py"
                raise ConfigError(f"--{key} is a flag of {other}, not of {program}.py (a YAML file given with -c "
                                  "may hold it)")
            if key not in known and key not in ("help", "config"):
                raise ConfigError(f"unknown flag '--{key}'{_suggest(key, shown, '--')}")
        out.append(arg)
    return out


def _as_flag_text(value) -> str:
    """A YAML scalar spelled as on the command line, so that it converts exactly as a flag would:
    ``32.0`` is no integer and ``true`` no number, in a file as on the command line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _convert_value(origin: str, key: str, value, action: argparse.Action):
    """A config file's value checked and converted with the flag's own type."""
    convert = action.type or str
    if value is None:
        if action.default is None or action.type in (optional_int, optional_positive_int, optional_float,
                                                     optional_str):
            return None
        raise ConfigError(f"config {origin}: key '{key}' needs a value (default {_quote(action.default)})")
    try:
        if action.nargs in ("+", 2) or isinstance(action.nargs, int):
            if not isinstance(value, (list, tuple)):
                raise ValueError(f"expects a list, got {_quote(value)}")
            converted = tuple(convert(_as_flag_text(v)) for v in value)
            if isinstance(action.nargs, int) and len(converted) != action.nargs:
                raise ValueError(f"expects {action.nargs} values, got {len(converted)}")
            return converted
        if isinstance(value, (list, tuple, dict)):
            raise ValueError(f"expects a single value, got {_quote(value)}")
        converted = convert(_as_flag_text(value))
    except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
        raise ConfigError(f"config {origin}: key '{key}' {_clip(str(exc))}") from None
    if action.choices is not None and converted not in action.choices:
        choices = ", ".join(str(c) for c in action.choices)
        raise ConfigError(f"config {origin}: key '{key}' must be one of {choices}, got {_quote(value)}")
    return converted


# A run's stored config (its config.yaml, a checkpoint's metadata) keeps the weights the run started from
# under these keys, not under the flags that name them: validate.py given the run's config must never
# evaluate the starting weights instead of the run's own checkpoints. train.py reads them back as the flags.
STARTING_WEIGHTS_KEYS = {"ckpt_path": "init_ckpt_path", "pretrained": "init_pretrained"}


def stored_config(args) -> dict:
    """The config a run stores (``vars(args)`` without ``config``; the starting weights renamed)."""
    return {STARTING_WEIGHTS_KEYS.get(k, k): v for k, v in vars(args).items() if k != "config"}


def _read_starting_weights(data: dict, origin: str, program: str) -> dict:
    """``data`` with a stored config's starting-weight keys as their flags (train.py) or left out
    (validate.py, which evaluates what --ckpt_path names, never a run's starting weights)."""
    data = dict(data)
    for flag, stored in STARTING_WEIGHTS_KEYS.items():
        if stored not in data:
            continue
        value = data.pop(stored)
        if program == "validate":
            continue
        if data.get(flag) not in (None, "", False):
            raise ConfigError(f"config {origin}: keys '{flag}' and '{stored}' both name starting weights; keep one")
        data[flag] = value
    return data


def config_from_mapping(data: dict, origin: str, strict: bool = True, program: str = "") -> dict:
    """``{key: value}`` of a config file or a checkpoint's stored config, each value checked and converted
    as its flag's would be. Unknown keys are errors (``strict``) or ignored (a newer version's keys).
    A stored run's starting weights (``STARTING_WEIGHTS_KEYS``) are dropped for ``program`` "validate"."""
    known = _known_keys(create_parser())
    values = {}
    for key, value in _read_starting_weights(data, origin, program).items():
        if key not in known:
            if strict:
                raise ConfigError(f"config {origin}: unknown key {_quote(key)}{_suggest(str(key)[:100], known)}")
            continue
        values[key] = _convert_value(origin, key, value, known[key])
    return values


class _RecipeError(yaml.YAMLError):
    """A recipe gives one key twice, or nests too deeply."""


class _RecipeLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (``<<`` merges may be overridden)
    and nesting deeper than ``MAX_RECIPE_NESTING`` flow collections."""

    def fetch_flow_collection_start(self, token_class):
        if self.flow_level >= MAX_RECIPE_NESTING:
            raise _RecipeError(f"more than {MAX_RECIPE_NESTING} nested [ ] or {{ }} (line {self.line + 1})")
        super().fetch_flow_collection_start(token_class)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            lines = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node)
                line = key_node.start_mark.line + 1
                if key in lines:
                    raise _RecipeError(f"key {_quote(key)} appears twice (lines {lines[key]} and {line})")
                lines[key] = line
        return super().construct_mapping(node, deep)


def _expanded_size(root: yaml.Node) -> int:
    """Characters plus values of a composed YAML document with every alias expanded (a node shared by N
    references counts N times), capped just above ``MAX_RECIPE_EXPANDED``; -1 if a node contains itself.
    Each node is visited once, so the work is linear in the document, whatever its aliases expand to."""
    sizes, open_nodes, stack = {}, set(), [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes and not children_done:
            continue
        children = [] if isinstance(node, yaml.ScalarNode) else [
            n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else list(node.value)
        if children_done:
            open_nodes.discard(id(node))
            own = len(node.value) if isinstance(node, yaml.ScalarNode) else 0
            sizes[id(node)] = min(1 + own + sum(sizes[id(c)] for c in children), MAX_RECIPE_EXPANDED + 1)
        elif id(node) in open_nodes:
            return -1
        else:
            open_nodes.add(id(node))
            stack.append((node, True))
            stack.extend((c, False) for c in children)
    return sizes[id(root)]


_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _recipe_text(path: str) -> str:
    """The text of the YAML file ``path`` (a regular file of at most ``MAX_RECIPE_BYTES``). A directory,
    FIFO or device is named, never opened for reading (a FIFO would block, /dev/zero never end)."""
    def check(mode: int, size: int) -> None:
        kind = next((name for test, name in _FILE_KINDS if test(mode)), None)
        if kind or not stat.S_ISREG(mode):
            hint = f" (a run's settings are in {os.path.join(path, 'config.yaml')})" if stat.S_ISDIR(mode) else ""
            raise ConfigError(f"config {path}: is {kind or 'not a regular file'}, not a YAML file{hint}")
        if size > MAX_RECIPE_BYTES:
            raise ConfigError(f"config {path}: {size} bytes is too large for a YAML recipe "
                              f"(at most {MAX_RECIPE_BYTES})")

    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"config {path}: cannot read it ({exc.strerror or exc})") from None
    check(info.st_mode, info.st_size)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # if a FIFO replaced the file since, do not wait on it
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            check(info.st_mode, info.st_size)
            data = f.read(MAX_RECIPE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"config {path}: cannot read it ({exc.strerror or exc})") from None
    check(stat.S_IFREG, len(data))  # it grew since
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config {path}: not UTF-8 text (byte {exc.start})") from None


def load_yaml_config(path: str, program: str = "") -> dict:
    """Read a YAML config; unknown keys, a key given twice and wrong types are clear errors naming the file
    and key. Aliases may not expand the recipe beyond ``MAX_RECIPE_EXPANDED``."""
    loader = _RecipeLoader(_recipe_text(path))
    loader.name = path  # named in PyYAML's messages
    try:
        node = loader.get_single_node()
        size = 0 if node is None else _expanded_size(node)
        if size < 0:
            raise ConfigError(f"config {path}: an alias (*name) refers to the value that contains it")
        if size > MAX_RECIPE_EXPANDED:
            raise ConfigError(f"config {path}: its aliases (*name) expand it beyond {MAX_RECIPE_EXPANDED} "
                              "characters and values")
        data = {} if node is None else loader.construct_document(node)
    except ConfigError:
        raise
    except _RecipeError as exc:
        raise ConfigError(f"config {path}: {exc}") from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: a value PyYAML cannot build (date 2021-13-45)
        raise ConfigError(f"config {path}: not valid YAML ({_clip(' '.join(str(exc).split()))})") from None
    except RecursionError:
        raise ConfigError(f"config {path}: nested too deeply to be a recipe") from None
    finally:
        loader.dispose()
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {path}: expected key: value pairs at the top level")
    return config_from_mapping(data, path, program=program)


def parse_config(argv: Optional[Sequence[str]] = None, description: str = "Res2Net training and validation",
                 program: str = "") -> Tuple[argparse.Namespace, FrozenSet[str]]:
    """(parsed config, the keys given on the command line or in the ``-c`` file); see ``parse_args``."""
    parser = create_parser(description, program)
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = _normalize_argv(argv, _known_keys(parser), _hidden_keys(parser, program) if program else frozenset(),
                           program)
    pre = _Parser(add_help=False, allow_abbrev=False)
    pre.add_argument("-c", "--config", type=str, default="")
    early, _ = pre.parse_known_args(argv)
    from_file = load_yaml_config(early.config, program) if early.config else {}
    parser.set_defaults(**from_file)
    args = parser.parse_args(argv)
    for key in ("scale", "ratio", "re_scale", "re_ratio", "mean", "std", "multi_step_decay_milestones"):
        if getattr(args, key) is not None:
            setattr(args, key, tuple(getattr(args, key)))
    if program and not resuming(args):  # a resumed run's flags are checked with its own settings
        check_flags_used(args, program)
    return args, frozenset(from_file) | _command_line_keys(argv)


def resuming(args) -> bool:
    """True if train.py continues a run (--resume, or --resume_opt with --ckpt_path)."""
    return bool(args.resume or (args.resume_opt and args.ckpt_path))


def parse_args(argv: Optional[Sequence[str]] = None, description: str = "Res2Net training and validation",
               program: str = ""):
    """Parsed config as an ``argparse.Namespace`` (every key, defaults included); raises ``ConfigError`` with a
    one-line message. ``program`` "train" or "validate" refuses the other program's flags on the command line,
    and flags that program would not read (``check_flags_used``)."""
    return parse_config(argv, description, program)[0]


def _command_line_keys(argv: Sequence[str]) -> FrozenSet[str]:
    """The keys ``argv`` sets (parsed again with no defaults, so only given flags appear)."""
    bare, unset = create_parser(), object()
    bare.set_defaults(**{a.dest: unset for a in bare._actions})
    return frozenset(k for k, v in vars(bare.parse_args(argv)).items() if v is not unset)


_IMAGE_FOLDERS = ("imagefolder", "imagenet")


# fmt: off
# Flags read only under a condition, as (key, programs, is it read?, why not). A value other than the default
# where the flag is not read would be ignored: that is an error (a flag at its default never is).
_READ_ONLY_IF = (
    ("data_dir", PROGRAMS, lambda a: a.dataset != "digits",
     "--dataset digits (the default) reads no folder; for a folder of <split>/<class>/<image> files add "
     "--dataset imagefolder"),
    ("dataset_download", PROGRAMS, lambda a: a.dataset in ("cifar10", "cifar100"),
     "only cifar10 and cifar100 are downloaded"),
    ("skip_corrupt_images", PROGRAMS, lambda a: a.dataset in _IMAGE_FOLDERS, "only image folders are decoded "
     "(--dataset imagefolder or imagenet)"),
    ("hflip", ("train",), lambda a: a.dataset not in SMALL_DATASETS, f"--dataset {'/'.join(SMALL_DATASETS)} is "
     "trained without augmentation"),
    *((key, ("train",), lambda a: a.dataset in _IMAGE_FOLDERS, "only image folders (--dataset imagefolder or "
       "imagenet) get this augmentation") for key in ("scale", "ratio", "vflip", "color_jitter", "auto_augment",
                                                     "re_prob")),
    ("val_interval", ("train",), lambda a: a.val_while_train, "--val_while_train is false"),
    ("cutmix_prob", ("train",), lambda a: a.mixup > 0 or a.cutmix > 0, "neither --mixup nor --cutmix is on"),
    ("re_scale", ("train",), lambda a: a.re_prob > 0, "--re_prob is 0 (random erasing off)"),
    ("re_ratio", ("train",), lambda a: a.re_prob > 0, "--re_prob is 0 (random erasing off)"),
    ("re_value", ("train",), lambda a: a.re_prob > 0, "--re_prob is 0 (random erasing off)"),
    ("re_max_attempts", ("train",), lambda a: a.re_prob > 0, "--re_prob is 0 (random erasing off)"),
    ("ema_decay", ("train",), lambda a: a.ema, "--ema is off"),
    ("clip_value", ("train",), lambda a: a.clip_grad, "--clip_grad is off"),
    ("momentum", ("train",), lambda a: a.opt in ("momentum", "sgd", "rmsprop"), "adam and adamw have none"),
    ("use_nesterov", ("train",), lambda a: a.opt in ("momentum", "sgd"), "only momentum and sgd use it"),
    ("eps", ("train",), lambda a: a.opt in ("adam", "adamw", "rmsprop"), "only adam, adamw and rmsprop use it"),
    ("min_lr", ("train",), lambda a: a.scheduler == "cosine_decay", "only --scheduler cosine_decay uses it"),
    ("decay_epochs", ("train",), lambda a: a.scheduler in ("cosine_decay", "step_decay"),
     "only --scheduler cosine_decay and step_decay use it"),
    ("decay_rate", ("train",), lambda a: a.scheduler in ("step_decay", "multi_step_decay"),
     "only --scheduler step_decay and multi_step_decay use it"),
    ("multi_step_decay_milestones", ("train",), lambda a: a.scheduler == "multi_step_decay",
     "only --scheduler multi_step_decay uses it"),
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
    parser = create_parser()
    for key, programs, is_read, why_not in _READ_ONLY_IF:
        value, default = getattr(args, key), parser.get_default(key)
        if program in programs and value != (tuple(default) if isinstance(default, list) else default) \
                and not is_read(args):
            shown = " ".join(str(v) for v in value) if isinstance(value, tuple) else value
            raise ConfigError(f"--{key} {shown}: would be ignored: {why_not}")


# Settings a resumed run may change (the rest is the run's own and is taken from its checkpoint): how long it
# trains, where its data lives and how it is read, where it runs, how often it logs, validates and saves.
RESUME_MAY_CHANGE = frozenset((
    "epoch_size", "batch_size", "num_parallel_workers", "data_dir", "skip_corrupt_images", "device_target", "mode",
    "distribute", "dataset_sink_mode", "log_interval", "val_while_train", "val_interval", "keep_checkpoint_max",
    "ckpt_save_interval", "save_optimizer_state"))
# Keys of one invocation, never the run's: which file, which folder, how to resume.
_INVOCATION_KEYS = frozenset(("config", "resume", "resume_opt", "ckpt_save_dir", "engine", "onnx_path"))


def _shown(value) -> str:
    return " ".join(str(v) for v in value) if isinstance(value, tuple) else repr(value) if value == "" else str(value)


def resumed_config(args, given: FrozenSet[str], stored: dict, origin: str) -> Tuple[argparse.Namespace, List[str]]:
    """A resumed run's config: its ``stored`` settings (from ``origin``), and of the ``given`` keys those in
    ``RESUME_MAY_CHANGE`` (each change listed in the returned notes). Any other given key must agree with the
    run: a contradiction is a one-line ``ConfigError`` naming both values."""
    merged, notes = dict(vars(args)), []
    for key, value in stored.items():
        if key in _INVOCATION_KEYS or key not in merged or (key == "ckpt_path" and args.resume_opt):
            continue
        if key in given and merged[key] != value:
            if key not in RESUME_MAY_CHANGE:
                raise ConfigError(f"--{key} {_shown(merged[key])} contradicts the resumed run's {key} {_shown(value)} "
                                  f"({origin}); drop it to continue the run, or start a new run in another "
                                  "--ckpt_save_dir")
            notes.append(f"{key} {_shown(value)} -> {_shown(merged[key])}")
            continue
        merged[key] = value
    return argparse.Namespace(**merged), notes


def data_config(args):
    """The data layer's typed settings (a ``DataConfig``) from a parsed config."""
    from .data.config import DataConfig

    return DataConfig.from_mapping(vars(args))


def save_config(args, path: str, comment: str = "", replace: bool = True) -> str:
    """Write the effective config as YAML (atomically), after a first line ``# comment`` if given; it loads
    back with ``-c``. ``replace=False``: an existing ``path`` is kept, and that is an error (``WriteError``)."""
    values = {k: (list(v) if isinstance(v, tuple) else v) for k, v in sorted(stored_config(args).items())}
    with atomic_path(path, replace=replace) as tmp, open(tmp, "w") as f:
        if comment:
            f.write(f"# {comment}\n")
        yaml.safe_dump(values, f, sort_keys=True)
    return path


def format_config(args) -> str:
    return "\n".join(f"  {k}: {v}" for k, v in sorted(vars(args).items()))
