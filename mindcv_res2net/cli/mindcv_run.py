"""Run one of mindcv's own scripts (its train.py, validate.py) with our models in mindcv's factory:

    python -m mindcv_res2net.cli.mindcv_run path/to/mindcv/train.py --model res2net50_26w_6s ...
    res2net-mindcv path/to/mindcv/train.py --model res2net50_26w_6s ...     (installed by pip)

mindcv 0.3 discovers no plugins, so the script's own ``import mindcv`` cannot find us by itself: this
registers our models (``register_with_mindcv()``; mindcv's own names stay its own), then runs the
script as ``python SCRIPT ARGS...`` would.
"""
import os
import runpy
import sys

from mindcv_res2net.utils.cli import run_cli
from mindcv_res2net.utils.errors import UserError


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    script = os.path.abspath(argv[0])
    if not os.path.isfile(script):
        raise FileNotFoundError(f"{argv[0]}: no such script (give the path of mindcv's train.py or validate.py)")
    from mindcv_res2net import register_with_mindcv

    try:
        register_with_mindcv()
    except ImportError as exc:
        raise UserError(str(exc)) from None
    sys.argv = argv
    sys.path.insert(0, os.path.dirname(script))  # as `python SCRIPT` would: the script's own imports (config.py)
    runpy.run_path(script, run_name="__main__")
    return 0


def cli() -> None:
    """Console script ``res2net-mindcv``."""
    run_cli(main)


if __name__ == "__main__":
    cli()
