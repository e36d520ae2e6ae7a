"""Measure training and inference speed per model and execution mode, each configuration in its own process.

The command line lives in ``mindcv_res2net/cli/benchmark.py`` (pip installs it as the command ``res2net-benchmark``),
the measuring in the package ``mindcv_res2net/benchmark/``.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # a clone without pip install

from mindcv_res2net.cli.benchmark import cli, main  # noqa: E402,F401  (main: for tests and callers)

if __name__ == "__main__":
    cli()
