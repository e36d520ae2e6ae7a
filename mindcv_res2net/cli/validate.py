"""Validate a Res2Net model: ``res2net-validate -c CONFIG.yaml [--flag=value ...]`` (``--help`` lists every flag)."""
import sys

from mindcv_res2net.cli.parser import parse_config
from mindcv_res2net.deploy.validate import validate
from mindcv_res2net.utils.cli import run_cli


def main(argv=None) -> int:
    settings, given = parse_config(sys.argv[1:] if argv is None else argv, "Validate a Res2Net model",
                                   program="validate")
    validate(settings, given)
    return 0


def cli() -> None:
    """Console script ``res2net-validate``."""
    run_cli(main)


if __name__ == "__main__":
    cli()
