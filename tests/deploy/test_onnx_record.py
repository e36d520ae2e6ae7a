"""An ONNX export records which weights it holds (metadata_props), and --onnx_path is refused under the name of
another checkpoint: validate and predict, the user's file, the INT8 file and the ONNX Runtime cache."""
import hashlib
import re

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image

from helpers import tiny_net
from helpers.checkpoints import save_trained_like_checkpoint
from mindcv_res2net.utils.fileio import file_sha256

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

from mindcv_res2net.cli.parser import parse_config  # noqa: E402
from mindcv_res2net.deploy.validate import validate  # noqa: E402
from mindcv_res2net.deploy.export import export_model, export_network  # noqa: E402
from mindcv_res2net.deploy.onnx_record import (PREFIX, ExportRecord, append_record, check_export,  # noqa: E402
                                               read_record, weights_digest)

ARGV = ["--dataset", "digits", "--num_samples", "32", "--batch_size", "32", "--engine", "onnxruntime"]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """``tiny_net`` registered for this module; two 10-class digits checkpoints a and b (other weights), each
    exported to ONNX at 32 px (a.onnx, b.onnx), and an export of a without a record (bare.onnx)."""
    from mindcv_res2net.models import create_model_from_checkpoint

    for table, entry in tiny_net.registry_entries():
        table[tiny_net.NAME] = entry
    folder = tmp_path_factory.mktemp("onnx_record")
    meta = dict(model="tiny_net", num_classes=10, in_channels=3, config=dict(dataset="digits", image_resize=32,
                                                                           interpolation="bilinear"))
    for name, seed in (("a", 1), ("b", 2)):
        save_trained_like_checkpoint(folder / f"{name}.ckpt", 10, metadata=meta, seed=seed, model_name="tiny_net")
        export_model("tiny_net", str(folder / f"{name}.ckpt"), str(folder / name), file_format="ONNX", batch_size=-1)
    export_network(create_model_from_checkpoint("tiny_net", str(folder / "a.ckpt")), str(folder / "bare"), "ONNX",
                   batch_size=-1, image_size=32, fuse_bn=True)
    yield folder
    for table, _ in tiny_net.registry_entries():
        del table[tiny_net.NAME]


def _validate(*argv):
    return validate(*parse_config(ARGV + list(argv), program="validate"))


def test_the_export_records_its_weights_model_and_checkpoint(exports):
    from mindcv_res2net.models import create_model_from_checkpoint

    graph = onnx.load(str(exports / "a.onnx"))
    onnx.checker.check_model(graph)
    record = {entry.key: entry.value for entry in graph.metadata_props}
    ckpt = str(exports / "a.ckpt")
    assert record == {PREFIX + "weights_sha256": weights_digest(create_model_from_checkpoint("tiny_net", ckpt)),
                      PREFIX + "model": "tiny_net", PREFIX + "num_classes": "10", PREFIX + "checkpoint": ckpt,
                      PREFIX + "checkpoint_sha256": file_sha256(ckpt)}
    assert not onnx.load(str(exports / "bare.onnx")).metadata_props


def test_validate_refuses_the_export_of_another_checkpoint(exports, capsys):
    a, b = str(exports / "a.ckpt"), str(exports / "b.ckpt")
    with pytest.raises(ValueError, match=rf"^--onnx_path {re.escape(str(exports / 'b.onnx'))}: is an export of "
                                         rf"{re.escape(b)}, not of {re.escape(a)}; export {re.escape(a)} with "
                                         r"tools/export.py --format ONNX, or give the \.onnx file alone \(without "
                                         r"--ckpt_path or --pretrained\)$"):
        _validate("--ckpt_path", a, "--onnx_path", str(exports / "b.onnx"))
    assert "evaluating" not in capsys.readouterr().err  # refused before any data was read
    ours = validate(*parse_config(ARGV[:-2] + ["--ckpt_path", a, "--mode", "1"], program="validate"))  # MindSpore
    onnx_result = _validate("--ckpt_path", a, "--onnx_path", str(exports / "a.onnx"))
    assert onnx_result["top1"] == ours["top1"] and abs(onnx_result["loss"] - ours["loss"]) < 1e-4


def test_a_converted_checkpoint_still_matches_its_export(exports, tmp_path):
    """The weights are compared, not the files: the same checkpoint as safetensors runs with its export."""
    from mindcv_res2net.deploy.convert import convert_weights

    converted = convert_weights(str(exports / "a.ckpt"), str(tmp_path / "a.safetensors"), "tiny_net")
    assert file_sha256(converted) != file_sha256(str(exports / "a.ckpt"))
    assert _validate("--model", "tiny_net", "--image_resize", "32", "--ckpt_path", converted, "--onnx_path",
                     str(exports / "a.onnx"))["images"] == 32


def test_predict_refuses_the_export_of_another_checkpoint(exports):
    from mindcv_res2net.deploy.predict import load_onnx_for_prediction

    with pytest.raises(ValueError, match=r"^--onnx_path .*b\.onnx: is an export of .*b\.ckpt, not of .*a\.ckpt; "):
        load_onnx_for_prediction("tiny_net", onnx_path=str(exports / "b.onnx"), ckpt_path=str(exports / "a.ckpt"))
    classifier, _ = load_onnx_for_prediction("tiny_net", onnx_path=str(exports / "a.onnx"),
                                             ckpt_path=str(exports / "a.ckpt"))
    assert classifier.num_classes == 10


def test_an_export_without_a_record_is_refused_with_a_checkpoint_and_runs_alone(exports):
    bare = str(exports / "bare.onnx")
    with pytest.raises(ValueError, match=rf"^--onnx_path {re.escape(bare)}: records no checkpoint \(exported before "
                                         r"exports were recorded, or by another tool\), so it cannot be checked "
                                         rf"against {re.escape(str(exports / 'a.ckpt'))}; export "):
        _validate("--ckpt_path", str(exports / "a.ckpt"), "--onnx_path", bare)
    result = _validate("--model", "tiny_net", "--image_resize", "32", "--onnx_path", bare)
    assert result["images"] == 32


def test_an_export_alone_is_named_by_its_record(exports, capsys):
    """Without a checkpoint the file's record names the model (validate's default --model gives way) and the
    checkpoint it holds; a --model the user gave that contradicts it is an error."""
    b_onnx = str(exports / "b.onnx")
    _validate("--image_resize", "32", "--onnx_path", b_onnx)
    captured = capsys.readouterr()
    assert f"from --onnx_path {b_onnx} (an export of {exports / 'b.ckpt'})" in captured.err
    assert "\ntiny_net (onnxruntime) on digits/val: top-1" in captured.out
    with pytest.raises(ValueError, match=rf"^--model res2net50: --onnx_path {re.escape(b_onnx)} is an export of "
                                         r"model 'tiny_net'$"):
        _validate("--model", "res2net50", "--image_resize", "32", "--onnx_path", b_onnx)


def test_the_cached_export_carries_the_record(exports, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    _validate("--ckpt_path", str(exports / "a.ckpt"))  # exports a's weights into the cache
    cached = str(next((tmp_path / "mindcv_res2net" / "onnx").glob("*.onnx")))
    assert _validate("--ckpt_path", str(exports / "a.ckpt"), "--onnx_path", cached)["images"] == 32
    with pytest.raises(ValueError, match=rf"^--onnx_path {re.escape(cached)}: is an export of .*a\.ckpt, not of "
                                         r".*b\.ckpt; "):
        _validate("--ckpt_path", str(exports / "b.ckpt"), "--onnx_path", cached)


def test_the_int8_file_keeps_the_record(exports, tmp_path):
    images = tmp_path / "calib"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray((rng.random((12, 12, 3)) * 255).astype(np.uint8)).save(images / f"{i}.png")
    written = export_model("tiny_net", str(exports / "a.ckpt"), str(tmp_path / "a_int8"), file_format="ONNX", batch_size=-1,
                           quantize="int8", calib_data=str(images), calib_images=4)
    record = {e.key: e.value for e in onnx.load(written.path).metadata_props if e.key.startswith(PREFIX)}
    fp32 = {e.key: e.value for e in onnx.load(str(exports / "a.onnx")).metadata_props}
    assert record == fp32
    assert _validate("--ckpt_path", str(exports / "a.ckpt"), "--onnx_path", written.path)["images"] == 32
    with pytest.raises(ValueError, match=r"is an export of .*a\.ckpt, not of .*b\.ckpt"):
        _validate("--ckpt_path", str(exports / "b.ckpt"), "--onnx_path", written.path)


# ------------------------------------------------------------------------- the record: writer and reader


def _identity_onnx() -> bytes:
    """The smallest model ONNX Runtime runs: (N, 3, 2, 2) images -> the same tensor."""
    info = helper.make_tensor_value_info
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["logits"])], "identity",
                              [info("images", TensorProto.FLOAT, ["N", 3, 2, 2])],
                              [info("logits", TensorProto.FLOAT, ["N", 3, 2, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


IDENTITY = _identity_onnx()
DIGEST = st.text("0123456789abcdef", min_size=64, max_size=64)
# a file name's text: any character, and the undecodable bytes of a non-UTF-8 name (os.fsdecode's surrogates)
NAME = st.lists(st.one_of(st.characters(), st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF,
                                                         categories=["Cs"])), max_size=30).map("".join)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(max_size=12), st.text(max_size=40), max_size=4), DIGEST, NAME)
def test_a_record_reads_back_from_onnx_runtime_and_onnx(tmp_path_factory, extra, digest, checkpoint):
    """Round trip: any text (undecodable file-name bytes as \\udcXX) comes back through ONNX Runtime's
    custom_metadata_map and the onnx package, and ``read_record`` finds the record in it."""
    record = dict(extra, **{PREFIX + "weights_sha256": digest, PREFIX + "model": "res2net50",
                            PREFIX + "checkpoint": checkpoint})
    path = str(tmp_path_factory.mktemp("record") / "m.onnx")
    with open(path, "wb") as f:
        f.write(IDENTITY)
    append_record(path, record)

    def written(text):
        return text.encode("utf-8", "backslashreplace").decode()

    expected = {written(k): written(v) for k, v in record.items()}
    metadata = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    assert dict(metadata) == expected
    assert {e.key: e.value for e in onnx.load(path).metadata_props} == expected
    assert read_record(metadata) == ExportRecord(digest, "res2net50", written(checkpoint))


class _Named:
    """What ``check_export`` reads of a network: its parameters, its default config and its source."""

    source = "runs/a/tiny_net-best.ckpt"
    default_cfg = {"architecture": "tiny_net"}

    def get_parameters(self):
        return []


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.one_of(st.sampled_from([PREFIX + k for k in ("weights_sha256", "model", "checkpoint")]),
                                 st.text(max_size=20)),
                       st.one_of(DIGEST, st.text(), st.sampled_from(["tiny_net", ""])), max_size=5))
@example({PREFIX + "weights_sha256": hashlib.sha256().hexdigest(), PREFIX + "model": "tiny_net"})  # _Named's
def test_any_metadata_is_a_record_or_none_and_a_mismatch_is_one_line(metadata):
    record = read_record(metadata)
    assert record is None or (len(record.weights_sha256) == 64 and record.model)
    model = _Named()
    try:
        check_export("--onnx_path x.onnx", metadata, model)
    except ValueError as exc:
        assert str(exc).startswith("--onnx_path x.onnx: ") and "\n" not in str(exc)
        assert model.source in str(exc)
    else:  # accepted only when the file records these very weights of this model
        assert record == ExportRecord(weights_digest(model), "tiny_net", record.checkpoint)
