"""ONNX Runtime as an inference engine: an exported ``.onnx`` classifier behind the same call as a Cell.

``OnnxClassifier(path)(images)`` takes (N, C, H, W) float32, normalised as in training (a Tensor or an
array), and returns logits (N, K) as a Tensor, so ``evaluate`` and ``predict`` run it unchanged.
``onnx_for_checkpoint`` exports a checkpoint once (BatchNorm folded, dynamic batch) into a cache.
"""
import hashlib
import os
import warnings
from typing import Optional

import numpy as np

from ..utils.fileio import file_sha256, recorded_sha256, write_sha256_record

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

    def __init__(self, path: str, threads: int = 0, label: str = "") -> None:
        """``label`` names the file in messages: ``--onnx_path PATH`` by default, the path for a cached export."""
        ort = import_onnxruntime()
        self.label = label or f"--onnx_path {path}"
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{self.label}: " + ("is a directory, not an .onnx file" if os.path.isdir(path)
                                                         else "file not found"))
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: the traced output batch of a dynamic export warns
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ValueError(f"{self.label}: not a model ONNX Runtime can load ({reason})") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = inputs[0].shape
        if len(inputs) != 1 or len(shape) != 4 or len(outputs) != 1:
            raise ValueError(f"{self.label}: expected one (N, C, H, W) input and one logits output, got "
                             f"inputs {[i.shape for i in inputs]} and {len(outputs)} output(s)")
        logits = outputs[0].shape
        if len(logits) < 2 or any(isinstance(n, int) and n != 1 for n in logits[2:]):
            raise ValueError(f"{self.label}: its output has shape {logits}, not logits (N, K) or (N, K, 1, 1)")
        self.path = path
        self.input_name = inputs[0].name
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None
        self.input_shape = tuple(shape[1:])  # (C, H, W)
        self.in_channels = shape[1]
        self.num_classes = logits[1] if isinstance(logits[1], int) else None

    def set_train(self, mode: bool = True) -> "OnnxClassifier":
        if mode:
            raise ValueError("an ONNX Runtime model is for inference only")
        return self

    def run(self, images: np.ndarray) -> np.ndarray:
        """(N, C, H, W) float32 array -> (N, K) float32 logits; a fixed-batch file runs in padded chunks."""
        images = np.ascontiguousarray(images, np.float32)
        if images.ndim != 4 or any(isinstance(want, int) and want != got  # a named axis takes any size
                                   for want, got in zip(self.input_shape, images.shape[1:])):
            raise ValueError(f"{self.label}: takes (N, {', '.join(map(str, self.input_shape))}) images, got "
                             f"{tuple(images.shape)}")
        if self.fixed_batch is None:
            return self._logits(self.session.run(None, {self.input_name: images})[0], len(images))
        outputs = []
        for start in range(0, len(images), self.fixed_batch):
            chunk = images[start:start + self.fixed_batch]
            padded = np.zeros((self.fixed_batch,) + self.input_shape, np.float32)
            padded[:len(chunk)] = chunk
            logits = self._logits(self.session.run(None, {self.input_name: padded})[0], self.fixed_batch)
            outputs.append(logits[:len(chunk)])
        return np.concatenate(outputs)

    def _logits(self, output: np.ndarray, batch: int) -> np.ndarray:
        """(N, K) or (N, K, 1, 1) output -> (N, K) logits; any other shape is an error naming the file."""
        if output.ndim < 2 or output.shape[0] != batch or any(n != 1 for n in output.shape[2:]):
            raise ValueError(f"{self.label}: gave outputs of shape {output.shape} for {batch} images, not logits "
                             "(N, K) or (N, K, 1, 1)")
        return output.reshape(output.shape[:2])

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


def cached_onnx_path(model, model_name: str, image_size: int, cache_dir: Optional[str] = None) -> str:
    """Where ``onnx_for_network`` keeps the export of ``model``: named by the model, the image size and a
    digest of the weights, in ``cache_dir`` (default ``default_cache_dir()``)."""
    key = hashlib.sha256(f"{model_name}|{image_size}|{weights_digest(model)}".encode()).hexdigest()[:20]
    return os.path.join(cache_dir or default_cache_dir(), f"{model_name}-{image_size}px-bnfold-{key}.onnx")


def onnx_for_network(model, model_name: str, image_size: int, cache_dir: Optional[str] = None) -> str:
    """The ONNX export (BatchNorm folded, dynamic batch) of ``model``'s weights: reused from the cache when
    the weights, the model name and the image size match and the file still has the sha256 recorded when
    it was written, else exported now (the file appears whole or not at all; a cached file that does not
    match is replaced, with a warning). ``model`` is changed in place by the export (folded BatchNorm)."""
    from .export import export_network

    path = cached_onnx_path(model, model_name, image_size, cache_dir)
    stem = path[:-len(".onnx")]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.isfile(path):
        recorded = recorded_sha256(path)
        if recorded is not None and recorded == file_sha256(path):
            return path
        why = ("has no readable sha256 record" if recorded is None
               else "does not match the sha256 recorded when it was written (edited or damaged?)")
        warnings.warn(f"{path}: cached ONNX export {why}; exporting it again")
    export_network(model, stem, "ONNX", batch_size=-1, image_size=image_size, fuse_bn=True)
    write_sha256_record(path, file_sha256(path))
    return path


def classifier_for(onnx_path: str, model, model_name: str, image_size: int) -> OnnxClassifier:
    """``--engine onnxruntime``'s classifier: the user's ``onnx_path`` when given, else ``model``'s verified
    cached export (see ``onnx_for_network``), named in messages by its own path."""
    if onnx_path:
        return OnnxClassifier(onnx_path)
    path = onnx_for_network(model, model_name, image_size)
    return OnnxClassifier(path, label=path)
