"""ONNX Runtime as an inference engine: an exported ``.onnx`` classifier behind the same call as a Cell.

``OnnxClassifier(path)(images)`` takes (N, C, H, W) float32, normalised as in training (a Tensor or an
array), and returns logits (N, K) as a Tensor, so ``evaluate`` and ``predict`` run it unchanged.
``classifier_for`` runs the user's file, or a network's weights exported once into the ONNX cache
(``export.onnx_for_network``).
"""
import os

import numpy as np

from ..utils.engines import import_onnxruntime
from ..utils.errors import UserError
from .export import onnx_for_network
from .onnx_record import check_export


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
            raise UserError(f"{self.label}: not a model ONNX Runtime can load ({reason})") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = inputs[0].shape
        if len(inputs) != 1 or len(shape) != 4 or len(outputs) != 1:
            raise UserError(f"{self.label}: expected one (N, C, H, W) input and one logits output, got "
                            f"inputs {[i.shape for i in inputs]} and {len(outputs)} output(s)")
        logits = outputs[0].shape
        if len(logits) < 2 or any(isinstance(n, int) and n != 1 for n in logits[2:]):
            raise UserError(f"{self.label}: its output has shape {logits}, not logits (N, K) or (N, K, 1, 1)")
        self.path = path
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)  # its metadata_props
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
            raise UserError(f"{self.label}: takes (N, {', '.join(map(str, self.input_shape))}) images, got "
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
            raise UserError(f"{self.label}: gave outputs of shape {output.shape} for {batch} images, not logits "
                            "(N, K) or (N, K, 1, 1)")
        return output.reshape(output.shape[:2])

    def __call__(self, images):
        import mindspore as ms

        array = images.asnumpy() if isinstance(images, ms.Tensor) else np.asarray(images)
        return ms.Tensor(self.run(array))


def open_export(onnx_path: str, model=None) -> OnnxClassifier:
    """The user's ``--onnx_path`` file. With ``model`` (the network of ``--ckpt_path`` or ``--pretrained``,
    ``model.source`` naming it), the file must record that it is an export of those weights: another
    checkpoint's export, or a file without a record, is a one-line ``ValueError`` (``onnx_record.check_export``)."""
    classifier = OnnxClassifier(onnx_path)
    if model is not None:
        check_export(classifier.label, classifier.metadata, model)
    return classifier


def classifier_for(onnx_path: str, model, model_name: str, *, image_size: int) -> OnnxClassifier:
    """``--engine onnxruntime``'s classifier: the user's ``onnx_path`` when given (checked against ``model``,
    see ``open_export``), else ``model``'s verified cached export (see ``onnx_for_network``), named in
    messages by its own path."""
    if onnx_path:
        return open_export(onnx_path, model)
    path = onnx_for_network(model, model_name, image_size)
    return OnnxClassifier(path, label=path)
