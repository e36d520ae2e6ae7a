"""Model registry: builder functions by name, their aliases and their pretrained-weight configs."""
import difflib
import fnmatch
import re
import sys
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

from ..utils.errors import UserError

_builders: Dict[str, Callable] = {}
_aliases: Dict[str, str] = {}
_pretrained_cfgs: Dict[str, Dict[str, dict]] = {}  # name -> {tag: cfg}, best-scoring tag first


class Variant(NamedTuple):
    """One row of a module's ``VARIANTS`` table, keyed there by the model's name: the network class's
    constructor arguments ``arch``, the default configs of its weights ``{tag: cfg}`` ('' as the only tag:
    none published) and its official long ``alias``. The module writes out one builder per row."""

    arch: dict
    cfgs: Dict[str, dict]
    alias: Optional[str] = None


def register_model(fn: Callable) -> Callable:
    """Decorator: register a builder under its function name (``@register_model def res2net50(...)``), as
    timm's. When the builder's module has a ``VARIANTS`` row of that name, its weights' configs and its
    alias are registered with it. A name registered by another module is an error (the same module may
    define it again: a reload)."""
    name = fn.__name__
    previous = _builders.get(name)
    if previous is not None and previous.__module__ != fn.__module__:
        raise ValueError(f"{fn.__module__}: model {name!r} is already registered (by {previous.__module__})")
    _builders[name] = fn
    table = getattr(sys.modules.get(fn.__module__), "VARIANTS", None)
    row = table.get(name) if isinstance(table, dict) else None
    if isinstance(row, Variant):
        ranked = sorted(row.cfgs.items(), key=lambda item: -(item[1].get("top1") or 0.0))
        _pretrained_cfgs[name] = dict(ranked)  # best-scoring tag first
        if row.alias:
            _aliases[row.alias] = name
    return fn


def _module_of(name: str) -> str:
    """The module a model is defined in, by its last name part ("res2net", "dla"), as timm and mindcv group them."""
    return _builders[name].__module__.rsplit(".", 1)[-1]


def split_model_name(model_name: str) -> Tuple[str, Optional[str]]:
    """'res2net50.official_in1k' -> ('res2net50', 'official_in1k'); 'res2net50' -> ('res2net50', None)."""
    name, _, tag = model_name.partition(".")
    return name, (tag or None)


_PATH_CHARS = re.compile(r"[/\\:]")  # never in a registered name (timm's rule): a path or a hub id was given


def resolve_name(model_name: str) -> str:
    """Canonical model name for a name or alias (tag stripped); a clear error with suggestions if unknown,
    a ``TypeError`` if ``model_name`` is not a str."""
    if not isinstance(model_name, str):
        raise TypeError(f"model_name must be a str (a registered model such as 'res2net50'), got {model_name!r}")
    name, _ = split_model_name(model_name)
    name = _aliases.get(name, name)
    if name not in _builders:
        known = sorted(_builders) + sorted(_aliases)
        looks_like_path = bool(_PATH_CHARS.search(model_name))
        base = split_model_name(_PATH_CHARS.split(model_name)[-1])[0] if looks_like_path else name
        close = difflib.get_close_matches(base, known, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known models: {', '.join(sorted(_builders))}"
        path = " (a registered name, not a path: weight files are checkpoint_path= or --ckpt_path)" \
            if looks_like_path else ""
        raise UserError(f"unknown model {model_name!r}{path}{hint}")
    return name


def is_model(model_name: str) -> bool:
    """Whether ``model_name`` (a name, alias or ``name.tag``) is registered; False for anything but a str."""
    if not isinstance(model_name, str):
        return False
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
        raise UserError(f"model '{name}' has no pretrained tag '{tag}'; available: {available}")
    return dict(cfgs[tag])


Patterns = Union[str, Sequence[str]]


def _matches(candidate: str, patterns: Sequence[str]) -> bool:
    base = split_model_name(candidate)[0]
    return any(fnmatch.fnmatch(candidate, p) or fnmatch.fnmatch(base, p) for p in patterns)


def _named(name: str, patterns: Sequence[str]) -> bool:
    """Whether one of ``patterns`` (a ``name.tag`` pattern by its name part too) matches the model ``name``."""
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(name, p.partition(".")[0]) for p in patterns)


def _tagged_names(name: str, *, pretrained: bool) -> List[str]:
    """``name.tag`` for each weight tag of ``name`` (only published ones with ``pretrained``); the bare
    ``name`` when it has no tag (no published weights)."""
    cfgs = _pretrained_cfgs.get(_aliases.get(name, name), {})
    tagged = [f"{name}.{tag}" for tag, cfg in cfgs.items() if tag and (cfg.get("url") or not pretrained)]
    return tagged or ([] if pretrained else [name])


def _patterns(value, what: str) -> List[str]:
    """A pattern argument as a list: None or '' (timm: no filter) -> [], a str -> [it], a list or tuple of
    str -> its non-empty items; anything else is a ``TypeError`` naming ``what``."""
    items = [value] if isinstance(value, str) or value is None else value
    if not isinstance(items, (list, tuple)) or not all(p is None or isinstance(p, str) for p in items):
        raise TypeError(f"list_models: {what} must be a str or a list of str, got {value!r}")
    return [p for p in items if p]


def list_models(filter: Patterns = "", module: Patterns = "", *, pretrained: bool = False,
                exclude_filters: Patterns = "", name_matches_cfg: bool = False, include_tags: Optional[bool] = None,
                include_aliases: Optional[bool] = None, pattern: Optional[Patterns] = None) -> List[str]:
    """Sorted model names, as timm's and mindcv's ``list_models``.

    ``filter`` / ``exclude_filters``: a shell-style pattern or a list of them (``pattern`` is an older
    name of ``filter``); a ``name.tag`` entry matches by its full or its model name; None or '' is no
    filter (timm's). ``module``: only the models of that module or list of modules (see
    ``list_modules``; one that defines none of ours, e.g. timm's 'resnet', adds nothing, as in timm;
    None or '': all).
    ``pretrained=True``: only models with published weights. ``include_tags`` (default: ``pretrained``,
    as timm): one ``name.tag`` entry per weight tag (best first per model; only published ones with
    ``pretrained``), the bare name for a model without any. ``name_matches_cfg``: only names with a
    default config (all of ours have one). Aliases, the other libraries' names of our models
    (``res2net50_26w_4s``, timm's and the official name of ``res2net50`` ...): ``include_aliases=True``
    lists every one, False none, and None (default) those a ``filter`` names while it does not name
    their model (``'res2net50_26w_4s*'`` lists ``res2net50_26w_4s``, ``'res2net50*'`` lists ``res2net50``
    only): each network once, under the name asked for.
    """
    if pattern is not None:
        filter = pattern
    include = _patterns(filter, "filter") or ["*"]
    exclude = _patterns(exclude_filters, "exclude_filters")
    modules = _patterns(module, "module")
    aliases = sorted(_aliases) if include_aliases else [] if include_aliases is not None else [
        alias for alias in sorted(_aliases) if _named(alias, include) and not _named(_aliases[alias], include)]
    names = sorted([*_builders, *aliases])
    if modules:
        names = [n for n in names if _module_of(_aliases.get(n, n)) in modules]
    if name_matches_cfg:
        names = [n for n in names if _aliases.get(n, n) in _pretrained_cfgs]
    if pretrained:
        names = [n for n in names if is_model_pretrained(n)]
    if pretrained if include_tags is None else include_tags:
        names = [tagged for n in names for tagged in _tagged_names(n, pretrained=pretrained)]
    return [n for n in names if _matches(n, include) and not (exclude and _matches(n, exclude))]


def list_pretrained(filter: Patterns = "", exclude_filters: Patterns = "") -> List[str]:
    """timm's ``list_pretrained``: the ``name.tag`` of every published weight file (``list_models(filter,
    pretrained=True, exclude_filters=..., include_tags=True)``)."""
    return list_models(filter, pretrained=True, exclude_filters=exclude_filters, include_tags=True)


def list_modules() -> List[str]:
    """Sorted names of the modules that define models ("dla", "res2net")."""
    return sorted({_module_of(name) for name in _builders})


def is_model_in_modules(model_name: str, module_names: Sequence[str]) -> bool:
    """Whether a model (name or alias) is defined in one of ``module_names``."""
    return is_model(model_name) and _module_of(resolve_name(model_name)) in module_names


def is_model_pretrained(model_name: str) -> bool:
    """Whether a model (name, alias or ``name.tag``) has published weights to download."""
    if not is_model(model_name):
        return False
    name, tag = split_model_name(model_name)
    cfgs = _pretrained_cfgs.get(resolve_name(name), {})
    return any(t and cfg.get("url") and tag in (None, t) for t, cfg in cfgs.items())


def get_pretrained_cfg_value(model_name: str, cfg_key: str):
    """One value of a model's default config (``"mean"``, ``"input_size"`` ...); None for an unknown model or key."""
    if not is_model(model_name):
        return None
    return get_pretrained_cfg(model_name).get(cfg_key)
