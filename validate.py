"""Validate a checkpoint: ``python validate.py --model=res2net50 --dataset=imagenet --data_dir=DIR
--val_split=val --ckpt_path=FILE`` (MindSpore or official PyTorch file) or ``--pretrained``."""
import sys

import mindcv_res2net  # noqa: F401  (sets ONEDNN_MAX_CPU_ISA before mindspore loads)
from mindcv_res2net.config import parse_args
from mindcv_res2net.engine.evaluate import validate
from mindcv_res2net.utils.cli import run_cli


def main() -> int:
    validate(parse_args(sys.argv[1:], "Validate a Res2Net model"))
    return 0


if __name__ == "__main__":
    run_cli(main)
