"""INT8 ONNX models: ONNX Runtime static quantization (QDQ, per-channel int8 weights, uint8 activations),
calibrated on a few hundred of the run's own training images."""
import dataclasses
import os
import tempfile
from typing import Iterable, Iterator, List

import numpy as np

from ..data.loader import create_loader, iterate_batches
from ..data.preprocess import expand_paths, preprocess_for
from ..data.settings import CheckpointEval
from ..utils.argtypes import ConfigError
from ..utils.engines import import_onnxruntime
from ..utils.errors import UserError
from ..utils.fileio import atomic_path
from ..weights.formats import brief

_FINITE_HINT = "are the network's outputs on the calibration images finite?"


def calibration_batches(model, chosen: CheckpointEval, *, from_run: bool, calib_data: str = "", count: int = 300,
                        batch_size: int = 16, seed: int = 0) -> List[np.ndarray]:
    """``count`` images preprocessed exactly as ``chosen`` evaluates them (see ``checkpoint_eval``), in
    (N, C, H, W) float32 batches.

    ``calib_data``: a folder of images, else (``from_run``: the checkpoint stores its run's config) the
    training split of the run's data set, a seeded random subset of it.
    """
    if count < 1:
        raise ConfigError(f"--calib_images must be at least 1, got {count}")
    if calib_data:
        if not os.path.isdir(calib_data):
            raise ConfigError(f"--calib_data {calib_data}: not a folder of images")
        paths = expand_paths([calib_data])
        if not paths:
            raise ConfigError(f"--calib_data {calib_data}: no image files found")
        rng = np.random.default_rng(seed)
        chosen_paths = sorted(rng.permutation(len(paths))[:count])
        preprocess = preprocess_for(chosen.preprocessing, model.in_channels)
        images = np.stack([preprocess(paths[i]) for i in chosen_paths])
        return [images[i:i + batch_size] for i in range(0, len(images), batch_size)]
    if not from_run:
        raise ConfigError("--calib_data is needed: the checkpoint stores no training config to take images from "
                          "(pass a folder of training images)")
    data = dataclasses.replace(chosen.data, normalize_on_device=False, num_samples=count, train_num_samples=None,
                               batch_size=batch_size, seed=seed, num_parallel_workers=1)
    loader = create_loader(data, data.train_split, train=False, model_cfg=model.default_cfg)
    return [images.asnumpy() for images, _ in iterate_batches(loader.dataset)]


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over prepared batches; counts the images it hands out."""

    def __init__(self, input_name: str, batches: Iterable[np.ndarray]) -> None:
        self.input_name = input_name
        self.batches: Iterator[np.ndarray] = iter(list(batches))
        self.images = 0

    def get_next(self):
        batch = next(self.batches, None)
        if batch is None:
            return None
        self.images += len(batch)
        return {self.input_name: np.ascontiguousarray(batch, np.float32)}


def quantize_int8(fp32_path: str, int8_path: str, batches: Iterable[np.ndarray]) -> int:
    """Write the static INT8 (QDQ) version of ``fp32_path`` to ``int8_path``; nothing is written on failure.

    Returns the number of calibration images ONNX Runtime read. A failure of ONNX Runtime's quantizer
    (for instance non-finite activations: "scale issue") is a ``UserError`` naming ``int8_path``.
    """
    try:
        import onnx
        from onnx import TensorProto, numpy_helper, version_converter
    except ImportError:
        raise ConfigError("--quantize int8 needs the onnx package beside onnxruntime: pip install onnx "
                          "(or pip install 'mindcv-res2net[export]')") from None
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    import_onnxruntime().set_default_logger_severity(3)  # calibration sessions: errors only
    model = onnx.load(fp32_path)
    input_name = model.graph.input[0].name
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < 13:  # per-channel DequantizeLinear (its axis attribute) needs opset 13
        model = version_converter.convert_version(model, 13)
    out_dir = os.path.dirname(os.path.abspath(int8_path))
    reader = _Reader(input_name, batches)
    with tempfile.TemporaryDirectory(prefix=".partial-int8-", dir=out_dir) as work, \
            atomic_path(int8_path, suffix=".onnx") as tmp:
        upgraded, prepared = os.path.join(work, "fp32.onnx"), os.path.join(work, "prepared.onnx")
        onnx.save(model, upgraded)
        quant_pre_process(upgraded, prepared, skip_symbolic_shape=True)
        try:
            quantize_static(prepared, tmp, reader, quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
        except Exception as exc:  # onnxruntime's quantizer asserts and raises its own types
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(f"{int8_path}: ONNX Runtime's INT8 quantization failed ({reason}; {_FINITE_HINT}); "
                            "nothing was written") from None
        float_types = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE)
        bad = [t.name for t in onnx.load(tmp).graph.initializer
               if t.data_type in float_types and not np.isfinite(numpy_helper.to_array(t)).all()]
        if bad:  # an infinite activation range passes the quantizer's own check
            raise UserError(f"{int8_path}: ONNX Runtime's INT8 quantization gave {len(bad)} non-finite "
                            f"scales or weights ({brief(bad)}; {_FINITE_HINT}); nothing was written")
    return reader.images
