"""tests/deploy: using a trained network: export (MINDIR, ONNX, INT8), ONNX Runtime, predict, validate's checks of
an export against its checkpoint."""
import os

import numpy as np
import pytest
from PIL import Image

from helpers.checkpoints import ODD_CLASS_NAMES, save_trained_like_checkpoint


@pytest.fixture(scope="session")
def odd_names_checkpoint(tmp_path_factory):
    """A 10-class res2net50 digits checkpoint at 32 px whose class names hold a newline and non-UTF-8 bytes
    (``ODD_CLASS_NAMES``), and a folder of 3 images, one of them in a folder named with such characters:
    (checkpoint path, image folder)."""
    folder = tmp_path_factory.mktemp("odd_names")
    path = str(folder / "odd-best.ckpt")
    meta = dict(model="res2net50", num_classes=10, in_channels=3, class_names=ODD_CLASS_NAMES,
                config=dict(dataset="digits", image_resize=32, interpolation="bilinear"))
    save_trained_like_checkpoint(path, num_classes=10, metadata=meta, seed=5)
    images = folder / "images"
    odd = images / os.fsdecode(b"dir\xff\nname")
    odd.mkdir(parents=True)
    rng = np.random.default_rng(5)
    for target in (images / "plain.png", images / "two\nlines.png", odd / "x.png"):
        Image.fromarray((rng.random((20, 24, 3)) * 255).astype(np.uint8)).save(target)
    return path, images
