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

    python tools/benchmark.py --data_only --dataset imagefolder --data_dir DIR --batch_size 32 \\
        --image_size 224 --num_parallel_workers 2 --compare mindcv --rounds 3 --json data.json

Without --models it builds no network; with --models it also measures their train step at the same
batch (--modes) and says whether data or compute bounds training. --compare mindcv adds mindcv 0.3's
pipeline (create_dataset + create_transforms + create_loader, the same workers) on the same folder;
--full_decode adds ours with every JPEG decoded in full (train.py's --reduced_decode false).
tools/make_photo_folder.py makes such a folder of real photographs offline (--size phone: 12 MP).

The measuring lives in the package ``mindcv_res2net.benchmark``; this module is its command line.
"""

from typing import TYPE_CHECKING, Optional, Sequence

from mindcv_res2net.utils.cli import run_cli

if TYPE_CHECKING:  # imported by the functions below: the benchmark package loads MindSpore
    from mindcv_res2net.benchmark.plan import BenchmarkSettings

USAGE = "%(prog)s [-h] [--flag VALUE ...]"


def parse_settings(argv: Optional[Sequence[str]] = None) -> "BenchmarkSettings":
    """The ``BenchmarkSettings`` of a command line (one-line ``ConfigError`` for a bad flag or value); the parser
    is built from the flags declared on the settings' fields (``benchmark.plan.BENCHMARK_FLAGS``)."""
    from mindcv_res2net.benchmark.plan import BENCHMARK_FLAGS, BenchmarkSettings
    from mindcv_res2net.cli.parser import build_parser

    parser = build_parser(BENCHMARK_FLAGS, description=__doc__, usage=USAGE)
    return BenchmarkSettings(**vars(parser.parse_args(argv)))


def main(argv: Optional[Sequence[str]] = None) -> int:
    from mindcv_res2net.benchmark.plan import check_request
    from mindcv_res2net.benchmark.runner import run

    return run(check_request(parse_settings(argv)))


def cli() -> None:
    """Console script ``res2net-benchmark``."""
    run_cli(main)


if __name__ == "__main__":
    cli()
