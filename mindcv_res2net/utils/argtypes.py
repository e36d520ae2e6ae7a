"""Argument types, the help layout and the tool parser shared by every program (the bottom of the flags).

Each type converts one command-line or YAML text and raises ``argparse.ArgumentTypeError`` with a
short reason, which argparse turns into ``error: argument --flag: <reason>``.
"""
import argparse
import difflib
import math
import sys

from .errors import UserError

# Square input images, pixels per side. Every network of the package reduces its input by 32 (output
# stride 32), so 32 px is the smallest image whose last feature map holds one pixel of its own rather
# than padding; beyond 4096 px an image only exhausts memory (one 4096 px RGB batch of 8 is 1.6 GB of float32).
MIN_IMAGE_SIZE = 32
MAX_IMAGE_SIZE = 4096
# The evaluation centre crop's share of the resized shorter side (timm's crop_pct; Res2Net's is 0.875):
# below 0.1 the resize would be over ten times the crop
MIN_CROP_PCT = 0.1


class ConfigError(UserError):
    """A bad flag, YAML key or value."""


def str2bool(value) -> bool:
    """``true/yes/1/on`` -> True, ``false/no/0/off/none/''`` -> False (case-insensitive)."""
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
    """Pixels per side of a square input, ``MIN_IMAGE_SIZE`` to ``MAX_IMAGE_SIZE``."""
    try:
        size = int(value)
    except ValueError:
        size = None
    if size is None or not MIN_IMAGE_SIZE <= size <= MAX_IMAGE_SIZE:
        raise argparse.ArgumentTypeError(f"must be an integer from {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} pixels, "
                                         f"got {value}")
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


def optional_crop_pct(value):
    """None, or a number from ``MIN_CROP_PCT`` to 1."""
    number = optional_float(value)
    if number is not None and not MIN_CROP_PCT <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number from {MIN_CROP_PCT:g} to 1 (the share of the resized "
                                         f"image's shorter side kept by the centre crop), got {value}")
    return number


def optional_str(value):
    return None if value is None or str(value).strip().lower() in ("none", "null") else str(value)


OPTIONAL_TYPES = (optional_int, optional_positive_int, optional_float, optional_crop_pct, optional_str)


def suggest(name: str, known, prefix: str = "") -> str:
    """`` (did you mean --a, --b?)`` naming up to three of ``known`` close to ``name``, or ``""``."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(prefix + c for c in close)}?)" if close else ""


class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one ``ConfigError`` line, without the usage block."""

    def error(self, message):
        raise ConfigError(message)


class ToolParser(OneLineParser):
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
                raise ConfigError(f"unknown flag '--{key}'{suggest(key, known, '--')}")
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
