"""Model factory: ``create_model(name, ...)`` builds a registered model and loads its weights."""
import os
from typing import Optional, Sequence, Union

from mindspore import nn

from ..weights import CheckpointError, load_checkpoint, read_checkpoint
from ..weights.checkpoint_layout import describe_checkpoint
from ..utils.download import download_weights
from ..utils.errors import UserError
from .layers import set_layer_config
from .registry import get_pretrained_cfg, model_entrypoint, split_model_name


FEATURE_CLASSES = (None, "list", "getter")  # timm's feature_cls values that mean our features_only model


def _check_feature_cls(feature_cls, *, features_only: bool) -> None:
    """timm's ``feature_cls``: its default (None, ``'list'``) and ``'getter'`` both give our list of maps."""
    if feature_cls is not None and not features_only:
        raise UserError(f"feature_cls={feature_cls!r} needs features_only=True")
    if (feature_cls.lower() if isinstance(feature_cls, str) else feature_cls) not in FEATURE_CLASSES:
        raise UserError(f"feature_cls must be 'getter' or 'list' (timm's default), got {feature_cls!r}")


def _in_channels(kwargs: dict, default: int) -> int:
    """``in_channels``, or timm's name for it, ``in_chans`` (popped from ``kwargs``); ``default`` if neither."""
    in_chans, in_channels = kwargs.pop("in_chans", None), kwargs.get("in_channels")
    if in_chans is not None and in_channels is not None and in_chans != in_channels:
        raise UserError(f"in_chans={in_chans} and in_channels={in_channels} disagree: in_chans is timm's name "
                        "for in_channels, give one of them")
    return next((c for c in (in_channels, in_chans) if c is not None), default)


def _check_weights_args(checkpoint_path, *, pretrained: bool, ema) -> Optional[str]:
    """``checkpoint_path`` as a str (None for None or ""), after checking it and ``ema``: a path is a str
    or os.PathLike, ``ema`` True, False or None, and ``ema=True`` needs weights to pick the EMA ones from
    (a flag that would be ignored is an error; False, mindcv's default, asks for nothing)."""
    if checkpoint_path is not None and not isinstance(checkpoint_path, (str, os.PathLike)):
        raise TypeError(f"checkpoint_path must be a path (str or os.PathLike), got {checkpoint_path!r}")
    if ema is not None and not isinstance(ema, bool):
        raise TypeError(f"ema must be True, False or None, got {ema!r}")
    if ema and not (checkpoint_path or pretrained):
        raise UserError("ema=True loads a checkpoint's EMA weights, but no weights are loaded: give checkpoint_path "
                        "(or drop ema)")
    return os.fspath(checkpoint_path) if checkpoint_path else None


def build_model_with_cfg(model_cls, name: str, pretrained: bool, *, arch: dict, pretrained_tag: Optional[str] = None,
                         checkpoint_path: Optional[str] = None, ema: Optional[bool] = None, feature_cls=None,
                         **kwargs) -> nn.Cell:
    """Build ``model_cls(**arch, **kwargs)`` (``arch``: the constructor arguments of ``name``'s ``VARIANTS``
    row), attach its default config and load weights if asked.

    ``checkpoint_path`` (any format the converter reads) or ``pretrained``, which downloads the published
    weights of ``pretrained_tag`` (default: the best-scoring ones) into the cache; ``ema`` picks the
    file's weights (see ``network_weights``). timm's names: ``in_chans`` for ``in_channels`` (default:
    the config's input channels), ``feature_cls`` (None, ``'list'`` or ``'getter'``, with ``features_only``).
    """
    checkpoint_path = _check_weights_args(checkpoint_path, pretrained=pretrained, ema=ema)
    if pretrained and checkpoint_path:
        raise UserError(f"pretrained and checkpoint_path ({checkpoint_path}) are mutually exclusive: "
                        "load either the published weights or a file")
    _check_feature_cls(feature_cls, features_only=kwargs.get("features_only", False))
    cfg = get_pretrained_cfg(name, pretrained_tag)
    if pretrained and not cfg.get("url"):  # before the network is built
        raise UserError(f"model '{name}' has no published weights; train it or pass a weight file "
                        "(checkpoint_path= in Python, --ckpt_path on the command line)")
    kwargs["in_channels"] = _in_channels(kwargs, cfg["input_size"][0])
    model = model_cls(**arch, **kwargs)
    model.default_cfg = model.pretrained_cfg = dict(cfg, architecture=name, tag=pretrained_tag,
                                                    num_classes=model.num_classes)
    new_classifier = model.num_classes != cfg["num_classes"]
    new_in_channels = kwargs["in_channels"] != cfg["input_size"][0]
    if checkpoint_path:
        load_checkpoint(model, checkpoint_path, new_classifier=new_classifier, new_in_channels=new_in_channels,
                        ema=ema)
    elif pretrained:
        path = download_weights(cfg["url"], cfg["file_name"], sha256_prefix=cfg["sha256"], validate=read_checkpoint)
        try:
            state, _ = read_checkpoint(path)
        except CheckpointError as exc:  # a cached file damaged (or placed) after its download
            raise CheckpointError(f"{exc} (the cached download of {cfg['url']}: delete it to download it again)") \
                from None
        load_checkpoint(model, path, new_classifier=new_classifier, new_in_channels=new_in_channels, state=state,
                        ema=ema)
    return model


def create_model(model_name: str, pretrained: bool = False, *, num_classes: int = 1000,
                 in_channels: Optional[int] = None, checkpoint_path: Union[None, str, os.PathLike] = "",
                 features_only: bool = False,
                 out_indices: Union[None, int, Sequence[int]] = None, drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, global_pool: str = "avg", ema: Optional[bool] = None,
                 auto_mapping: bool = False, scriptable: Optional[bool] = None, exportable: Optional[bool] = None,
                 no_jit: Optional[bool] = None, **kwargs) -> nn.Cell:
    """Build a registered model by name, alias (``res2net50_26w_4s``) or ``name.tag`` (``res2net50.official_in1k``).

    The arguments of timm's and mindcv's ``create_model``, with their meaning:

    - ``pretrained`` downloads the published weights (the tag selects the source; default the
      best-scoring); ``checkpoint_path`` loads a local file in any supported format instead ("" or
      None: none; both at once are an error, as in mindcv). A classifier of another size is replaced
      only when ``num_classes`` differs from the published 1000 (fine-tuning).
    - ``ema`` (mindcv): for a training checkpoint, True loads its EMA weights (an error if it has none,
      or if no weights are loaded), False the trained weights; None (ours) the EMA weights when it has them.
    - ``auto_mapping`` (mindcv): accepted, and always on: the names of every supported source (official,
      timm, mindcv, PaddleClas, mmpretrain) are mapped exactly; names that do not map are an error
      listing them, never a guess by similarity.
    - ``num_classes``: an int >= 0 (0: no classifier); ``in_channels`` an int >= 1; ``drop_rate`` and
      ``drop_path_rate`` numbers in [0, 1).
    - ``features_only`` / ``out_indices``: a list of feature maps (as timm) (``out_indices`` None: all five, strides
      2..32; ints, negative ones counting from the end, or an int n: the last n; only with ``features_only``).
    - ``global_pool``: "avg", "max", "avgmax", or "" with ``num_classes=0`` for the unpooled map.
    - timm's names: ``in_chans`` for ``in_channels`` (default 3, the published input), ``feature_cls``
      (``'getter'`` or timm's default) with ``features_only``. As in timm, an argument of the network
      given as None (``num_classes=None``, ``drop_path_rate=None`` ...) takes its default.
    - ``scriptable``, ``exportable``, ``no_jit`` (timm): the layer config while the model is built
      (``set_layer_config``; None: as set). ``exportable=True`` builds the padded pools ONNX-exportable.

    A name that is not a str is a ``TypeError``, an unknown one a ``ValueError`` with suggestions; so
    is every argument of the wrong type or out of range (one line naming it).
    """
    if not isinstance(pretrained, bool):
        raise TypeError(f"create_model: pretrained must be True or False, got {pretrained!r} "
                        "(pass num_classes and the rest by keyword)")
    if not isinstance(auto_mapping, bool):
        raise TypeError(f"create_model: auto_mapping must be True or False, got {auto_mapping!r}")
    builder = model_entrypoint(model_name)
    network = dict(num_classes=num_classes, features_only=features_only, out_indices=out_indices,
                   drop_rate=drop_rate, drop_path_rate=drop_path_rate, global_pool=global_pool, **kwargs)
    network = {key: value for key, value in network.items() if value is not None}  # timm: None is the default
    with set_layer_config(scriptable=scriptable, exportable=exportable, no_jit=no_jit):
        return builder(pretrained=pretrained, pretrained_tag=split_model_name(model_name)[1], in_channels=in_channels,
                       checkpoint_path=checkpoint_path, ema=ema, **network)


def create_model_from_checkpoint(model_name: str, checkpoint_path: str, num_classes: Optional[int] = None, *,
                                 ema: Optional[bool] = None, contents: Optional[tuple] = None, **kwargs) -> nn.Cell:
    """A model with exactly the network a checkpoint holds, trained head included, for inference or export.

    The class count and input channels come from the file (``describe_checkpoint``); a ``num_classes``
    that contradicts the file is an error, never a silently re-initialised head. ``ema`` as for
    ``create_model``. The file's class names and training config, when it has them, are kept in
    ``model.class_names`` and ``model.run_config`` (the config as stored: a JSON object, which
    ``train.run_folder.run_config`` converts). ``contents``: the file's ``(state, metadata)`` when the caller
    has read it already (``read_checkpoint(checkpoint_path)``), so that it is read once.
    """
    _check_weights_args(checkpoint_path, pretrained=False, ema=ema)
    state, metadata = contents or read_checkpoint(checkpoint_path)  # read once: the head's shape and the weights
    info = describe_checkpoint(state, metadata, checkpoint_path)
    if num_classes is not None and num_classes != info["num_classes"]:
        raise CheckpointError(f"{checkpoint_path}: holds a {info['num_classes']}-class head, "
                              f"but {num_classes} classes were asked for")
    model = create_model(model_name, num_classes=info["num_classes"], in_channels=info["in_channels"], **kwargs)
    load_checkpoint(model, checkpoint_path, state=state, ema=ema)
    model.class_names, model.run_config = info["class_names"], info["config"]
    return model
