"""INT8 export (``--quantize int8``): non-finite weights are one line naming the file, a quantizer failure one line
naming the output (nothing written), the calibration count is the images really used and printed, and the
calibration flags need --quantize (the top-1 agreement with fp32: test_onnx_engine.py)."""
import os
import re

import numpy as np
import pytest

from helpers.programs import run_main, run_tool, tool_main
from mindcv_res2net.utils.errors import UserError

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from helpers.onnx_graphs import conv_pool_graph  # noqa: E402  (needs onnx)


def _main(tool, argv, capsys):
    """``tools/<tool>.py`` main(argv) through run_cli in this process: (exit code, stdout, stderr)."""
    return run_main(tool_main(tool), argv, capsys)


def _last_line(err):
    return err.strip().splitlines()[-1]


def test_int8_export_of_non_finite_weights_is_one_line(odd_names_checkpoint, tmp_path, capsys):
    from mindcv_res2net.weights import read_checkpoint, save_weights

    state, metadata = read_checkpoint(odd_names_checkpoint[0])
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
    conv_pool_graph(fp32)
    target = str(tmp_path / "int8.onnx")
    with pytest.raises(UserError, match=rf"^{re.escape(target)}: ONNX Runtime's INT8 quantization {message}are the "
                                           r"network's outputs on the calibration images finite\?\); nothing was "
                                           r"written$"):
        quantize_int8(fp32, target, [np.full((2, 3, 32, 32), value, np.float32)])
    assert sorted(os.listdir(tmp_path)) == ["fp32.onnx"]


def test_int8_calibration_count_is_the_images_really_used(tmp_path):
    from mindcv_res2net.deploy.quantize import quantize_int8

    fp32 = str(tmp_path / "fp32.onnx")
    conv_pool_graph(fp32)
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((n, 3, 32, 32)).astype(np.float32) for n in (4, 4, 3)]
    assert quantize_int8(fp32, str(tmp_path / "int8.onnx"), batches) == 11


@pytest.mark.e2e
def test_int8_export_prints_the_number_of_calibration_images_used(odd_names_checkpoint, tmp_path, capsys):
    # a fixed batch of 4: of 10 images asked for, the last 2 do not fill a batch and are not used
    code, out, err = _main("export", ["--model", "res2net50", "--ckpt_path", odd_names_checkpoint[0], "--format",
                                      "ONNX", "--batch_size", "4", "--quantize", "int8", "--calib_images", "10",
                                      "--file_name", str(tmp_path / "q")], capsys)
    assert code == 0, err
    assert out.strip() == (f"wrote {tmp_path / 'q.onnx'} (ONNX, batch 4, BatchNorm folded, INT8 calibrated on 8 "
                           "images of the 10 asked for)")


@pytest.mark.parametrize("flag,value", [("--calib_images", "8"), ("--calib_data", "photos")])
def test_export_refuses_calibration_flags_without_quantize(flag, value, capsys):
    """--calib_images/--calib_data only steer INT8 calibration: without --quantize they would be ignored."""
    code, err = run_tool("export", ["--model", "res2net50", "--ckpt_path", "missing.ckpt", "--format", "ONNX",
                                       flag, value, "--file_name", "unused"], capsys)
    assert code == 2 and err.strip().splitlines()[-1] == \
        f"error: {flag}: calibrates INT8 quantization, so it needs --quantize int8"
