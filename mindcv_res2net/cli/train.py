"""Train a Res2Net model: ``res2net-train -c CONFIG.yaml [--flag=value ...]`` (``--help`` lists every flag)."""
import sys

from mindcv_res2net.cli.parser import parse_config
from mindcv_res2net.train.trainer import train
from mindcv_res2net.utils.cli import run_cli


def main(argv=None) -> int:
    settings, given = parse_config(sys.argv[1:] if argv is None else argv, "Train a Res2Net model", program="train")
    summary = train(settings, given=given)
    return summary.get("exit_code", 0)  # 130/143 when SIGINT/SIGTERM stopped it


def cli() -> None:
    """Console script ``res2net-train``."""
    run_cli(main)


if __name__ == "__main__":
    cli()
