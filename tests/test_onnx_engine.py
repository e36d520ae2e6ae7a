"""--engine onnxruntime: predict and validate run an ONNX export and agree with MindSpore."""
import json
import os
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import run, run_tool, save_trained_like_checkpoint
from mindcv_res2net.utils.errors import UserError

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def digits_checkpoint(tmp_path_factory):
    """A 10-class res2net50 checkpoint as train.py writes it for digits at 32 px, and a few images."""
    folder = tmp_path_factory.mktemp("onnx_engine")
    path = str(folder / "digits-best.ckpt")
    meta = dict(model="res2net50", num_classes=10, in_channels=3, class_names=[str(d) for d in range(10)],
                config=dict(dataset="digits", image_resize=32, interpolation="bilinear"))
    save_trained_like_checkpoint(path, num_classes=10, metadata=meta, seed=3)
    rng = np.random.default_rng(3)
    for i in range(3):
        Image.fromarray((rng.random((16, 20, 3)) * 255).astype(np.uint8)).save(folder / f"img{i}.png")
    return path, folder


@pytest.mark.e2e
def test_predict_with_onnxruntime_matches_mindspore_and_reuses_its_export(digits_checkpoint, tmp_path, monkeypatch):
    from mindcv_res2net.deploy.predict import load_for_prediction, load_onnx_for_prediction, predict

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path, folder = digits_checkpoint
    files = sorted(str(p) for p in folder.glob("*.png"))
    model, config = load_for_prediction("res2net50", path)
    expected = predict(model, files, topk=10, run_config=config)
    classifier, config = load_onnx_for_prediction("res2net50", ckpt_path=path)
    got = predict(classifier, files, topk=10, run_config=config, batch_size=2)
    for a, b in zip(expected, got):
        assert [t["name"] for t in a["top"]][:1] == [t["name"] for t in b["top"]][:1]
        pa = {t["index"]: t["probability"] for t in a["top"]}
        pb = {t["index"]: t["probability"] for t in b["top"]}
        assert max(abs(pa[k] - pb[k]) for k in pa) < 1e-5
    cached = list((tmp_path / "cache" / "mindcv_res2net" / "onnx").glob("*.onnx"))
    assert len(cached) == 1 and cached[0].name.startswith("res2net50-32px-bnfold-")
    stamp = cached[0].stat().st_mtime_ns
    load_onnx_for_prediction("res2net50", ckpt_path=path)  # the same weights: the cached file, not a new export
    assert cached[0].stat().st_mtime_ns == stamp
    assert sorted(p.name for p in cached[0].parent.iterdir()) == [cached[0].name, cached[0].name + ".sha256"]
    # logits within 1e-4 of the Cell's on the same preprocessed batch
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    import mindspore as ms

    model.set_train(False)
    assert np.abs(classifier.run(x) - model(ms.Tensor(x)).asnumpy()).max() < 1e-4


@pytest.mark.e2e
def test_predict_cli_engine_onnxruntime_and_its_errors(digits_checkpoint, tmp_path, capsys):
    path, folder = digits_checkpoint
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    ours = run(["tools/predict.py", "--model", "res2net50", "--ckpt_path", path, "--json", str(folder)], env)
    onnx = run(["tools/predict.py", "--model", "res2net50", "--ckpt_path", path, "--json", "--engine",
                "onnxruntime", str(folder)], env)
    assert ours.returncode == onnx.returncode == 0, onnx.stderr[-2000:]
    a, b = json.loads(ours.stdout), json.loads(onnx.stdout)
    assert [r["file"] for r in a] == [r["file"] for r in b]
    assert [r["top"][0]["name"] for r in a] == [r["top"][0]["name"] for r in b]
    exported = str(tmp_path / "fixed")
    code, _ = run_tool("export", ["--model", "res2net50", "--ckpt_path", path, "--format", "ONNX", "--batch_size",
                                  "2", "--image_size", "32", "--fuse_bn", "--file_name", exported], capsys)
    assert code == 0
    from mindcv_res2net.deploy.predict import load_onnx_for_prediction, predict

    classifier, config = load_onnx_for_prediction("res2net50", onnx_path=exported + ".onnx")
    assert config is None and classifier.fixed_batch == 2 and classifier.default_cfg["input_size"] == (3, 32, 32)
    files = sorted(str(p) for p in folder.glob("*.png"))  # 3 images: a fixed batch of 2 runs in padded chunks
    results = predict(classifier, files)
    assert [r["file"] for r in results] == files and all(r["top"][0]["name"].startswith("class ") for r in results)
    code, err = run_tool("predict", ["--model", "res2net50", "--engine", "tensorrt", str(folder)], capsys)
    assert code == 2 and "--engine must be one of mindspore, onnxruntime, got 'tensorrt'" in err
    code, err = run_tool("predict", ["--model", "res2net50", "--onnx_path", exported + ".onnx", str(folder)], capsys)
    assert code == 2 and "--onnx_path needs --engine onnxruntime" in err
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    code, err = run_tool("predict", ["--model", "res2net50", "--engine", "onnxruntime", "--onnx_path", str(bad),
                                     str(folder)], capsys)
    assert code == 2 and f"--onnx_path {bad}: not a model ONNX Runtime can load" in err
    assert len(err.strip().splitlines()) == 1


def test_missing_onnxruntime_is_one_line_saying_what_to_install(monkeypatch):
    from mindcv_res2net.utils.engines import import_onnxruntime

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(UserError, match=r"^--engine onnxruntime needs the onnxruntime package: pip install"):
        import_onnxruntime()


@pytest.mark.e2e
def test_validate_with_onnxruntime_reports_mindsporess_top1(digits_checkpoint, tmp_path, monkeypatch):
    from mindcv_res2net.cli.parser import parse_config
    from mindcv_res2net.deploy.validate import validate

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path, _ = digits_checkpoint
    argv = ["--model", "res2net50", "--dataset", "digits", "--image_resize", "32", "--num_samples", "96",
            "--batch_size", "32", "--ckpt_path", path, "--mode", "1"]
    ours = validate(*parse_config(argv))
    onnx = validate(*parse_config(argv + ["--engine", "onnxruntime"]))
    assert ours["images"] == onnx["images"] == 96
    assert abs(ours["top1"] - onnx["top1"]) <= 100.0 / 96 and abs(ours["top5"] - onnx["top5"]) <= 100.0 / 96
    assert abs(ours["loss"] - onnx["loss"]) < 1e-3
    exported = next((tmp_path / "cache" / "mindcv_res2net" / "onnx").glob("*.onnx"))
    again = validate(*parse_config(argv[:-4] + ["--engine", "onnxruntime", "--onnx_path", str(exported)]))
    assert again["top1"] == onnx["top1"] and os.path.isfile(exported)


@pytest.mark.e2e
def test_benchmark_engines_adds_onnxruntime_rows(tmp_path, capsys):
    out = tmp_path / "bench.json"
    proc = run(["tools/benchmark.py", "--models", "res2net50", "--modes", "graph", "--batch_size", "2",
                "--image_size", "32", "--steps", "1", "--warmup", "0", "--engines", "onnxruntime,onnxruntime_int8",
                "--json", str(out)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(out.read_text())
    fp32, int8 = data["results"]
    for row in (fp32, int8):
        assert row["engine"] == "onnxruntime" and row["infer_img_per_s"] > 0 and row["infer_ms_per_image_b1"] > 0
        assert row["train_img_per_s"] is None
    assert (fp32["precision"], int8["precision"]) == ("fp32", "int8") and "isa" in data["machine"]
    assert data["machine"]["onnxruntime"] and data["machine"]["onnx"]  # the versions that made the rows
    assert "| mindcv_res2net (onnxruntime, BN folded) | res2net50 |" in proc.stdout
    code, err = run_tool("benchmark", ["--engines", "mindspore,tensorrt"], capsys)
    assert code == 2 and "--engines takes mindspore, onnxruntime, onnxruntime_int8, got 'tensorrt'" in err


@pytest.mark.e2e
def test_int8_export_keeps_the_top1_class_and_errors_are_one_line(digits_checkpoint, tmp_path, capsys):
    """--quantize int8: ONNX Runtime's static QDQ model, calibrated on the run's own training split
    (digits, from the checkpoint's config) or on a folder; the same top-1 class as fp32 on the images."""
    pytest.importorskip("onnx")
    from mindcv_res2net.deploy.onnx_runtime import OnnxClassifier
    from mindcv_res2net.data.preprocess import eval_preprocess
    from mindcv_res2net.deploy.predict import load_for_prediction

    path, folder = digits_checkpoint
    int8 = str(tmp_path / "int8")
    code, err = run_tool("export", ["--model", "res2net50", "--ckpt_path", path, "--format", "ONNX", "--batch_size",
                                    "-1", "--quantize", "int8", "--calib_images", "48", "--file_name", int8], capsys)
    assert code == 0, err
    fp32 = str(tmp_path / "fp32")
    assert run_tool("export", ["--model", "res2net50", "--ckpt_path", path, "--format", "ONNX", "--batch_size", "-1",
                               "--fuse_bn", "--file_name", fp32], capsys)[0] == 0
    model, config = load_for_prediction("res2net50", path)
    preprocess = eval_preprocess(model, config)
    from sklearn.datasets import load_digits

    scans = load_digits().images[:24]
    for i, scan in enumerate(scans):
        Image.fromarray((scan * 255 / 16).astype(np.uint8)).save(tmp_path / f"scan{i}.png")
    x = np.stack([preprocess(str(tmp_path / f"scan{i}.png")) for i in range(len(scans))])
    quantized, full = OnnxClassifier(int8 + ".onnx").run(x), OnnxClassifier(fp32 + ".onnx").run(x)
    assert (quantized.argmax(1) == full.argmax(1)).mean() >= 0.9
    assert os.path.getsize(int8 + ".onnx") < 0.4 * os.path.getsize(fp32 + ".onnx")  # int8 weights
    code, err = run_tool("export", ["--model", "res2net50", "--ckpt_path", path, "--quantize", "int8", "--file_name",
                                    str(tmp_path / "m")], capsys)
    assert code == 2 and "--quantize int8 needs --format ONNX" in err
    code, err = run_tool("export", ["--model", "res2net50", "--ckpt_path", path, "--format", "ONNX", "--quantize",
                                    "int8", "--calib_data", str(tmp_path / "none"), "--file_name",
                                    str(tmp_path / "m")], capsys)
    assert code == 2 and "--calib_data" in err and "not a folder of images" in err
    code, err = run_tool("export", ["--model", "res2net50", "--ckpt_path", path, "--format", "ONNX", "--quantize",
                                    "int8", "--calib_images", "0", "--file_name", str(tmp_path / "m")], capsys)
    assert code == 2 and "--calib_images must be at least 1, got 0" in err
    assert not list(tmp_path.glob("m.*")) and not list(tmp_path.glob(".partial-*"))
