"""Build registered models and print name, parameters, GFLOPs (multiply-adds x 1e-9) and output shape.

The code lives in ``mindcv_res2net/cli/reports.py``; pip installs it as the command ``res2net-summarize``.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # a clone without pip install

from mindcv_res2net.cli.reports import summarize_cli as cli, summarize_main as main  # noqa: E402,F401  (main: for tests)

if __name__ == "__main__":
    cli()
