"""The one entry of train.py and validate.py: command line > YAML (``-c/--config FILE``) > defaults."""
import argparse
import sys
from typing import FrozenSet, Optional, Sequence, Tuple

from ..utils.argtypes import OneLineParser
from .flags import (check_flags_used, command_line_keys, create_parser, flag_actions, hidden_keys, normalize_argv,
                    resuming)
from .recipe import load_yaml_config


def parse_config(argv: Optional[Sequence[str]] = None, description: str = "Res2Net training and validation",
                 program: str = "") -> Tuple[argparse.Namespace, FrozenSet[str]]:
    """(parsed config, the keys given on the command line or in the ``-c`` file); see ``parse_args``."""
    parser = create_parser(description, program)
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = normalize_argv(argv, flag_actions(parser), hidden_keys(parser, program) if program else frozenset(),
                          program)
    pre = OneLineParser(add_help=False, allow_abbrev=False)
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
    return args, frozenset(from_file) | command_line_keys(argv)


def parse_args(argv: Optional[Sequence[str]] = None, description: str = "Res2Net training and validation",
               program: str = ""):
    """Parsed config as an ``argparse.Namespace`` (every key, defaults included); raises ``ConfigError`` with a
    one-line message. ``program`` "train" or "validate" refuses the other program's flags on the command line,
    and flags that program would not read (``check_flags_used``)."""
    return parse_config(argv, description, program)[0]
