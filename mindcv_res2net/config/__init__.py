"""The one configuration of train.py and validate.py (flag names and YAML keys as mindcv's).

Precedence: command line > YAML (``-c/--config FILE``) > defaults. Every key of mindcv's
``configs/res2net/*.yaml`` is accepted. A positional ``key=value`` is read as ``--key=value``.
``flags``: the parser and which program reads which flag; ``recipe``: YAML files read with bounds;
``stored``: a run's stored config and resuming it; ``parse``: the three combined.
"""
from ..utils.argtypes import ConfigError
from .flags import (EPILOG, PROGRAMS, USAGE, VALIDATE_KEYS, VALIDATE_ONLY_KEYS, check_flags_used, create_parser,
                    data_config, format_config, resuming)
from .parse import parse_args, parse_config
from .recipe import (MAX_RECIPE_BYTES, MAX_RECIPE_EXPANDED, MAX_RECIPE_NESTING, config_from_mapping,
                     load_yaml_config)
from .stored import RESUME_MAY_CHANGE, STARTING_WEIGHTS_KEYS, resumed_config, save_config, stored_config

__all__ = ["EPILOG", "MAX_RECIPE_BYTES", "MAX_RECIPE_EXPANDED", "MAX_RECIPE_NESTING", "PROGRAMS", "RESUME_MAY_CHANGE",
           "STARTING_WEIGHTS_KEYS", "USAGE", "VALIDATE_KEYS", "VALIDATE_ONLY_KEYS", "ConfigError", "check_flags_used",
           "config_from_mapping", "create_parser", "data_config", "format_config", "load_yaml_config", "parse_args",
           "parse_config", "resumed_config", "resuming", "save_config", "stored_config"]
