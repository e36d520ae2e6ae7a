"""Export a trained network to MINDIR or ONNX (``export_model``), the code behind tools/export.py."""
import os
import shutil
import tempfile

SUFFIXES = {"MINDIR": ".mindir", "ONNX": ".onnx"}


def export_model(model_name: str, ckpt_path: str, file_name: str, file_format: str = "MINDIR",
                 batch_size: int = 1, image_size: int = 224, num_classes=None, fuse_bn: bool = False) -> str:
    """Export a checkpoint; returns the written path (``file_name`` plus the format's suffix)."""
    from ..models import create_model_from_checkpoint

    file_format = file_format.upper()
    if file_format not in SUFFIXES:
        raise ValueError(f"--format must be MINDIR or ONNX, got '{file_format}'")
    if batch_size == 0 or batch_size < -1:
        raise ValueError(f"--batch_size must be a positive number or -1 (dynamic), got {batch_size}")
    if image_size < 32:
        raise ValueError(f"--image_size must be at least 32, got {image_size}")
    if not ckpt_path:
        raise ValueError("--ckpt_path is required: export never writes random weights")
    model = create_model_from_checkpoint(model_name, ckpt_path, num_classes)
    return export_network(model, file_name, file_format, batch_size, image_size, fuse_bn)


def export_network(model, file_name: str, file_format: str = "ONNX", batch_size: int = 1, image_size: int = 224,
                   fuse_bn: bool = False) -> str:
    """Export a built network (changed in place: BatchNorm folded, pools made exportable); returns the path.
    The file appears only when the export succeeded."""
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
    target = file_name + SUFFIXES[file_format]
    out_dir = os.path.dirname(os.path.abspath(target))
    os.makedirs(out_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".partial-export-", dir=out_dir)
    try:
        if file_format == "ONNX":
            dynamic = {"images": {0: "batch"}, "logits": {0: "batch"}} if batch_size == -1 else None
            ms.onnx.export(model, example, file_name=os.path.join(staging, "model"), input_names=["images"],
                           output_names=["logits"], dynamic_axes=dynamic)
        else:
            ms.export(model, example, file_name=os.path.join(staging, "model"), file_format=file_format)
        os.replace(os.path.join(staging, "model" + SUFFIXES[file_format]), target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
