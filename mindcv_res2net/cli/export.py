"""Export a trained Res2Net to MINDIR or ONNX for deployment.

    python tools/export.py --model res2net50 --ckpt_path res2net50-best.ckpt --format MINDIR \\
        --batch_size -1 --image_size 224 --file_name res2net50   # writes res2net50.mindir

The checkpoint's head is exported as trained (its class count comes from the file; --num_classes, if
given, must agree). --batch_size -1 exports a dynamic batch dimension (ONNX: a dynamic axis "batch" on
the input "images"; MindSpore still declares the traced batch on the output "logits", which
onnxruntime reports as a warning while returning the right shape). --fuse_bn folds every BatchNorm
into its convolution first. The input is (N, C, H, W) float32, normalised as in training; the output
is logits (N, num_classes). Nothing is written unless the export succeeds.

--quantize int8 (ONNX) writes ONNX Runtime's static INT8 model (QDQ, per-channel int8 weights, uint8
activations; BatchNorm folded), calibrated on --calib_images images of the run's own training split
(read from the checkpoint's stored config) or of --calib_data DIR:

    python tools/export.py --ckpt_path runs/res2net50-digits-20261206-230257 --format ONNX \\
        --batch_size -1 --quantize int8 --file_name res2net50_digits_int8   # the run records its model
"""
import sys

from mindcv_res2net.deploy.export import CALIBRATION_IMAGES, SUFFIXES, export_model
from mindcv_res2net.utils.cli import run_cli
from mindcv_res2net.utils.fileio import is_stdout


def main(argv=None) -> int:
    from mindcv_res2net.utils.argtypes import ConfigError, HelpFormatter, OneLineParser, image_size

    parser = OneLineParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--model", default="", help="registered model name, e.g. res2net50 (default: the model a "
                        "train.py checkpoint or run folder records)")
    parser.add_argument("--ckpt_path", required=True,
                        help="trained checkpoint (any format the converter reads), or a run's folder (its best)")
    parser.add_argument("--format", default="MINDIR", type=str.upper, choices=tuple(SUFFIXES), help="file format")
    parser.add_argument("--batch_size", type=int, default=1, help="-1: dynamic batch")
    parser.add_argument("--image_size", type=image_size, default=None,
                        help="input size in pixels (default: the training run's, else the model's, 224)")
    parser.add_argument("--num_classes", type=int, default=None, help="must match the checkpoint's head if given")
    parser.add_argument("--file_name", required=True, help="output path without extension")
    parser.add_argument("--fuse_bn", action="store_true", help="fold BatchNorm into the convolutions")
    parser.add_argument("--quantize", default="", help="int8: ONNX Runtime static INT8 quantization (ONNX only)")
    parser.add_argument("--calib_data", default="",
                        help="with --quantize: a folder of calibration images (default: the run's training split)")
    parser.add_argument("--calib_images", type=int, default=None,
                        help=f"with --quantize: images to calibrate on (default {CALIBRATION_IMAGES})")
    args = parser.parse_args(argv)
    if not args.quantize:
        given = [flag for flag, value in (("--calib_data", args.calib_data), ("--calib_images", args.calib_images))
                 if value not in ("", None)]
        if given:
            raise ConfigError(f"{given[0]}: calibrates INT8 quantization, so it needs --quantize int8")
    elif args.calib_images is None:
        args.calib_images = CALIBRATION_IMAGES
    from mindcv_res2net.utils.device import set_device

    set_device("CPU")
    path, calibrated = export_model(args.model, args.ckpt_path, args.file_name, file_format=args.format,
                                    batch_size=args.batch_size, image_size=args.image_size,
                                    num_classes=args.num_classes, fuse_bn=args.fuse_bn, quantize=args.quantize,
                                    calib_data=args.calib_data, calib_images=args.calib_images)
    folded = ", BatchNorm folded" if args.fuse_bn or args.quantize else ""
    asked = f" of the {args.calib_images} asked for" if calibrated != args.calib_images else ""
    int8 = f", INT8 calibrated on {calibrated} images{asked}" if calibrated else ""
    batch = "dynamic" if args.batch_size == -1 else args.batch_size
    print(f"wrote {path} ({args.format}, batch {batch}{folded}{int8})",
          file=sys.stderr if is_stdout(path) else sys.stdout)
    return 0


def cli() -> None:
    """Console script ``res2net-export``."""
    run_cli(main)


if __name__ == "__main__":
    cli()
