"""JPEGs whose entropy-coded middle is corrupt but that still end in FFD9: MindSpore's C++ decoder only
warns about them; prediction's decode (``load_rgb``) and the training and validation pre-scan refuse them
with libjpeg's own words, or the scan leaves them out with --skip_corrupt_images."""
import io
import os
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from mindcv_res2net.data import DatasetError, create_source
from mindcv_res2net.data.image_files import NATIVE, load_rgb, scan_image
from make_photo_folder import random_photo
from conftest import assert_quiet_exit, run



def _libjpeg_says(data: bytes) -> str:
    """libjpeg-turbo's message on ``data`` (its last warning or its error), as a regular expression."""
    import simplejpeg

    with pytest.raises(ValueError) as refused:
        simplejpeg.decode_jpeg(data, strict=True)
    return re.escape(str(refused.value))


def _entropy_coded_range(data: bytes):
    """(first, end) byte offsets of a baseline JPEG's entropy-coded data: after the SOS header, before FFD9."""
    sos = data.index(b"\xff\xda")
    return sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big"), len(data) - 2


@pytest.fixture(scope="module")
def photo():
    """A real ~500x375 photo (a crop of scikit-learn's china.jpg / flower.jpg) as baseline JPEG bytes."""
    from sklearn.datasets import load_sample_images

    buffer = io.BytesIO()
    random_photo(load_sample_images().images, np.random.default_rng(0)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _corrupt_middle(data: bytes, seed: int = 0, length: int = 512) -> bytes:
    first, end = _entropy_coded_range(data)
    middle = (first + end) // 2
    junk = np.random.default_rng(seed).integers(0, 256, length, dtype=np.uint8).tobytes()
    return data[:middle] + junk + data[middle + length:]


def test_a_corrupt_middle_is_refused_by_the_scan_as_by_prediction(tmp_path, photo):
    from mindspore.dataset import vision

    good, bad = tmp_path / "good.jpg", tmp_path / "bad.jpg"
    good.write_bytes(photo)
    bad.write_bytes(_corrupt_middle(photo))
    assert bad.read_bytes().endswith(b"\xff\xd9") and os.path.getsize(bad) == len(photo)
    assert vision.Decode()(np.fromfile(bad, np.uint8)).shape[2] == 3  # the C++ decoder takes it (libjpeg warns)
    assert scan_image(str(good)) == NATIVE
    message = f"^cannot decode image {bad}: {_libjpeg_says(bad.read_bytes())}$"
    with pytest.raises(DatasetError, match=message):
        load_rgb(str(bad))  # predict, export calibration
    with pytest.raises(DatasetError, match=message):
        scan_image(str(bad))  # training and validation folders


def test_folders_refuse_or_skip_it(tmp_path, photo):
    for name in ("a", "b"):
        (tmp_path / "val" / name).mkdir(parents=True)
        (tmp_path / "val" / name / "fine.jpg").write_bytes(photo)
    bad = tmp_path / "val" / "b" / "middle.jpg"
    bad.write_bytes(_corrupt_middle(photo))
    message = _libjpeg_says(bad.read_bytes())
    with pytest.raises(DatasetError, match=rf"^cannot decode image {bad}: {message} \(pass --skip_corrupt_images "
                                           r"to leave such files out\)$"):
        create_source("imagefolder", "val", str(tmp_path), scan_threads=2)
    with pytest.warns(UserWarning, match=rf"^left out: cannot decode image {bad}: "):
        source = create_source("imagefolder", "val", str(tmp_path), skip_corrupt=True, scan_threads=2)
    assert [os.path.basename(source.path(i)) for i in range(len(source))] == ["fine.jpg", "fine.jpg"]


def test_threaded_scan_keeps_the_file_order_and_reports_the_first_bad_file(tmp_path, photo):
    folder = tmp_path / "train" / "c"
    folder.mkdir(parents=True)
    for i in range(12):
        (folder / f"{i:02d}.jpg").write_bytes(_corrupt_middle(photo, seed=i) if i in (5, 9) else photo)
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
def test_the_scan_refuses_exactly_what_the_full_decode_refuses(tmp_path, photo, where, length, fill, seed):
    """Any run of bytes overwritten inside the entropy-coded data: the 1/8-scale decode of the scan and the
    full decode of prediction agree (zeros are valid Huffman codes: garbage that no decoder can see)."""
    first, end = _entropy_coded_range(photo)
    start = first + int(where * (end - first - length))
    junk = {"random": np.random.default_rng(seed).integers(0, 256, length, dtype=np.uint8).tobytes(),
            "ff": b"\xff" * length, "zeros": bytes(length)}[fill]
    path = tmp_path / "photo.jpg"
    path.write_bytes(photo[:start] + junk + photo[start + length:])
    outcomes = []
    for check in (load_rgb, scan_image):
        try:
            check(str(path))
            outcomes.append(None)
        except DatasetError as exc:
            outcomes.append(str(exc))
    assert outcomes[0] == outcomes[1]


@pytest.mark.e2e
def test_train_cli_names_the_file(tmp_path, photo):
    for split in ("train", "val"):
        for name in ("a", "b"):
            (tmp_path / split / name).mkdir(parents=True)
            (tmp_path / split / name / "fine.jpg").write_bytes(photo)
    bad = tmp_path / "val" / "a" / "middle.jpg"
    bad.write_bytes(_corrupt_middle(photo))
    proc = run(["train.py", "--mode", "1", "--dataset", "imagefolder", "--data_dir", str(tmp_path), "--image_resize",
                "32", "--batch_size", "2", "--epoch_size", "1", "--ckpt_save_dir", str(tmp_path / "run")])
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert re.fullmatch(f"error: cannot decode image {bad}: {_libjpeg_says(bad.read_bytes())} \\(pass "
                        r"--skip_corrupt_images to leave such files out\)\n", proc.stderr), proc.stderr
    assert_quiet_exit(proc)
    assert not os.path.exists(tmp_path / "run")  # nothing written for a run that could not start
