"""YAML recipes (``-c FILE``) and stored configs read with bounds: size, nesting, keys given twice, and no
anchors or aliases (which no recipe needs); every value checked and converted by its flag's own type."""
import argparse
import os
import reprlib
import stat

import yaml

from ..utils.argtypes import OPTIONAL_TYPES, ConfigError, suggest
from .flags import FLAGS, Flag
from .stored import STARTING_WEIGHTS_KEYS


MAX_RECIPE_BYTES = 64 << 10  # a YAML recipe's size (mindcv's are 1 to 3 KB)
MAX_RECIPE_NESTING = 32  # [ and { levels of a recipe: PyYAML's scanner takes time quadratic in them
_QUOTE = reprlib.Repr()  # values quoted in messages: short whatever their size or nesting
_QUOTE.maxlevel, _QUOTE.maxlist, _QUOTE.maxtuple, _QUOTE.maxdict = 2, 4, 4, 4
_QUOTE.maxstring, _QUOTE.maxother = 60, 60


def _quote(value) -> str:
    """``repr(value)`` cut short (at most about 80 characters, in bounded time even for aliased YAML)."""
    text = _QUOTE.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _as_flag_text(value) -> str:
    """A YAML scalar spelled as on the command line, so that it converts exactly as a flag would:
    ``32.0`` is no integer and ``true`` no number, in a file as on the command line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _convert_value(key: str, value, flag: Flag, *, origin: str):
    """A config file's value checked and converted with the flag's own type."""
    convert = flag.type
    if value is None:
        if flag.default is None or flag.type in OPTIONAL_TYPES:
            return None
        raise ConfigError(f"config {origin}: key '{key}' needs a value (default {_quote(flag.default)})")
    try:
        if flag.takes_list:
            if not isinstance(value, (list, tuple)):
                raise ValueError(f"expects a list, got {_quote(value)}")
            converted = tuple(convert(_as_flag_text(v)) for v in value)
            if isinstance(flag.nargs, int) and len(converted) != flag.nargs:
                raise ValueError(f"expects {flag.nargs} values, got {len(converted)}")
            return converted
        if isinstance(value, (list, tuple, dict)):
            raise ValueError(f"expects a single value, got {_quote(value)}")
        converted = convert(_as_flag_text(value))
    except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
        raise ConfigError(f"config {origin}: key '{key}' {_clip(str(exc))}") from None
    if flag.choices is not None and converted not in flag.choices:
        choices = ", ".join(str(c) for c in flag.choices)
        raise ConfigError(f"config {origin}: key '{key}' must be one of {choices}, got {_quote(value)}")
    return converted


def read_starting_weights(data: dict, origin: str, program: str) -> dict:
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


def config_from_mapping(data: dict, origin: str, *, strict: bool = True, program: str = "") -> dict:
    """``{key: value}`` of a config file or a checkpoint's stored config, each value checked and converted
    as its flag's would be. Unknown keys are errors (``strict``) or ignored (a newer version's keys).
    A stored run's starting weights (``STARTING_WEIGHTS_KEYS``) are dropped for ``program`` "validate"."""
    values = {}
    for key, value in read_starting_weights(data, origin, program).items():
        if key not in FLAGS:
            if strict:
                raise ConfigError(f"config {origin}: unknown key {_quote(key)}{suggest(str(key)[:100], FLAGS)}")
            continue
        values[key] = _convert_value(key, value, FLAGS[key], origin=origin)
    return values


class _RecipeError(yaml.YAMLError):
    """A recipe gives one key twice, nests too deeply, or has an anchor or alias."""


class _RecipeLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (``<<`` merges may be overridden),
    nesting deeper than ``MAX_RECIPE_NESTING`` flow collections, and anchors (``&name``) and aliases
    (``*name``): a recipe is plain values, and an alias can make a few hundred bytes expand to gigabytes."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            what = f"alias *{event.anchor:.40}" if isinstance(event, yaml.AliasEvent) else f"anchor &{event.anchor:.40}"
            raise _RecipeError(f"line {event.start_mark.line + 1}: {what}: a recipe holds plain values, without "
                               "anchors (&name) or aliases (*name)")
        return super().compose_node(parent, index)

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
    """Read a YAML config; unknown keys, a key given twice, anchors and aliases, and wrong types are clear
    errors naming the file (and the key or line)."""
    loader = _RecipeLoader(_recipe_text(path))
    loader.name = path  # named in PyYAML's messages
    try:
        data = loader.get_single_data()
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
