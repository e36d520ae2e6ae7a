"""Write scans of scikit-learn's bundled digits as PNG files, offline: images to give tools/predict.py.

    python tools/make_digit_scans.py scans              # scans/0_0012.png, scans/1_0000.png ... scans/9_0005.png

For each digit 0-9, the first --per_digit scans of the validation split of train.py's ``--dataset digits``
(the 360 scans a digits run holds out: the same stratified 80/20 split), as 8x8 greyscale PNG files
named <digit>_<nnnn>.png (the true digit, then the scan's index in that split), with the pixel values a
digits run trains on (scikit-learn's 0-16 scaled to 0-255). tools/predict.py stretches them to the
run's image size, as the run did. DIR must be new or empty: the tool never mixes its files with others.
Each file is written to a temporary name and renamed, so a killed run leaves only whole images.
"""
import argparse
import os
import sys
from typing import List

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # a clone without pip install

from mindcv_res2net.utils.cli import run_cli  # noqa: E402

DIGITS = 10


def make_digit_scans(root: str, *, per_digit: int = 1) -> List[str]:
    """Write ``per_digit`` held-out scans of each digit into ``root`` (see the module docstring); returns the
    paths written, digit by digit."""
    from PIL import Image

    from mindcv_res2net.data.datasets import dataset_spec
    from mindcv_res2net.data.sources import SourceOptions, digits_source
    from mindcv_res2net.utils.argtypes import ConfigError
    from mindcv_res2net.utils.errors import UserError
    from mindcv_res2net.utils.fileio import atomic_path, check_output_folder

    source = digits_source(dataset_spec("digits"), "val", SourceOptions())
    most = int(np.bincount(source.labels, minlength=DIGITS).min())
    if not 1 <= per_digit <= most:
        raise ConfigError(f"--per_digit must be from 1 to {most} (the held-out scans of the rarest digit), "
                          f"got {per_digit}")
    if os.path.isdir(root) and os.listdir(root):
        raise UserError(f"{root} already holds files; give a new or empty folder")
    check_output_folder(root, "DIR")
    os.makedirs(root, exist_ok=True)
    written = []
    for digit in range(DIGITS):
        for index in np.flatnonzero(source.labels == digit)[:per_digit]:
            path = os.path.join(root, f"{digit}_{index:04d}.png")
            with atomic_path(path, suffix=".png") as tmp:
                Image.fromarray(source.images[index][..., 0], mode="L").save(tmp, format="PNG")
            written.append(path)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", metavar="DIR", help="folder to create (or an empty one) for the PNG files")
    parser.add_argument("--per_digit", type=int, default=1, help="scans of each digit (default 1: ten files)")
    args = parser.parse_args(argv)
    written = make_digit_scans(args.root, per_digit=args.per_digit)
    print(f"wrote {len(written)} digit scans (8x8 PNG, held out from training) to {args.root}")
    return 0


if __name__ == "__main__":
    run_cli(main)
