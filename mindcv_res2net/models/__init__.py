"""Networks, their registry and the model factory."""
from . import dla, res2net  # noqa: F401  (registers the models)
from .factory import create_model, create_model_from_checkpoint
from .registry import get_pretrained_cfg, is_model, list_models, register_model
from .dla import Res2NetDLA
from .res2net import Bottle2neck, Res2Net

__all__ = ["Bottle2neck", "Res2Net", "Res2NetDLA", "create_model", "create_model_from_checkpoint", "get_pretrained_cfg", "is_model",
           "list_models", "register_model"]
