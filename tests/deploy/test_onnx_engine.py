"""--engine onnxruntime: predict and validate run an ONNX export and agree with MindSpore; the cached export is
verified by its recorded sha256 and rebuilt when edited; logits shaped (N, K, 1, 1) work and other output shapes
fail clearly; --onnx_path messages name the flag."""
import json
import os
import re
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mindspore import nn
from PIL import Image

import mindspore as ms
from helpers.programs import run, run_main, run_tool, tool_main
from helpers.checkpoints import save_trained_like_checkpoint
from mindcv_res2net.utils.errors import UserError
from mindcv_res2net.utils.fileio import file_sha256, recorded_sha256, write_sha256_record

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import numpy_helper  # noqa: E402

from helpers.onnx_graphs import conv_pool_graph  # noqa: E402  (needs onnx)


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


def _main(tool, argv, capsys):
    """``tools/<tool>.py`` main(argv) through run_cli in this process: (exit code, stdout, stderr)."""
    return run_main(tool_main(tool), argv, capsys)


def _last_line(err):
    return err.strip().splitlines()[-1]


def _probabilities(results):
    return [{t["index"]: t["probability"] for t in r["top"]} for r in results]


# ---------------------------------------------------------------------------------------------- the ONNX Runtime cache


class _Tiny(nn.Cell):
    """A small network that exports like ours: conv, BatchNorm (folded on export), mean pool -> (N, 4) logits."""

    in_channels, num_classes = 3, 4

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1, has_bias=True)
        self.bn = nn.BatchNorm2d(4)
        rng = np.random.default_rng(0)  # the same weights every time, BatchNorm statistics included
        for param in self.get_parameters():
            param.set_data(ms.Tensor(rng.uniform(0.5, 1.5, param.shape).astype(np.float32)))

    def construct(self, x):
        return self.bn(self.conv(x)).mean(axis=(2, 3))


def test_the_cached_export_is_recorded_with_its_sha256_and_reused(tmp_path, recwarn):
    from mindcv_res2net.deploy.export import onnx_for_network

    path = onnx_for_network(_Tiny(), "tiny", 32, cache_dir=str(tmp_path))
    assert os.path.basename(path).startswith("tiny-32px-bnfold-")
    assert open(path + ".sha256").read() == f"{file_sha256(path)}  {os.path.basename(path)}\n"
    stamp = os.stat(path).st_mtime_ns
    assert onnx_for_network(_Tiny(), "tiny", 32, cache_dir=str(tmp_path)) == path  # same weights (seeded init): reused
    assert os.stat(path).st_mtime_ns == stamp
    assert not [w for w in recwarn if "cached ONNX export" in str(w.message)]


def test_an_edited_cached_export_is_rebuilt_and_says_so(tmp_path):
    from mindcv_res2net.deploy.export import onnx_for_network
    from mindcv_res2net.deploy.onnx_runtime import OnnxClassifier

    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    path = onnx_for_network(_Tiny(), "tiny", 32, cache_dir=str(tmp_path))
    expected = OnnxClassifier(path).run(x)
    graph = onnx.load(path)  # an edit that still loads: every logit changes sign
    for tensor in graph.graph.initializer:
        tensor.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(tensor), tensor.name))
    onnx.save(graph, path)
    assert np.allclose(OnnxClassifier(path).run(x), -expected, atol=1e-5)
    with pytest.warns(UserWarning, match=rf"^{re.escape(path)}: cached ONNX export does not match the sha256 recorded "
                                         r"when it was written \(edited or damaged\?\); exporting it again$"):
        assert onnx_for_network(_Tiny(), "tiny", 32, cache_dir=str(tmp_path)) == path
    assert recorded_sha256(path) == file_sha256(path)
    np.testing.assert_allclose(OnnxClassifier(path).run(x), expected, atol=1e-6)
    os.remove(path + ".sha256")  # killed between writing the file and its record
    with pytest.warns(UserWarning, match=rf"^{re.escape(path)}: cached ONNX export has no readable sha256 record; "
                                         r"exporting it again$"):
        onnx_for_network(_Tiny(), "tiny", 32, cache_dir=str(tmp_path))
    assert recorded_sha256(path) == file_sha256(path)


@pytest.mark.e2e
def test_a_cached_export_that_does_not_load_is_named_without_onnx_path(odd_names_checkpoint, tmp_path, monkeypatch,
                                                                         capsys):
    from mindcv_res2net.deploy.export import cached_onnx_path
    from mindcv_res2net.models import create_model_from_checkpoint

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = cached_onnx_path(create_model_from_checkpoint("res2net50", odd_names_checkpoint[0]), "res2net50", 32)
    os.makedirs(os.path.dirname(path))
    with open(path, "wb") as f:
        f.write(b"not an ONNX graph")
    write_sha256_record(path, file_sha256(path))  # recorded as written: a bad file that its record matches
    code, _, err = _main("predict", ["--model", "res2net50", "--ckpt_path", odd_names_checkpoint[0], "--engine",
                                     "onnxruntime", str(odd_names_checkpoint[1])], capsys)
    assert code == 2 and "--onnx_path" not in err
    assert _last_line(err).startswith(f"error: {path}: not a model ONNX Runtime can load (")


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.text(max_size=40))
def test_a_sha256_record_reads_back_what_was_written(tmp_path_factory, raw, name):
    path = os.path.join(tmp_path_factory.mktemp("record"), "x" + name.replace("/", "").replace("\0", ""))
    write_sha256_record(path, raw.hex())
    assert recorded_sha256(path) == raw.hex()


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.builds(lambda d, rest: d.encode() + rest,
                                                    st.text("0123456789abcdefABCDEF", min_size=60, max_size=70),
                                                    st.binary(max_size=20))))
def test_any_sha256_record_reads_as_a_digest_it_holds_or_none(tmp_path_factory, content):
    path = os.path.join(tmp_path_factory.mktemp("record"), "model.onnx")
    with open(path + ".sha256", "wb") as f:
        f.write(content)
    digest = recorded_sha256(path)
    assert digest is None or (re.fullmatch(r"[0-9a-f]{64}", digest) and content.startswith(digest.encode()))


# ------------------------------------------------------------------------- logits shaped (N, K, 1, 1) and others


def test_logits_shaped_n_k_1_1_predict_correctly(odd_names_checkpoint, tmp_path, capsys):
    from mindcv_res2net.deploy.onnx_runtime import OnnxClassifier
    from mindcv_res2net.data.preprocess import eval_preprocess, expand_paths
    from mindcv_res2net.deploy.predict import load_onnx_for_prediction, predict

    path = str(tmp_path / "pooled.onnx")
    weight, bias = conv_pool_graph(path)
    x = np.random.default_rng(2).standard_normal((3, 3, 32, 32)).astype(np.float32)
    classifier = OnnxClassifier(path)
    assert classifier.num_classes == 4
    np.testing.assert_allclose(classifier.run(x), x.mean(axis=(2, 3)) @ weight.T + bias, rtol=1e-5, atol=1e-5)
    classifier, config = load_onnx_for_prediction("res2net50", onnx_path=path)
    files = expand_paths([str(odd_names_checkpoint[1])])
    results = predict(classifier, files, topk=4, run_config=config)
    images = np.stack([eval_preprocess(classifier, config)(f) for f in files])
    logits = images.mean(axis=(2, 3)) @ weight.T + bias
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    for got, p in zip(_probabilities(results), expected):
        assert np.allclose([got[k] for k in range(4)], p, atol=1e-5)
    code, out, err = _main("predict", ["--model", "res2net50", "--engine", "onnxruntime", "--onnx_path", path,
                                       "--topk", "1", str(odd_names_checkpoint[1])], capsys)
    assert code == 0, err
    assert len(out.splitlines()) == 3 and all(re.search(r": class [0-3] \d+\.\d%$", line) for line in out.splitlines())


def test_logits_of_another_shape_fail_clearly(odd_names_checkpoint, tmp_path, capsys):
    from mindcv_res2net.deploy.onnx_runtime import OnnxClassifier

    declared = str(tmp_path / "map.onnx")
    conv_pool_graph(declared, pool=False)  # declares (N, 4, 32, 32)
    code, _, err = _main("predict", ["--model", "res2net50", "--engine", "onnxruntime", "--onnx_path", declared,
                                     str(odd_names_checkpoint[1])], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert _last_line(err) == (f"error: --onnx_path {declared}: its output has shape ['N', 4, 32, 32], not logits "
                               "(N, K) or (N, K, 1, 1)")
    hidden = str(tmp_path / "hidden.onnx")
    conv_pool_graph(hidden, size=None, pool=False)  # any image size: the output's shows only when run
    with pytest.raises(ValueError, match=rf"^--onnx_path {re.escape(hidden)}: gave outputs of shape \(2, 4, 32, 32\) "
                                         r"for 2 images, not logits \(N, K\) or \(N, K, 1, 1\)$"):
        OnnxClassifier(hidden).run(np.zeros((2, 3, 32, 32), np.float32))


def test_onnx_path_messages_name_the_flag(odd_names_checkpoint, tmp_path):
    from mindcv_res2net.deploy.onnx_runtime import OnnxClassifier
    from mindcv_res2net.deploy.predict import load_onnx_for_prediction

    missing = str(tmp_path / "missing.onnx")
    with pytest.raises(FileNotFoundError, match=rf"^--onnx_path {re.escape(missing)}: file not found$"):
        OnnxClassifier(missing)
    four = str(tmp_path / "four.onnx")
    conv_pool_graph(four)
    with pytest.raises(ValueError, match=rf"^--onnx_path {re.escape(four)}: records no checkpoint .*, so it cannot "
                                         rf"be checked against {re.escape(odd_names_checkpoint[0])}; "):
        load_onnx_for_prediction("res2net50", onnx_path=four, ckpt_path=odd_names_checkpoint[0])
