"""tools/predict.py and deploy.predict: preprocessing, class names, per-file errors, JSON output; class and file
names with newlines or bytes that are not UTF-8 print escaped on one line each and stay exact in JSON."""
import json
import os
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from helpers.programs import assert_quiet_exit, run, run_main, tool_main
from helpers.checkpoints import ODD_CLASS_NAMES, save_trained_like_checkpoint
from mindcv_res2net.deploy.predict import (escape_text, format_results, imagenet_class_names, load_for_prediction,
                                          predict)

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


@pytest.mark.e2e
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


@pytest.mark.e2e
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


def test_predict_uses_the_runs_crop_pct(run_checkpoint):
    from mindcv_res2net.data.preprocess import eval_preprocess

    path, folder = run_checkpoint
    model, config = load_for_prediction("res2net50", path)
    image = str(folder / "rgb.png")
    base = dict(config, dataset="imagefolder", image_resize=16)
    wide = eval_preprocess(model, dict(base, crop_pct=1.0))(image)
    tight = eval_preprocess(model, dict(base, crop_pct=0.5))(image)
    assert wide.shape == tight.shape == (3, 16, 16) and not np.allclose(wide, tight)


@pytest.mark.e2e
def test_non_finite_weights_warn_and_json_stays_valid(run_checkpoint, tmp_path):
    from mindcv_res2net.weights import read_checkpoint, save_weights

    path, folder = run_checkpoint
    state, metadata = read_checkpoint(path)
    state["fc.bias"] = np.full_like(state["fc.bias"], np.nan)
    broken = save_weights(state, tmp_path / "nan.ckpt", metadata=metadata)
    proc = run(["tools/predict.py", "--model", "res2net50", "--ckpt_path", broken, "--json", str(folder / "rgb.png")])
    assert proc.returncode == 1 and "warning: " in proc.stderr and "1 tensors hold NaN or Inf values (fc.bias)" \
        in proc.stderr, proc.stderr
    (result,) = json.loads(proc.stdout)  # strict JSON: no NaN literal
    assert result["error"].startswith("the network's outputs are not finite")


@pytest.mark.e2e
@pytest.mark.parametrize("tool", ["predict", "export", "validate"])
def test_crafted_metadata_is_one_line_in_every_tool(run_checkpoint, tmp_path, tool):
    from mindcv_res2net.weights import read_checkpoint, save_weights

    path, folder = run_checkpoint
    state, metadata = read_checkpoint(path)
    crafted = save_weights(state, tmp_path / "crafted.ckpt",
                           metadata=dict(metadata, config=dict(metadata["config"], image_resize="huge")))
    argv = {"predict": ["tools/predict.py", "--model", "res2net50", "--ckpt_path", crafted, str(folder / "rgb.png")],
            "export": ["tools/export.py", "--model", "res2net50", "--ckpt_path", crafted, "--file_name",
                       str(tmp_path / "out")],
            "validate": ["validate.py", "--model", "res2net50", "--dataset", "digits", "--num_samples", "8",
                         "--image_resize", "32", "--ckpt_path", crafted]}[tool]
    proc = run(argv)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"error: config {crafted} (metadata 'config'): key 'image_resize' must be an "
                                  "integer from 32 to 4096 pixels, got huge"), proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["crafted.ckpt"]


def test_folder_scan_uses_the_loaders_extensions(tmp_path):
    from mindcv_res2net.data.image_files import IMAGE_EXTENSIONS
    from mindcv_res2net.data.preprocess import expand_paths

    for i, ext in enumerate(IMAGE_EXTENSIONS):
        (tmp_path / f"{i}{ext.upper()}").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    assert len(expand_paths([str(tmp_path)])) == len(IMAGE_EXTENSIONS)


def _main(tool, argv, capsys):
    """``tools/<tool>.py`` main(argv) through run_cli in this process: (exit code, stdout, stderr)."""
    return run_main(tool_main(tool), argv, capsys)

# ---------------------------------------------------------------------------------------------- odd names


def _unescape(text):
    """The inverse of escape_text, for the tests."""
    def one(match):
        code = match.group(1)
        if code[0] == "x":
            return chr(0xDC00 + int(code[1:], 16))
        if code[0] in "uU":
            return chr(int(code[1:], 16))
        return {"\\": "\\", "n": "\n", "r": "\r", "t": "\t"}[code]

    return re.sub(r"\\(\\|n|r|t|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})", one, text)


_ANY_TEXT = st.lists(st.one_of(st.characters(), st.sampled_from("\\\n\r\t\x00\x85\u2028\ufeff"),
                               st.integers(0xDC80, 0xDCFF).map(chr), st.integers(0xD800, 0xDFFF).map(chr))
                     ).map("".join)


@settings(max_examples=300, deadline=None)
@given(_ANY_TEXT)
def test_escaped_text_is_one_printable_utf8_line_and_loses_nothing(text):
    escaped = escape_text(text)
    assert escaped.isprintable() and "\n" not in escaped and "\r" not in escaped
    escaped.encode("utf-8")  # no surrogate left: prints on any UTF-8 terminal
    assert _unescape(escaped) == text
    if text.isprintable() and "\\" not in text:
        assert escaped == text  # ordinary names print as they are


def test_format_results_escapes_files_names_and_errors():
    bad_dir = os.fsdecode(b"dir\xff\nname")
    results = [dict(file=f"{bad_dir}/x.png", top=[dict(index=0, name="new\nline", probability=0.5),
                                                   dict(index=1, name=os.fsdecode(b"caf\xe9"), probability=0.25)]),
               dict(file="two\nlines.png", error="cannot identify image file 'two\nlines.png'")]
    assert format_results(results).splitlines() == [
        "dir\\xff\\nname/x.png: new\\nline 50.0%, caf\\xe9 25.0%",
        "two\\nlines.png: error: cannot identify image file 'two\\nlines.png'"]


@pytest.mark.e2e
def test_predict_prints_one_line_per_image_with_odd_names(odd_names_checkpoint):
    path, images = odd_names_checkpoint
    proc = run(["tools/predict.py", "--model", "res2net50", "--ckpt_path", path, "--topk", "10", str(images)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_quiet_exit(proc)
    lines = proc.stdout.splitlines()
    assert sorted(line.split(": ", 1)[0] for line in lines) == [
        f"{images}/dir\\xff\\nname/x.png", f"{images}/plain.png", f"{images}/two\\nlines.png"]
    for line in lines:
        names = [re.sub(r" \d+\.\d%$", "", item) for item in line.split(": ", 1)[1].split(", ")]
        assert sorted(names) == sorted(escape_text(n) for n in ODD_CLASS_NAMES)
        assert "new\\nline" in names and "caf\\xe9" in names and "back\\\\slash" in names


def test_predict_json_keeps_odd_names(odd_names_checkpoint, capsys):
    import json

    path, images = odd_names_checkpoint
    code, out, err = _main("predict", ["--model", "res2net50", "--ckpt_path", path, "--topk", "10", "--json",
                                       str(images)], capsys)
    assert code == 0, err
    results = json.loads(out)
    assert sorted(r["file"] for r in results) == sorted(os.path.join(str(images), p) for p in
                                                        (os.fsdecode(b"dir\xff\nname/x.png"), "plain.png",
                                                         "two\nlines.png"))
    assert all(sorted(t["name"] for t in r["top"]) == sorted(ODD_CLASS_NAMES) for r in results)


def test_onnx_and_labels_directories_say_so(tmp_path):
    from mindcv_res2net.deploy.onnx_runtime import OnnxClassifier
    from mindcv_res2net.deploy.predict import read_labels

    with pytest.raises(FileNotFoundError, match=rf"^--onnx_path {tmp_path}: is a directory, not an .onnx file$"):
        OnnxClassifier(str(tmp_path))
    with pytest.raises(IsADirectoryError, match=rf"^--labels {tmp_path}: is a directory, not a file of class names$"):
        read_labels(str(tmp_path))
