"""A run's stored config (its config.yaml, a checkpoint's metadata): what is written, and how a resumed run's
settings merge with the flags given to continue it."""
import argparse
from typing import FrozenSet, List, Tuple

import yaml

from ..utils.argtypes import ConfigError
from ..utils.fileio import atomic_path


# A run's stored config (its config.yaml, a checkpoint's metadata) keeps the weights the run started from
# under these keys, not under the flags that name them: validate.py given the run's config must never
# evaluate the starting weights instead of the run's own checkpoints. train.py reads them back as the flags.
STARTING_WEIGHTS_KEYS = {"ckpt_path": "init_ckpt_path", "pretrained": "init_pretrained"}


def stored_config(args) -> dict:
    """The config a run stores (``vars(args)`` without ``config``; the starting weights renamed)."""
    return {STARTING_WEIGHTS_KEYS.get(k, k): v for k, v in vars(args).items() if k != "config"}


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


def save_config(args, path: str, comment: str = "", replace: bool = True) -> str:
    """Write the effective config as YAML (atomically), after a first line ``# comment`` if given; it loads
    back with ``-c``. ``replace=False``: an existing ``path`` is kept, and that is an error (``WriteError``)."""
    values = {k: (list(v) if isinstance(v, tuple) else v) for k, v in sorted(stored_config(args).items())}
    with atomic_path(path, replace=replace) as tmp, open(tmp, "w") as f:
        if comment:
            f.write(f"# {comment}\n")
        yaml.safe_dump(values, f, sort_keys=True)
    return path
