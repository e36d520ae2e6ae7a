"""Images are checked by decoding, with bounds: what the pre-scan finds before training (damaged PNG pixel data
with valid checksums, JPEGs that libjpeg only warns about, JPEGs with a corrupt middle that still end in FFD9),
refused in libjpeg's words alike by the scan and by prediction's decode or left out with --skip_corrupt_images;
what goes to Pillow instead of MindSpore's decoder (files libpng refuses), the bound on elongated images and on
crop_pct, and the single-class warning."""
import dataclasses
import io
import os
import re
import shutil
import subprocess
import sys
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from helpers.programs import assert_quiet_exit, helpers_env, load_script, run, run_bounded
from mindcv_res2net.config import ConfigError, load_yaml_config
from mindcv_res2net.cli.parser import parse_args
from mindcv_res2net.data import DataConfig, DatasetError, checkpoint_eval, create_loader, create_source
from mindcv_res2net.data.image_files import (MAX_RESIZED_SIDE, NATIVE, PILLOW, DataWarning, encode_bmp, load_rgb,
                                             scan_image)
from mindcv_res2net.data.preprocess import preprocess_for
from mindcv_res2net.models import get_pretrained_cfg

random_photo = load_script("tools/make_photo_folder.py").random_photo

CFG = get_pretrained_cfg("res2net50")
PREMATURE_END = "Corrupt JPEG data: premature end of data segment"


@pytest.fixture(scope="module")
def photo():
    """A real ~500x375 photo (a crop of scikit-learn's china.jpg / flower.jpg) as a PIL image."""
    from sklearn.datasets import load_sample_images

    return random_photo(load_sample_images().images, np.random.default_rng(0))


def _encoded(image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photo_jpeg(photo):
    """``photo`` as baseline JPEG bytes (quality 90)."""
    return _encoded(photo, "JPEG", quality=90)


def _png_chunks(data: bytes):
    """[(type, payload)] of a PNG file."""
    chunks, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        chunks.append((data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]))
        pos += 12 + length
    return chunks


def _png(chunks) -> bytes:
    """A PNG file of ``chunks``, every CRC right."""
    out = b"\x89PNG\r\n\x1a\n"
    for kind, payload in chunks:
        out += len(payload).to_bytes(4, "big") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "big")
    return out


def _with_idat(png: bytes, change) -> bytes:
    """``png`` with its zlib stream replaced by ``change(stream)`` in one IDAT chunk, every CRC recomputed."""
    chunks = _png_chunks(png)
    stream = change(b"".join(payload for kind, payload in chunks if kind == b"IDAT"))
    head = [(kind, payload) for kind, payload in chunks if kind not in (b"IDAT", b"IEND")]
    return _png(head + [(b"IDAT", stream), (b"IEND", b"")])


def _overwrite_middle(data: bytes, first: int, end: int, length: int = 40, seed: int = 1) -> bytes:
    """``data`` with ``length`` random bytes written over the middle of ``data[first:end]``."""
    middle = (first + end - length) // 2
    junk = np.random.default_rng(seed).integers(0, 256, length, dtype=np.uint8).tobytes()
    return data[:middle] + junk + data[middle + length:]


def _entropy_coded_range(data: bytes):
    """(first, end) byte offsets of a baseline JPEG's entropy-coded data: after the SOS header, before FFD9."""
    sos = data.index(b"\xff\xda")
    return sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big"), len(data) - 2


def _libjpeg_says(data: bytes) -> str:
    """libjpeg-turbo's message on ``data`` (its last warning or its error), as a regular expression."""
    import simplejpeg

    with pytest.raises(ValueError) as refused:
        simplejpeg.decode_jpeg(data, strict=True)
    return re.escape(str(refused.value))


def _corrupt_middle(data: bytes, seed: int = 0, length: int = 512) -> bytes:
    first, end = _entropy_coded_range(data)
    middle = (first + end) // 2
    junk = np.random.default_rng(seed).integers(0, 256, length, dtype=np.uint8).tobytes()
    return data[:middle] + junk + data[middle + length:]


def _refusal(check, path, *args):
    """The ``DatasetError`` message of ``check(path, *args)``, or None when it accepts the file."""
    try:
        check(str(path), *args)
    except DatasetError as exc:
        return str(exc)
    return None


# ---------------------------------------------------------------------------------------------- PNG


def test_png_with_damaged_pixel_data_and_valid_checksums_is_found_by_the_scan(tmp_path, photo):
    png = _encoded(photo, "PNG")
    damaged, short = tmp_path / "damaged.png", tmp_path / "short.png"
    damaged.write_bytes(_with_idat(png, lambda stream: _overwrite_middle(stream, 0, len(stream))))
    short.write_bytes(_with_idat(png, lambda stream: stream[:len(stream) // 2]))
    for path in (damaged, short):
        message = _refusal(scan_image, path)
        assert message is not None and message.startswith(f"cannot decode image {path}: "), message
        assert _refusal(load_rgb, path) == message  # predict and INT8 calibration say the same


def test_png_that_libpng_refuses_but_pillow_reads_is_refused_by_name(tmp_path, photo):
    """A bad CRC (libpng checks it, Pillow does not) and a 2,000,000 x 1 PNG (over libpng's 1,000,000-px width
    limit; OpenCV refuses it as BMP too): MindSpore's decoder would stop the run mid-epoch, so the scan refuses
    them by name, or leaves them out; an 8-bit PNG that decodes goes to MindSpore's decoder."""
    from mindspore.dataset import vision

    folder = tmp_path / "train" / "a"
    folder.mkdir(parents=True)
    png = bytearray(_encoded(photo, "PNG"))
    idat = png.index(b"IDAT")
    crc_at = idat + 4 + int.from_bytes(png[idat - 4:idat], "big")
    png[crc_at] ^= 0xFF
    bad_crc, wide = folder / "bad_crc.png", folder / "wide.png"
    bad_crc.write_bytes(bytes(png))
    Image.new("L", (2_000_000, 1), 128).save(wide)
    photo.save(folder / "fine.png")
    for path in (bad_crc, wide):
        with pytest.raises(RuntimeError):
            vision.Decode()(np.fromfile(path, np.uint8))
    assert load_rgb(str(bad_crc)).shape == (photo.height, photo.width, 3)  # Pillow alone reads it
    assert _refusal(scan_image, bad_crc) == (f"cannot decode image {bad_crc}: MindSpore's decoder (libpng) refuses "
                                             "it although Pillow reads it: a bad checksum or damaged data "
                                             "(libpng's reason is on stderr)")
    message = f"cannot use image {wide}: 2000000x1 px, a side longer than 1,000,000 px, which MindSpore's decoders refuse"
    assert _refusal(scan_image, wide) == _refusal(load_rgb, wide) == message
    with pytest.warns(DataWarning, match=f"^left out: {re.escape(message)}$"):
        source = create_source("imagefolder", "train", str(tmp_path), skip_corrupt=True)
    assert source.samples == [(str(folder / "fine.png"), 0)] and source.decoders == [NATIVE]
    assert np.array_equal(source.decode(0), load_rgb(str(folder / "fine.png")))


# ---------------------------------------------------------------------------------------------- JPEG


def test_jpeg_that_libjpeg_only_warns_about_is_refused_everywhere(tmp_path, photo, tiny_model):
    """Cut at half its bytes with an end marker appended, or 40 random bytes in its middle: MindSpore's decoder
    paints the rest grey; the scan, load_rgb (predict, INT8 calibration) and predict's line name the file."""
    from mindspore.dataset import vision

    from mindcv_res2net.deploy.predict import predict
    from mindcv_res2net.models import create_model

    jpeg = _encoded(photo, "JPEG", quality=90)
    cut, noisy, fine = tmp_path / "cut.jpg", tmp_path / "noisy.jpg", tmp_path / "fine.jpg"
    cut.write_bytes(jpeg[:len(jpeg) // 2] + b"\xff\xd9")
    noisy.write_bytes(_overwrite_middle(jpeg, *_entropy_coded_range(jpeg)))
    fine.write_bytes(jpeg)
    for path in (cut, noisy):
        assert vision.Decode()(np.fromfile(path, np.uint8)).shape == (photo.height, photo.width, 3)
        message = f"cannot decode image {path}: {PREMATURE_END}"
        assert _refusal(scan_image, path) == _refusal(load_rgb, path) == message
    results = predict(create_model(tiny_model, num_classes=3), [str(cut), str(fine), str(noisy)])
    assert [r.get("error") for r in results] == [f"cannot decode image {cut}: {PREMATURE_END}", None,
                                                f"cannot decode image {noisy}: {PREMATURE_END}"]
    assert len(results[1]["top"]) == 3


def test_jpeg_kinds_libjpeg_turbo_decodes_otherwise_keep_working(tmp_path, photo):
    """CMYK, progressive and grey JPEGs get the corrupt-data check; a lossless JPEG (which libjpeg-turbo cannot
    decode at 1/8 scale, nor MindSpore's decoder at all) goes to Pillow as before."""
    jpeg = _encoded(photo.convert("CMYK"), "JPEG")
    (tmp_path / "cmyk.jpg").write_bytes(jpeg)
    (tmp_path / "cmyk_cut.jpg").write_bytes(jpeg[:len(jpeg) // 2] + b"\xff\xd9")
    jpeg = _encoded(photo, "JPEG", progressive=True)
    (tmp_path / "progressive.jpg").write_bytes(jpeg)
    (tmp_path / "progressive_cut.jpg").write_bytes(jpeg[:len(jpeg) // 2] + b"\xff\xd9")
    grey = np.asarray(photo.convert("L"))[:40, :48]
    (tmp_path / "lossless.jpg").write_bytes(_lossless_jpeg(grey))
    assert scan_image(str(tmp_path / "cmyk.jpg")) == PILLOW
    assert scan_image(str(tmp_path / "progressive.jpg")) == NATIVE
    assert scan_image(str(tmp_path / "lossless.jpg")) == PILLOW
    assert np.array_equal(load_rgb(str(tmp_path / "lossless.jpg"))[..., 0], grey)
    for name in ("cmyk_cut.jpg", "progressive_cut.jpg"):
        assert _refusal(scan_image, tmp_path / name) == f"cannot decode image {tmp_path / name}: {PREMATURE_END}"


def _lossless_jpeg(grey: np.ndarray) -> bytes:
    """A lossless (SOF3) JPEG of an 8-bit grey image: predictor 1, the standard DC Huffman table."""
    bits, values = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0], list(range(12))
    codes, code, k = {}, 0, 0
    for length, count in enumerate(bits, 1):
        for _ in range(count):
            codes[values[k]], k, code = (code, length), k + 1, code + 1
        code <<= 1
    pixels, out = grey.astype(np.int64), []
    height, width = grey.shape
    for r in range(height):
        for c in range(width):
            predicted = 128 if r == c == 0 else pixels[r, c - 1] if c else pixels[r - 1, c]
            diff = int(pixels[r, c] - predicted)
            size = abs(diff).bit_length()
            out.append(format(codes[size][0], f"0{codes[size][1]}b"))
            if size:
                out.append(format(diff if diff > 0 else diff + (1 << size) - 1, f"0{size}b"))
    stream = "".join(out)
    stream += "1" * (-len(stream) % 8)
    data = bytearray()
    for i in range(0, len(stream), 8):
        data.append(int(stream[i:i + 8], 2))
        if data[-1] == 0xFF:
            data.append(0)

    def segment(marker: int, payload: bytes) -> bytes:
        return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload

    return (b"\xff\xd8" + segment(0xC3, bytes([8]) + height.to_bytes(2, "big") + width.to_bytes(2, "big")
                                  + bytes([1, 1, 0x11, 0]))
            + segment(0xC4, bytes([0]) + bytes(bits) + bytes(values)) + segment(0xDA, bytes([1, 1, 0, 1, 0, 0]))
            + bytes(data) + b"\xff\xd9")


# JPEGs whose entropy-coded middle is corrupt but that still end in FFD9: MindSpore's C++ decoder only warns
# about them; prediction's decode (``load_rgb``) and the training and validation pre-scan refuse them with
# libjpeg's own words, or the scan leaves them out with --skip_corrupt_images.


def test_a_corrupt_middle_is_refused_by_the_scan_as_by_prediction(tmp_path, photo_jpeg):
    from mindspore.dataset import vision

    good, bad = tmp_path / "good.jpg", tmp_path / "bad.jpg"
    good.write_bytes(photo_jpeg)
    bad.write_bytes(_corrupt_middle(photo_jpeg))
    assert bad.read_bytes().endswith(b"\xff\xd9") and os.path.getsize(bad) == len(photo_jpeg)
    assert vision.Decode()(np.fromfile(bad, np.uint8)).shape[2] == 3  # the C++ decoder takes it (libjpeg warns)
    assert scan_image(str(good)) == NATIVE
    message = f"^cannot decode image {bad}: {_libjpeg_says(bad.read_bytes())}$"
    with pytest.raises(DatasetError, match=message):
        load_rgb(str(bad))  # predict, export calibration
    with pytest.raises(DatasetError, match=message):
        scan_image(str(bad))  # training and validation folders


def test_folders_refuse_or_skip_it(tmp_path, photo_jpeg):
    for name in ("a", "b"):
        (tmp_path / "val" / name).mkdir(parents=True)
        (tmp_path / "val" / name / "fine.jpg").write_bytes(photo_jpeg)
    bad = tmp_path / "val" / "b" / "middle.jpg"
    bad.write_bytes(_corrupt_middle(photo_jpeg))
    message = _libjpeg_says(bad.read_bytes())
    with pytest.raises(DatasetError, match=rf"^cannot decode image {bad}: {message} \(pass --skip_corrupt_images "
                                           r"to leave such files out\)$"):
        create_source("imagefolder", "val", str(tmp_path), scan_threads=2)
    with pytest.warns(UserWarning, match=rf"^left out: cannot decode image {bad}: "):
        source = create_source("imagefolder", "val", str(tmp_path), skip_corrupt=True, scan_threads=2)
    assert [os.path.basename(source.path(i)) for i in range(len(source))] == ["fine.jpg", "fine.jpg"]


def test_threaded_scan_keeps_the_file_order_and_reports_the_first_bad_file(tmp_path, photo_jpeg):
    folder = tmp_path / "train" / "c"
    folder.mkdir(parents=True)
    for i in range(12):
        (folder / f"{i:02d}.jpg").write_bytes(_corrupt_middle(photo_jpeg, seed=i) if i in (5, 9) else photo_jpeg)
    Image.new("RGB", (9, 7), (1, 2, 3)).save(folder / "03.png")
    with pytest.warns(UserWarning, match="left out 2 of 13 images"):
        one = create_source("imagefolder", "train", str(tmp_path), skip_corrupt=True, scan_threads=1)
    with pytest.warns(UserWarning, match="left out 2 of 13 images"):
        three = create_source("imagefolder", "train", str(tmp_path), skip_corrupt=True, scan_threads=3)
    assert one.samples == three.samples and one.decoders == three.decoders and len(one) == 11
    with pytest.raises(DatasetError, match=rf"^cannot decode image {folder / '05.jpg'}: "):
        create_source("imagefolder", "train", str(tmp_path), scan_threads=3)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.floats(0, 1), length=st.integers(1, 2048), fill=st.sampled_from(["random", "ff", "zeros"]),
       seed=st.integers(0, 2 ** 32 - 1))
def test_the_scan_refuses_exactly_what_the_full_decode_refuses(tmp_path, photo_jpeg, where, length, fill, seed):
    """Any run of bytes overwritten inside the entropy-coded data: the 1/8-scale decode of the scan and the
    full decode of prediction agree (zeros are valid Huffman codes: garbage that no decoder can see)."""
    first, end = _entropy_coded_range(photo_jpeg)
    start = first + int(where * (end - first - length))
    junk = {"random": np.random.default_rng(seed).integers(0, 256, length, dtype=np.uint8).tobytes(),
            "ff": b"\xff" * length, "zeros": bytes(length)}[fill]
    path = tmp_path / "photo_jpeg.jpg"
    path.write_bytes(photo_jpeg[:start] + junk + photo_jpeg[start + length:])
    outcomes = []
    for check in (load_rgb, scan_image):
        try:
            check(str(path))
            outcomes.append(None)
        except DatasetError as exc:
            outcomes.append(str(exc))
    assert outcomes[0] == outcomes[1]


# ---------------------------------------------------------------------------------------------- bounds


def test_elongated_images_are_refused_before_they_cost_memory(tmp_path, photo):
    """Evaluation at 224 px resizes the shorter side to 256: 50:1 is the most it allows (12,800 px); a 5.6 KB
    20000 x 1 JPEG would ask for 4.9 GB. Refused by the scan of every split, by predict's preprocessing, or
    left out with --skip_corrupt_images."""
    for split in ("train", "val"):
        folder = tmp_path / split / "a"
        folder.mkdir(parents=True)
        photo.save(folder / "photo.jpg")
        Image.new("RGB", (500, 10), (9, 9, 9)).save(folder / "panorama.jpg")  # 50:1, allowed
    wide = tmp_path / "val" / "a" / "wide.jpg"
    Image.new("RGB", (20000, 1), (1, 2, 3)).save(wide, quality=90)
    Image.new("RGB", (10, 501), (9, 9, 9)).save(tmp_path / "train" / "a" / "tall.png")  # 50.1:1
    data = DataConfig(dataset="imagefolder", data_dir=str(tmp_path), image_resize=224, num_parallel_workers=1,
                      batch_size=2)
    message = (f"cannot use image {wide}: 20000x1 px; evaluation resizes its shorter side to 256 px, which would "
               f"make the longer side 5120000 px, more than {MAX_RESIZED_SIDE} (at most 50:1)")
    with pytest.raises(DatasetError, match=f"^{re.escape(message)} \\(pass --skip_corrupt_images"):
        create_loader(data, "val", train=False, model_cfg=CFG)
    with pytest.raises(DatasetError, match=r"tall.png: 10x501 px; .* longer side 12825 px"):
        create_loader(data, "train", train=True, model_cfg=CFG)
    with pytest.warns(DataWarning, match=f"^left out: {re.escape(message)}$"):
        loader = create_loader(dataclasses.replace(data, skip_corrupt_images=True), "val", train=False, model_cfg=CFG)
    assert loader.num_images == 2
    pre = checkpoint_eval("x", None, CFG).preprocessing
    with pytest.raises(DatasetError, match=f"^{re.escape(message)}$"):
        preprocess_for(pre, 3)(str(wide))
    assert preprocess_for(pre, 3)(str(tmp_path / "val" / "a" / "panorama.jpg")).shape == (3, 224, 224)


def test_a_cifar_run_predicts_a_file_of_any_size_at_its_own_32_px(tmp_path, photo):
    """CIFAR at 32 px is evaluated as stored; a photo file given to predict is stretched to 32 x 32, never fed
    to the network at its own size (a 9000 x 9000 photo would cost gigabytes of activations)."""
    pre = checkpoint_eval("x", dict(dataset="cifar10", image_resize=32), CFG).preprocessing
    assert pre.resize is None and not pre.stretch
    photo.save(tmp_path / "photo.png")
    small = photo.resize((32, 32))
    small.save(tmp_path / "small.png")
    assert preprocess_for(pre, 3)(str(tmp_path / "photo.png")).shape == (3, 32, 32)
    mean, std = np.array(pre.mean)[:, None, None], np.array(pre.std)[:, None, None]
    expected = (np.asarray(small, np.float32).transpose(2, 0, 1) - mean) / std
    np.testing.assert_allclose(preprocess_for(pre, 3)(str(tmp_path / "small.png")), expected, atol=1e-5)


def test_crop_pct_has_a_range_in_flags_recipes_and_stored_configs(tmp_path):
    for value in ("0.01", "1.5", "0"):
        with pytest.raises(ConfigError, match=rf"argument --crop_pct: must be a number from 0.1 to 1 .*got {value}$"):
            parse_args(["--crop_pct", value])
    assert parse_args(["--crop_pct", "0.1"]).crop_pct == 0.1 and parse_args(["--crop_pct", "none"]).crop_pct is None
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("crop_pct: 0.01\n")
    with pytest.raises(ConfigError, match=r"key 'crop_pct' must be a number from 0.1 to 1"):
        load_yaml_config(str(recipe))
    stored = dict(dataset="imagefolder", data_dir="/photos", image_resize=224, crop_pct=0.01)
    with pytest.raises(DatasetError, match=r"^the crop_pct stored with RUN/a.ckpt must be from 0.1 to 1, got 0.01$"):
        checkpoint_eval("RUN/a.ckpt", stored, CFG)
    with pytest.raises(DatasetError, match=r"^--crop_pct must be from 0.1 to 1, got 0.01$"):
        checkpoint_eval("RUN/a.ckpt", dict(stored, crop_pct=0.875), CFG, given=dict(crop_pct=0.01))
    with pytest.raises(DatasetError, match=r"^--crop_pct 0.25 at image size 4096 px would resize the shorter side "
                                           r"to 16384 px, more than 12800$"):
        checkpoint_eval("x", None, CFG, given=dict(image_resize=4096, crop_pct=0.25))


# ---------------------------------------------------------------------------------------------- one class


def test_a_training_split_of_one_class_is_warned_about(tmp_path, photo):
    folder = tmp_path / "train" / "only"
    folder.mkdir(parents=True)
    for i in range(2):
        photo.save(folder / f"{i}.jpg")
    data = DataConfig(dataset="imagefolder", data_dir=str(tmp_path), image_resize=32, batch_size=2)
    with pytest.warns(DataWarning, match=r"^imagefolder/train: every training image is of one class \('only'\): "
                                         r"cross-entropy over a single class is always 0, so the network learns "
                                         r"nothing$"):
        create_loader(data, "train", train=True, model_cfg=CFG)
    with pytest.warns(DataWarning, match=r"the network can only learn to predict it \(5 classes\)$"):
        create_loader(dataclasses.replace(data, num_classes=5), "train", train=True, model_cfg=CFG)


# ---------------------------------------------------------------------------------------------- any bytes


@pytest.fixture(scope="module")
def small_files(photo):
    """A 48x36 crop of the photo as JPEG (baseline, progressive, grey), PNG (RGB, palette) and WebP bytes."""
    small = photo.resize((48, 36))
    return [_encoded(small, "JPEG", quality=85), _encoded(small, "JPEG", progressive=True),
            _encoded(small.convert("L"), "JPEG"), _encoded(small, "PNG"), _encoded(small.convert("P"), "PNG"),
            _encoded(small, "WEBP")]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, 5), edits=st.lists(st.tuples(st.floats(0, 1), st.binary(min_size=0, max_size=48),
                                                         st.integers(0, 48)), max_size=3),
       cut=st.floats(0.3, 1.0), raw=st.none() | st.binary(max_size=600), suffix=st.sampled_from([".jpg", ".png"]))
def test_any_bytes_as_an_image_file_are_accepted_and_decode_or_are_refused_by_name(
        tmp_path, monkeypatch, small_files, which, edits, cut, raw, suffix):
    """The scan either accepts a file, and then the pipeline's decoders (MindSpore's for NATIVE, training's
    crop-and-decode too, the BMP of Pillow's pixels for PILLOW) and load_rgb decode it, or it raises a
    ``DatasetError`` naming it; never another exception. Pillow's pixel limit is lowered so that a header
    claiming a huge image is refused rather than decoded: memory stays bounded."""
    from mindspore.dataset import vision

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1 << 20)
    data = bytearray(small_files[which])
    for where, junk, length in edits:  # overwrite, insert or delete bytes
        at = int(where * len(data))
        data[at:at + length] = junk
    data = bytes(raw if raw is not None else data[:max(1, int(cut * len(data)))])
    path = tmp_path / f"file{suffix}"
    path.write_bytes(data)
    try:
        kind = scan_image(str(path), 256)
    except DatasetError as exc:
        assert str(path) in str(exc)
        return
    pixels = load_rgb(str(path), 256)
    if kind == NATIVE:  # a PNG decodes to Pillow's pixels; a JPEG whose corrupt bytes form valid codes decodes
        decoded = vision.Decode()(np.frombuffer(data, np.uint8))  # to garbage that libjpeg versions paint apart
        assert np.array_equal(decoded, pixels) if data.startswith(b"\x89PNG") else decoded.shape == pixels.shape
        vision.RandomCropDecodeResize(32)(np.frombuffer(data, np.uint8))
    else:
        assert np.array_equal(vision.Decode()(encode_bmp(pixels)), pixels)


# ---------------------------------------------------------------------------------------------- programs


def _bad_files(folder, photo):
    """Every kind of broken or refused file the scan must find, written into ``folder``: their names."""
    png = _encoded(photo, "PNG")
    jpeg = _encoded(photo, "JPEG", quality=90)
    (folder / "damaged.png").write_bytes(_with_idat(png, lambda stream: _overwrite_middle(stream, 0, len(stream))))
    Image.new("L", (2_000_000, 1), 128).save(folder / "wide.png")
    (folder / "cut.jpg").write_bytes(jpeg[:len(jpeg) // 2] + b"\xff\xd9")
    (folder / "noisy.jpg").write_bytes(_overwrite_middle(jpeg, *_entropy_coded_range(jpeg)))
    Image.new("RGB", (20000, 1), (1, 2, 3)).save(folder / "wide.jpg", quality=90)
    return ["damaged.png", "wide.png", "cut.jpg", "noisy.jpg", "wide.jpg"]


TRAIN_TINY_NET = """
import sys
from helpers import tiny_net
from mindcv_res2net.cli.parser import parse_settings
from mindcv_res2net.train.trainer import train
from mindcv_res2net.utils.cli import run_cli


def main():
    tiny_net.register()
    train(parse_settings(sys.argv[1:], program="train"))
    return 0

run_cli(main)
"""


@pytest.mark.e2e
def test_training_skips_every_broken_file_of_both_splits_and_logs_each(tmp_path, photo):
    """With --skip_corrupt_images a folder holding such files in train/ and val/ trains a whole epoch and its
    validation pass; train.log names every file left out. Without it, the run stops before it starts. A
    training split of one class is said in train.log."""
    skipped = {}
    for split in ("train", "val"):
        for name in ("a", "b"):
            folder = tmp_path / "data" / split / name
            folder.mkdir(parents=True)
            for i in range(2):
                random_photo([np.asarray(photo)], np.random.default_rng(i), colour="rgb").save(folder / f"{i}.jpg")
        skipped[split] = [str(tmp_path / "data" / split / "b" / name) for name in _bad_files(folder, photo)]
    run_dir = tmp_path / "run"
    argv = ["-c", TRAIN_TINY_NET, "--model", "tiny_net", "--mode", "1", "--dataset", "imagefolder", "--data_dir",
            str(tmp_path / "data"), "--image_resize", "32", "--batch_size", "2", "--epoch_size", "1",
            "--num_parallel_workers", "1", "--ckpt_save_dir", str(run_dir)]
    env = helpers_env()
    proc = subprocess.run([sys.executable] + argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 2 and proc.stderr.startswith("error: cannot "), proc.stderr[-2000:]
    assert not run_dir.exists()
    proc = subprocess.run([sys.executable] + argv + ["--skip_corrupt_images"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_quiet_exit(proc)
    log = (run_dir / "train.log").read_text()
    for split in ("train", "val"):
        for path in skipped[split]:
            assert re.search(rf"WARNING left out: cannot (decode|use) image {re.escape(path)}: ", log), path
        assert f"{tmp_path / 'data' / split}: left out 5 of 9 images (each named above)" in log
    assert re.search(r"epoch 1/1: train loss [\d.]+, .*; val loss [\d.]+, top-1 ", log), log[-2000:]
    assert (run_dir / "tiny_net-best.ckpt").exists() and not (tmp_path / "abnormal_image.jpg").exists()
    for split in ("train", "val"):  # one class left: the log says that nothing can be learned
        shutil.rmtree(tmp_path / "data" / split / "b")
    proc = subprocess.run([sys.executable] + argv + ["--ckpt_save_dir", str(tmp_path / "one")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "WARNING imagefolder/train: every training image is of one class ('a'): cross-entropy over a single " \
           "class is always 0, so the network learns nothing" in (tmp_path / "one" / "train.log").read_text()


@pytest.mark.e2e
def test_a_thin_jpeg_is_refused_cheaply_by_prediction(tmp_path):
    """A 65500 x 1 JPEG (17 KB) at 224 px would ask for 13 GB: refused from its header, well under 1 GB."""
    path = tmp_path / "thin.jpg"
    Image.new("RGB", (65500, 1), (1, 2, 3)).save(path, quality=90)
    code = ("import sys\nfrom mindcv_res2net.data import checkpoint_eval\nfrom mindcv_res2net.data.preprocess import "
            "preprocess_for\nfrom mindcv_res2net.models import get_pretrained_cfg\nfrom mindcv_res2net.utils.cli "
            "import run_cli\npre = checkpoint_eval('x', None, get_pretrained_cfg('res2net50')).preprocessing\n"
            f"run_cli(lambda: preprocess_for(pre, 3)({str(path)!r}) is None)\n")
    result = run_bounded(["-c", code], seconds=120, max_bytes=2 << 30)
    assert result.code == 2 and f"error: cannot use image {path}: 65500x1 px" in result.stderr, result.stderr[-2000:]
    assert result.peak_bytes < 1 << 30, result


@pytest.mark.e2e
def test_train_cli_names_the_file(tmp_path, photo_jpeg):
    for split in ("train", "val"):
        for name in ("a", "b"):
            (tmp_path / split / name).mkdir(parents=True)
            (tmp_path / split / name / "fine.jpg").write_bytes(photo_jpeg)
    bad = tmp_path / "val" / "a" / "middle.jpg"
    bad.write_bytes(_corrupt_middle(photo_jpeg))
    proc = run(["train.py", "--mode", "1", "--dataset", "imagefolder", "--data_dir", str(tmp_path), "--image_resize",
                "32", "--batch_size", "2", "--epoch_size", "1", "--ckpt_save_dir", str(tmp_path / "run")])
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert re.fullmatch(f"error: cannot decode image {bad}: {_libjpeg_says(bad.read_bytes())} \\(pass "
                        r"--skip_corrupt_images to leave such files out\)\n", proc.stderr), proc.stderr
    assert_quiet_exit(proc)
    assert not os.path.exists(tmp_path / "run")  # nothing written for a run that could not start
