"""The data sets are data: one entry of ``data/datasets.py`` is all a new data set needs (the flags, the
flags check, the loader and evaluation read it), and no other module of the package spells a data set's name."""
import ast
import os

import numpy as np
import pytest
from PIL import Image

from mindcv_res2net.cli.parser import parse_args, parse_settings
from mindcv_res2net.config import ConfigError
from mindcv_res2net.data import DATASETS, DatasetSpec, create_loader, eval_preprocessing
from mindcv_res2net.data.loader import iterate_batches
from mindcv_res2net.data.sources import ArraySource, folder_source
from mindcv_res2net.models import get_pretrained_cfg
from helpers import PROJECT_DIR

CFG = get_pretrained_cfg("res2net50")
PACKAGE = os.path.join(PROJECT_DIR, "mindcv_res2net")
REGISTRY = os.path.join(PACKAGE, "data", "datasets.py")


def _tiny_scans(spec, split, options):
    """12 random grey scans of ``spec.image_size`` px, 3 classes (another draw for every other split)."""
    rng = np.random.default_rng(0 if split == "train" else 1)
    images = rng.integers(0, 256, (12, spec.image_size, spec.image_size, 1), dtype=np.uint8)
    return ArraySource(images, np.arange(12) % 3, spec.class_names)


@pytest.fixture
def made_up_datasets(monkeypatch):
    """Two data sets registered for one test: ``tiny_scans`` (arrays, bundled, trained without augmentation)
    and ``photos`` (another image folder)."""
    monkeypatch.setitem(DATASETS, "tiny_scans", DatasetSpec(
        name="tiny_scans", read=_tiny_scans, image_size=16, class_names=("a", "b", "c"), reads_data_dir=False,
        augmented=False))
    monkeypatch.setitem(DATASETS, "photos", DatasetSpec(name="photos", read=folder_source, image_folder=True))


def test_a_registered_data_set_is_a_choice_of_the_flags_and_their_check(made_up_datasets, tmp_path):
    assert parse_settings(["--dataset", "tiny_scans"], program="train").data.dataset == "tiny_scans"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("dataset: photos\nskip_corrupt_images: true\nscale: [0.5, 1.0]\n")
    assert parse_args(["-c", str(recipe), "--data_dir", str(tmp_path)], program="train").dataset == "photos"
    for refused in (["--data_dir", str(tmp_path)], ["--hflip", "0"], ["--skip_corrupt_images"]):
        with pytest.raises(ConfigError, match=rf"^--{refused[0][2:]} .*: would be ignored: "):
            parse_args(["--dataset", "tiny_scans"] + refused, program="train")
    with pytest.raises(ConfigError, match=r"invalid choice: 'svhn'"):
        parse_args(["--dataset", "svhn"], program="train")


def test_a_registered_data_set_is_loaded_trained_and_evaluated_by_its_entry(made_up_datasets, tmp_path):
    scans = parse_settings(["--dataset", "tiny_scans", "--image_resize", "32", "--batch_size", "4",
                            "--num_parallel_workers", "1"], program="train").data
    train = create_loader(scans, "train", train=True, model_cfg=CFG)
    images, labels = next(iterate_batches(train.dataset))
    assert train.class_names == ["a", "b", "c"] and train.steps == 3
    assert images.shape == (4, 3, 32, 32) and str(images.dtype) == "UInt8"
    assert eval_preprocessing(scans, CFG).stretch  # 16 px scans stretched to 32
    for class_name in ("cat", "dog"):
        (tmp_path / "train" / class_name).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (40, 30), (i * 90, 20, 200)).save(tmp_path / "train" / class_name / f"{i}.jpg")
    photos = parse_settings(["--dataset", "photos", "--data_dir", str(tmp_path), "--image_resize", "32",
                             "--batch_size", "2", "--num_parallel_workers", "1"], program="train").data
    loader = create_loader(photos, "train", train=True, model_cfg=CFG)
    images, _ = next(iterate_batches(loader.dataset))
    assert loader.class_names == ["cat", "dog"] and images.shape == (2, 3, 32, 32)
    assert eval_preprocessing(photos, CFG).resize == 36  # an image folder: resize and centre crop (crop_pct 0.875)


def _name_literals(path: str, names) -> list:
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names]


def test_no_module_but_the_registry_spells_a_data_set_name():
    """A string that is exactly a data set's name appears in ``data/datasets.py`` only: everything else reads
    the registry (its entries, ``DEFAULT_DATASET``, ``FOLDER_DATASET``, ``PRETRAINED_DATASET``)."""
    found = []
    for folder, _, files in os.walk(PACKAGE):
        for name in sorted(files):
            path = os.path.join(folder, name)
            if name.endswith(".py") and path != REGISTRY:
                found += [f"{os.path.relpath(path, PACKAGE)}:{line}: '{value}'"
                          for line, value in _name_literals(path, set(DATASETS))]
    assert found == []
    assert len(_name_literals(REGISTRY, set(DATASETS))) >= len(DATASETS)  # the scan finds the names where they are
