"""Measure training and inference speed per model and execution mode, each configuration in its own process.

    python tools/benchmark.py --device_target CPU --models res2net50,res2net50_v1b --modes pynative,graph \\
        --batch_size 32 --image_size 224 --compare mindcv --fuse_bn --rounds 2 --json bench.json

Per configuration: Graph compile time (first step), steady-state train ms/step and img/s (median of
--steps after --warmup, momentum SGD + cross-entropy through the training script's own TrainStep),
s/epoch for --epoch_images images (extrapolated from img/s), inference ms per image at batch 1 and
ms per batch at --batch_size, peak host memory, parameters and GFLOPs (multiply-adds x 1e-9).

--grad_checkpointing adds a row per model and mode: our train step with every block recomputed in the
backward pass (``model.set_grad_checkpointing()``), to compare its peak memory and time with the plain
row. "train peak mem" is the process's peak resident memory during the train steps alone (Linux: the
peak counter is reset after the inference measurements); "peak mem" covers the whole run.

--compare mindcv also measures mindcv's res2net of the same name (num_classes=1000, mindcv's own loss,
optimizer and train step) in the same environment (ONEDNN_MAX_CPU_ISA included) and adds a table of
ratios; names mindcv lacks are skipped with a note. --fuse_bn adds our inference with BatchNorm folded
into the convolutions as its own row. --rounds N repeats every configuration N times, interleaved, and
reports medians, which evens out a noisy machine. Prints markdown tables and writes every figure with
the machine's description to --json. Runs slower than a few seconds show progress bars on stderr.

--data_only measures the training input pipeline alone, as steady-state img/s after its first batch
(--data_batches batches), on an image folder DATA_DIR/train/<class>/<image> with train.py's ImageNet
training transforms (RandomResizedCrop, flip, normalise) and --num_parallel_workers workers:

    python tools/benchmark.py --data_only --dataset imagefolder --data_dir DIR --batch_size 32 \
        --image_size 224 --num_parallel_workers 2 --compare mindcv --rounds 3 --json data.json

Without --models it builds no network; with --models it also measures their train step at the same
batch (--modes) and says whether data or compute bounds training. --compare mindcv adds mindcv 0.3's
pipeline (create_dataset + create_transforms + create_loader, the same workers) on the same folder;
--full_decode adds ours with every JPEG decoded in full (train.py's --reduced_decode false).
tools/make_photo_folder.py makes such a folder of real photographs offline (--size phone: 12 MP).

The measuring lives in the package ``mindcv_res2net.benchmark``; this module is its command line.
"""

from mindcv_res2net.utils.cli import run_cli

DATA_ONLY_FLAGS = ("dataset", "data_dir", "num_parallel_workers", "host_normalize", "full_decode", "data_batches")


def main(argv=None) -> int:
    from mindcv_res2net.benchmark.plan import IMAGENET_TRAIN_IMAGES, batch_sizes
    from mindcv_res2net.data.datasets import FOLDER_DATASET, dataset_names
    from mindcv_res2net.utils.argtypes import ConfigError, HelpFormatter, OneLineParser, image_size

    parser = OneLineParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--device_target", default="CPU")
    parser.add_argument("--models", default=None, help="comma-separated registered names (default res2net50; "
                        "with --data_only: none)")
    parser.add_argument("--modes", default="pynative,graph", help="comma-separated: pynative, graph")
    parser.add_argument("--batch_size", type=batch_sizes, default=(32,),
                        help="batch size, or a comma-separated list (e.g. 1,8,32) measured in turn")
    parser.add_argument("--image_size", type=image_size, default=224)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps after the first")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat every configuration this many times, interleaved, and report medians")
    parser.add_argument("--epoch_images", type=int, default=IMAGENET_TRAIN_IMAGES)
    parser.add_argument("--compare", default="", help="'mindcv': also measure mindcv's res2net of the same name")
    parser.add_argument("--fuse_bn", action="store_true",
                        help="add a row: our inference with BatchNorm folded into the convolutions")
    parser.add_argument("--grad_checkpointing", action="store_true",
                        help="add a row: our train step with gradient checkpointing (each block recomputed in the "
                             "backward pass), to compare its peak memory and time")
    parser.add_argument("--json", default="", help="write every figure here")
    parser.add_argument("--engines", default="mindspore",
                        help="comma-separated: mindspore, onnxruntime (our model exported with BatchNorm folded and "
                             "run by ONNX Runtime on the CPU: inference rows), onnxruntime_int8 (the same, statically "
                             "quantized to INT8)")
    parser.add_argument("--data_only", action="store_true", help="measure the training input pipeline alone")
    other_folders = [name for name in dataset_names(lambda spec: spec.image_folder) if name != FOLDER_DATASET]
    parser.add_argument("--dataset", default=FOLDER_DATASET,
                        help=f"with --data_only: {FOLDER_DATASET} (or {' or '.join(other_folders)})")
    parser.add_argument("--data_dir", default="", help="with --data_only: a folder holding train/<class>/<image>")
    parser.add_argument("--num_parallel_workers", default="2",
                        help="with --data_only: data workers, or a comma-separated list (e.g. 1,2) measured in turn")
    parser.add_argument("--host_normalize", action="store_true",
                        help="with --data_only: our pipeline normalises to float32 on the host (train.py's "
                             "--normalize_on_device false) instead of handing uint8 to the step")
    parser.add_argument("--full_decode", action="store_true",
                        help="with --data_only: add a row: our pipeline with train.py's --reduced_decode false (every "
                             "JPEG decoded in full)")
    parser.add_argument("--data_batches", type=int, default=30, help="with --data_only: batches timed per run")
    args = parser.parse_args(argv)
    if not args.data_only:
        for flag in DATA_ONLY_FLAGS:  # a flag that would be ignored is an error
            if getattr(args, flag) != parser.get_default(flag):
                raise ConfigError(f"--{flag}: measures the input pipeline, so it needs --data_only")
    from mindcv_res2net.benchmark.runner import run

    return run(args)


def cli() -> None:
    """Console script ``res2net-benchmark``."""
    run_cli(main)


if __name__ == "__main__":
    cli()
