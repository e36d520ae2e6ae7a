"""The job behind validate.py: a checkpoint, the published weights or an ONNX export, evaluated on a split."""
import dataclasses
import sys
import warnings
from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, Optional

from mindspore import nn

from ..config import ConfigError, Settings, absolute_paths, check_flags_used, resolve_stored_paths
from ..data.loader import Loader, create_loader
from ..data.settings import CheckpointEval, checkpoint_eval
from ..evaluate import device_normalize, evaluate
from ..loss import create_loss
from ..models import create_model, get_pretrained_cfg
from ..models.registry import is_model, resolve_name
from ..utils.device import set_device
from ..utils.engines import import_onnxruntime
from ..weights import CheckpointError
from .checkpoint_model import model_to_evaluate
from .onnx_record import read_record, shown
from .onnx_runtime import OnnxClassifier, classifier_for, open_export


@dataclass
class _Evaluated:
    """What validate.py evaluates: the model ``name``, the ``source`` its messages name, the network (a
    checkpoint's, loaded; the published weights are downloaded once the data is known to be there), the run's
    stored config (None: no run to follow) and the ``--onnx_path`` export, opened."""

    name: str
    source: str
    network: Optional[nn.Cell] = None
    run_config: Optional[dict] = None
    exported: Optional[OnnxClassifier] = None


def _check_request(settings: Settings) -> bool:
    """Refuse a misspelled model (the first error), --onnx_path without the ONNX Runtime engine, and a command
    without weights to evaluate; True for the ONNX Runtime engine (imported)."""
    model, run = settings.model, settings.run
    resolve_name(model.model)
    onnx = run.engine == "onnxruntime"
    if onnx:
        import_onnxruntime()
    elif run.onnx_path:
        raise ConfigError("--onnx_path needs --engine onnxruntime")
    if not model.ckpt_path and not model.pretrained and not (onnx and run.onnx_path):
        run_config = (f"; {run.config} names no checkpoint to validate (a run's config.yaml keeps only the weights it "
                      f"started from): give --ckpt_path RUN/{model.model}-best.ckpt") if run.config else ""
        raise ConfigError("validate.py needs --ckpt_path FILE or --pretrained (it never evaluates random weights)"
                          + run_config)
    return onnx


def _recorded_export(exported: OnnxClassifier, model_name: str, *, model_given: bool) -> _Evaluated:
    """An ``--onnx_path`` file validated without a checkpoint: the model its record names (a ``--model`` the user
    gave must agree), and the file with the checkpoint it holds for messages."""
    record = read_record(exported.metadata)
    if record is None or not is_model(record.model):
        return _Evaluated(model_name, exported.label, exported=exported)
    if model_given and resolve_name(model_name) != resolve_name(record.model):
        raise ConfigError(f"--model {model_name}: {exported.label} is an export of model '{record.model}'")
    holds = f" (an export of {shown(record.checkpoint)})" if record.checkpoint else ""
    return _Evaluated(resolve_name(record.model), exported.label + holds, exported=exported)


def _what_to_evaluate(settings: Settings, chosen: Dict[str, Any], *, onnx: bool) -> _Evaluated:
    """The checkpoint (read once, with its run's config), the published weights, or the ``--onnx_path`` export
    alone. ``chosen``: the values of the keys the user set."""
    model, onnx_path = settings.model, settings.run.onnx_path
    if model.ckpt_path:  # strict: a checkpoint's classifier is never replaced when validating
        network = model_to_evaluate(model.ckpt_path, model.model, model_given="model" in chosen)
        found = _Evaluated(network.default_cfg["architecture"], network.source, network, network.run_config)
        if onnx and onnx_path:
            found.exported = open_export(onnx_path, network)
        if found.run_config is not None:  # a run stored before paths were stored absolute: its data_dir as read here
            found.run_config, path_warnings = resolve_stored_paths(found.run_config, found.source, frozenset(chosen),
                                                                   keys=("data_dir",))
            for warning in path_warnings:
                warnings.warn(warning)
        return found
    if model.pretrained:
        return _Evaluated(model.model, f"the published {model.model} weights")
    return _recorded_export(open_export(onnx_path), model.model, model_given="model" in chosen)


def _network(settings: Settings, found: _Evaluated, data: Loader, *, chosen: CheckpointEval, onnx: bool):
    """The network that runs: the checkpoint's or the published weights (their classes those of the data), or
    the ONNX export (the user's, or the checkpoint's exported once)."""
    dataset, num_classes, network = chosen.data.dataset, data.num_classes, found.network
    if network is not None and network.num_classes != num_classes:
        raise CheckpointError(f"{found.source}: its classifier has {network.num_classes} classes but {dataset}/"
                              f"{chosen.data.val_split} has {num_classes}")
    if settings.model.pretrained and not settings.model.ckpt_path:  # downloaded once the data is known to be there
        if num_classes != 1000:
            raise ConfigError(f"--pretrained weights have 1000 ImageNet classes but {dataset} has {num_classes}; "
                              "validate a fine-tuned checkpoint with --ckpt_path")
        network = create_model(found.name, pretrained=True, in_channels=settings.data.in_channels)
        network.source = found.source
    if not onnx:
        return network
    exported = found.exported or classifier_for(settings.run.onnx_path, network, found.name,
                                                   image_size=chosen.data.image_resize)
    if exported.num_classes not in (None, num_classes):
        raise CheckpointError(f"{exported.label}: has {exported.num_classes} classes but {dataset} has {num_classes}")
    return exported


def validate(settings: Settings, given: FrozenSet[str]) -> dict:
    """The job behind validate.py: load a checkpoint (a file, or a training run's folder: its best
    checkpoint) or the published weights, and evaluate a split as ``checkpoint_eval`` decides: with a
    run's checkpoint, on the run's own validation data and preprocessing unless a flag says otherwise.

    ``given``: the keys the user set (``cli.parser.parse_config``), so a flag typed at its default value still
    overrides the run's."""
    onnx = _check_request(settings)
    settings = absolute_paths(settings)  # the result line names the data folder read
    values = settings.to_mapping()
    chosen_values = {key: values[key] for key in given if key in values}
    set_device(settings.run.device_target, settings.run.mode)
    found = _what_to_evaluate(settings, chosen_values, onnx=onnx)
    model_cfg = get_pretrained_cfg(found.name)
    in_channels = found.network.in_channels if found.network is not None else settings.data.in_channels
    # with no run to follow, the flags and their defaults say how to evaluate; ONNX Runtime takes float32
    # normalised on the host, MindSpore normalises uint8 batches in the step
    chosen = checkpoint_eval(found.source, found.run_config, model_cfg,
                             given=values if found.run_config is None else chosen_values, normalize_on_device=not onnx,
                             in_channels=in_channels)
    if settings.model.ckpt_path:  # flags that the checkpoint's run would not read (cli.parser left them to here)
        check_flags_used(dataclasses.replace(settings, data=chosen.data), "validate")
    data_cfg = chosen.data
    data = create_loader(data_cfg, data_cfg.val_split, train=False, model_cfg=model_cfg,
                         class_names=getattr(found.network, "class_names", None))
    network = _network(settings, found, data, chosen=chosen, onnx=onnx)
    for warning in chosen.warnings:
        warnings.warn(warning)
    print(chosen.line, file=sys.stderr, flush=True)
    result = evaluate(network, data.dataset, create_loss("CE", data.num_classes), steps=data.steps,
                      normalize=device_normalize(data_cfg, model_cfg))
    engine = f" ({settings.run.engine})" if onnx else ""
    folder = f" in {data_cfg.data_dir}" if data_cfg.data_dir else ""
    print(f"{found.name}{engine} on {data_cfg.dataset}/{data_cfg.val_split}{folder}: top-1 {result['top1']:.2f}%, "
          f"top-5 {result['top5']:.2f}%, loss {result['loss']:.4f}, {result['images']} images, "
          f"{result['seconds']:.1f} s, {result['img_per_s']:.1f} img/s")
    return result
