"""Make an image folder of real photographs, with classes a network can learn, offline and reproducibly.

    python tools/make_photo_folder.py /tmp/photos --classes 4 --images_per_class 100 --val_per_class 25
    python tools/make_photo_folder.py /tmp/phone --classes 2 --images_per_class 64 --size phone

Writes DIR/train/class_NN/photo_NNNN.jpg and DIR/val/class_NN/photo_NNNN.jpg. Class NN is one of
scikit-learn's two bundled photographs (china.jpg for even NN, flower.jpg for odd, 640x427) seen
through one colour transform (``COLOURS[NN // 2]``: as taken, its channels in another order, grey,
or inverted), so classes differ in content and colour as real classes do: up to 16 classes. Each
image is a random crop (a quarter to all of the area, aspect 3:4 to 4:3), randomly flipped, resized
to about 500x375 (landscape or portrait, +-10% per side, as ImageNet's typical photo) and saved as
baseline JPEG, quality 90; validation images are other random crops of the same class. The same
seed gives the same files.

``--size phone`` makes 12 MP phone photos instead: 4032x3024, landscape or portrait (3024x4032), quality
90, 1.5-1.9 MB each, as a phone's camera saves them; ``--size WxH`` any other exact size (e.g. 1008x756).
Upscaled from 640x427, a crop would hold no detail at the pixel level, which a real photograph has (fine
texture and sensor noise, which are also what makes its JPEG large and slow to decode): these sizes get
grain, Gaussian noise of ``GRAIN`` grey levels per pixel and channel.

DIR/train and DIR/val must not exist yet or be empty: the tool never mixes its files with another run's.
Each file is written to a temporary name and renamed, so a killed run leaves only whole images.
"""
import argparse
import os
import sys
from typing import Optional, Tuple

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # a clone without pip install

from mindcv_res2net.utils.cli import run_cli  # noqa: E402

# name -> (H, W, 3) uint8 to (H, W, 3) uint8: how a class's photo looks
COLOURS = {
    "rgb": lambda image: image,
    "bgr": lambda image: image[..., ::-1],
    "grey": lambda image: np.repeat(image.mean(axis=-1, keepdims=True).astype(np.uint8), 3, axis=-1),
    "inverted": lambda image: 255 - image,
    "gbr": lambda image: image[..., [1, 2, 0]],
    "brg": lambda image: image[..., [2, 0, 1]],
    "rbg": lambda image: image[..., [0, 2, 1]],
    "grb": lambda image: image[..., [1, 0, 2]],
}
PHOTOS = 2  # scikit-learn's sample images
MAX_CLASSES = PHOTOS * len(COLOURS)
SIZES = {"imagenet": None, "phone": (4032, 3024)}  # (long, short) px; None: about 500x375, +-10% per side
GRAIN = 3.0  # std of the grain of exact sizes, grey levels
MAX_SIDE = 8192


def photo_size(text: str) -> Optional[Tuple[int, int]]:
    """``--size``: a name of ``SIZES`` or ``WxH`` (px, each 8 to ``MAX_SIDE``) -> (long, short), None for
    ImageNet's size."""
    if text in SIZES:
        return SIZES[text]
    sides = text.lower().split("x")
    if len(sides) != 2 or not all(side.isdigit() and 8 <= int(side) <= MAX_SIDE for side in sides):
        raise argparse.ArgumentTypeError(f"takes {', '.join(SIZES)} or WIDTHxHEIGHT (each 8 to {MAX_SIDE} px, "
                                         f"e.g. 1008x756), got '{text}'")
    return max(map(int, sides)), min(map(int, sides))


def random_photo(sources, rng: np.random.Generator, photo: int = None, colour: str = "rgb", *,
                 size: Optional[Tuple[int, int]] = None):
    """One random crop of source photo ``photo`` (default: a random one) in colour ``colour`` (a key of
    ``COLOURS``), flipped or not, resized to about 500x375, or to ``size`` (long, short) px exactly with
    grain (a PIL image); landscape three times in four, else portrait."""
    from PIL import Image

    photo = sources[rng.integers(len(sources)) if photo is None else photo]
    height, width = photo.shape[:2]
    area = rng.uniform(0.25, 1.0) * height * width
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    crop_w = int(min(width, round(np.sqrt(area * aspect))))
    crop_h = int(min(height, round(np.sqrt(area / aspect))))
    top, left = rng.integers(height - crop_h + 1), rng.integers(width - crop_w + 1)
    crop = COLOURS[colour](photo[top:top + crop_h, left:left + crop_w])
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if size is None:
        long_side, short_side = (int(round(side * rng.uniform(0.9, 1.1))) for side in (500, 375))
    else:
        long_side, short_side = size
    shape = (long_side, short_side) if rng.random() < 0.75 else (short_side, long_side)  # (width, height)
    image = Image.fromarray(np.ascontiguousarray(crop)).resize(shape, Image.BILINEAR)
    if size is None:
        return image
    grainy = np.asarray(image, np.float32) + rng.standard_normal((shape[1], shape[0], 3), np.float32) * GRAIN
    return Image.fromarray(np.clip(np.rint(grainy), 0, 255).astype(np.uint8))


def make_photo_folder(root: str, *, classes: int = 10, images_per_class: int = 100, seed: int = 0,
                      val_per_class: Optional[int] = None, size: Optional[Tuple[int, int]] = None) -> str:
    """Write the folder (see the module docstring): ``images_per_class`` training and ``val_per_class``
    validation images per class (default a quarter of ``images_per_class``; no ``val/`` for 0), of about
    500x375 px or ``size`` (long, short) px with grain (``photo_size``); returns ``root/train``."""
    from mindcv_res2net.utils.argtypes import ConfigError
    from mindcv_res2net.utils.errors import UserError
    from mindcv_res2net.utils.fileio import atomic_path, check_output_folder

    val_per_class = images_per_class // 4 if val_per_class is None else val_per_class
    if classes < 1 or images_per_class < 1 or val_per_class < 0:
        raise ConfigError(f"--classes and --images_per_class must be at least 1 and --val_per_class at least 0, got "
                         f"{classes}, {images_per_class} and {val_per_class}")
    if classes > MAX_CLASSES:
        raise ConfigError(f"--classes: at most {MAX_CLASSES} (2 photographs x {len(COLOURS)} colour transforms), "
                         f"got {classes}")
    splits = {"train": images_per_class, "val": val_per_class}
    for split, count in splits.items():
        folder = os.path.join(root, split)
        if count and os.path.isdir(folder) and os.listdir(folder):
            raise UserError(f"{folder} already holds files; give a new or empty folder")
    check_output_folder(root, "root")
    from sklearn.datasets import load_sample_images

    sources = load_sample_images().images
    colours = list(COLOURS)
    for split_index, (split, count) in enumerate(splits.items()):
        rng = np.random.default_rng([seed, split_index])  # the training images do not depend on --val_per_class
        for c in range(count and classes):
            folder = os.path.join(root, split, f"class_{c:02d}")
            os.makedirs(folder, exist_ok=True)
            for i in range(count):
                image = random_photo(sources, rng, c % PHOTOS, colours[c // PHOTOS], size=size)
                with atomic_path(os.path.join(folder, f"photo_{i:04d}.jpg"), suffix=".jpg") as tmp:
                    image.save(tmp, format="JPEG", quality=90)
    return os.path.join(root, "train")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="folder to create; the images go to ROOT/train/<class>/ and ROOT/val/<class>/")
    parser.add_argument("--classes", type=int, default=10, help=f"class folders, at most {MAX_CLASSES} (default 10)")
    parser.add_argument("--images_per_class", type=int, default=100, help="training images per class (default 100)")
    parser.add_argument("--val_per_class", type=int, default=None,
                        help="validation images per class (default: a quarter of --images_per_class; 0: no val/)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--size", type=photo_size, default="imagenet",
                        help="imagenet (about 500x375, the default), phone (4032x3024, 12 MP, with grain) or WxH "
                             "(exact, with grain)")
    args = parser.parse_args(argv)
    train = make_photo_folder(args.root, classes=args.classes, images_per_class=args.images_per_class, seed=args.seed,
                              val_per_class=args.val_per_class, size=args.size)
    val_images = sum(len(files) for _, _, files in os.walk(os.path.join(args.root, "val")))
    val = f" and {val_images} to {os.path.join(args.root, 'val')}" if val_images else ""
    print(f"wrote {args.classes * args.images_per_class} JPEG photos in {args.classes} classes to {train}{val}")
    return 0


if __name__ == "__main__":
    run_cli(main)
