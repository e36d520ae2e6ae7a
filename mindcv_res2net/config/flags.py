"""Flags derived from the fields of typed settings: ``derive_flags`` makes the table of any settings class
whose fields declare their flags (``settings.flag``), ``FLAGS`` is train.py's and validate.py's (names as
mindcv's, from ``Settings``): what each takes (type, default, choices, help, group), which program reads which,
and the flags a program would ignore. A flag's type and default are its field's; the rest is declared beside
the field (``settings.flag``, ``settings.DATA_FLAGS``). ``cli.parser`` builds the command-line parsers from
such tables; YAML recipes and stored configs are read with ``FLAGS``."""
from dataclasses import dataclass, fields
from typing import (Any, Callable, Collection, Dict, List, Mapping, Optional, Sequence, Tuple, Union, get_args,
                    get_origin, get_type_hints)

from ..data import DATASETS
from ..data.datasets import FOLDER_DATASET, dataset_names
from ..data.settings import DataConfig
from ..optim import OPTIMIZER_FLAGS
from ..scheduler import SCHEDULER_FLAGS
from ..utils.argtypes import ConfigError, finite_float, optional_float, optional_int, optional_str, str2bool
from .settings import DATA_FLAGS, GROUPS, PROGRAMS, SECTIONS, TRAIN, FlagSpec, Settings


@dataclass(frozen=True, kw_only=True)
class Flag:
    """One flag as ``argparse``'s ``add_argument`` takes it: ``--name``, its --help ``group`` and ``help``, the
    converter of one value (``type``), ``default``, ``choices``, ``nargs`` (a count or ``+`` for several values,
    ``?`` for a switch), the ``programs`` that read it, and its --help placeholder (``metavar``, "": by type)."""

    name: str
    group: str
    help: str
    type: Callable
    default: Any
    choices: Optional[Collection[Any]]
    nargs: Union[int, str, None]
    programs: Tuple[str, ...]
    metavar: str = ""

    @property
    def names(self) -> Tuple[str, ...]:
        return (f"--{self.name}",)

    @property
    def dest(self) -> str:
        return self.name

    @property
    def takes_list(self) -> bool:
        """Several values (``nargs`` a count or ``+``): a list on the command line, a tuple in the settings."""
        return self.nargs not in (None, "?")

    def argparse_kwargs(self) -> Dict[str, Any]:
        """``add_argument``'s keyword arguments; a switch takes ``true``/``false`` or nothing (true)."""
        kwargs = dict(type=self.type, default=self.default, help=self.help)
        if self.nargs is not None:
            kwargs["nargs"] = self.nargs
        if self.nargs == "?":
            kwargs.update(const=True, metavar="{true,false}")
        elif self.metavar:
            kwargs["metavar"] = self.metavar
        if self.choices is not None:
            kwargs["choices"] = self.choices
        return kwargs


_SCALAR: Dict[Any, Callable] = {int: int, float: finite_float, str: str, bool: str2bool}
_OPTIONAL: Dict[Any, Callable] = {int: optional_int, float: optional_float, str: optional_str}


def _conversion(hint: Any) -> Tuple[Callable, Union[int, str, None]]:
    """(converter of one value, ``nargs``) of a field's type: ``Tuple[float, float]`` takes two values,
    ``Tuple[float, ...]`` one or more, ``Optional[...]`` also 'none', and a ``bool`` is a switch."""
    args = [a for a in get_args(hint) if a is not type(None)]
    if get_origin(hint) is Union:
        return _conversion(args[0]) if get_origin(args[0]) is tuple else (_OPTIONAL[args[0]], None)
    if get_origin(hint) is tuple:
        return _SCALAR[args[0]], "+" if args[-1] is Ellipsis else len(args)
    return _SCALAR[hint], "?" if hint is bool else None


def derive_flags(sections: Sequence[type], *, groups: Sequence[str], programs: Tuple[str, ...],
                 declared_apart: Optional[Mapping[type, Mapping[str, FlagSpec]]] = None) -> Dict[str, Flag]:
    """The flags of the fields of ``sections`` (typed settings dataclasses), by name, in --help order: by
    group (``groups``), within a group as declared (fields in their sections' order), a flag with ``after``
    right behind the flag it names. A field's flag is declared on it (``settings.flag``), or, for a class of
    ``declared_apart`` (one that knows no flags), in its mapping: every field, in the mapping's order (a field
    missing is a ``KeyError``). A field without a flag is none (the ``-c`` file). ``programs``: those of a
    flag that names none. A field's own converter reads the one value given (a tuple from one text)."""
    declared_apart = declared_apart or {}
    by_group: Dict[str, List[Tuple[Flag, FlagSpec]]] = {group: [] for group in groups}
    for section in sections:
        hints, declared = get_type_hints(section), {field.name: field for field in fields(section)}
        apart = declared_apart.get(section)
        specs = {name: apart[name] for name in declared} if apart is not None else {
            name: field.metadata["flag"] for name, field in declared.items() if "flag" in field.metadata}
        for name in apart if apart is not None else specs:
            spec, field = specs[name], declared[name]
            converter, nargs = _conversion(hints[name])
            if spec.converter is not None:
                converter, nargs = spec.converter, "?" if nargs == "?" else None
            flag = Flag(name=name, group=spec.group, help=spec.help, type=converter, default=field.default,
                        choices=spec.choices, nargs=nargs, programs=spec.programs or programs, metavar=spec.metavar)
            by_group[spec.group].append((flag, spec))
    for members in by_group.values():
        for entry in [m for m in members if m[1].after]:
            members.remove(entry)
            anchor = next(i for i, (flag, _) in enumerate(members) if flag.name == entry[1].after)
            members.insert(anchor + 1, entry)
    return {flag.name: flag for members in by_group.values() for flag, _ in members}


# Every flag of train.py and validate.py (``-c/--config`` and ``--help`` are the parser's own); a field of
# ``DataConfig``, which knows no flags, gets its flag from ``DATA_FLAGS``
FLAGS = derive_flags(list(SECTIONS.values()), groups=GROUPS, programs=TRAIN, declared_apart={DataConfig: DATA_FLAGS})


def hidden_keys(program: str) -> frozenset:
    """The flags ``program`` does not read: its --help leaves them out and its command line refuses them
    (none for ``""``, every key of both programs)."""
    if program not in ("",) + PROGRAMS:
        raise ValueError(f"program must be one of {PROGRAMS} or '', got {program!r}")
    return frozenset(key for key, flag in FLAGS.items() if program and program not in flag.programs)


def resuming(settings: Settings) -> bool:
    """True if train.py continues a run (--resume, or --resume_opt with --ckpt_path)."""
    return bool(settings.run.resume or (settings.run.resume_opt and settings.model.ckpt_path))


_IMAGE_FOLDERS = " or ".join(dataset_names(lambda spec: spec.image_folder))
_NO_FOLDER = "/".join(name + (" (the default)" if name == DataConfig().dataset else "")
                      for name in dataset_names(lambda spec: not spec.reads_data_dir))


def _only_some_read(flags_by_name: dict, key: str, flag: str) -> str:
    """``only --opt sgd and momentum use it``: the names of ``flags_by_name`` whose flags include ``key``."""
    names = [name for name, keys in flags_by_name.items() if key in keys]
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    return f"only {flag} {listed} {'uses' if len(names) == 1 else 'use'} it"


# fmt: off
# Flags read only under a condition, as (key, programs, is it read?, why not). A value other than the default
# where the flag is not read would be ignored: that is an error (a flag at its default never is).
_READ_ONLY_IF: Tuple[Tuple[str, Tuple[str, ...], Callable[[Settings], bool], str], ...] = (
    ("data_dir", PROGRAMS, lambda s: DATASETS[s.data.dataset].reads_data_dir,
     f"--dataset {_NO_FOLDER} reads no folder; for a folder of <split>/<class>/<image> files add "
     f"--dataset {FOLDER_DATASET}"),
    ("dataset_download", PROGRAMS, lambda s: DATASETS[s.data.dataset].download is not None,
     f"only {' and '.join(dataset_names(lambda spec: spec.download is not None))} are downloaded"),
    ("skip_corrupt_images", PROGRAMS, lambda s: DATASETS[s.data.dataset].image_folder, "only image folders are "
     f"decoded (--dataset {_IMAGE_FOLDERS})"),
    ("reduced_decode", PROGRAMS, lambda s: DATASETS[s.data.dataset].image_folder, "only image folders are "
     f"decoded (--dataset {_IMAGE_FOLDERS})"),
    ("hflip", ("train",), lambda s: DATASETS[s.data.dataset].augmented,
     f"--dataset {'/'.join(dataset_names(lambda spec: not spec.augmented))} is trained without augmentation"),
    *((key, ("train",), lambda s: DATASETS[s.data.dataset].image_folder, f"only image folders (--dataset "
       f"{_IMAGE_FOLDERS}) get this augmentation") for key in ("scale", "ratio", "vflip", "color_jitter",
                                                               "auto_augment", "re_prob")),
    ("val_interval", ("train",), lambda s: s.run.val_while_train, "--val_while_train is false"),
    ("cutmix_prob", ("train",), lambda s: s.data.mixing, "neither --mixup nor --cutmix is on"),
    ("re_scale", ("train",), lambda s: s.data.re_prob > 0, "--re_prob is 0 (random erasing off)"),
    ("re_ratio", ("train",), lambda s: s.data.re_prob > 0, "--re_prob is 0 (random erasing off)"),
    ("re_value", ("train",), lambda s: s.data.re_prob > 0, "--re_prob is 0 (random erasing off)"),
    ("re_max_attempts", ("train",), lambda s: s.data.re_prob > 0, "--re_prob is 0 (random erasing off)"),
    ("ema_decay", ("train",), lambda s: s.optimization.ema, "--ema is off"),
    ("clip_value", ("train",), lambda s: s.optimization.clip_grad, "--clip_grad is off"),
    *((key, ("train",), lambda s, key=key: key in OPTIMIZER_FLAGS[s.optimization.opt],
       _only_some_read(OPTIMIZER_FLAGS, key, "--opt"))
      for key in ("momentum", "use_nesterov", "eps")),
    *((key, ("train",), lambda s, key=key: key in SCHEDULER_FLAGS[s.optimization.scheduler],
       _only_some_read(SCHEDULER_FLAGS, key, "--scheduler"))
      for key in ("min_lr", "decay_epochs", "decay_rate", "multi_step_decay_milestones")),
    ("warmup_factor", ("train",), lambda s: s.optimization.warmup_epochs > 0, "--warmup_epochs is 0"),
    ("resume_opt", ("train",), lambda s: bool(s.model.ckpt_path),
     "it restores the state of --ckpt_path, which is not given"),
    ("enable_modelarts", ("train",), lambda s: False, "ModelArts is not supported"),
    ("ckpt_save_policy", ("train",), lambda s: False,
     "the newest --keep_checkpoint_max checkpoints are kept, and the best one always (top_k is not supported)"),
    ("aug_repeats", ("train",), lambda s: False, "repeated augmentation is not supported; use 0"),
)
# fmt: on


def check_flags_used(settings: Settings, program: str) -> None:
    """Refuse (``ConfigError``) a flag or YAML value, other than its default, that ``program`` would not read."""
    for key, programs, is_read, why_not in _READ_ONLY_IF:
        value = settings.value(key)
        if program in programs and value != FLAGS[key].default and not is_read(settings):
            shown = " ".join(str(v) for v in value) if isinstance(value, tuple) else value
            raise ConfigError(f"--{key} {shown}: would be ignored: {why_not}")


def format_config(settings: Settings) -> str:
    """Every setting, one ``  key: value`` line each, sorted by key."""
    return "\n".join(f"  {k}: {v}" for k, v in sorted(settings.to_mapping().items()))
