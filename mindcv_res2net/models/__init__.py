"""Networks, their registry and the model factory."""
from . import dla, res2net  # noqa: F401  (registers the models)
from .base import FeatureInfo
from .factory import create_model, create_model_from_checkpoint
from .layers import (is_exportable, is_no_jit, is_scriptable, set_exportable, set_layer_config, set_no_jit,
                     set_scriptable)
from .registry import (get_pretrained_cfg, get_pretrained_cfg_value, is_model, is_model_in_modules,
                       is_model_pretrained, list_models, list_modules, list_pretrained, model_entrypoint,
                       register_model)
from .dla import *  # noqa: F401,F403  (Res2NetDLA, its trees, and a builder per VARIANTS row: res2net_dla60 ...)
from .res2net import *  # noqa: F401,F403  (Bottle2neck, Res2Net, and a builder per VARIANTS row: res2net50 ...)

__all__ = ["Bottle2neck", "FeatureInfo", "Res2Net", "Res2NetDLA", "create_model", "create_model_from_checkpoint",
           "get_pretrained_cfg", "get_pretrained_cfg_value", "is_model", "is_model_in_modules", "is_model_pretrained",
           "is_exportable", "is_no_jit", "is_scriptable", "list_models", "list_modules", "list_pretrained",
           "model_entrypoint", "register_model", "set_exportable", "set_layer_config", "set_no_jit", "set_scriptable"]
__all__ += [*res2net.VARIANTS, *dla.VARIANTS]  # models.res2net50() ..., as timm.models.res2net50()
