"""Plot a training run's loss and top-1 per epoch (train and validation) into a PNG.

The code lives in ``mindcv_res2net/cli/reports.py``; pip installs it as the command ``res2net-plot``.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # a clone without pip install

from mindcv_res2net.cli.reports import plot_cli as cli, plot_main as main  # noqa: E402,F401  (main: for tests)

if __name__ == "__main__":
    cli()
