"""The one configuration of train.py and validate.py (flag names and YAML keys as mindcv's).

Every key of mindcv's ``configs/res2net/*.yaml`` is accepted. ``flags``: the flag table (``FLAGS``) and which
program reads which flag; ``recipe``: YAML files read with bounds; ``stored``: a run's stored config and
resuming it. The command-line parser built from the table is ``cli.parser``.
"""
from ..utils.argtypes import ConfigError
from .flags import (FLAGS, PROGRAMS, VALIDATE_KEYS, VALIDATE_ONLY_KEYS, Flag, check_flags_used, data_config,
                    format_config, hidden_keys, resuming)
from .recipe import (MAX_RECIPE_BYTES, MAX_RECIPE_EXPANDED, MAX_RECIPE_NESTING, config_from_mapping,
                     load_yaml_config)
from .stored import RESUME_MAY_CHANGE, STARTING_WEIGHTS_KEYS, resumed_config, save_config, stored_config

__all__ = ["FLAGS", "MAX_RECIPE_BYTES", "MAX_RECIPE_EXPANDED", "MAX_RECIPE_NESTING", "PROGRAMS", "RESUME_MAY_CHANGE",
           "STARTING_WEIGHTS_KEYS", "VALIDATE_KEYS", "VALIDATE_ONLY_KEYS", "ConfigError", "Flag", "check_flags_used",
           "config_from_mapping", "data_config", "format_config", "hidden_keys", "load_yaml_config", "resumed_config",
           "resuming", "save_config", "stored_config"]
