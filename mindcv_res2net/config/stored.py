"""A run's stored config (its config.yaml, a checkpoint's metadata): what is written, and how a resumed run's
settings merge with the flags given to continue it."""
import hashlib
import json
import os
import re
from typing import FrozenSet, List, Mapping, Optional, Tuple

import yaml

from ..data.datasets import DATASETS
from ..utils.argtypes import ConfigError
from ..utils.fileio import atomic_path
from .settings import Settings


# A run's stored config (its config.yaml, a checkpoint's metadata) keeps the weights the run started from
# under these keys, not under the flags that name them: validate.py given the run's config must never
# evaluate the starting weights instead of the run's own checkpoints. train.py reads them back as the flags.
STARTING_WEIGHTS_KEYS = {"ckpt_path": "init_ckpt_path", "pretrained": "init_pretrained"}


# Keys whose values are paths. A run stores them absolute, so that its config names the same files from any
# folder (validate.py --ckpt_path RUN and --resume auto are often run elsewhere).
PATH_KEYS = ("data_dir", "ckpt_path", "onnx_path", "ckpt_save_dir", "resume")


def _as_read(key: str, value: str, dataset: Optional[str]) -> str:
    """The path a value of ``key`` names: '' (no path) stays '', except an empty ``data_dir`` of a data set
    that reads a default folder (CIFAR's: the current folder); ``resume auto`` is not a path."""
    if key == "data_dir" and not value and dataset in DATASETS:
        return DATASETS[dataset].default_data_dir
    return "" if key == "resume" and value == "auto" else value


def _is_relative(key: str, value, dataset: Optional[str]) -> bool:
    return isinstance(value, str) and bool(_as_read(key, value, dataset)) and not os.path.isabs(value)


def absolute_paths(settings: Settings) -> Settings:
    """``settings`` with every path key (``PATH_KEYS``) absolute, resolved against the current folder."""
    dataset = settings.data.dataset
    return settings.replace(**{key: os.path.abspath(_as_read(key, settings.value(key), dataset)) for key in PATH_KEYS
                               if _is_relative(key, settings.value(key), dataset)})


def resolve_stored_paths(stored: Mapping, origin: str, given: FrozenSet[str] = frozenset(), *,
                         keys: Tuple[str, ...] = PATH_KEYS) -> Tuple[dict, List[str]]:
    """A run's stored config (read from ``origin``) with the relative paths (of ``keys``) of runs written before
    paths were stored absolute resolved against the current folder, as they are read; and one warning per such
    value the run reads (not for keys in ``given``, which replace it, nor for invocation keys)."""
    resolved, warnings = dict(stored), []
    for key in keys:
        value = stored.get(key)
        if not _is_relative(key, value, stored.get("dataset")):
            continue
        resolved[key] = os.path.abspath(_as_read(key, stored[key], stored.get("dataset")))
        if key not in given and key not in INVOCATION_KEYS:
            shown = repr(value) if value else "'' (the current folder)"
            warnings.append(f"{origin} stores {STARTING_WEIGHTS_KEYS.get(key, key)} {shown}, a relative path: taken "
                            f"as {resolved[key]}, relative to the current folder (the folder the run was started from "
                            "is not recorded)")
    return resolved, warnings


def stored_config(settings: Settings) -> dict:
    """The config a run stores: every setting but ``config`` by flat key, the starting weights renamed."""
    return {STARTING_WEIGHTS_KEYS.get(k, k): v for k, v in settings.to_mapping().items() if k != "config"}


# Settings a resumed run may change (the rest is the run's own and is taken from its checkpoint): how long it
# trains, where its data lives and how it is read, where it runs, how often it logs, validates and saves.
RESUME_MAY_CHANGE = frozenset((
    "epoch_size", "batch_size", "num_parallel_workers", "data_dir", "skip_corrupt_images", "device_target", "mode",
    "distribute", "dataset_sink_mode", "log_interval", "val_while_train", "val_interval", "keep_checkpoint_max",
    "ckpt_save_interval", "save_optimizer_state"))
# Keys of one invocation, never the run's: which file, which folder, how to resume.
INVOCATION_KEYS = frozenset(("config", "resume", "resume_opt", "ckpt_save_dir", "engine", "onnx_path"))


def shown_value(value) -> str:
    """A setting as a message shows it: a tuple as its values, '' quoted."""
    return " ".join(str(v) for v in value) if isinstance(value, tuple) else repr(value) if value == "" else str(value)


def resumed_config(settings: Settings, given: FrozenSet[str], stored: Mapping, *, origin: str,
                   effective: Optional[Mapping] = None) -> Tuple[Settings, List[str]]:
    """A resumed run's settings: its ``stored`` config (flat keys, from ``origin``), and of the ``given`` keys
    those in ``RESUME_MAY_CHANGE`` (each change listed in the returned notes). Any other given key must agree
    with the run: a contradiction is a one-line ``ConfigError`` naming both values. ``effective``: the values a
    stored None stood for in the run (its class count, from the checkpoint's metadata), which a given key may
    repeat and which messages name."""
    merged, notes = settings.to_mapping(), []
    for key, value in stored.items():
        if key in INVOCATION_KEYS or key not in merged or (key == "ckpt_path" and settings.run.resume_opt):
            continue
        run_value = value if value is not None else (effective or {}).get(key)
        if key in given and merged[key] not in (value, run_value):
            if key not in RESUME_MAY_CHANGE:
                raise ConfigError(f"--{key} {shown_value(merged[key])} contradicts the resumed run's {key} "
                                  f"{shown_value(run_value)} ({origin}); drop it to continue the run, or start a new "
                                  "run in another --ckpt_save_dir")
            notes.append(f"{key} {shown_value(value)} -> {shown_value(merged[key])}")
            continue
        merged[key] = value
    return Settings.from_mapping(merged), notes


# The first line of a run's config.yaml: a digest of the settings written below it (the second in a run's
# folder written before run.json, whose first line named the run). A file whose settings no
# longer match it was edited by hand (``train.run_folder.RunFolder.config_edits``); comments and formatting
# are not settings.
SETTINGS_DIGEST = re.compile(r"^# settings digest ([0-9a-f]{16})$")


def settings_digest(settings: Mapping) -> str:
    """16 hex digits of the sha256 of ``settings`` (flat key: value, as ``Settings.to_mapping`` or a loaded
    config)."""
    canonical = json.dumps({k: v for k, v in settings.items() if k != "config"}, sort_keys=True, default=repr)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def save_config(settings: Settings, path: str, *, replace: bool = True) -> str:
    """Write the run's config as YAML (atomically, ``stored_config``), after a first line with its
    ``settings_digest``; it loads back with ``-c``. ``replace=False``: an existing ``path`` is kept, and that is
    an error (``WriteError``)."""
    values = {k: (list(v) if isinstance(v, tuple) else v) for k, v in sorted(stored_config(settings).items())}
    with atomic_path(path, replace=replace) as tmp, open(tmp, "w") as f:
        f.write(f"# settings digest {settings_digest(settings.to_mapping())}\n")
        yaml.safe_dump(values, f, sort_keys=True)
    return path
