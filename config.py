"""Configuration of train.py and validate.py (the flag table: ``mindcv_res2net/config/``; the parser:
``mindcv_res2net/cli/parser.py``).

``python config.py -c FILE [flags]`` prints the effective configuration.
"""
import sys

import mindcv_res2net  # noqa: F401  (sets ONEDNN_MAX_CPU_ISA before mindspore loads)
from mindcv_res2net.cli.parser import create_parser, parse_args, parse_settings  # noqa: F401  (mindcv's names)
from mindcv_res2net.config import format_config
from mindcv_res2net.utils.cli import run_cli


def main() -> int:
    print(format_config(parse_settings(sys.argv[1:])))
    return 0


if __name__ == "__main__":
    run_cli(main)
