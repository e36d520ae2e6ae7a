"""Export a trained network to MINDIR or ONNX (``export_model``, the code behind tools/export.py), and
the ONNX cache of exported weights (``onnx_for_network``, used by ``--engine onnxruntime``)."""
import hashlib
import os
import sys
import tempfile
import warnings
from typing import Dict, NamedTuple, Optional

import numpy as np

from ..data.settings import checkpoint_eval
from ..models.fuse import fuse_batchnorm
from ..models.layers import exportable_pools
from ..utils.argtypes import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, ConfigError
from ..utils.engines import import_onnxruntime
from ..utils.fileio import atomic_path, check_output, file_sha256, recorded_sha256, write_sha256_record
from ..weights import CheckpointError, non_finite_tensors
from ..weights.formats import brief
from .checkpoint_model import model_to_evaluate
from .onnx_record import append_record, record_for, weights_digest
from .quantize import calibration_batches, quantize_int8

SUFFIXES = {"MINDIR": ".mindir", "ONNX": ".onnx"}
CALIBRATION_IMAGES = 300  # INT8 calibration images unless asked otherwise


class Exported(NamedTuple):
    """What ``export_model`` wrote: the file, and the images an INT8 calibration read (0: none)."""

    path: str
    calibration_images: int


def export_model(model_name: str, ckpt_path: str, file_name: str, *, file_format: str = "MINDIR",
                 batch_size: int = 1, image_size: Optional[int] = None, num_classes=None, fuse_bn: bool = False,
                 quantize: str = "", calib_data: str = "", calib_images: int = CALIBRATION_IMAGES) -> Exported:
    """Export a checkpoint; returns the written path (``file_name`` plus the format's suffix) and, for
    ``quantize``, the number of images really calibrated on (0 otherwise).

    ``ckpt_path``: a checkpoint file or a training run's folder (its best checkpoint); ``model_name``: '' for the
    model a train.py checkpoint records (``model_to_evaluate``). ``image_size``
    default: the training run's (stored in the checkpoint), else the model's, as ``checkpoint_eval``
    decides and says in one line (stderr); a different ``image_size`` is honoured with a warning. ``quantize``
    "int8" (ONNX only) writes ONNX Runtime's static INT8 model, calibrated on ``calib_images`` images
    of ``calib_data`` (a folder) or of the run's own training split; BatchNorm is always folded first.
    The output is checked before the checkpoint is read (``check_output``).
    """
    file_format = file_format.upper()
    if file_format not in SUFFIXES:
        raise ConfigError(f"--format must be MINDIR or ONNX, got '{file_format}'")
    if batch_size == 0 or batch_size < -1:
        raise ConfigError(f"--batch_size must be a positive number or -1 (dynamic), got {batch_size}")
    if quantize not in ("", "none", "int8"):
        raise ConfigError(f"--quantize takes int8, got '{quantize}'")
    quantize = "" if quantize == "none" else quantize
    if quantize and file_format != "ONNX":
        raise ConfigError("--quantize int8 needs --format ONNX (ONNX Runtime's quantization)")
    if image_size is not None and not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
        raise ConfigError(f"--image_size must be {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} pixels, got {image_size}")
    if not ckpt_path:
        raise ConfigError("--ckpt_path is required: export never writes random weights")
    check_output(file_name + SUFFIXES[file_format], "--file_name", inputs=(ckpt_path,))
    model = model_to_evaluate(ckpt_path, model_name, num_classes=num_classes)
    source, run_config = model.source, model.run_config
    given = {"image_resize": image_size} if image_size else None
    chosen = checkpoint_eval(source, run_config, model.default_cfg, given=given, flags={"image_resize": "--image_size"},
                             in_channels=model.in_channels)
    for warning in chosen.warnings:
        warnings.warn(warning)
    print(chosen.line, file=sys.stderr, flush=True)
    image_size = chosen.data.image_resize
    record = record_for(model, model_name) if file_format == "ONNX" else None  # before BatchNorm is folded
    if not quantize:
        return Exported(export_network(model, file_name, file_format, batch_size=batch_size, image_size=image_size,
                                       fuse_bn=fuse_bn, record=record), 0)
    bad = non_finite_tensors({p.name: p.asnumpy() for p in model.get_parameters()})
    if bad:
        raise CheckpointError(f"{source}: {len(bad)} tensors hold NaN or Inf values ({brief(bad)}); INT8 "
                              "quantization needs finite weights")
    import_onnxruntime()
    batches = calibration_batches(model, chosen, from_run=bool(run_config), calib_data=calib_data, count=calib_images,
                                  batch_size=batch_size if batch_size > 0 else 16)
    if batch_size > 0:
        batches = [b for b in batches if len(b) == batch_size] or batches
    target = file_name + SUFFIXES["ONNX"]
    out_dir = os.path.dirname(os.path.abspath(target))
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".partial-export-", dir=out_dir) as work:
        fp32 = export_network(model, os.path.join(work, "fp32"), "ONNX", batch_size=batch_size, image_size=image_size,
                              fuse_bn=True, record=record)  # ONNX Runtime's quantizer keeps it in the INT8 file
        return Exported(target, quantize_int8(fp32, target, batches))


def export_network(model, file_name: str, file_format: str = "ONNX", *, batch_size: int = 1, image_size: int = 224,
                   fuse_bn: bool = False, record: Optional[Dict[str, str]] = None) -> str:
    """Export a built network (changed in place: BatchNorm folded, pools made exportable); returns the path.
    The file appears only when the export succeeded, with the user's umask (MindSpore writes 0400).
    ``record``: an ONNX file's metadata saying which weights it holds (``onnx_record.record_for``)."""
    import mindspore as ms

    file_format = file_format.upper()
    model.set_train(False)
    if fuse_bn:
        fuse_batchnorm(model)
    if file_format == "ONNX":  # ONNX has no fused padded pooling: Pad + pool, the same numbers
        exportable_pools(model)
    channels = model.in_channels
    if batch_size == -1 and file_format == "MINDIR":
        example = ms.Tensor(shape=[None, channels, image_size, image_size], dtype=ms.float32)
    else:
        example = ms.Tensor(np.zeros((max(batch_size, 1), channels, image_size, image_size), np.float32))
    suffix = SUFFIXES[file_format]
    with atomic_path(file_name + suffix, suffix=suffix) as tmp:  # MindSpore appends the suffix to the stem
        if file_format == "ONNX":
            dynamic = {"images": {0: "batch"}, "logits": {0: "batch"}} if batch_size == -1 else None
            ms.onnx.export(model, example, file_name=tmp[:-len(suffix)], input_names=["images"],
                           output_names=["logits"], dynamic_axes=dynamic)
            if record:
                append_record(tmp, record)
        else:
            ms.export(model, example, file_name=tmp[:-len(suffix)], file_format=file_format)
    return file_name + suffix


def default_cache_dir() -> str:
    """``$XDG_CACHE_HOME/mindcv_res2net/onnx`` (default ``~/.cache/...``): where ``onnx_for_network`` keeps exports."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "mindcv_res2net", "onnx")


def cached_onnx_path(model, model_name: str, image_size: int, *, cache_dir: Optional[str] = None) -> str:
    """Where ``onnx_for_network`` keeps the export of ``model``: named by the model, the image size and a
    digest of the weights, in ``cache_dir`` (default ``default_cache_dir()``)."""
    key = hashlib.sha256(f"{model_name}|{image_size}|{weights_digest(model)}".encode()).hexdigest()[:20]
    return os.path.join(cache_dir or default_cache_dir(), f"{model_name}-{image_size}px-bnfold-{key}.onnx")


def onnx_for_network(model, model_name: str, image_size: int, *, cache_dir: Optional[str] = None) -> str:
    """The ONNX export (BatchNorm folded, dynamic batch) of ``model``'s weights: reused from the cache when
    the weights, the model name and the image size match and the file still has the sha256 recorded when
    it was written, else exported now (the file appears whole or not at all; a cached file that does not
    match is replaced, with a warning), with the record of its weights (``onnx_record``) that
    ``--onnx_path`` checks. ``model`` is changed in place by the export (folded BatchNorm)."""
    path = cached_onnx_path(model, model_name, image_size, cache_dir=cache_dir)
    stem = path[:-len(".onnx")]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.isfile(path):
        recorded = recorded_sha256(path)
        if recorded is not None and recorded == file_sha256(path):
            return path
        why = ("has no readable sha256 record" if recorded is None
               else "does not match the sha256 recorded when it was written (edited or damaged?)")
        warnings.warn(f"{path}: cached ONNX export {why}; exporting it again")
    export_network(model, stem, "ONNX", batch_size=-1, image_size=image_size, fuse_bn=True,
                   record=record_for(model, model_name))
    write_sha256_record(path, file_sha256(path))
    return path
