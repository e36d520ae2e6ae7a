"""Data sources, transforms, batch mixing and loaders on small generated or bundled data."""
import dataclasses
import gzip
import hashlib
import http.server
import io
import os
import tarfile
import threading

import numpy as np
import pytest
from PIL import Image

from mindcv_res2net.cli.parser import parse_settings
from mindcv_res2net.data import DATASETS, DatasetError, create_loader, create_source
from mindcv_res2net.data.loader import iterate_batches
from mindcv_res2net.data.sources import Download, download_cifar
from mindcv_res2net.data.transforms import BatchMixer
from mindcv_res2net.models import get_pretrained_cfg
from helpers.programs import load_script

CFG = get_pretrained_cfg("res2net50")


def _data(argv):
    """The loaders' typed config from train.py flags."""
    return parse_settings(argv).data


def _cifar_files(folder, train_records=(7, 5), test_records=3, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)]
    counts = list(train_records) + [1] * (5 - len(train_records))
    for name, count in zip(names + ["test_batch.bin"], counts + [test_records]):
        labels = rng.integers(0, 10, count, dtype=np.uint8)
        pixels = rng.integers(0, 256, (count, 3072), dtype=np.uint8)
        np.concatenate([labels[:, None], pixels], axis=1).tofile(folder / name)
    (folder / "batches.meta.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n\n")


def test_digits_split_is_stratified_and_fixed():
    train, val = create_source("digits", "train"), create_source("digits", "val")
    assert len(train) + len(val) == 1797 and len(val) == 360
    assert np.bincount(val.labels).min() >= 35  # every digit in the validation split
    assert train.images.shape[1:] == (8, 8, 1) and train.images.dtype == np.uint8 and train.images.max() == 255
    again = create_source("digits", "val")
    assert np.array_equal(again.labels, val.labels) and np.array_equal(again.images, val.images)


def test_cifar_reader_any_record_count(tmp_path):
    _cifar_files(tmp_path / "cifar-10-batches-bin")
    train = create_source("cifar10", "train", str(tmp_path))
    val = create_source("cifar10", "val", str(tmp_path / "cifar-10-batches-bin"))
    assert len(train) == 7 + 5 + 3 and len(val) == 3
    raw = np.fromfile(tmp_path / "cifar-10-batches-bin" / "test_batch.bin", np.uint8).reshape(3, 3073)
    image, label = val[1]
    assert label == raw[1, 0] and np.array_equal(image, raw[1, 1:].reshape(3, 32, 32).transpose(1, 2, 0))
    assert val.class_names[:2] == ["class0", "class1"]


def test_cifar_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"cifar10 not found: looked for the binary version .*cifar-10-batches-bin/"
                                           r"test_batch.bin and the python version .*; pass --dataset_download"):
        create_source("cifar10", "val", str(tmp_path))
    folder = tmp_path / "cifar-10-batches-bin"
    _cifar_files(folder)
    (folder / "data_batch_2.bin").write_bytes(b"x" * 100)
    with pytest.raises(DatasetError, match=r"data_batch_2.bin is not a CIFAR binary file"):
        create_source("cifar10", "train", str(tmp_path))


def test_cifar_download_checks_md5(tmp_path, monkeypatch):
    _cifar_files(tmp_path / "src" / "cifar-10-batches-bin")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-bin", arcname="cifar-10-batches-bin")
    body = buf.getvalue()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/cifar-10-binary.tar.gz"
    try:
        cifar10 = DATASETS["cifar10"]
        with pytest.raises(Exception, match=r"md5 mismatch .*expected 0{32}"):
            download_cifar(dataclasses.replace(cifar10, download=Download(url, "0" * 32)), str(tmp_path / "bad"))
        assert not (tmp_path / "bad" / "cifar-10-binary.tar.gz").exists()
        monkeypatch.setitem(DATASETS, "cifar10", dataclasses.replace(cifar10, download=Download(
            url, hashlib.md5(body).hexdigest())))
        args = _data(["--dataset", "cifar10", "--data_dir", str(tmp_path / "dl"), "--dataset_download",
                           "--image_resize", "32", "--batch_size", "4"])
        loader = create_loader(args, "train", train=True, model_cfg=CFG)
        assert loader.num_images == 15 and loader.steps == 3
        images, labels = next(loader.dataset.create_tuple_iterator(num_epochs=1))
        assert images.shape == (4, 3, 32, 32) and labels.shape == (4,)
    finally:
        server.shutdown()
        server.server_close()


def _idx(path, array, magic, compress):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(data)


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_idx_files(tmp_path, compress):
    suffix = ".gz" if compress else ""
    images = np.random.default_rng(0).integers(0, 256, (6, 28, 28))
    _idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", images, 0x803, compress)
    _idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", np.arange(6) % 10, 0x801, compress)
    source = create_source("fashion_mnist", "val", str(tmp_path))
    assert len(source) == 6 and source[2][0].shape == (28, 28, 1) and source.class_names[0] == "T-shirt/top"
    assert np.array_equal(source[3][0][..., 0], images[3])
    with pytest.raises(DatasetError, match=r"mnist not found: looked for train-images-idx3-ubyte\[.gz\] in "):
        create_source("mnist", "train", str(tmp_path))
    _idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", np.arange(5) % 10, 0x801, compress)
    with pytest.raises(DatasetError, match=r"has 6 images but .* has 5 labels"):
        create_source("mnist", "val", str(tmp_path))


def _image_tree(root, corrupt=False):
    for c, colour in enumerate([(255, 0, 0), (0, 255, 0)]):
        folder = root / "train" / f"class_{c}"
        folder.mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (40 + i, 30), colour).save(folder / f"{i}.jpg")
        Image.new("L", (20, 20), 128).save(folder / "grey.png")
        Image.new("RGBA", (20, 20), (1, 2, 3, 4)).save(folder / "rgba.png")
        Image.new("CMYK", (20, 20), (1, 2, 3, 4)).save(folder / "cmyk.jpg")
    if corrupt:
        (root / "train" / "class_1" / "broken.jpg").write_bytes(b"not an image")


def test_image_folder_modes_and_corrupt_files(tmp_path):
    """A corrupt file stops at the pre-scan with its name, or is left out with --skip_corrupt_images."""
    _image_tree(tmp_path, corrupt=True)
    argv = ["--dataset", "imagefolder", "--data_dir", str(tmp_path), "--image_resize", "32", "--batch_size", "4",
            "--num_parallel_workers", "1"]
    with pytest.raises(DatasetError, match=r"^cannot decode image .*class_1/broken.jpg: .*pass --skip_corrupt_images"):
        create_source("imagefolder", "train", str(tmp_path))
    with pytest.raises(DatasetError, match=r"^cannot decode image .*class_1/broken.jpg"):
        create_loader(_data(argv), "train", train=False, model_cfg=CFG)
    with pytest.warns(UserWarning, match=r"^left out: cannot decode image .*broken.jpg"):
        source = create_source("imagefolder", "train", str(tmp_path), skip_corrupt=True)
    assert source.class_names == ["class_0", "class_1"] and len(source) == 12
    assert all(source.decode(i).shape[-1] == 3 for i in range(12))
    with pytest.warns(UserWarning, match="left out 1 of 13 images"):
        loader = create_loader(_data(argv + ["--skip_corrupt_images"]), "train", train=False, model_cfg=CFG)
    batches = list(iterate_batches(loader.dataset))
    assert loader.steps == len(batches) == 3 and batches[0][0].shape == (4, 3, 32, 32)
    with pytest.raises(DatasetError, match=r"image folder not found: .*/val"):
        create_source("imagefolder", "val", str(tmp_path))
    with pytest.raises(DatasetError, match=r"--dataset imagenet needs --data_dir"):
        create_source("imagenet", "val", "")
    with pytest.raises(DatasetError, match=r"--dataset must be one of"):
        create_source("svhn", "val", "")


def test_cpp_decoding_gives_pillows_pixels_for_every_kind_of_file(tmp_path):
    """Every image the folder source hands to MindSpore's C++ decoder (JPEG, upper-case .JPEG, grey, CMYK,
    progressive, palette/RGBA/LA/16-bit PNG, BMP, TIFF, WebP, a JPEG with trailing bytes) decodes to
    exactly the RGB pixels Pillow gives (``load_rgb``)."""
    from mindcv_res2net.data.image_files import NATIVE, PILLOW, load_rgb

    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    folder = tmp_path / "train" / "a"
    folder.mkdir(parents=True)
    rgb.save(folder / "photo.JPEG", quality=90)
    rgb.convert("L").save(folder / "grey.jpg")
    rgb.convert("CMYK").save(folder / "cmyk.jpg")
    rgb.save(folder / "progressive.jpg", progressive=True)
    rgb.convert("P").save(folder / "palette.png")
    rgb.convert("RGBA").save(folder / "rgba.png")
    rgb.convert("LA").save(folder / "la.png")
    Image.fromarray((np.arange(1200).reshape(30, 40) * 50).astype(np.uint16)).save(folder / "deep.png")
    rgb.save(folder / "bitmap.bmp")
    rgb.save(folder / "scan.tif")
    rgb.save(folder / "web.webp", lossless=True)
    (folder / "trailing.jpg").write_bytes((folder / "photo.JPEG").read_bytes() + b"camera notes")
    source = create_source("imagefolder", "train", str(tmp_path))
    assert len(source) == 12
    for i, (path, _) in enumerate(source.samples):
        assert np.array_equal(source.decode(i), load_rgb(path)), path
    kinds = {path.rsplit("/", 1)[-1]: kind for (path, _), kind in zip(source.samples, source.decoders)}
    assert kinds["photo.JPEG"] == kinds["grey.jpg"] == kinds["palette.png"] == NATIVE
    assert kinds["cmyk.jpg"] == kinds["deep.png"] == kinds["web.webp"] == kinds["trailing.jpg"] == PILLOW


def test_truncated_image_is_named_by_the_pre_scan(tmp_path):
    _image_tree(tmp_path)
    whole = (tmp_path / "train" / "class_0" / "0.jpg").read_bytes()
    (tmp_path / "train" / "class_0" / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DatasetError, match=r"^cannot decode image .*class_0/cut.jpg: .*(?i:truncated)"):
        create_source("imagefolder", "train", str(tmp_path))


def test_file_broken_after_the_scan_is_named_when_the_cpp_decoder_fails(tmp_path):
    """MindSpore's pipeline cannot go on after a decode error; the error still names the file."""
    _image_tree(tmp_path)
    loader = create_loader(_data(["--dataset", "imagefolder", "--data_dir", str(tmp_path), "--image_resize", "32",
                                  "--batch_size", "2", "--num_parallel_workers", "2"]), "train", train=True,
                           model_cfg=CFG)
    assert len(list(iterate_batches(loader.for_epoch(1)))) == loader.steps == 6
    (tmp_path / "train" / "class_1" / "2.jpg").write_bytes(b"garbage" * 50)
    with pytest.raises(DatasetError, match=r"^cannot decode image .*class_1/2.jpg: MindSpore's decoder failed"):
        list(iterate_batches(loader.for_epoch(1)))


def test_image_folder_epochs_repeat_exactly_and_shards_are_equal(tmp_path):
    """An epoch's batches depend only on the seed and the epoch (random crops included, 2 workers), so a
    resumed run sees what an unbroken one saw; every rank gets the same number of different images."""
    _image_tree(tmp_path)
    data = _data(["--dataset", "imagefolder", "--data_dir", str(tmp_path), "--image_resize", "32",
                  "--batch_size", "2", "--num_parallel_workers", "2"])
    loader = create_loader(data, "train", train=True, model_cfg=CFG)
    first = [b[0].asnumpy() for b in iterate_batches(loader.for_epoch(2))]
    again = [b[0].asnumpy() for b in iterate_batches(loader.for_epoch(2))]
    other = [b[0].asnumpy() for b in iterate_batches(loader.for_epoch(3))]
    assert all(np.array_equal(a, b) for a, b in zip(first, again)) and len(first) == 6
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    labels = [[int(x) for b in iterate_batches(create_loader(data, "train", train=True, model_cfg=CFG, num_shards=2, shard_id=r)
                                               .for_epoch(2)) for x in b[1].asnumpy()] for r in (0, 1)]
    assert len(labels[0]) == len(labels[1]) == 6


def test_batches_are_uint8_normalised_in_the_step_or_float_from_the_host():
    """The default hands uint8 CHW batches to the step, whose ``Normalize`` gives the host path's floats."""
    import mindspore as ms

    from mindcv_res2net.evaluate import device_normalize

    argv = ["--dataset", "digits", "--image_resize", "32", "--batch_size", "8", "--num_samples", "16"]
    on_device, on_host = _data(argv), _data(argv + ["--normalize_on_device", "false"])
    raw, _ = next(iterate_batches(create_loader(on_device, "val", train=False, model_cfg=CFG).dataset))
    host, _ = next(iterate_batches(create_loader(on_host, "val", train=False, model_cfg=CFG).dataset))
    assert str(raw.dtype) == "UInt8" and str(host.dtype) == "Float32" and raw.shape == host.shape == (8, 3, 32, 32)
    assert device_normalize(on_host, CFG) is None
    normalised = device_normalize(on_device, CFG)(raw)
    assert normalised.dtype == ms.float32
    assert np.allclose(normalised.asnumpy(), host.asnumpy(), atol=1e-5)


def test_one_rule_decides_evaluation_preprocessing():
    from mindcv_res2net.data import DataConfig, eval_preprocessing

    folder = eval_preprocessing(DataConfig(dataset="imagenet", image_resize=224), CFG)
    assert (folder.size, folder.resize, folder.stretch) == (224, 256, False)
    assert folder.mean == pytest.approx((123.675, 116.28, 103.53))
    assert eval_preprocessing(DataConfig(dataset="imagenet", image_resize=224, crop_pct=1.0), CFG).resize == 224
    assert eval_preprocessing(DataConfig(dataset="cifar10", image_resize=32), CFG).stretch is False
    assert eval_preprocessing(DataConfig(dataset="digits", image_resize=32), CFG).stretch is True
    grey = eval_preprocessing(DataConfig(dataset="digits", in_channels=1), CFG)
    assert len(grey.mean) == len(grey.std) == 1
    with pytest.raises(DatasetError, match=r"--crop_pct must be from 0.1 to 1, got 1.5"):
        eval_preprocessing(DataConfig(crop_pct=1.5), CFG)
    with pytest.raises(DatasetError, match=r"--std values must be positive"):
        eval_preprocessing(DataConfig(mean=(1.0, 2.0, 3.0), std=(1.0, 0.0, 1.0)), CFG)
    stored = DataConfig.from_mapping({"dataset": "cifar10", "scale": [0.5, 1.0], "lr": 0.1})
    assert stored.scale == (0.5, 1.0) and stored.dataset == "cifar10"


@pytest.mark.parametrize("extra", [["--re_prob", "1.0", "--color_jitter", "0.4"], ["--auto_augment", "randaug"],
                                   ["--auto_augment", "autoaug", "--vflip", "0.5"]])
def test_imagenet_train_transforms(tmp_path, extra):
    _image_tree(tmp_path)
    args = _data(["--dataset", "imagefolder", "--data_dir", str(tmp_path), "--image_resize", "48",
                       "--batch_size", "6", *extra])
    loader = create_loader(args, "train", train=True, model_cfg=CFG)
    batches = list(iterate_batches(loader.dataset))
    assert loader.steps == len(batches) == 2 and batches[0][0].shape == (6, 3, 48, 48)
    if "--re_prob" in extra:  # erased patches hold the fill value 0 (normalised): the mean colour in uint8
        assert str(batches[0][0].dtype) == "UInt8"
        assert (batches[0][0].asnumpy()[:, 0] == 124).any()  # round(0.485 * 255)


def test_grey_images_repeated_or_kept(tmp_path):
    for channels in (3, 1):
        args = _data(["--dataset", "digits", "--image_resize", "32", "--batch_size", "8",
                           "--in_channels", str(channels), "--num_samples", "16"])
        loader = create_loader(args, "train", train=True, model_cfg=CFG)
        images, labels = next(loader.dataset.create_tuple_iterator(num_epochs=1))
        assert images.shape == (8, channels, 32, 32) and str(images.dtype) == "UInt8"
        if channels == 3:
            x = images.asnumpy()
            assert np.array_equal(x[:, 0], x[:, 1]) and np.array_equal(x[:, 0], x[:, 2])


def test_mixup_and_cutmix_soft_targets():
    images = np.random.default_rng(0).standard_normal((6, 3, 8, 8)).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 4, 5])
    for mixup, cutmix in ((0.2, 0.0), (0.0, 1.0), (0.2, 1.0)):
        mixed, targets = BatchMixer(10, mixup_alpha=mixup, cutmix_alpha=cutmix, prob=1.0, label_smoothing=0.1, seed=1)(images, labels)
        assert mixed.shape == images.shape and targets.shape == (6, 10)
        assert np.allclose(targets.sum(1), 1.0, atol=1e-6) and (targets >= 0.01 - 1e-7).all()
        assert (targets[np.arange(6), labels] + targets[np.arange(6), labels[::-1]] > 0.85).all()
    _, plain = BatchMixer(10, mixup_alpha=0.2, cutmix_alpha=0.0, prob=0.0)(images, labels)
    assert np.array_equal(plain.argmax(1), labels) and plain.max() == 1.0


def test_batch_larger_than_dataset_is_a_clear_error():
    args = _data(["--dataset", "digits", "--batch_size", "64", "--num_samples", "10"])
    with pytest.raises(DatasetError, match=r"--batch_size 64 is larger than the 10 training images"):
        create_loader(args, "train", train=True, model_cfg=CFG)


def test_train_num_samples_limits_only_the_training_split():
    args = _data(["--dataset", "digits", "--batch_size", "8", "--train_num_samples", "40"])
    assert create_loader(args, "train", train=True, model_cfg=CFG).steps == 5  # 40 images, drop_remainder
    assert create_loader(args, "val", train=False, model_cfg=CFG).steps == 45  # the whole 360-image split
    args = _data(["--dataset", "digits", "--batch_size", "8", "--train_num_samples", "40", "--num_samples", "16"])
    assert create_loader(args, "train", train=True, model_cfg=CFG).steps == 5 and create_loader(args, "val", train=False, model_cfg=CFG).steps == 2


def test_decompression_bomb_is_an_error_or_skipped(tmp_path, monkeypatch):
    _image_tree(tmp_path)
    Image.new("RGB", (300, 200), (9, 9, 9)).save(tmp_path / "train" / "class_0" / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50_000)  # 300 x 200 = 60,000 pixels: over the limit
    with pytest.raises(DatasetError, match=r"^cannot read image .*bomb.png: 300x200 = 60000 pixels, more than "
                                           r"Pillow's limit of 50000 \(a decompression bomb\?\)"):
        create_source("imagefolder", "train", str(tmp_path))
    with pytest.warns(UserWarning, match=r"^left out: cannot read image .*bomb.png"):
        skipping = create_source("imagefolder", "train", str(tmp_path), skip_corrupt=True)
    assert len(skipping) == 12 and not any(p.endswith("bomb.png") for p, _ in skipping.samples)


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    from mindcv_res2net.data.image_files import load_rgb

    values = np.array([[0, 257, 32896], [65535, 1000, 60000]], np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    rgb = load_rgb(str(tmp_path / "deep.png"))
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 3, 3)
    assert rgb[..., 0].tolist() == [[0, 1, 128], [255, 4, 233]] and (rgb[..., 0] == rgb[..., 2]).all()


def test_empty_class_folder_is_an_error_naming_it(tmp_path):
    _image_tree(tmp_path)
    (tmp_path / "train" / "class_2").mkdir()
    (tmp_path / "train" / "class_2" / "notes.txt").write_text("no images")
    with pytest.raises(DatasetError, match=rf"^class folder {tmp_path}/train/class_2 holds no images"):
        create_source("imagefolder", "train", str(tmp_path))


def test_fifo_named_like_an_image_is_skipped_never_opened(tmp_path):
    import os

    from mindcv_res2net.data.image_files import load_rgb

    _image_tree(tmp_path)
    fifo = tmp_path / "train" / "class_0" / "x.jpg"
    os.mkfifo(fifo)
    with pytest.warns(UserWarning, match=rf"skipping {fifo}: not a regular file"):
        source = create_source("imagefolder", "train", str(tmp_path))
    assert len(source) == 12 and all(p != str(fifo) for p, _ in source.samples)
    with pytest.raises(DatasetError, match=rf"cannot read image {fifo}: not a regular file"):
        load_rgb(str(fifo))


def test_sample_limits_work_on_folders_of_mixed_image_sizes(tmp_path):
    _image_tree(tmp_path)  # 40x30, 41x30, 42x30 and 20x20 images
    for flag in ("--train_num_samples", "--num_samples"):
        args = _data(["--dataset", "imagefolder", "--data_dir", str(tmp_path), "--image_resize", "32",
                           "--batch_size", "3", "--num_parallel_workers", "1", flag, "9"])
        loader = create_loader(args, "train", train=True, model_cfg=CFG)
        batches = list(iterate_batches(loader.for_epoch(1)))
        assert loader.num_images == 9 and len(batches) == 3 and batches[0][0].shape == (3, 3, 32, 32)


def test_mixup_targets_have_the_models_class_count():
    args = _data(["--dataset", "digits", "--image_resize", "32", "--batch_size", "8", "--num_samples", "16",
                       "--num_classes", "12", "--mixup", "0.2", "--num_parallel_workers", "1"])
    loader = create_loader(args, "train", train=True, model_cfg=CFG)
    _, targets = next(iterate_batches(loader.for_epoch(1)))
    assert loader.num_classes == 12 and targets.shape == (8, 12)


def test_photo_folder_tool_makes_a_reproducible_image_folder(tmp_path):
    """tools/make_photo_folder.py: real photographs, ~500x375 JPEGs, the same files for the same seed,
    readable by the image-folder source, and never mixed into another run's folder."""
    from mindcv_res2net.data.sources import ImageFolderSource

    tool = load_script("tools/make_photo_folder.py")
    train = tool.make_photo_folder(str(tmp_path / "a"), classes=2, images_per_class=3, seed=1)
    again = tool.make_photo_folder(str(tmp_path / "b"), classes=2, images_per_class=3, seed=1)
    source = ImageFolderSource(train)
    assert source.class_names == ["class_00", "class_01"] and len(source) == 6
    for path, _ in source.samples:
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert 330 <= min(image.size) <= 415 and 445 <= max(image.size) <= 555
            assert np.asarray(image).std() > 10  # a photograph, not a flat fill
        with open(path, "rb") as f, open(path.replace(train, again), "rb") as g:
            assert f.read() == g.read()
    with pytest.raises(ValueError, match="already holds files"):
        tool.make_photo_folder(str(tmp_path / "a"), classes=1, images_per_class=1)


@pytest.mark.e2e
def test_evaluation_is_the_same_with_uint8_batches_and_host_normalised_ones():
    """validate's two paths (normalise in the step, or on the host) give the same logits."""
    from mindcv_res2net.evaluate import evaluate
    from mindcv_res2net.evaluate import device_normalize
    from mindcv_res2net.loss import create_loss
    from mindcv_res2net.models import create_model

    model = create_model("res2net50", num_classes=10)
    argv = ["--dataset", "digits", "--image_resize", "32", "--batch_size", "16", "--num_samples", "32"]
    results = []
    for extra in ([], ["--normalize_on_device", "false"]):
        data = _data(argv + extra)
        loader = create_loader(data, "val", train=False, model_cfg=CFG)
        results.append(evaluate(model, loader.dataset, create_loss("CE", 10), steps=loader.steps, progress=False,
                                normalize=device_normalize(data, CFG)))
    assert results[0]["images"] == results[1]["images"] == 32
    assert results[0]["top1"] == results[1]["top1"] and abs(results[0]["loss"] - results[1]["loss"]) < 1e-4


def test_data_dir_inside_the_split_folder_gets_the_layout(tmp_path):
    (tmp_path / "photos" / "train" / "cat").mkdir(parents=True)
    inside = str(tmp_path / "photos" / "train")
    with pytest.raises(DatasetError, match=rf"^--data_dir {inside}: has no train/ folder, but {tmp_path}/photos has: "
                                           rf"--data_dir is the folder above the splits \({tmp_path}/photos, holding "
                                           r"train/<class>/<image>\), not a split folder$"):
        create_source("imagefolder", "train", inside)
