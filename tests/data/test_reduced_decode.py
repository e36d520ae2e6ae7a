"""Large JPEGs decoded at the DCT scale the transform needs (``--reduced_decode``): the scale chosen, the random
box (MindSpore's rule, drawn per seed, epoch and sample index whatever worker runs it), the quality of the
evaluation tensor against a full decode, validate and predict decoding alike, every other file as before, the
same errors, the flag, and tools/make_photo_folder.py's phone-size photos."""
import io
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from mindspore.dataset import vision
from PIL import Image

from mindcv_res2net.cli.parser import parse_settings
from mindcv_res2net.config import ConfigError
from mindcv_res2net.data import DatasetError, create_loader
from mindcv_res2net.data.image_files import load_rgb, reduction
from mindcv_res2net.data.loader import iterate_batches
from mindcv_res2net.data.preprocess import preprocess_for
from mindcv_res2net.data.scaled_decode import ScaledCropDecode, ScaledDecode, crop_box, worth_scaling
from mindcv_res2net.data.settings import eval_preprocessing
from mindcv_res2net.models import get_pretrained_cfg

from helpers.programs import load_script

PHOTO_TOOL = load_script("tools/make_photo_folder.py")
GRAIN, photo_size, random_photo = PHOTO_TOOL.GRAIN, PHOTO_TOOL.photo_size, PHOTO_TOOL.random_photo
CFG = get_pretrained_cfg("res2net50")
MID = (2016, 1512)  # a quarter of a phone photo's pixels: at 224 px evaluation it decodes at 1/4 scale


@pytest.fixture(scope="module")
def mid_photos():
    """Four 2016x1512 photos with grain (tools/make_photo_folder.py --size 2016x1512) as JPEG bytes, quality 90:
    china and flower, each portrait and landscape."""
    from sklearn.datasets import load_sample_images

    sources, found = load_sample_images().images, []
    for photo in (0, 1):
        image = random_photo(sources, np.random.default_rng(photo), photo, size=MID)
        for turned in (image, image.transpose(Image.Transpose.ROTATE_90)):
            buffer = io.BytesIO()
            turned.save(buffer, format="JPEG", quality=90)
            found.append(buffer.getvalue())
    return found


def _folder(root, files):
    """``root/train/c{i % 2}/{name}`` for every (name, bytes) of ``files``; returns ``root``."""
    for i, (name, data) in enumerate(files):
        folder = root / "train" / f"c{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return root


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _data(root, *extra):
    return parse_settings(["--dataset", "imagefolder", "--data_dir", str(root), "--val_split", "train",
                           "--batch_size", "2", "--num_parallel_workers", "1", *extra]).data


def _batches(data, *, train, epoch=0):
    return np.concatenate([b[0].asnumpy() for b in iterate_batches(
        create_loader(data, "train", train=train, model_cfg=CFG).for_epoch(epoch))])


@settings(max_examples=200, deadline=None)
@given(short=st.integers(1, 20000), need=st.integers(1, 2000))
def test_reduction_is_the_largest_that_keeps_the_side_the_transform_needs(short, need):
    d = reduction(short, need)
    assert d in (1, 2, 4, 8)
    assert d == 1 or short / d >= need  # never fewer pixels than the transform asks for
    assert d == 8 or short / (2 * d) < need  # and no larger reduction would have kept them


@settings(max_examples=300, deadline=None)
@given(width=st.integers(1, 5000), height=st.integers(1, 5000), low=st.floats(0.01, 1.0), high=st.floats(0.01, 1.0),
       r0=st.floats(0.2, 5.0), r1=st.floats(0.2, 5.0), seed=st.integers(0, 2 ** 32 - 1))
def test_crop_box_is_mindspores_random_resized_crop_box(width, height, low, high, r0, r1, seed):
    """Inside the image, at least 1 px; a drawn box has an area fraction in ``scale`` and an aspect in ``ratio``
    (up to rounding); after 10 draws that do not fit, the whole image clamped to ``ratio`` and centred."""
    scale, ratio = (min(low, high), max(low, high)), (min(r0, r1), max(r0, r1))
    x, y, w, h = crop_box(width, height, np.random.default_rng(seed), scale=scale, ratio=ratio)
    assert 1 <= w and 1 <= h and 0 <= x and 0 <= y and x + w <= width and y + h <= height
    fallback_w = width if width / height <= ratio[1] else math.floor(height * ratio[1] + 0.5)
    fallback_h = height if width / height >= ratio[0] else math.floor(width / ratio[0] + 0.5)
    if (w, h) != (max(1, fallback_w), max(1, fallback_h)) and w > 2 and h > 2:
        assert scale[0] * 0.5 <= w * h / (width * height) <= scale[1] * 2 + 1e-9
        assert ratio[0] * 0.5 <= w / h <= ratio[1] * 2


def test_crop_box_falls_back_to_the_centre_clamped_to_the_ratio():
    rng = np.random.default_rng(0)
    assert crop_box(1000, 10, rng, scale=(0.9, 1.0), ratio=(0.75, 1.333)) == (494, 0, 13, 10)  # std::round(493.5)
    assert crop_box(10, 1000, rng, scale=(0.9, 1.0), ratio=(0.75, 1.333)) == (0, 494, 10, 13)
    assert crop_box(300, 250, rng, scale=(2.0, 2.0), ratio=(0.75, 1.333)) == (0, 0, 300, 250)
    assert crop_box(300, 200, rng, scale=(2.0, 2.0), ratio=(0.75, 1.333)) == (17, 0, 267, 200)


def test_scaled_decode_is_used_where_the_reducible_jpegs_pay_for_the_python_op():
    """At least 0.4 MP of reducible JPEG per image of the split."""
    phone, small = (4032, 3024), (500, 375)
    assert worth_scaling(np.array([phone] + [small] * 29, np.int64), np.ones(30, bool), 224)  # 12.2 MP / 30
    assert not worth_scaling(np.array([phone] + [small] * 31, np.int64), np.ones(32, bool), 224)
    assert worth_scaling(np.array([phone] * 2, np.int64), np.array([False, True]), 224)
    assert not worth_scaling(np.array([phone], np.int64), np.zeros(1, bool), 224)  # a PNG, or a CMYK JPEG
    assert not worth_scaling(np.array([phone], np.int64), np.ones(1, bool), 2000)  # 3024 < 2 x 2000
    assert not worth_scaling(np.array([small] * 8, np.int64), np.ones(8, bool), 32)  # 0.19 MP each: not worth it


def test_a_split_of_mostly_small_photos_keeps_mindspores_ops(tmp_path, mid_photos):
    """Where the map ops do not pay (one 2016x1512 photo among 20 of ~500x375): training batches are bit for bit
    those of --reduced_decode false (MindSpore's C++ ops, as before); in evaluation the large photo alone is
    decoded at the reduced scale, so that validate gives predict's tensor for every file."""
    from sklearn.datasets import load_sample_images

    sources, rng, files = load_sample_images().images, np.random.default_rng(3), [("big.jpg", mid_photos[1])]
    for i in range(20):
        buffer = io.BytesIO()
        random_photo(sources, rng).save(buffer, format="JPEG", quality=90)
        files.append((f"{i}.jpg", buffer.getvalue()))
    root = _folder(tmp_path, files)
    assert np.array_equal(_batches(_data(root), train=True, epoch=1),
                          _batches(_data(root, "--reduced_decode", "false"), train=True, epoch=1))
    host = ["--normalize_on_device", "false"]
    reduced, full = _batches(_data(root, *host), train=False), _batches(_data(root, *host, "--reduced_decode", "false"),
                                                                         train=False)
    paths = sorted(str(p) for p in root.glob("train/*/*.jpg"))
    predict = preprocess_for(eval_preprocessing(_data(root), CFG), 3)
    assert np.array_equal(np.stack([predict(path) for path in paths]), reduced)
    for path, a, b in zip(paths, reduced, full):
        assert np.array_equal(a, b) == (not path.endswith("big.jpg")), path


def test_training_box_is_decoded_at_the_scale_that_covers_it_without_upsampling(mid_photos):
    """Each crop is the drawn box at the decoded scale (edges rounded outwards), at least the output size on its
    shorter side whenever the file was reduced, and close to the full decode's pixels of that box."""
    data = np.frombuffer(mid_photos[0], np.uint8)
    full = _pixels(mid_photos[0])
    op = ScaledCropDecode(lambda i: "photo.jpg", size=224, scale=(0.01, 1.0), ratio=(0.75, 1.333), seed=7, epoch=3)
    reductions = set()
    height, width = full.shape[:2]
    for index in range(40):
        x, y, w, h = crop_box(width, height, np.random.default_rng([7, 3, index]), scale=(0.01, 1.0),
                              ratio=(0.75, 1.333))
        d = reduction(min(w, h), 224)
        crop = op(data, np.int64(index))
        assert crop.shape == (-(-(y + h) // d) - y // d, -(-(x + w) // d) - x // d, 3)
        assert d == 1 or min(crop.shape[:2]) >= 224
        box = np.asarray(Image.fromarray(full[y // d * d:-(-(y + h) // d) * d, x // d * d:-(-(x + w) // d) * d])
                         .resize(crop.shape[1::-1], Image.BOX), np.float64)
        assert np.abs(box - crop).mean() < 1.5, (index, d)  # the DCT scaling is a block average
        reductions.add(d)
    assert reductions == {1, 2, 4}  # 1/8 would need a box of 8 x 224 px, more than 1512


def test_training_crops_depend_only_on_seed_epoch_and_index(tmp_path, mid_photos):
    """The random box is drawn per (seed, epoch, sample index): 1 and 2 workers give the same batches, an epoch
    repeats exactly, another epoch differs."""
    root = _folder(tmp_path, [(f"{i}.jpg", data) for i, data in enumerate(mid_photos)])
    argv = ["--image_resize", "64", "--hflip", "0"]
    one = _batches(_data(root, *argv), train=True, epoch=2)
    two = _batches(_data(root, *argv, "--num_parallel_workers", "2"), train=True, epoch=2)
    assert one.shape == (4, 3, 64, 64) and np.array_equal(one, two)
    assert np.array_equal(two, _batches(_data(root, *argv, "--num_parallel_workers", "2"), train=True, epoch=2))
    assert not np.array_equal(one, _batches(_data(root, *argv), train=True, epoch=3))


def _check_bound(root, paths):
    """The stated bound of the evaluation tensor (224 px: short side 256, centre crop) of every photo under
    ``root``/train: against the full decode's, mean absolute difference at most 5 grey levels and PSNR at least
    29 dB; against the full decode resized with antialiasing (Pillow's bilinear, as timm evaluates), at most 2
    grey levels on average and closer than the full decode's own tensor, which MindSpore's bilinear Resize makes
    without antialiasing (its aliasing is most of the difference)."""
    reduced = _batches(_data(root), train=False).astype(np.float64)
    full = _batches(_data(root, "--reduced_decode", "false"), train=False).astype(np.float64)
    for path, a, b in zip(paths, reduced, full):
        psnr = 10 * math.log10(255 ** 2 / np.mean((a - b) ** 2))
        pixels = load_rgb(str(path))
        shape = vision.Resize(256)(pixels).shape  # MindSpore's sides
        resized = Image.fromarray(pixels).resize((shape[1], shape[0]), Image.BILINEAR)
        reference = vision.CenterCrop(224)(np.asarray(resized)).transpose(2, 0, 1).astype(np.float64)
        assert np.abs(a - b).mean() <= 5.0 and psnr >= 29.0, (path, np.abs(a - b).mean(), psnr)
        assert np.abs(a - reference).mean() <= 2.0 and np.abs(a - reference).mean() < np.abs(b - reference).mean()


def test_evaluation_tensor_is_within_the_stated_bound_of_a_full_decode(tmp_path, mid_photos):
    """``_check_bound`` on 2016x1512 photos with grain, decoded at 1/4 for 224 px evaluation."""
    root = _folder(tmp_path, [(f"{i}.jpg", data) for i, data in enumerate(mid_photos)])
    _check_bound(root, sorted(root.glob("train/*/*.jpg")))


def test_validate_and_predict_decode_alike_and_every_other_file_as_before(tmp_path, mid_photos):
    """A folder with a large JPEG goes through the scaled decode: validate's batches (host-normalised) are
    predict's tensors exactly, the large JPEGs (progressive too, and one with an EXIF orientation, which is ignored
    as before) differ from a full decode, and every other file (PNG, CMYK and small JPEGs) gives exactly the
    tensor it gives with --reduced_decode false."""
    photo = Image.open(io.BytesIO(mid_photos[1]))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to view
    files = {"large.jpg": mid_photos[0], "grey.jpg": photo.convert("L").resize((300, 200)),
             "progressive.jpg": photo.copy(), "rotated.jpg": photo.copy(), "cmyk.jpg": photo.convert("CMYK"),
             "small.png": photo.convert("RGBA").resize((400, 300))}
    for name, image in files.items():
        if not isinstance(image, bytes):
            buffer = io.BytesIO()
            image.save(buffer, format="PNG" if name.endswith(".png") else "JPEG", quality=90,
                       progressive=name == "progressive.jpg", exif=exif if name == "rotated.jpg" else b"")
            files[name] = buffer.getvalue()
    root = tmp_path / "photos"
    for name, data in files.items():
        (root / "train" / "c").mkdir(parents=True, exist_ok=True)
        (root / "train" / "c" / name).write_bytes(data)
    paths = sorted(str(p) for p in (root / "train" / "c").iterdir())
    host = ["--normalize_on_device", "false"]
    reduced, full = _batches(_data(root, *host), train=False), _batches(_data(root, *host, "--reduced_decode", "false"),
                                                                         train=False)
    pre = eval_preprocessing(_data(root), CFG)
    assert pre.reduced_decode
    predicted = np.stack([preprocess_for(pre, 3)(path) for path in paths])
    assert np.array_equal(predicted, reduced)
    for path, a, b in zip(paths, reduced, full):
        name = path.rsplit("/", 1)[-1]
        assert np.array_equal(a, b) == (name in ("cmyk.jpg", "grey.jpg", "small.png")), name
    progressive, rotated = reduced[[paths.index(str(root / "train" / "c" / n)) for n in ("progressive.jpg",
                                                                                       "rotated.jpg")]]
    assert np.abs(progressive - rotated).mean() < 0.05  # the same pixels: the EXIF orientation is not applied


_SMALL_JPEG = io.BytesIO()
Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8)).save(_SMALL_JPEG, format="JPEG")


@settings(max_examples=150, deadline=None)
@given(data=st.one_of(st.binary(max_size=300), st.binary(max_size=300).map(lambda b: b"\xff\xd8\xff" + b),
                      st.tuples(st.integers(0, len(_SMALL_JPEG.getvalue()) - 1), st.binary(min_size=1, max_size=40))
                      .map(lambda cut: _SMALL_JPEG.getvalue()[:cut[0]] + cut[1])))
def test_any_bytes_in_the_pipeline_decode_or_fail_naming_the_file(data):
    """Whatever bytes a file holds by the time the pipeline reads it: an (h, w, 3) uint8 image or one
    ``DatasetError`` naming the file, from both map ops."""
    ops = (ScaledDecode(lambda i: "/photos/x.jpg", short_side=16),
           ScaledCropDecode(lambda i: "/photos/x.jpg", size=16, scale=(0.08, 1.0), ratio=(0.75, 1.333), seed=0, epoch=0))
    for op in ops:
        try:
            image = op(np.frombuffer(data, np.uint8), np.int64(3))
        except DatasetError as exc:
            assert str(exc).startswith("cannot decode image /photos/x.jpg: ") and "\n" not in str(exc)
        else:
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and image.size > 0


def test_corrupt_large_jpeg_is_named_before_training_and_a_changed_one_during_it(tmp_path, mid_photos):
    """The pre-scan refuses a cut JPEG as before, with or without the scaled decode; a file that breaks after the
    scan stops the epoch with one line naming it."""
    root = _folder(tmp_path, [(f"{i}.jpg", data) for i, data in enumerate(mid_photos)])
    cut = root / "train" / "c0" / "cut.jpg"
    cut.write_bytes(mid_photos[0][: len(mid_photos[0]) // 2] + b"\xff\xd9")
    for extra in ([], ["--reduced_decode", "false"]):
        with pytest.raises(DatasetError, match=r"^cannot decode image .*c0/cut.jpg: Corrupt JPEG data: premature end"):
            create_loader(_data(root, "--image_resize", "64", *extra), "train", train=True, model_cfg=CFG)
    cut.unlink()
    loader = create_loader(_data(root, "--image_resize", "64"), "train", train=True, model_cfg=CFG)
    (root / "train" / "c1" / "1.jpg").write_bytes(mid_photos[1][:200_000])
    with pytest.raises(DatasetError, match=r"^cannot decode image .*c1/1.jpg: .*\(it passed the pre-scan: changed on "
                                           r"disk since\?\); move it out of the folder"):
        list(iterate_batches(loader.for_epoch(0)))


def test_a_checkpoint_is_predicted_with_its_runs_decoding():
    """predict, export's INT8 calibration and validate take --reduced_decode from the run (true for runs that
    predate the flag), and a flag given to validate wins."""
    from mindcv_res2net.data.settings import checkpoint_eval

    run = dict(dataset="imagefolder", data_dir="/photos", image_resize=64)
    assert checkpoint_eval("C", run, CFG).preprocessing.reduced_decode
    assert not checkpoint_eval("C", dict(run, reduced_decode=False), CFG).preprocessing.reduced_decode
    assert checkpoint_eval("C", dict(run, reduced_decode=False), CFG, given={"reduced_decode": True}).data \
        .reduced_decode


def test_reduced_decode_false_is_refused_where_nothing_is_decoded():
    assert parse_settings(["--dataset", "imagefolder", "--reduced_decode", "false"], program="validate").data \
        .reduced_decode is False
    with pytest.raises(ConfigError, match=r"^--reduced_decode False: would be ignored: only image folders are decoded "
                                          r"\(--dataset imagenet or imagefolder\)$"):
        parse_settings(["--dataset", "digits", "--reduced_decode", "false"], program="train")


def test_photo_folder_sizes():
    """--size: imagenet (about 500x375), phone (4032x3024, 12 MP) or WxH; exact sizes get grain. A phone photo
    is a 1.2-3 MB JPEG at quality 90, as a phone saves it."""
    from sklearn.datasets import load_sample_images

    assert (photo_size("imagenet"), photo_size("phone"), photo_size("756x1008")) == (None, (4032, 3024), (1008, 756))
    for bad in ("10x5", "1008", "1008x756x3", "big"):
        with pytest.raises(Exception, match=r"takes imagenet, phone or WIDTHxHEIGHT"):
            photo_size(bad)
    sources = load_sample_images().images
    small = random_photo(sources, np.random.default_rng(1), 0, size=(40, 30))
    assert sorted(small.size) == [30, 40]
    flat = np.asarray(random_photo([np.full((427, 640, 3), 128, np.uint8)], np.random.default_rng(1), 0,
                                   size=(400, 300)), np.float64)
    assert abs(flat.std() - GRAIN) < 0.2
    phone = random_photo(sources, np.random.default_rng(2), 1, size=photo_size("phone"))
    buffer = io.BytesIO()
    phone.save(buffer, format="JPEG", quality=90)
    assert sorted(phone.size) == [3024, 4032] and 1.2e6 < len(buffer.getvalue()) < 3e6


def test_benchmark_full_decode_adds_our_pipeline_decoding_in_full(tmp_path, monkeypatch):
    """--data_only --full_decode: a row of our pipeline with --reduced_decode false beside ours (and mindcv's), and
    the measurement gets the setting (without --data_only the flag is refused: tests/benchmark's data-only flags)."""
    import argparse

    from mindcv_res2net.benchmark import measure_data
    from mindcv_res2net.benchmark.plan import (FULL_DECODE, MINDCV, OURS, BenchmarkSettings, check_request,
                                               from_json, plan, to_json)

    (tmp_path / "train").mkdir()
    runs = plan(check_request(BenchmarkSettings(data_only=True, compare=MINDCV, full_decode=True, dataset="imagefolder",
                                                data_dir=str(tmp_path), batch_size=(4,), num_parallel_workers="1",
                                                data_batches=3, image_size=32)))
    assert [(r.impl, r.reduced_decode) for r in runs] == [(OURS, True), (FULL_DECODE, False), (MINDCV, True)]
    assert all(from_json(to_json(r)) == r for r in runs)
    built = []
    monkeypatch.setattr(measure_data, "create_loader", lambda data, *a, **k: built.append(data.reduced_decode) or
                        argparse.Namespace(for_epoch=lambda epoch: None))
    monkeypatch.setattr(measure_data, "iterate_batches", lambda dataset: iter(()))
    for run in runs[:2]:
        measure_data.our_pipeline(run, {})
    assert built == [True, False]


@pytest.mark.e2e
def test_a_trained_networks_top1_is_the_same_with_and_without_reduced_decode(tmp_path, pynative, tiny_model, capsys):
    """train.py on a folder of 2016x1512 photos (scaled decode in training), then validate.py --ckpt_path RUN with
    and without --reduced_decode (checked against the run's data set, not the flags' default): the same top-1."""
    from mindcv_res2net.cli.train import main as train_main
    from mindcv_res2net.cli.validate import main as validate_main

    photos, run = tmp_path / "photos", tmp_path / "run"
    PHOTO_TOOL.make_photo_folder(str(photos), classes=2, images_per_class=8, val_per_class=6, size=MID)
    argv = ["--model", tiny_model, "--dataset", "imagefolder", "--data_dir", str(photos), "--image_resize", "64",
            "--batch_size", "4", "--num_parallel_workers", "2", "--opt", "adamw", "--lr", "0.05", "--epoch_size", "12",
            "--warmup_epochs", "0", "--ckpt_save_dir", str(run), "--mode", "1"]
    assert train_main(argv) == 0
    capsys.readouterr()
    top1 = []
    for flag in ("true", "false"):
        assert validate_main(["--ckpt_path", str(run), "--reduced_decode", flag]) == 0
        line = capsys.readouterr().out.strip().splitlines()[-1]
        top1.append(line.split("top-1 ")[1].split("%")[0])
    assert top1[0] == top1[1], top1
    with pytest.raises(ConfigError, match=r"^--reduced_decode False: would be ignored: only image folders are decoded"):
        validate_main(["--ckpt_path", str(run), "--dataset", "digits", "--data_dir", "", "--reduced_decode", "false"])


@pytest.mark.e2e
def test_evaluation_of_phone_photos_is_within_the_stated_bound(tmp_path):
    """``_check_bound`` on two 4032x3024 phone photos (tools/make_photo_folder.py --size phone), decoded at 1/8."""
    from sklearn.datasets import load_sample_images

    sources = load_sample_images().images
    for photo in (0, 1):
        image = random_photo(sources, np.random.default_rng(photo), photo, size=photo_size("phone"))
        folder = tmp_path / "train" / f"c{photo}"
        folder.mkdir(parents=True)
        image.save(folder / "phone.jpg", quality=90)
    _check_bound(tmp_path, sorted(tmp_path.glob("train/*/*.jpg")))
