"""ONNX Runtime inference timing of our network (``measure_onnx``), run in a worker process."""
import dataclasses
import os
import sys
import tempfile
import time
from typing import List

import numpy as np
from tqdm import tqdm

from ..deploy.export import export_network
from ..deploy.onnx_runtime import OnnxClassifier
from ..deploy.quantize import quantize_int8
from ..models import create_model
from ..utils.device import MODE_BY_NAME, set_device
from ..utils.engines import import_onnxruntime
from ..utils.flops import count_macs
from .measure_model import inference_row
from .plan import OURS, OnnxRun
from .timing import peak_memory_mb, timed

INT8_CALIBRATION_BATCHES = 4  # random batches of 8: the INT8 row measures speed, not accuracy


def measure_onnx(run: OnnxRun) -> List[dict]:
    """One row: ONNX Runtime inference (batch and batch 1) of our model, exported here with BatchNorm folded
    (INT8: then statically quantized, calibrated on random images; accuracy: validate.py on a trained
    checkpoint). Its compile time is loading the session plus the first batch."""
    import_onnxruntime()
    set_device(run.device_target, MODE_BY_NAME["graph"])
    size, batch, steps, warmup = run.image_size, run.batch_size, run.steps, run.warmup
    model = create_model(run.model, num_classes=1000)
    params = sum(p.size for p in model.trainable_params())
    macs, _ = count_macs(model, (1, 3, size, size))
    rng = np.random.default_rng(0)
    images = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
    int8 = run.engine == "onnxruntime_int8"
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as folder:
        path = export_network(model, os.path.join(folder, run.model), "ONNX", batch_size=-1, image_size=size,
                              fuse_bn=True)
        if int8:
            int8_path = os.path.join(folder, "int8.onnx")
            quantize_int8(path, int8_path, [rng.standard_normal((8, 3, size, size)).astype(np.float32)
                                            for _ in range(INT8_CALIBRATION_BATCHES)])
            path = int8_path
        start = time.perf_counter()
        classifier = OnnxClassifier(path)
        load_s = time.perf_counter() - start
        with tqdm(total=2 * (1 + warmup + steps), desc=f"onnxruntime {run.model}", unit="step", file=sys.stderr,
                  delay=5, leave=False, dynamic_ncols=True) as progress:
            first_batch, infer_batch = timed(lambda: classifier.run(images), repeats=steps, warmup=warmup,
                                             progress=progress)
            _, infer_one = timed(lambda: classifier.run(images[:1]), repeats=steps, warmup=warmup, progress=progress)
    label = "onnxruntime INT8" if int8 else "onnxruntime, BN folded"
    fields = dict(dataclasses.asdict(run), mode="—", device_target=run.device_target)
    row = inference_row(fields, impl=f"{OURS} ({label})", engine="onnxruntime", precision="int8" if int8 else "fp32",
                        params=params, macs=macs, batch_s=infer_batch, one_s=infer_one,
                        compile_s=load_s + first_batch)
    return [dict(row, peak_host_memory_mb=peak_memory_mb())]
