"""Issue 21, engine side: the ONNX Runtime cache is verified, logits shaped (N, K, 1, 1) work, INT8 export of
non-finite weights is one line and reports the images it really used, predict's text output escapes names."""
import importlib
import os
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mindspore import nn
from PIL import Image

import mindspore as ms

from conftest import assert_quiet_exit, run, run_tool, save_trained_like_checkpoint
from mindcv_res2net.deploy.predict import escape_text, format_results
from mindcv_res2net.utils.errors import UserError
from mindcv_res2net.utils.fileio import file_sha256, recorded_sha256, write_sha256_record

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

# class folders as train.py meets them: a newline, bytes that are not UTF-8 (Latin-1 "café"), a backslash
ODD_NAMES = ["new\nline", os.fsdecode(b"caf\xe9"), "back\\slash"] + [str(d) for d in range(3, 10)]


def _main(tool, argv, capsys):
    """``tools/<tool>.py`` main(argv) through run_cli in this process: (exit code, stdout, stderr)."""
    from mindcv_res2net.utils.cli import run_cli

    module = importlib.import_module(tool)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: module.main(argv))
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def _last_line(err):
    return err.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A 10-class res2net50 digits checkpoint at 32 px whose class names hold a newline and non-UTF-8 bytes,
    and a folder of 3 images, one of them in a folder named with such characters."""
    folder = tmp_path_factory.mktemp("hostile_engine")
    path = str(folder / "odd-best.ckpt")
    meta = dict(model="res2net50", num_classes=10, in_channels=3, class_names=ODD_NAMES,
                config=dict(dataset="digits", image_resize=32, interpolation="bilinear"))
    save_trained_like_checkpoint(path, num_classes=10, metadata=meta, seed=5)
    images = folder / "images"
    odd = images / os.fsdecode(b"dir\xff\nname")
    odd.mkdir(parents=True)
    rng = np.random.default_rng(5)
    for target in (images / "plain.png", images / "two\nlines.png", odd / "x.png"):
        Image.fromarray((rng.random((20, 24, 3)) * 255).astype(np.uint8)).save(target)
    return path, images


def _probabilities(results):
    return [{t["index"]: t["probability"] for t in r["top"]} for r in results]


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


# ------------------------------------------------------------------------------------ the ONNX Runtime cache


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
def test_a_cached_export_that_does_not_load_is_named_without_onnx_path(checkpoint, tmp_path, monkeypatch, capsys):
    from mindcv_res2net.deploy.export import cached_onnx_path
    from mindcv_res2net.models import create_model_from_checkpoint

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = cached_onnx_path(create_model_from_checkpoint("res2net50", checkpoint[0]), "res2net50", 32)
    os.makedirs(os.path.dirname(path))
    with open(path, "wb") as f:
        f.write(b"not an ONNX graph")
    write_sha256_record(path, file_sha256(path))  # recorded as written: a bad file that its record matches
    code, _, err = _main("predict", ["--model", "res2net50", "--ckpt_path", checkpoint[0], "--engine", "onnxruntime",
                                     str(checkpoint[1])], capsys)
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


def _conv_pool_graph(path, classes=4, size=32, pool=True):
    """A small classifier in ONNX: 1x1 Conv to ``classes`` channels, then (``pool``) GlobalAveragePool, so its
    output is (N, K, 1, 1); without the pool it is (N, K, size, size) (``size`` None: any, named H and W).
    Returns (weight (K, 3), bias (K,))."""
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((classes, 3, 1, 1)).astype(np.float32)
    bias = rng.standard_normal(classes).astype(np.float32)
    nodes = [helper.make_node("Conv", ["images", "w", "b"], ["conv" if pool else "logits"])]
    if pool:
        nodes.append(helper.make_node("GlobalAveragePool", ["conv"], ["logits"]))
    height, width = (size, size) if size else ("H", "W")
    out_shape = ["N", classes, 1, 1] if pool else ["N", classes, height, width]
    graph = helper.make_graph(
        nodes, "conv_pool", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, height, width])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, out_shape)],
        initializer=[numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return weight[:, :, 0, 0], bias


def test_logits_shaped_n_k_1_1_predict_correctly(checkpoint, tmp_path, capsys):
    from mindcv_res2net.deploy.onnx_runtime import OnnxClassifier
    from mindcv_res2net.data.preprocess import eval_preprocess, expand_paths
    from mindcv_res2net.deploy.predict import load_onnx_for_prediction, predict

    path = str(tmp_path / "pooled.onnx")
    weight, bias = _conv_pool_graph(path)
    x = np.random.default_rng(2).standard_normal((3, 3, 32, 32)).astype(np.float32)
    classifier = OnnxClassifier(path)
    assert classifier.num_classes == 4
    np.testing.assert_allclose(classifier.run(x), x.mean(axis=(2, 3)) @ weight.T + bias, rtol=1e-5, atol=1e-5)
    classifier, config = load_onnx_for_prediction("res2net50", onnx_path=path)
    files = expand_paths([str(checkpoint[1])])
    results = predict(classifier, files, topk=4, run_config=config)
    images = np.stack([eval_preprocess(classifier, config)(f) for f in files])
    logits = images.mean(axis=(2, 3)) @ weight.T + bias
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    for got, p in zip(_probabilities(results), expected):
        assert np.allclose([got[k] for k in range(4)], p, atol=1e-5)
    code, out, err = _main("predict", ["--model", "res2net50", "--engine", "onnxruntime", "--onnx_path", path,
                                       "--topk", "1", str(checkpoint[1])], capsys)
    assert code == 0, err
    assert len(out.splitlines()) == 3 and all(re.search(r": class [0-3] \d+\.\d%$", line) for line in out.splitlines())


def test_logits_of_another_shape_fail_clearly(checkpoint, tmp_path, capsys):
    from mindcv_res2net.deploy.onnx_runtime import OnnxClassifier

    declared = str(tmp_path / "map.onnx")
    _conv_pool_graph(declared, pool=False)  # declares (N, 4, 32, 32)
    code, _, err = _main("predict", ["--model", "res2net50", "--engine", "onnxruntime", "--onnx_path", declared,
                                     str(checkpoint[1])], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert _last_line(err) == (f"error: --onnx_path {declared}: its output has shape ['N', 4, 32, 32], not logits "
                               "(N, K) or (N, K, 1, 1)")
    hidden = str(tmp_path / "hidden.onnx")
    _conv_pool_graph(hidden, size=None, pool=False)  # any image size: the output's shows only when run
    with pytest.raises(ValueError, match=rf"^--onnx_path {re.escape(hidden)}: gave outputs of shape \(2, 4, 32, 32\) "
                                         r"for 2 images, not logits \(N, K\) or \(N, K, 1, 1\)$"):
        OnnxClassifier(hidden).run(np.zeros((2, 3, 32, 32), np.float32))


def test_onnx_path_messages_name_the_flag(checkpoint, tmp_path):
    from mindcv_res2net.deploy.onnx_runtime import OnnxClassifier
    from mindcv_res2net.deploy.predict import load_onnx_for_prediction

    missing = str(tmp_path / "missing.onnx")
    with pytest.raises(FileNotFoundError, match=rf"^--onnx_path {re.escape(missing)}: file not found$"):
        OnnxClassifier(missing)
    four = str(tmp_path / "four.onnx")
    _conv_pool_graph(four)
    with pytest.raises(ValueError, match=rf"^--onnx_path {re.escape(four)}: records no checkpoint .*, so it cannot "
                                         rf"be checked against {re.escape(checkpoint[0])}; "):
        load_onnx_for_prediction("res2net50", onnx_path=four, ckpt_path=checkpoint[0])


# ---------------------------------------------------------------------------------------------- INT8 export


def test_int8_export_of_non_finite_weights_is_one_line(checkpoint, tmp_path, capsys):
    from mindcv_res2net.weights import read_checkpoint, save_weights

    state, metadata = read_checkpoint(checkpoint[0])
    state["layer1.0.conv1.weight"][0, 0, 0, 0] = np.nan
    state["fc.bias"][3] = np.inf
    bad = str(tmp_path / "nan.ckpt")
    save_weights(state, bad, metadata=metadata)
    code, out, err = _main("export", ["--model", "res2net50", "--ckpt_path", bad, "--format", "ONNX", "--quantize",
                                      "int8", "--calib_images", "8", "--file_name", str(tmp_path / "q")], capsys)
    assert code == 2 and out == "" and "Traceback" not in err
    assert _last_line(err) == (f"error: {bad}: 2 tensors hold NaN or Inf values (fc.bias, layer1.0.conv1.weight); "
                               "INT8 quantization needs finite weights")
    assert sorted(os.listdir(tmp_path)) == ["nan.ckpt"]


@pytest.mark.parametrize("value, message", [
    (np.nan, r"failed \(scale issue; "),  # ONNX Runtime's own assertion
    (3e38, r"gave 2 non-finite scales or weights \(conv_scale, logits_scale; "),  # the sums overflow to inf
])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy, inside ONNX Runtime's calibration
def test_int8_quantizer_failure_is_one_line_naming_the_output(tmp_path, value, message):
    """Finite weights whose activations on the calibration images are not finite."""
    from mindcv_res2net.deploy.quantize import quantize_int8

    fp32 = str(tmp_path / "fp32.onnx")
    _conv_pool_graph(fp32)
    target = str(tmp_path / "int8.onnx")
    with pytest.raises(UserError, match=rf"^{re.escape(target)}: ONNX Runtime's INT8 quantization {message}are the "
                                           r"network's outputs on the calibration images finite\?\); nothing was "
                                           r"written$"):
        quantize_int8(fp32, target, [np.full((2, 3, 32, 32), value, np.float32)])
    assert sorted(os.listdir(tmp_path)) == ["fp32.onnx"]


def test_int8_calibration_count_is_the_images_really_used(tmp_path):
    from mindcv_res2net.deploy.quantize import quantize_int8

    fp32 = str(tmp_path / "fp32.onnx")
    _conv_pool_graph(fp32)
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((n, 3, 32, 32)).astype(np.float32) for n in (4, 4, 3)]
    assert quantize_int8(fp32, str(tmp_path / "int8.onnx"), batches) == 11


@pytest.mark.e2e
def test_int8_export_prints_the_number_of_calibration_images_used(checkpoint, tmp_path, capsys):
    # a fixed batch of 4: of 10 images asked for, the last 2 do not fill a batch and are not used
    code, out, err = _main("export", ["--model", "res2net50", "--ckpt_path", checkpoint[0], "--format", "ONNX",
                                      "--batch_size", "4", "--quantize", "int8", "--calib_images", "10",
                                      "--file_name", str(tmp_path / "q")], capsys)
    assert code == 0, err
    assert out.strip() == (f"wrote {tmp_path / 'q.onnx'} (ONNX, batch 4, BatchNorm folded, INT8 calibrated on 8 "
                           "images of the 10 asked for)")


# -------------------------------------------------------------------------------------- predict's text output


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
def test_predict_prints_one_line_per_image_with_odd_names(checkpoint):
    path, images = checkpoint
    proc = run(["tools/predict.py", "--model", "res2net50", "--ckpt_path", path, "--topk", "10", str(images)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_quiet_exit(proc)
    lines = proc.stdout.splitlines()
    assert sorted(line.split(": ", 1)[0] for line in lines) == [
        f"{images}/dir\\xff\\nname/x.png", f"{images}/plain.png", f"{images}/two\\nlines.png"]
    for line in lines:
        names = [re.sub(r" \d+\.\d%$", "", item) for item in line.split(": ", 1)[1].split(", ")]
        assert sorted(names) == sorted(escape_text(n) for n in ODD_NAMES)
        assert "new\\nline" in names and "caf\\xe9" in names and "back\\\\slash" in names


def test_predict_json_keeps_odd_names(checkpoint, capsys):
    import json

    path, images = checkpoint
    code, out, err = _main("predict", ["--model", "res2net50", "--ckpt_path", path, "--topk", "10", "--json",
                                       str(images)], capsys)
    assert code == 0, err
    results = json.loads(out)
    assert sorted(r["file"] for r in results) == sorted(os.path.join(str(images), p) for p in
                                                        (os.fsdecode(b"dir\xff\nname/x.png"), "plain.png",
                                                         "two\nlines.png"))
    assert all(sorted(t["name"] for t in r["top"]) == sorted(ODD_NAMES) for r in results)


@pytest.mark.parametrize("flag,value", [("--calib_images", "8"), ("--calib_data", "photos")])
def test_export_refuses_calibration_flags_without_quantize(flag, value, capsys):
    """--calib_images/--calib_data only steer INT8 calibration: without --quantize they would be ignored."""
    code, err = run_tool("export", ["--model", "res2net50", "--ckpt_path", "missing.ckpt", "--format", "ONNX",
                                       flag, value, "--file_name", "unused"], capsys)
    assert code == 2 and err.strip().splitlines()[-1] == \
        f"error: {flag}: calibrates INT8 quantization, so it needs --quantize int8"
