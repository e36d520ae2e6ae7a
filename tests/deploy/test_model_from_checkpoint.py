"""export.py and predict.py read --model from what they are given, as validate.py does: a train.py checkpoint
or run folder records its model, an export written by export.py records it too; an explicit --model that
contradicts the record is an error, and a file that records none still needs --model (one line saying so)."""
import json

import numpy as np
import pytest
from PIL import Image

from helpers.checkpoints import save_trained_like_checkpoint
from helpers.programs import run_main, run_tool
from helpers.runs import TINY_NET_RUN
from mindcv_res2net.cli.train import main as train_main
from mindcv_res2net.deploy.onnx_record import read_record
from mindcv_res2net.deploy.onnx_runtime import OnnxClassifier

NAMES = ["circle", "square", "triangle"]


@pytest.fixture
def tiny_files(tmp_path, tiny_model, pynative):
    """(checkpoint written as train.py writes it, the same weights without metadata, an image)."""
    recorded, plain = tmp_path / "tiny-best.ckpt", tmp_path / "plain.ckpt"
    meta = dict(model=tiny_model, num_classes=3, in_channels=3, class_names=NAMES,
                config=dict(dataset="digits", image_resize=32, interpolation="bilinear"))
    save_trained_like_checkpoint(recorded, num_classes=3, metadata=meta, model_name=tiny_model)
    save_trained_like_checkpoint(plain, num_classes=3, model_name=tiny_model)
    image = tmp_path / "shape.png"
    Image.fromarray((np.random.default_rng(0).random((20, 24, 3)) * 255).astype(np.uint8)).save(image)
    return str(recorded), str(plain), str(image)


def _predict(argv, capsys):
    from mindcv_res2net.cli.predict import main

    return run_main(main, argv, capsys)


def test_export_reads_the_model_from_the_checkpoint(tiny_files, tmp_path, capsys):
    recorded, plain, _ = tiny_files
    out = tmp_path / "exported"
    code, err = run_tool("export", ["--ckpt_path", recorded, "--format", "ONNX", "--file_name", str(out)], capsys)
    assert code == 0, err
    assert read_record(OnnxClassifier(str(out) + ".onnx").metadata).model == "tiny_net"
    code, err = run_tool("export", ["--model", "res2net50", "--ckpt_path", recorded, "--file_name", str(out)], capsys)
    assert code == 2 and err.strip() == f"error: --model res2net50: {recorded} was trained as model 'tiny_net'"
    code, err = run_tool("export", ["--ckpt_path", plain, "--file_name", str(tmp_path / "plain")], capsys)
    assert code == 2 and err.strip() == (f"error: --model is needed: {plain} does not record which model it holds "
                                         "(train.py's checkpoints and run folders do); give --model NAME, e.g. "
                                         "--model res2net50")
    assert not (tmp_path / "plain.mindir").exists()
    code, err = run_tool("export", ["--model", "tiny_net", "--ckpt_path", plain, "--file_name", str(tmp_path / "plain")],
                         capsys)
    assert code == 0 and (tmp_path / "plain.mindir").exists()


def test_predict_reads_the_model_from_the_checkpoint_and_the_export(tiny_files, tmp_path, capsys):
    recorded, plain, image = tiny_files
    code, out, err = _predict(["--ckpt_path", recorded, "--json", "--topk", "1", image], capsys)
    assert code == 0, err
    assert json.loads(out)[0]["top"][0]["name"] in NAMES
    code, _, err = _predict(["--model", "res2net50", "--ckpt_path", recorded, image], capsys)
    assert code == 2 and f"--model res2net50: {recorded} was trained as model 'tiny_net'" in err
    code, _, err = _predict(["--ckpt_path", plain, image], capsys)
    assert code == 2 and err.startswith(f"error: --model is needed: {plain} does not record which model") and \
        len(err.strip().splitlines()) == 1
    code, _, err = _predict(["--pretrained", image], capsys)
    assert code == 2 and err.strip() == "error: --pretrained needs --model NAME: the published weights of which model?"

    exported = tmp_path / "tiny"
    assert run_tool("export", ["--ckpt_path", recorded, "--format", "ONNX", "--file_name", str(exported)], capsys)[0] == 0
    onnx = ["--engine", "onnxruntime", "--onnx_path", str(exported) + ".onnx", image]
    code, out, err = _predict(onnx, capsys)
    assert code == 0 and out.startswith(image + ": class "), err
    code, _, err = _predict(["--model", "res2net50"] + onnx, capsys)
    assert code == 2 and err.strip() == f"error: --model res2net50: --onnx_path {exported}.onnx is an export of model 'tiny_net'"


@pytest.mark.e2e
def test_export_and_predict_read_the_model_of_a_run_folder(tmp_path, tiny_model, pynative, capsys):
    run = tmp_path / "run"
    assert train_main(TINY_NET_RUN + ["--epoch_size", "1", "--ckpt_save_dir", str(run)]) == 0
    code, err = run_tool("export", ["--ckpt_path", str(run), "--file_name", str(tmp_path / "run")], capsys)
    assert code == 0 and (tmp_path / "run.mindir").exists(), err
    image = tmp_path / "digit.png"
    Image.fromarray(np.full((8, 8), 200, np.uint8), "L").save(image)
    code, out, err = _predict(["--ckpt_path", str(run), str(image)], capsys)
    assert code == 0 and out.startswith(f"{image}: "), err
    code, _, err = _predict(["--model", "res2net50", "--ckpt_path", str(run), str(image)], capsys)
    assert code == 2 and f"--ckpt_path {run}: is a run of model 'tiny_net', not 'res2net50'" in err
