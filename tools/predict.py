"""Print the top-k classes of images: ``python tools/predict.py --model res2net50 --ckpt_path P IMG_OR_DIR... --topk 5``.

The code lives in ``mindcv_res2net/cli/predict.py``; pip installs it as the command ``res2net-predict``.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # a clone without pip install

from mindcv_res2net.cli.predict import cli, main  # noqa: E402,F401  (main: for tests and callers)

if __name__ == "__main__":
    cli()
