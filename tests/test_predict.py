"""tools/predict.py and engine.predict: preprocessing, class names, per-file errors, JSON output."""
import json

import numpy as np
import pytest
from PIL import Image

from conftest import save_trained_like_checkpoint
from mindcv_res2net.engine.predict import imagenet_class_names, load_for_prediction, predict
from conftest import run

NAMES = ["circle", "square", "triangle"]


@pytest.fixture(scope="module")
def run_checkpoint(tmp_path_factory):
    """A 3-class res2net50 checkpoint as train.py writes it: metadata with class names and the run's config."""
    folder = tmp_path_factory.mktemp("predict")
    path = str(folder / "shapes-best.ckpt")
    meta = dict(model="res2net50", num_classes=3, in_channels=3, class_names=NAMES,
                config=dict(dataset="digits", image_resize=32, interpolation="bilinear"))
    save_trained_like_checkpoint(path, num_classes=3, metadata=meta, seed=1)
    rng = np.random.default_rng(1)
    grey = (rng.random((20, 24)) * 255).astype(np.uint8)
    Image.fromarray(grey, "L").save(folder / "grey.png")
    Image.fromarray(np.stack([grey] * 3, -1), "RGB").save(folder / "rgb.png")
    Image.fromarray(np.stack([grey] * 3 + [np.full_like(grey, 255)], -1), "RGBA").save(folder / "rgba.png")
    Image.fromarray(np.stack([grey] * 3, -1), "RGB").convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return path, folder


def test_predict_function_uses_the_runs_class_names_and_converts_modes(run_checkpoint):
    path, folder = run_checkpoint
    model, config = load_for_prediction("res2net50", path)
    assert config["dataset"] == "digits"
    files = [str(folder / n) for n in ("grey.png", "rgb.png", "rgba.png", "cmyk.jpg")]
    results = predict(model, files, topk=2, run_config=config)
    assert all("error" not in r for r in results)
    assert [t["name"] for t in results[0]["top"]][0] in NAMES and len(results[0]["top"]) == 2
    probs = [[t["probability"] for t in r["top"]] for r in results]
    np.testing.assert_allclose(probs[0], probs[1], atol=1e-6)  # grey = the same picture in RGB
    np.testing.assert_allclose(probs[0], probs[2], atol=1e-6)  # opaque alpha dropped
    np.testing.assert_allclose(probs[0], probs[3], atol=0.05)  # CMYK JPEG: lossy, converted back to RGB
    one_by_one = predict(model, files, topk=2, run_config=config, batch_size=1)
    assert [r["file"] for r in one_by_one] == files
    np.testing.assert_allclose([[t["probability"] for t in r["top"]] for r in one_by_one], probs, atol=1e-6)
    with pytest.raises(ValueError, match="--batch_size must be at least 1, got 0"):
        predict(model, files, batch_size=0)


def test_predict_cli_reports_bad_files_and_predicts_the_rest(run_checkpoint, tmp_path):
    path, folder = run_checkpoint
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\n")
    proc = run(["tools/predict.py", "--model", "res2net50", "--ckpt_path", path, "--topk", "3", "--labels",
                str(labels), "--json", "--batch_size", "2", str(folder), str(tmp_path / "missing.png")])
    assert proc.returncode == 1, proc.stderr[-2000:]
    results = {r["file"].rsplit("/", 1)[-1]: r for r in json.loads(proc.stdout)}
    assert set(results) == {"grey.png", "rgb.png", "rgba.png", "cmyk.jpg", "corrupt.jpg", "missing.png"}
    assert "cannot decode image" in results["corrupt.jpg"]["error"]
    assert results["missing.png"]["error"].startswith("file not found")
    top = results["grey.png"]["top"]
    assert sorted(t["name"] for t in top) == ["a", "b", "c"] and abs(sum(t["probability"] for t in top) - 1) < 1e-6
    proc = run(["tools/predict.py", "--model", "res2net50", "--ckpt_path", path, str(folder / "rgb.png")])
    assert proc.returncode == 0 and proc.stdout.startswith(str(folder / "rgb.png") + ": ")
    proc = run(["tools/predict.py", "--model", "res2net50", str(folder / "rgb.png")])
    assert proc.returncode == 2 and "needs --ckpt_path FILE or --pretrained" in proc.stderr


def test_imagenet_names_ship_with_the_package():
    names = imagenet_class_names()
    assert len(names) == 1000 and names[0] == "tench" and names[999] == "toilet tissue"
