"""Networks, their registry and the model factory."""
from . import res2net  # noqa: F401  (registers the models)
from .factory import create_model, create_model_from_checkpoint
from .registry import get_pretrained_cfg, is_model, list_models, register_model
from .res2net import Bottle2neck, Res2Net

__all__ = ["Bottle2neck", "Res2Net", "create_model", "create_model_from_checkpoint", "get_pretrained_cfg", "is_model",
           "list_models", "register_model"]
