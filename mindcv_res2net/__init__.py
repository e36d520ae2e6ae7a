"""Res2Net, Res2Net-v1b and Res2NeXt for MindSpore, equal to the official networks."""
from ._onednn import set_onednn_isa

set_onednn_isa()  # must run before mindspore is imported below

from .models import create_model, list_models, register_model  # noqa: E402

__version__ = "0.1.0"
__all__ = ["create_model", "list_models", "register_model", "__version__"]
