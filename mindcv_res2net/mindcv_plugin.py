"""Our models in mindcv's own factory, so that ``mindcv.models.create_model`` (and with it mindcv's
train.py and validate.py) builds them.

mindcv 0.3 discovers no plugins (no entry points): registration happens when ``register_with_mindcv()``
is called, and by itself when ``mindcv_res2net`` is imported after ``mindcv.models``. mindcv's own
scripts run unchanged on our models with ``res2net-mindcv SCRIPT ARGS`` (``mindcv_res2net.cli.mindcv_run``).
"""
from typing import Callable, List

from .models import create_model, get_pretrained_cfg, list_models
from .models.registry import resolve_name

default_cfgs = {}  # read by mindcv's register_model: our default (best) weights' config of each name


def _entrypoint(name: str) -> Callable:
    """A mindcv-style builder ``fn(pretrained=False, num_classes=1000, in_channels=3, **kwargs)`` of ``name``."""

    def build(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs):
        return create_model(name, pretrained=bool(pretrained), num_classes=num_classes, in_channels=in_channels,
                            **kwargs)

    build.__name__ = build.__qualname__ = name
    build.__module__ = __name__
    build.__doc__ = f"mindcv_res2net's {resolve_name(name)} (see mindcv_res2net.create_model)."
    return build


def register_with_mindcv(replace: bool = False) -> List[str]:
    """Register every model of ours (and its official long name) in mindcv's registry; returns the names
    registered. A name mindcv already knows (mindcv 0.3 has res2net50/101/152 and their v1b) stays
    mindcv's own unless ``replace=True``. Calling it again registers nothing new."""
    try:
        from mindcv.models import registry
    except ImportError as exc:
        raise ImportError(f"register_with_mindcv needs mindcv (pip install mindcv==0.3.0): {exc}") from None
    registered = []
    for name in list_models(include_aliases=True):
        current = registry.model_entrypoint(name) if registry.is_model(name) else None
        if current is not None and (getattr(current, "__module__", "") == __name__ or not replace):
            continue
        if current is not None:  # replaced: mindcv's own module no longer lists it (private sets of mindcv 0.3)
            old_module = getattr(registry, "_model_to_module", {}).get(name)
            getattr(registry, "_module_to_models", {}).get(old_module, set()).discard(name)
            getattr(registry, "_model_has_pretrained", set()).discard(name)
        default_cfgs[name] = get_pretrained_cfg(name)
        registry.register_model(_entrypoint(name))
        registered.append(name)
    return registered

