"""Print the top-k classes of images: ``python tools/predict.py --model res2net50 --ckpt_path P IMG_OR_DIR... --topk 5``.

``--ckpt_path`` is a checkpoint file or a training run's folder (its best checkpoint). Images are prepared
as the run evaluated them (size, crop_pct, mean/std from the checkpoint), said in one line on stderr.

Exit code 0 when every image was predicted, 1 when some could not be read (each named on its line).
"""
import argparse
import json
import sys

from mindcv_res2net.utils.argtypes import ConfigError, HelpFormatter
from mindcv_res2net.utils.cli import run_cli


def parse_args(argv=None) -> argparse.Namespace:
    """The flags of predict.py."""
    parser = argparse.ArgumentParser(description="Top-k classes of image files with a trained Res2Net.",
                                     formatter_class=HelpFormatter)
    parser.add_argument("images", nargs="+", help="image files or folders (JPEG, PNG, ...)")
    parser.add_argument("--model", default="", help="registered model name, e.g. res2net50 (default: the model a "
                        "train.py checkpoint, run folder or exported ONNX file records)")
    parser.add_argument("--ckpt_path", default="", help="trained checkpoint (any format the converter reads), or a "
                        "training run's folder (its best checkpoint)")
    parser.add_argument("--pretrained", action="store_true",
                        help="use the published ImageNet weights (downloaded once: internet needed)")
    parser.add_argument("--topk", type=int, default=5, help="classes printed per image")
    parser.add_argument("--batch_size", type=int, default=16, help="images per forward pass")
    parser.add_argument("--engine", default="mindspore", help="mindspore, or onnxruntime: run an ONNX export on the "
                        "CPU (--onnx_path, else the weights exported once into ~/.cache/mindcv_res2net/onnx)")
    parser.add_argument("--onnx_path", default="", help="with --engine onnxruntime: an exported .onnx file")
    parser.add_argument("--device_target", default="CPU", help="CPU, GPU or Ascend")
    parser.add_argument("--mode", type=int, default=1, choices=(0, 1),
                        help="0 = Graph, 1 = PyNative. PyNative by default, unlike train.py and validate.py: a "
                             "few images are predicted sooner without Graph mode's compilation (seconds per "
                             "batch shape); use 0 for many images")
    parser.add_argument("--labels", default="", help="class names, one per line (else the checkpoint's or ImageNet's)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    from mindcv_res2net.data.preprocess import expand_paths, prediction_eval
    from mindcv_res2net.deploy.predict import (format_results, load_for_prediction, load_onnx_for_prediction,
                                               predict, read_labels)
    from mindcv_res2net.utils.engines import check_engine
    from mindcv_res2net.utils.device import set_device

    args = parse_args(argv)
    check_engine(args.engine)
    if args.onnx_path and args.engine != "onnxruntime":
        raise ConfigError("--onnx_path needs --engine onnxruntime")
    set_device(args.device_target, args.mode)
    labels = read_labels(args.labels) if args.labels else None
    paths = expand_paths(args.images)
    if not paths:
        raise ConfigError(f"no image files found in {', '.join(args.images)}")
    if args.engine == "onnxruntime":
        model, run_config = load_onnx_for_prediction(args.model, onnx_path=args.onnx_path, ckpt_path=args.ckpt_path,
                                                     pretrained=args.pretrained)
    else:
        model, run_config = load_for_prediction(args.model, args.ckpt_path, pretrained=args.pretrained)
    print(prediction_eval(model, run_config, model.source).line, file=sys.stderr, flush=True)
    results = predict(model, paths, class_names=labels, topk=args.topk, run_config=run_config,
                      batch_size=args.batch_size)
    print(json.dumps(results, indent=1, allow_nan=False) if args.json else format_results(results))
    return 1 if any("error" in r for r in results) else 0


def cli() -> None:
    """Console script ``res2net-predict``."""
    run_cli(main)


if __name__ == "__main__":
    cli()
