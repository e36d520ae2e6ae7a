"""Convert published or trained Res2Net weights into a MindSpore checkpoint, without PyTorch.

The code lives in ``mindcv_res2net/cli/convert_weights.py``; pip installs it as the command ``res2net-convert``.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # a clone without pip install

from mindcv_res2net.cli.convert_weights import cli, main  # noqa: E402,F401  (main: for tests and callers)

if __name__ == "__main__":
    cli()
