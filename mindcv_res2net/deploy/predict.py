"""Top-k prediction for image files: ``predict(model, paths)`` (preprocessing: ``data.preprocess``)."""
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..data.preprocess import eval_preprocess, prediction_eval
from ..models import create_model, get_pretrained_cfg
from ..models.registry import is_model, resolve_name
from ..utils.argtypes import ConfigError
from ..utils.engines import import_onnxruntime
from ..utils.errors import UserError
from .checkpoint_model import model_to_evaluate
from .onnx_record import read_record
from .onnx_runtime import OnnxClassifier, classifier_for

IMAGENET_CLASSES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                                "imagenet_classes.tsv")


def imagenet_class_names() -> List[str]:
    """The 1000 ImageNet-1k class names in index order (first name of each synonym list)."""
    with open(IMAGENET_CLASSES, encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t")[2].split(",")[0].strip() for line in f if line.strip()]


def read_labels(path: str) -> List[str]:
    """One class name per line of UTF-8 text (a byte-order mark, as spreadsheets save it, is dropped;
    blank lines are ignored); a binary file is a ``UserError`` naming ``path``."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"--labels {path}: is a directory, not a file of class names")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--labels: file not found: {path}")
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"--labels {path}: not UTF-8 text (byte {exc.start}); give one class name per line") \
            from None
    if "\0" in text:
        raise UserError(f"--labels {path}: a binary file (NUL bytes), not class names one per line")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")  # the line ends open() reads
    return [line.strip() for line in lines if line.strip()]


def predict(model, paths: Sequence[str], *, class_names: Optional[Sequence[str]] = None, topk: int = 5,
            run_config: Optional[dict] = None, batch_size: int = 16) -> List[Dict]:
    """Per path, in order: ``{"file", "top": [{"index", "name", "probability"}...]}`` or ``{"file", "error"}``.

    Readable images go through the network ``batch_size`` at a time; one unreadable image never stops
    the others. ``class_names`` default: the model's ``class_names`` (saved by train.py in its
    checkpoints), ImageNet's for 1000 classes, else ``class <index>``.
    """
    import mindspore as ms

    if topk < 1:
        raise ConfigError(f"--topk must be at least 1, got {topk}")
    if batch_size < 1:
        raise ConfigError(f"--batch_size must be at least 1, got {batch_size}")
    names = class_names or getattr(model, "class_names", None)
    if not names and model.num_classes == 1000:
        names = imagenet_class_names()
    if names and len(names) != model.num_classes:
        raise UserError(f"{len(names)} class names for a model with {model.num_classes} classes")
    preprocess = eval_preprocess(model, run_config)
    model.set_train(False)
    results: List[Dict] = [{} for _ in paths]
    batch: List[int] = []  # indices of preprocessed images waiting for the network
    images: List[np.ndarray] = []

    def run_batch():
        logits = model(ms.Tensor(np.stack(images))).asnumpy().astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            probs = np.exp(logits - logits.max(axis=1, keepdims=True))
            probs /= probs.sum(axis=1, keepdims=True)
        for index, p in zip(batch, probs):
            if not np.isfinite(p).all():
                results[index] = dict(file=paths[index], error="the network's outputs are not finite (NaN or Inf "
                                                               "weights?)")
                continue
            order = np.argsort(-p)[:min(topk, len(p))]
            results[index] = dict(file=paths[index], top=[dict(index=int(i), name=names[i] if names else f"class {i}",
                                                                probability=float(p[i])) for i in order])
        batch.clear()
        images.clear()

    for index, path in enumerate(paths):
        try:
            images.append(preprocess(path))
        except Exception as exc:  # missing, corrupt or unsupported file: report it and go on
            reason = str(exc) if os.path.exists(path) else f"file not found: {path}"
            results[index] = dict(file=path, error=reason)
            continue
        batch.append(index)
        if len(batch) == batch_size:
            run_batch()
    if batch:
        run_batch()
    return results


def load_for_prediction(model_name: str, ckpt_path: str = "", *, pretrained: bool = False):
    """(model, run config or None): a checkpoint's network and head (``ckpt_path`` a file, or a training
    run's folder: its best checkpoint, kept in ``model.source``; ``model_name`` '' for the model a train.py
    checkpoint records), or the published weights of ``model_name``."""
    if ckpt_path:
        model = model_to_evaluate(ckpt_path, model_name)
        return model, model.run_config
    if pretrained:
        if not model_name:
            raise ConfigError("--pretrained needs --model NAME: the published weights of which model?")
        model = create_model(model_name, pretrained=True)
        model.class_names, model.source = None, f"the published {model_name} weights"
        return model, None
    raise ConfigError("predict needs --ckpt_path FILE or --pretrained (it never predicts with random weights)")


def _exported_model(classifier: OnnxClassifier, model_name: str) -> str:
    """The model an ONNX file's record names (``onnx_record``; a ``model_name`` given must agree), else
    ``model_name``; a file without a record needs ``model_name``."""
    record = read_record(classifier.metadata)
    recorded = record.model if record is not None and is_model(record.model) else ""
    if recorded and model_name and resolve_name(model_name) != resolve_name(recorded):
        raise ConfigError(f"--model {model_name}: {classifier.label} is an export of model '{recorded}'")
    if not (recorded or model_name):
        raise ConfigError(f"--model is needed: {classifier.label} does not record which model it holds (exports "
                          "written by tools/export.py do); give --model NAME, e.g. --model res2net50")
    return model_name or recorded


def load_onnx_for_prediction(model_name: str, *, onnx_path: str = "", ckpt_path: str = "", pretrained: bool = False):
    """(ONNX Runtime classifier, run config or None) for ``--engine onnxruntime``: ``onnx_path`` as given,
    else the checkpoint's (or published) weights exported once into the cache. Class names and
    preprocessing come from the checkpoint when there is one, else from the model's default config (the
    model ``model_name``, or '' for the one the checkpoint or the ONNX file records)."""
    import_onnxruntime()  # a missing package is the first error
    if onnx_path and not (ckpt_path or pretrained):
        classifier = OnnxClassifier(onnx_path)
        size = classifier.input_shape[1:] if all(isinstance(n, int) for n in classifier.input_shape) else None
        cfg = get_pretrained_cfg(_exported_model(classifier, model_name))
        classifier.default_cfg = dict(cfg, input_size=(classifier.in_channels,) + size) if size else cfg
        classifier.class_names, classifier.source = None, classifier.label
        return classifier, None
    model, run_config = load_for_prediction(model_name, ckpt_path, pretrained=pretrained)
    size = prediction_eval(model, run_config).data.image_resize
    classifier = classifier_for(onnx_path, model, model_name or model.default_cfg["architecture"], image_size=size)
    classifier.default_cfg, classifier.class_names = model.default_cfg, getattr(model, "class_names", None)
    classifier.source = model.source  # an --onnx_path file recorded these very weights (classifier_for)
    return classifier, run_config


_NAMED_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_text(text: str) -> str:
    """``text`` as printable text on one line, nothing lost: a backslash, a newline and every other
    unprintable character become Python escapes (``\\n``, ``\\u0085``, ``\\U000e0001``), and the bytes of
    a file or folder name that are not UTF-8 (Python's surrogate escapes, U+DC80..U+DCFF) become ``\\xNN``."""
    if text.isprintable() and "\\" not in text:
        return text
    out = []
    for char in text:
        code = ord(char)
        if char in _NAMED_ESCAPES:
            out.append(_NAMED_ESCAPES[char])
        elif 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of a name read from the file system
            out.append(f"\\x{code - 0xDC00:02x}")
        elif char.isprintable():
            out.append(char)
        else:
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
    return "".join(out)


def format_results(results: List[Dict]) -> str:
    """One line per image: ``file: name p%, ...`` or ``file: error: reason``, every text escaped (``escape_text``)."""
    lines = []
    for r in results:
        if "error" in r:
            lines.append(f"{escape_text(r['file'])}: error: {escape_text(r['error'])}")
            continue
        best = ", ".join(f"{escape_text(t['name'])} {100 * t['probability']:.1f}%" for t in r["top"])
        lines.append(f"{escape_text(r['file'])}: {best}")
    return "\n".join(lines)
