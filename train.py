"""Train a registered model: ``python train.py -c configs/res2net/res2net50_digits_cpu.yaml`` or
``python train.py --model=res2net50 --dataset=cifar10 --data_dir=DIR`` (``--help`` lists every flag)."""
import sys

import mindcv_res2net  # noqa: F401  (sets ONEDNN_MAX_CPU_ISA before mindspore loads)
from mindcv_res2net.config import parse_args
from mindcv_res2net.engine.trainer import train
from mindcv_res2net.utils.cli import run_cli


def main() -> int:
    train(parse_args(sys.argv[1:], "Train a Res2Net model"))
    return 0


if __name__ == "__main__":
    run_cli(main)
