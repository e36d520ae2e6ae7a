"""Export a trained network to MINDIR or ONNX (``export_model``), the code behind tools/export.py."""
import os
import sys
import tempfile
import warnings
from typing import NamedTuple, Optional

from ..data.settings import checkpoint_eval
from ..utils.argtypes import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE
from ..utils.fileio import atomic_path
from ..weights import CheckpointError, non_finite_tensors
from ..weights.formats import brief
from .checkpoint_model import model_to_evaluate

SUFFIXES = {"MINDIR": ".mindir", "ONNX": ".onnx"}
CALIBRATION_IMAGES = 300  # INT8 calibration images unless asked otherwise


class Exported(NamedTuple):
    """What ``export_model`` wrote: the file, and the images an INT8 calibration read (0: none)."""

    path: str
    calibration_images: int


def export_model(model_name: str, ckpt_path: str, file_name: str, file_format: str = "MINDIR",
                 batch_size: int = 1, image_size: Optional[int] = None, num_classes=None, fuse_bn: bool = False,
                 quantize: str = "", calib_data: str = "", calib_images: int = CALIBRATION_IMAGES) -> Exported:
    """Export a checkpoint; returns the written path (``file_name`` plus the format's suffix) and, for
    ``quantize``, the number of images really calibrated on (0 otherwise).

    ``ckpt_path``: a checkpoint file or a training run's folder (its best checkpoint). ``image_size``
    default: the training run's (stored in the checkpoint), else the model's, as ``checkpoint_eval``
    decides and says in one line (stderr); a different ``image_size`` is honoured with a warning. ``quantize``
    "int8" (ONNX only) writes ONNX Runtime's static INT8 model, calibrated on ``calib_images`` images
    of ``calib_data`` (a folder) or of the run's own training split; BatchNorm is always folded first.
    """
    file_format = file_format.upper()
    if file_format not in SUFFIXES:
        raise ValueError(f"--format must be MINDIR or ONNX, got '{file_format}'")
    if batch_size == 0 or batch_size < -1:
        raise ValueError(f"--batch_size must be a positive number or -1 (dynamic), got {batch_size}")
    if quantize not in ("", "none", "int8"):
        raise ValueError(f"--quantize takes int8, got '{quantize}'")
    quantize = "" if quantize == "none" else quantize
    if quantize and file_format != "ONNX":
        raise ValueError("--quantize int8 needs --format ONNX (ONNX Runtime's quantization)")
    if image_size is not None and not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
        raise ValueError(f"--image_size must be {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} pixels, got {image_size}")
    if not ckpt_path:
        raise ValueError("--ckpt_path is required: export never writes random weights")
    model = model_to_evaluate(ckpt_path, model_name, num_classes=num_classes)
    source, run_config = model.source, model.run_config
    given = {"image_resize": image_size} if image_size else None
    chosen = checkpoint_eval(source, run_config, model.default_cfg, given, {"image_resize": "--image_size"},
                             in_channels=model.in_channels)
    for warning in chosen.warnings:
        warnings.warn(warning)
    print(chosen.line, file=sys.stderr, flush=True)
    image_size = chosen.data.image_resize
    if not quantize:
        return Exported(export_network(model, file_name, file_format, batch_size, image_size, fuse_bn), 0)
    bad = non_finite_tensors({p.name: p.asnumpy() for p in model.get_parameters()})
    if bad:
        raise CheckpointError(f"{source}: {len(bad)} tensors hold NaN or Inf values ({brief(bad)}); INT8 "
                              "quantization needs finite weights")
    from .onnx_runtime import import_onnxruntime
    from .quantize import calibration_batches, quantize_int8

    import_onnxruntime()
    batches = calibration_batches(model, chosen, bool(run_config), calib_data, calib_images,
                                  batch_size=batch_size if batch_size > 0 else 16)
    if batch_size > 0:
        batches = [b for b in batches if len(b) == batch_size] or batches
    target = file_name + SUFFIXES["ONNX"]
    out_dir = os.path.dirname(os.path.abspath(target))
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".partial-export-", dir=out_dir) as work:
        fp32 = export_network(model, os.path.join(work, "fp32"), "ONNX", batch_size, image_size, fuse_bn=True)
        return Exported(target, quantize_int8(fp32, target, batches))


def export_network(model, file_name: str, file_format: str = "ONNX", batch_size: int = 1, image_size: int = 224,
                   fuse_bn: bool = False) -> str:
    """Export a built network (changed in place: BatchNorm folded, pools made exportable); returns the path.
    The file appears only when the export succeeded, with the user's umask (MindSpore writes 0400)."""
    import mindspore as ms
    import numpy as np

    from ..models.fuse import fuse_batchnorm
    from ..models.layers import exportable_pools

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
        else:
            ms.export(model, example, file_name=tmp[:-len(suffix)], file_format=file_format)
    return file_name + suffix
