"""The one configuration of train.py and validate.py (flag names and YAML keys as mindcv's), as typed settings.

Every key of mindcv's ``configs/res2net/*.yaml`` is accepted. ``settings``: the frozen, typed ``Settings``
(sections data, model, optimization, run), each field with its flag (``flag``, as any settings class declares
them); ``flags``: the flag table of such fields (``derive_flags``), train.py's and validate.py's (``FLAGS``)
and which program reads which flag; ``recipe``: YAML files read with bounds; ``stored``: a run's stored config
and resuming it. The command-line parsers built from such tables are in ``cli.parser``.
"""
from ..utils.argtypes import ConfigError
from .flags import FLAGS, Flag, check_flags_used, derive_flags, format_config, hidden_keys, resuming
from .recipe import MAX_RECIPE_BYTES, MAX_RECIPE_NESTING, config_from_mapping, load_yaml_config
from .settings import PROGRAMS, FlagSpec, ModelSettings, OptimizationSettings, RunSettings, Settings, flag
from .stored import (INVOCATION_KEYS, PATH_KEYS, RESUME_MAY_CHANGE, SETTINGS_DIGEST, STARTING_WEIGHTS_KEYS,
                     absolute_paths, resolve_stored_paths, resumed_config, save_config, settings_digest, shown_value,
                     stored_config)

__all__ = ["ConfigError", "FLAGS", "Flag", "FlagSpec", "INVOCATION_KEYS", "MAX_RECIPE_BYTES", "MAX_RECIPE_NESTING",
           "ModelSettings", "OptimizationSettings", "PATH_KEYS", "PROGRAMS",
           "RESUME_MAY_CHANGE", "RunSettings", "SETTINGS_DIGEST", "STARTING_WEIGHTS_KEYS", "Settings",
           "absolute_paths", "check_flags_used", "config_from_mapping", "derive_flags", "flag", "format_config",
           "hidden_keys", "load_yaml_config", "resolve_stored_paths", "resumed_config", "resuming", "save_config",
           "settings_digest", "shown_value", "stored_config"]
