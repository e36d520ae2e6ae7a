"""Export a trained Res2Net to MINDIR or ONNX for deployment.

    python tools/export.py --model res2net50 --ckpt_path res2net50-best.ckpt --format MINDIR \\
        --batch_size -1 --image_size 224 --file_name res2net50   # writes res2net50.mindir

The checkpoint's head is exported as trained (its class count comes from the file; --num_classes, if
given, must agree). --batch_size -1 exports a dynamic batch dimension (ONNX: a dynamic axis "batch" on
the input "images"; MindSpore still declares the traced batch on the output "logits", which
onnxruntime reports as a warning while returning the right shape). --fuse_bn folds every BatchNorm
into its convolution first. The input is (N, C, H, W) float32, normalised as in training; the output
is logits (N, num_classes). Nothing is written unless the export succeeds.
"""
import argparse
import os
import shutil
import tempfile

from mindcv_res2net.utils.cli import run_cli

SUFFIXES = {"MINDIR": ".mindir", "ONNX": ".onnx"}


def export_model(model_name: str, ckpt_path: str, file_name: str, file_format: str = "MINDIR",
                 batch_size: int = 1, image_size: int = 224, num_classes=None, fuse_bn: bool = False) -> str:
    """Export; returns the written path (``file_name`` plus the format's suffix)."""
    import mindspore as ms
    import numpy as np

    from mindcv_res2net.models import create_model_from_checkpoint
    from mindcv_res2net.models.fuse import fuse_batchnorm
    from mindcv_res2net.models.layers import exportable_pools

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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="registered model name, e.g. res2net50")
    parser.add_argument("--ckpt_path", required=True, help="trained checkpoint (any format the converter reads)")
    parser.add_argument("--format", default="MINDIR", type=str.upper, choices=tuple(SUFFIXES))
    parser.add_argument("--batch_size", type=int, default=1, help="-1: dynamic batch")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--num_classes", type=int, default=None, help="must match the checkpoint's head if given")
    parser.add_argument("--file_name", required=True, help="output path without extension")
    parser.add_argument("--fuse_bn", action="store_true", help="fold BatchNorm into the convolutions")
    args = parser.parse_args(argv)
    from mindcv_res2net.utils.device import set_device

    set_device("CPU")
    path = export_model(args.model, args.ckpt_path, args.file_name, args.format, args.batch_size,
                        args.image_size, args.num_classes, args.fuse_bn)
    print(f"wrote {path} ({args.format}, batch {'dynamic' if args.batch_size == -1 else args.batch_size}, "
          f"{args.image_size} px{', BatchNorm folded' if args.fuse_bn else ''})")
    return 0



def cli() -> None:
    """Console script ``res2net-export``."""
    run_cli(main)


if __name__ == "__main__":
    cli()
