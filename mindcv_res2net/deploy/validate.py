"""The job behind validate.py: a checkpoint, the published weights or an ONNX export, evaluated on a split."""
import sys
import time
import warnings
from typing import FrozenSet, Tuple

from mindspore import nn

from ..config import absolute_paths, resolve_stored_paths
from ..data.loader import create_loader, iterate_batches
from ..data.settings import checkpoint_eval
from ..evaluate import device_normalize, evaluate
from ..loss import create_loss
from ..models import create_model, get_pretrained_cfg
from ..models.registry import is_model, resolve_name
from ..utils.device import set_device
from ..utils.engines import import_onnxruntime
from .checkpoint_model import model_to_evaluate
from .onnx_record import read_record, shown
from .onnx_runtime import OnnxClassifier, classifier_for, open_export


def _recorded_export(exported: OnnxClassifier, model_name: str, model_given: bool) -> Tuple[str, str]:
    """(model name, source for messages) of an ``--onnx_path`` file validated without a checkpoint: the model
    its record names (a ``--model`` the user gave must agree), and the file with the checkpoint it holds."""
    record = read_record(exported.metadata)
    if record is None or not is_model(record.model):
        return model_name, exported.label
    if model_given and resolve_name(model_name) != resolve_name(record.model):
        raise ValueError(f"--model {model_name}: {exported.label} is an export of model '{record.model}'")
    holds = f" (an export of {shown(record.checkpoint)})" if record.checkpoint else ""
    return resolve_name(record.model), exported.label + holds


def validate(args, given: FrozenSet[str]) -> dict:
    """The job behind validate.py: load a checkpoint (a file, or a training run's folder: its best
    checkpoint) or the published weights, and evaluate a split as ``checkpoint_eval`` decides: with a
    run's checkpoint, on the run's own validation data and preprocessing unless a flag says otherwise.

    ``given``: the keys the user set (``config.parse_config``), so a flag typed at its default value still
    overrides the run's."""
    resolve_name(args.model)  # a misspelled model name is the first error
    onnx = args.engine == "onnxruntime"
    if onnx:
        import_onnxruntime()
    elif args.onnx_path:
        raise ValueError("--onnx_path needs --engine onnxruntime")
    if not args.ckpt_path and not args.pretrained and not (onnx and args.onnx_path):
        run_config = (f"; {args.config} names no checkpoint to validate (a run's config.yaml keeps only the weights it "
                      f"started from): give --ckpt_path RUN/{args.model}-best.ckpt") if args.config else ""
        raise ValueError("validate.py needs --ckpt_path FILE or --pretrained (it never evaluates random weights)"
                         + run_config)
    args = absolute_paths(args)  # the result line names the data folder read
    given = {k: getattr(args, k) for k in given if hasattr(args, k)}  # flags / YAML keys set
    model_name, model, run_config, source = args.model, None, None, f"the published {args.model} weights"
    exported = None  # the --onnx_path file, opened (and checked against the checkpoint) before any data is read
    set_device(args.device_target, args.mode)
    if args.ckpt_path:  # strict: a checkpoint's classifier is never replaced when validating
        model = model_to_evaluate(args.ckpt_path, model_name, model_given="model" in given)
        model_name, run_config, source = model.default_cfg["architecture"], model.run_config, model.source
        if onnx and args.onnx_path:
            exported = open_export(args.onnx_path, model)
        if run_config is not None:  # a run stored before paths were stored absolute: its data_dir as read here
            run_config, path_warnings = resolve_stored_paths(run_config, source, frozenset(given), keys=("data_dir",))
            for warning in path_warnings:
                warnings.warn(warning)
    elif not args.pretrained:
        exported = open_export(args.onnx_path)
        model_name, source = _recorded_export(exported, args.model, "model" in given)
    model_cfg = get_pretrained_cfg(model_name)
    if run_config is None:  # no run to follow: the flags and their defaults say how to evaluate
        given = vars(args)
    # ONNX Runtime takes float32 normalised on the host; MindSpore normalises uint8 batches in the step
    chosen = checkpoint_eval(source, run_config, model_cfg, given=given, normalize_on_device=not onnx,
                             in_channels=model.in_channels if model is not None else args.in_channels)
    data_cfg = chosen.data
    data = create_loader(data_cfg, data_cfg.val_split, train=False, model_cfg=model_cfg,
                         class_names=getattr(model, "class_names", None) if args.ckpt_path else None)
    num_classes = data.num_classes
    if args.ckpt_path and model.num_classes != num_classes:
        raise ValueError(f"{source}: its classifier has {model.num_classes} classes but {data_cfg.dataset}/"
                         f"{data_cfg.val_split} has {num_classes}")
    if args.pretrained and not args.ckpt_path:  # downloaded once the data is known to be there
        if num_classes != 1000:
            raise ValueError(f"--pretrained weights have 1000 ImageNet classes but {data_cfg.dataset} has "
                             f"{num_classes}; validate a fine-tuned checkpoint with --ckpt_path")
        model = create_model(model_name, pretrained=True, in_channels=args.in_channels)
        model.source = source
    if onnx:
        model = exported if exported is not None else classifier_for(args.onnx_path, model, model_name,
                                                                     data_cfg.image_resize)
        if model.num_classes not in (None, num_classes):
            raise ValueError(f"{model.label}: has {model.num_classes} classes but {data_cfg.dataset} has {num_classes}")
    for warning in chosen.warnings:
        warnings.warn(warning)
    print(chosen.line, file=sys.stderr, flush=True)
    result = evaluate(model, data.dataset, create_loss("CE", num_classes), data.steps,
                      normalize=device_normalize(data_cfg, model_cfg))
    engine = f" ({args.engine})" if onnx else ""
    folder = f" in {data_cfg.data_dir}" if data_cfg.data_dir else ""
    print(f"{model_name}{engine} on {data_cfg.dataset}/{data_cfg.val_split}{folder}: top-1 {result['top1']:.2f}%, "
          f"top-5 {result['top5']:.2f}%, loss {result['loss']:.4f}, {result['images']} images, "
          f"{result['seconds']:.1f} s, {result['img_per_s']:.1f} img/s")
    return result
