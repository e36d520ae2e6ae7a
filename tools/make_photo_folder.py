"""Make an image folder of real photographs for input-pipeline benchmarks, offline and reproducibly.

    python tools/make_photo_folder.py /tmp/photos --classes 10 --images_per_class 100 --seed 0

Writes DIR/train/class_NN/photo_NNNN.jpg: random crops (a quarter to all of the area, aspect 3:4 to
4:3) of scikit-learn's two bundled photographs (china.jpg and flower.jpg, 640x427), randomly flipped,
resized to about 500x375 (landscape or portrait, +-10% per side, as ImageNet's typical photo) and
saved as baseline JPEG, quality 90. The same seed gives the same files. DIR/train must not exist yet
or be empty: the tool never mixes its files with another run's. Each file is written to a temporary
name and renamed, so a killed run leaves only whole images.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # a clone without pip install

from mindcv_res2net.utils.cli import run_cli  # noqa: E402


def random_photo(sources, rng: np.random.Generator):
    """One random crop of a random source photo, flipped or not, resized to about 500x375 (a PIL image)."""
    from PIL import Image

    photo = sources[rng.integers(len(sources))]
    height, width = photo.shape[:2]
    area = rng.uniform(0.25, 1.0) * height * width
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    crop_w = int(min(width, round(np.sqrt(area * aspect))))
    crop_h = int(min(height, round(np.sqrt(area / aspect))))
    top, left = rng.integers(height - crop_h + 1), rng.integers(width - crop_w + 1)
    crop = photo[top:top + crop_h, left:left + crop_w]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    long_side, short_side = (int(round(side * rng.uniform(0.9, 1.1))) for side in (500, 375))
    size = (long_side, short_side) if rng.random() < 0.75 else (short_side, long_side)  # (width, height)
    return Image.fromarray(np.ascontiguousarray(crop)).resize(size, Image.BILINEAR)


def make_photo_folder(root: str, classes: int = 10, images_per_class: int = 100, seed: int = 0) -> str:
    """Write the folder (see the module docstring); returns ``root/train``."""
    from sklearn.datasets import load_sample_images

    from mindcv_res2net.utils.fileio import atomic_path

    if classes < 1 or images_per_class < 1:
        raise ValueError(f"--classes and --images_per_class must be at least 1, got {classes} and {images_per_class}")
    train = os.path.join(root, "train")
    if os.path.isdir(train) and os.listdir(train):
        raise ValueError(f"{train} already holds files; give a new or empty folder")
    sources = load_sample_images().images
    rng = np.random.default_rng(seed)
    for c in range(classes):
        folder = os.path.join(train, f"class_{c:02d}")
        os.makedirs(folder, exist_ok=True)
        for i in range(images_per_class):
            image = random_photo(sources, rng)
            with atomic_path(os.path.join(folder, f"photo_{i:04d}.jpg"), suffix=".jpg") as tmp:
                image.save(tmp, format="JPEG", quality=90)
    return train


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="folder to create; the images go to ROOT/train/<class>/")
    parser.add_argument("--classes", type=int, default=10, help="class folders (default 10)")
    parser.add_argument("--images_per_class", type=int, default=100, help="images per class (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    train = make_photo_folder(args.root, args.classes, args.images_per_class, args.seed)
    print(f"wrote {args.classes * args.images_per_class} JPEG photos in {args.classes} classes to {train}")
    return 0


if __name__ == "__main__":
    run_cli(main)
