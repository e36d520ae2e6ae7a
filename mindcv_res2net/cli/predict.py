"""Print the top-k classes of images: ``python tools/predict.py --model res2net50 --ckpt_path P IMG_OR_DIR... --topk 5``.

``--ckpt_path`` is a checkpoint file or a training run's folder (its best checkpoint). Images are prepared
as the run evaluated them (size, crop_pct, mean/std from the checkpoint), said in one line on stderr.

Exit code 0 when every image was predicted, 1 when some could not be read (each named on its line).
"""
import json
import sys

from mindcv_res2net.utils.cli import run_cli


def main(argv=None) -> int:
    from mindcv_res2net.data.preprocess import expand_paths, prediction_eval
    from mindcv_res2net.engine.predict import (format_results, load_for_prediction, load_onnx_for_prediction,
                                               parse_predict_args, predict, read_labels)
    from mindcv_res2net.utils.engines import check_engine
    from mindcv_res2net.utils.device import set_device

    args = parse_predict_args(argv)
    check_engine(args.engine)
    if args.onnx_path and args.engine != "onnxruntime":
        raise ValueError("--onnx_path needs --engine onnxruntime")
    set_device(args.device_target, args.mode)
    labels = read_labels(args.labels) if args.labels else None
    paths = expand_paths(args.images)
    if not paths:
        raise ValueError(f"no image files found in {', '.join(args.images)}")
    if args.engine == "onnxruntime":
        model, run_config = load_onnx_for_prediction(args.model, args.onnx_path, args.ckpt_path, args.pretrained)
    else:
        model, run_config = load_for_prediction(args.model, args.ckpt_path, args.pretrained)
    print(prediction_eval(model, run_config, model.source).line, file=sys.stderr, flush=True)
    results = predict(model, paths, labels, args.topk, run_config, args.batch_size)
    print(json.dumps(results, indent=1, allow_nan=False) if args.json else format_results(results))
    return 1 if any("error" in r for r in results) else 0


def cli() -> None:
    """Console script ``res2net-predict``."""
    run_cli(main)


if __name__ == "__main__":
    cli()
