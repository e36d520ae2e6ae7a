"""tools/export.py: MINDIR and ONNX files reproduce the Cell's logits; bad input writes nothing."""
import os

import numpy as np
import pytest

import mindspore as ms
from helpers.programs import run
from helpers.checkpoints import save_trained_like_checkpoint

pytestmark = pytest.mark.e2e

SIZE = 64


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 10-class res2net50 checkpoint with non-trivial BatchNorm statistics, and its logits."""
    path = str(tmp_path_factory.mktemp("export") / "r50_10.ckpt")
    model = save_trained_like_checkpoint(path, num_classes=10)
    x = np.random.default_rng(0).standard_normal((3, 3, SIZE, SIZE)).astype(np.float32)
    return path, x, model(ms.Tensor(x)).asnumpy()


@pytest.mark.parametrize("fuse_bn", [False, True])
def test_mindir_dynamic_batch_matches_the_cell(tmp_path, trained, fuse_bn):
    path, x, expected = trained
    out = tmp_path / "r50"
    args = ["tools/export.py", "--model", "res2net50", "--ckpt_path", path, "--format", "mindir", "--batch_size", "-1",
            "--image_size", str(SIZE), "--file_name", str(out)] + (["--fuse_bn"] if fuse_bn else [])
    proc = run(args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert os.listdir(tmp_path) == ["r50.mindir"]
    from mindcv_res2net.utils.fileio import current_umask

    assert os.stat(str(out) + ".mindir").st_mode & 0o777 == 0o666 & ~current_umask()  # not MindSpore's 0400
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        graph = ms.nn.GraphCell(ms.load(str(out) + ".mindir"))
        for batch in (3, 1):  # dynamic batch: any size
            got = graph(ms.Tensor(x[:batch])).asnumpy()
            assert got.shape == (batch, 10) and np.abs(got - expected[:batch]).max() < 1e-4
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)


def test_onnx_matches_the_cell_in_onnxruntime(tmp_path, trained):
    ort = pytest.importorskip("onnxruntime")
    path, x, expected = trained
    out = tmp_path / "r50"
    for batch, fuse in (("3", []), ("-1", ["--fuse_bn"])):
        proc = run(["tools/export.py", "--model", "res2net50", "--ckpt_path", path, "--format", "ONNX", "--batch_size",
                    batch, "--image_size", str(SIZE), "--file_name", str(out)] + fuse)
        assert proc.returncode == 0, proc.stderr[-2000:]
        session = ort.InferenceSession(str(out) + ".onnx", providers=["CPUExecutionProvider"])
        assert session.get_inputs()[0].name == "images"
        for size in ((3, 1) if batch == "-1" else (3,)):
            got = session.run(None, {"images": x[:size]})[0]
            assert got.shape == (size, 10) and np.abs(got - expected[:size]).max() < 1e-4


@pytest.mark.parametrize("model_name, size", [("res2net50_v1b", 72), ("paddle_res2net50_vd_26w_4s", 72),
                                              ("res2net_dla60", 64)])
def test_other_families_export_with_their_pools(tmp_path, model_name, size):
    """Dynamic batch, MINDIR and ONNX, against the Cell: at 72 px layer3's avg-down shortcut pools a 9x9 map, so
    its partial edge windows matter (v1b; PaddleClas' vd also pools its split exclusively); DLA's trees."""
    ort = pytest.importorskip("onnxruntime")
    path = str(tmp_path / "m.ckpt")
    model = save_trained_like_checkpoint(path, num_classes=4, model_name=model_name)
    x = np.random.default_rng(2).standard_normal((2, 3, size, size)).astype(np.float32)
    expected = model(ms.Tensor(x)).asnumpy()
    for fmt in ("ONNX", "MINDIR"):
        proc = run(["tools/export.py", "--model", model_name, "--ckpt_path", path, "--format", fmt,
                    "--batch_size", "-1", "--image_size", str(size), "--file_name", str(tmp_path / "m")])
        assert proc.returncode == 0, proc.stderr[-2000:]
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        graph = ms.nn.GraphCell(ms.load(str(tmp_path / "m.mindir")))
        for batch in (2, 1):
            for got in (session.run(None, {"images": x[:batch]})[0], graph(ms.Tensor(x[:batch])).asnumpy()):
                assert got.shape == (batch, 4) and np.abs(got - expected[:batch]).max() < 1e-4
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)


def test_bad_checkpoints_write_nothing(tmp_path, trained):
    path, _, _ = trained
    out = tmp_path / "out"
    proc = run(["tools/export.py", "--model", "res2net50", "--ckpt_path", str(tmp_path / "missing.ckpt"),
                "--file_name", str(out)])
    assert proc.returncode == 2 and "checkpoint file not found" in proc.stderr
    proc = run(["tools/export.py", "--model", "res2net50", "--ckpt_path", path, "--num_classes", "1000",
                "--file_name", str(out)])
    assert proc.returncode == 2 and "holds a 10-class head, but 1000 classes were asked for" in proc.stderr
    proc = run(["tools/export.py", "--model", "res2net50_v1b", "--ckpt_path", path, "--file_name", str(out)])
    assert proc.returncode == 2 and "missing from the file" in proc.stderr
    assert os.listdir(tmp_path) == []
