"""The command lines of train.py, validate.py, config.py and the benchmark: one parser builder for any table
of flags derived from typed settings (``build_parser``), and the one way to read train.py's and validate.py's
(``config.flags.FLAGS``): command line > YAML (``-c/--config FILE``) > defaults, into the typed
``config.Settings`` (``parse_settings``, ``parse_config``)."""
import argparse
import sys
from typing import Collection, FrozenSet, List, Mapping, Optional, Sequence, Tuple

from mindcv_res2net.config import (FLAGS, PATH_KEYS, Flag, Settings, check_flags_used, hidden_keys, load_yaml_config,
                                   resuming)
from mindcv_res2net.utils.argtypes import (ConfigError, HelpFormatter, OneLineParser, finite_float, image_size,
                                           optional_float, optional_int, optional_positive_int, positive_int, suggest)

EPILOG = """Flags may also be written key=value (batch_size=64). Precedence: command line > the YAML file of
-c/--config (any key of mindcv's configs/res2net/*.yaml) > the defaults shown. Booleans take
true/false (yes/no, 1/0); a bare --flag means true."""

USAGE = "%(prog)s [-h] [-c CONFIG.yaml] [--flag VALUE ...] [key=value ...]"
_LIST_KEYS = tuple(key for key, flag in FLAGS.items() if flag.takes_list)  # parsed as lists, kept as tuples


def _metavar(flag: Flag, path_keys: Collection[str]) -> str:
    """A short placeholder by the flag's type: N (integer), X (number), PATH (``path_keys``), or TEXT."""
    if flag.dest in path_keys:
        return "PATH"
    if flag.type in (int, positive_int, image_size, optional_int, optional_positive_int):
        return "N"
    if flag.type in (finite_float, optional_float, float):
        return "X"
    return "TEXT"


def build_parser(flags: Mapping[str, Flag], *, description: str, path_keys: Collection[str] = (),
                 hidden: Collection[str] = (), **parser_kwargs) -> argparse.ArgumentParser:
    """The parser of the flag table ``flags`` (``config.derive_flags``): one --help group per group of the
    table, in its order; a placeholder by type (``_metavar``) unless the flag has choices or its own; a switch
    takes true/false or nothing (true). ``hidden`` flags are accepted but left out of --help (a group of hidden
    flags only is left out). ``parser_kwargs``: the rest of ``OneLineParser``'s (usage, epilog, allow_abbrev)."""
    parser = OneLineParser(description=description, formatter_class=HelpFormatter, **parser_kwargs)
    groups = {}
    for flag in flags.values():
        if flag.group not in groups:
            groups[flag.group] = parser.add_argument_group(flag.group)
        kwargs = flag.argparse_kwargs()
        if "metavar" not in kwargs and flag.choices is None:
            kwargs["metavar"] = _metavar(flag, path_keys)
        if flag.dest in hidden:
            kwargs["help"] = argparse.SUPPRESS
        groups[flag.group].add_argument(*flag.names, **kwargs)
    return parser


def create_parser(description: str = "Res2Net training and validation", program: str = "") -> argparse.ArgumentParser:
    """The parser of train.py (``program="train"``), validate.py (``"validate"``), or of every key (``""``):
    one group per group of ``FLAGS``; the other program's flags are accepted but left out of --help."""
    parser = build_parser(FLAGS, description=description, path_keys=PATH_KEYS, hidden=hidden_keys(program),
                          allow_abbrev=False, epilog=EPILOG, usage=USAGE)
    parser.add_argument("-c", "--config", type=str, default="", metavar="PATH",
                        help="YAML file of defaults (flags override it)")
    return parser


def normalize_argv(argv: Sequence[str], program: str = "") -> List[str]:
    """Turn positional ``key=value`` into ``--key=value``; reject unknown flags with suggestions, and the
    other program's flags with a word on where they belong."""
    hidden = hidden_keys(program)
    shown = {k: v for k, v in FLAGS.items() if k not in hidden}
    out = []
    for arg in argv:
        if not arg.startswith("-") and "=" in arg:
            key = arg.split("=", 1)[0]
            if key not in FLAGS:
                raise ConfigError(f"unknown argument '{arg}'{suggest(key, shown)}")
            arg = "--" + arg
        if arg.startswith("--"):
            key = arg[2:].split("=", 1)[0]
            if key in hidden:
                other = "validate.py" if program == "train" else "train.py"
                raise ConfigError(f"--{key} is a flag of {other}, not of {program}.py (a YAML file given with -c "
                                  "may hold it)")
            if key not in FLAGS and key not in ("help", "config"):
                raise ConfigError(f"unknown flag '--{key}'{suggest(key, shown, '--')}")
        out.append(arg)
    return out


def command_line_keys(argv: Sequence[str]) -> FrozenSet[str]:
    """The keys ``argv`` sets (parsed again with no defaults, so only given flags appear)."""
    bare, unset = create_parser(), object()
    bare.set_defaults(**{a.dest: unset for a in bare._actions})
    return frozenset(k for k, v in vars(bare.parse_args(argv)).items() if v is not unset)


def parse_config(argv: Optional[Sequence[str]] = None, description: str = "Res2Net training and validation",
                 program: str = "") -> Tuple[Settings, FrozenSet[str]]:
    """(the settings, the keys given on the command line or in the ``-c`` file); see ``parse_settings``."""
    parser = create_parser(description, program)
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = normalize_argv(argv, program)
    pre = OneLineParser(add_help=False, allow_abbrev=False)
    pre.add_argument("-c", "--config", type=str, default="")
    early, _ = pre.parse_known_args(argv)
    from_file = load_yaml_config(early.config, program) if early.config else {}
    parser.set_defaults(**from_file)
    values = vars(parser.parse_args(argv))
    for key in _LIST_KEYS:
        if values[key] is not None:
            values[key] = tuple(values[key])
    settings = Settings.from_mapping(values)
    # a resumed run's flags are checked with its own settings, a validated checkpoint's with its run's data
    if program and not resuming(settings) and not (program == "validate" and settings.model.ckpt_path):
        check_flags_used(settings, program)
    return settings, frozenset(from_file) | command_line_keys(argv)


def parse_settings(argv: Optional[Sequence[str]] = None, description: str = "Res2Net training and validation",
                   program: str = "") -> Settings:
    """The settings of a command line (every key, defaults included); raises ``ConfigError`` with a one-line
    message. ``program`` "train" or "validate" refuses the other program's flags on the command line, and flags
    that program would not read (``check_flags_used``)."""
    return parse_config(argv, description, program)[0]


def parse_args(argv: Optional[Sequence[str]] = None, description: str = "Res2Net training and validation",
               program: str = "") -> argparse.Namespace:
    """``parse_settings`` as mindcv's ``config.parse_args`` returns them: one flat ``argparse.Namespace``."""
    return argparse.Namespace(**parse_settings(argv, description, program).to_mapping())
