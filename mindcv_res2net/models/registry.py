"""Model registry: builder functions by name, their aliases and their pretrained-weight configs."""
import difflib
import fnmatch
from typing import Callable, Dict, List, Optional, Tuple

_builders: Dict[str, Callable] = {}
_aliases: Dict[str, str] = {}
_pretrained_cfgs: Dict[str, Dict[str, dict]] = {}  # name -> {tag: cfg}, best-scoring tag first


def register_model(fn: Callable) -> Callable:
    """Decorator: register a builder under its function name (``@register_model def res2net50(...)``)."""
    _builders[fn.__name__] = fn
    return fn


def register_alias(alias: str, name: str) -> None:
    """Make ``alias`` (e.g. the official long name ``res2net50_26w_4s``) build model ``name``."""
    _aliases[alias] = name


def register_pretrained_cfgs(name: str, cfgs: Dict[str, dict]) -> None:
    """Attach the default configs of model ``name`` keyed by weight tag; '' means no published weights."""
    ranked = sorted(cfgs.items(), key=lambda item: -(item[1].get("top1") or 0.0))
    _pretrained_cfgs[name] = dict(ranked)


def register_variants(variants: Dict[str, tuple]) -> None:
    """Register each ``name: (architecture kwargs, {tag: default cfg}, alias or None)`` entry's weights and alias."""
    for name, (_, cfgs, alias) in variants.items():
        register_pretrained_cfgs(name, cfgs)
        if alias:
            register_alias(alias, name)


def split_model_name(model_name: str) -> Tuple[str, Optional[str]]:
    """'res2net50.official_in1k' -> ('res2net50', 'official_in1k'); 'res2net50' -> ('res2net50', None)."""
    name, _, tag = model_name.partition(".")
    return name, (tag or None)


def resolve_name(model_name: str) -> str:
    """Canonical model name for a name or alias (tag stripped); a clear error with suggestions if unknown."""
    name, _ = split_model_name(model_name)
    name = _aliases.get(name, name)
    if name not in _builders:
        known = sorted(_builders) + sorted(_aliases)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known models: {', '.join(sorted(_builders))}"
        raise ValueError(f"unknown model '{model_name}'{hint}")
    return name


def is_model(model_name: str) -> bool:
    name, _ = split_model_name(model_name)
    return _aliases.get(name, name) in _builders


def model_entrypoint(model_name: str) -> Callable:
    return _builders[resolve_name(model_name)]


def get_pretrained_cfg(model_name: str, tag: Optional[str] = None) -> dict:
    """Default config of a model for weight ``tag`` (default: the best-scoring published weights)."""
    name, name_tag = split_model_name(model_name)
    name = resolve_name(name)
    tag = tag or name_tag
    cfgs = _pretrained_cfgs.get(name, {"": {}})
    if tag is None:
        return dict(next(iter(cfgs.values())))
    if tag not in cfgs:
        available = ", ".join(f"{name}.{t}" for t in cfgs if t) or "none"
        raise ValueError(f"model '{name}' has no pretrained tag '{tag}'; available: {available}")
    return dict(cfgs[tag])


def list_models(pattern: str = "*", pretrained: bool = False, include_aliases: bool = False) -> List[str]:
    """Sorted model names matching a shell-style ``pattern``.

    ``pretrained=True`` lists one ``name.tag`` entry per published weight file (best first per model).
    ``include_aliases=True`` adds the official long names (``res2net50_26w_4s`` ...).
    """
    names = sorted(_builders) + (sorted(_aliases) if include_aliases else [])
    names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    if not pretrained:
        return names
    tagged = []
    for n in names:
        for tag, cfg in _pretrained_cfgs.get(_aliases.get(n, n), {}).items():
            if tag and cfg.get("url"):
                tagged.append(f"{n}.{tag}")
    return tagged
