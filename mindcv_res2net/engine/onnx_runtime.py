"""ONNX Runtime as an inference engine: an exported ``.onnx`` classifier behind the same call as a Cell.

``OnnxClassifier(path)(images)`` takes (N, C, H, W) float32, normalised as in training (a Tensor or an
array), and returns logits (N, K) as a Tensor, so ``evaluate`` and ``predict`` run it unchanged.
``onnx_for_checkpoint`` exports a checkpoint once (BatchNorm folded, dynamic batch) into a cache.
"""
import hashlib
import os
from typing import Optional

import numpy as np

ENGINES = ("mindspore", "onnxruntime")


def check_engine(name: str) -> str:
    if name not in ENGINES:
        raise ValueError(f"--engine must be one of {', '.join(ENGINES)}, got '{name}'")
    return name


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise RuntimeError("--engine onnxruntime needs the onnxruntime package: pip install onnxruntime "
                           "(or pip install 'mindcv-res2net[export]')") from None
    return onnxruntime


class OnnxClassifier:
    """An exported classifier run by ONNX Runtime on the CPU (MLAS kernels, all cores by default)."""

    training = False

    def __init__(self, path: str, threads: int = 0) -> None:
        ort = import_onnxruntime()
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--onnx_path: file not found: {path}")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: the traced output batch of a dynamic export warns
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ValueError(f"--onnx_path {path}: not a model ONNX Runtime can load ({reason})") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = inputs[0].shape
        if len(inputs) != 1 or len(shape) != 4 or len(outputs) != 1:
            raise ValueError(f"--onnx_path {path}: expected one (N, C, H, W) input and one logits output, got "
                             f"inputs {[i.shape for i in inputs]} and {len(outputs)} output(s)")
        self.path = path
        self.input_name = inputs[0].name
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None
        self.input_shape = tuple(shape[1:])  # (C, H, W)
        self.in_channels = shape[1]
        last = outputs[0].shape[-1]
        self.num_classes = last if isinstance(last, int) else None

    def set_train(self, mode: bool = True) -> "OnnxClassifier":
        if mode:
            raise ValueError("an ONNX Runtime model is for inference only")
        return self

    def run(self, images: np.ndarray) -> np.ndarray:
        """(N, C, H, W) float32 array -> (N, K) float32 logits; a fixed-batch file runs in padded chunks."""
        images = np.ascontiguousarray(images, np.float32)
        if images.ndim != 4 or tuple(images.shape[1:]) != self.input_shape:
            raise ValueError(f"{self.path} takes (N, {', '.join(map(str, self.input_shape))}) images, got "
                             f"{tuple(images.shape)}")
        if self.fixed_batch is None:
            return self.session.run(None, {self.input_name: images})[0]
        outputs = []
        for start in range(0, len(images), self.fixed_batch):
            chunk = images[start:start + self.fixed_batch]
            padded = np.zeros((self.fixed_batch,) + self.input_shape, np.float32)
            padded[:len(chunk)] = chunk
            outputs.append(self.session.run(None, {self.input_name: padded})[0][:len(chunk)])
        return np.concatenate(outputs)

    def __call__(self, images):
        import mindspore as ms

        array = images.asnumpy() if isinstance(images, ms.Tensor) else np.asarray(images)
        return ms.Tensor(self.run(array))


def default_cache_dir() -> str:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "mindcv_res2net", "onnx")


def weights_digest(model) -> str:
    """sha256 over every parameter's name, shape and bytes: the same weights give the same digest."""
    digest = hashlib.sha256()
    for param in model.get_parameters():
        value = param.asnumpy()
        digest.update(f"{param.name}|{value.dtype}|{value.shape}|".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def onnx_for_network(model, model_name: str, image_size: int, cache_dir: Optional[str] = None) -> str:
    """The ONNX export (BatchNorm folded, dynamic batch) of ``model``'s weights: reused from the cache when
    the weights, the model name and the image size match, else exported now (the file appears whole or
    not at all). ``model`` is changed in place by the export (folded BatchNorm)."""
    from .export import export_network

    folder = cache_dir or default_cache_dir()
    os.makedirs(folder, exist_ok=True)
    key = hashlib.sha256(f"{model_name}|{image_size}|{weights_digest(model)}".encode()).hexdigest()[:20]
    stem = os.path.join(folder, f"{model_name}-{image_size}px-bnfold-{key}")
    if not os.path.isfile(stem + ".onnx"):
        export_network(model, stem, "ONNX", batch_size=-1, image_size=image_size, fuse_bn=True)
    return stem + ".onnx"
