"""Which weights an ONNX export holds: a record in the file's ``metadata_props``, written when the file is
exported and checked before the file is evaluated or run under a checkpoint's name.

The record's keys (all strings, prefixed ``mindcv_res2net.``): ``weights_sha256`` (``weights_digest`` of
the network's weights before BatchNorm folding: what is compared), ``model`` (the registered name),
``num_classes``, ``checkpoint`` (the file exported, as it was given, or "the published ... weights") and
``checkpoint_sha256`` (that file's sha256, as ``sha256sum`` prints it; "" when it was not a file).
"""
import hashlib
import os
import re
from typing import Dict, Mapping, NamedTuple, Optional

import numpy as np

from ..utils.errors import UserError
from ..utils.fileio import file_sha256

PREFIX = "mindcv_res2net."
_HEX64 = re.compile(r"[0-9a-f]{64}")
_METADATA_PROPS = 14  # ModelProto.metadata_props: repeated StringStringEntryProto {key = 1; value = 2}
_SHOWN_CHARACTERS = 200  # of a recorded name in a message


class ExportRecord(NamedTuple):
    """What ``read_record`` needs of a file's record: the weights' digest, the model and the checkpoint's name."""

    weights_sha256: str
    model: str
    checkpoint: str


def weights_digest(model) -> str:
    """sha256 over every parameter's name, shape and bytes: the same weights give the same digest."""
    digest = hashlib.sha256()
    for param in model.get_parameters():
        value = param.asnumpy()
        digest.update(f"{param.name}|{value.dtype}|{value.shape}|".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def _architecture(model, model_name: str) -> str:
    return getattr(model, "default_cfg", {}).get("architecture", model_name)


def record_for(model, model_name: str) -> Dict[str, str]:
    """The record of ``model`` (not yet folded), exported as ``model_name``, from ``model.source`` when it
    has one (a checkpoint file, or a description of the published weights)."""
    source = getattr(model, "source", None) or ""
    return {PREFIX + "weights_sha256": weights_digest(model), PREFIX + "model": _architecture(model, model_name),
            PREFIX + "num_classes": str(model.num_classes), PREFIX + "checkpoint": source,
            PREFIX + "checkpoint_sha256": file_sha256(source) if source and os.path.isfile(source) else ""}


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        low, number = number & 0x7F, number >> 7
        out.append(low | (0x80 if number else 0))
        if not number:
            return bytes(out)


def _length_delimited(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def append_record(onnx_path: str, record: Mapping[str, str]) -> None:
    """Add ``record`` to the ``metadata_props`` of the ONNX file ``onnx_path`` (written by us, not yet
    published): protobuf fields appended to a message's bytes are read as part of it, so this needs
    neither the onnx package nor a second copy of the model in memory. Protobuf strings are UTF-8: the
    undecodable bytes of a file name (Python's surrogate escapes) are written as ``\\udcXX``."""
    def utf8(text: str) -> bytes:
        return text.encode("utf-8", "backslashreplace")

    entries = b"".join(_length_delimited(_METADATA_PROPS, _length_delimited(1, utf8(key))
                                         + _length_delimited(2, utf8(value))) for key, value in record.items())
    with open(onnx_path, "ab") as f:
        f.write(entries)


def read_record(metadata: Mapping[str, str]) -> Optional[ExportRecord]:
    """The record in an ONNX file's metadata (ONNX Runtime's ``custom_metadata_map``), or None when it has
    none or not a whole one (no 64-hex weights digest, or no model name)."""
    digest, model = metadata.get(PREFIX + "weights_sha256", ""), metadata.get(PREFIX + "model", "")
    if not (isinstance(digest, str) and _HEX64.fullmatch(digest) and isinstance(model, str) and model):
        return None
    checkpoint = metadata.get(PREFIX + "checkpoint", "")
    return ExportRecord(digest, model, checkpoint if isinstance(checkpoint, str) else "")


def shown(text: str) -> str:
    """A recorded name for a one-line message: as it is when printable, else its repr; at most 200 characters."""
    text = text if text.isprintable() else repr(text)
    return text if len(text) <= _SHOWN_CHARACTERS else text[:_SHOWN_CHARACTERS] + "..."


def check_export(label: str, metadata: Mapping[str, str], model) -> None:
    """Refuse (one-line ``UserError`` starting with ``label``, naming both files) an ONNX file whose record
    says it holds other weights or another model than ``model`` (the checkpoint's or the published network,
    named by ``model.source``), or that has no record to check."""
    record, claimed = read_record(metadata), model.source
    remedy = (f"export {claimed} with tools/export.py --format ONNX, or give the .onnx file alone (without "
              "--ckpt_path or --pretrained)")
    if record is None:
        raise UserError(f"{label}: records no checkpoint (exported before exports were recorded, or by another "
                        f"tool), so it cannot be checked against {claimed}; {remedy}")
    arch = _architecture(model, record.model)
    if record.weights_sha256 != weights_digest(model) or record.model != arch:
        other = shown(record.checkpoint) if record.checkpoint else "other weights"
        model_note = f" (model '{shown(record.model)}')" if record.model != arch else ""
        raise UserError(f"{label}: is an export of {other}{model_note}, not of {claimed}; {remedy}")
