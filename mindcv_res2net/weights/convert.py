"""Convert a weight file of any supported format into a MindSpore checkpoint for a registered model."""
import os
from typing import Optional

from ..models import create_model
from .formats import save_weights


def convert_weights(src: str, dst: str, model_name: str, num_classes: int = 1000, fmt: Optional[str] = None) -> str:
    """Read ``src`` (PyTorch .pth zip/legacy, .safetensors, .npz, MindSpore/mindcv .ckpt), map it strictly
    onto ``model_name`` and write ``dst`` (``.ckpt``, or ``.safetensors`` by suffix or ``fmt``).

    ``num_classes`` other than 1000 replaces the file's classifier by a freshly initialised one
    (0: a head-less backbone). Nothing is written when the file is unsafe, unreadable or does not
    fit the model.
    """
    model = create_model(model_name, num_classes=num_classes, checkpoint_path=src)
    weights = {p.name: p.asnumpy() for p in model.get_parameters()}
    return save_weights(weights, dst, fmt, metadata={"model": model_name, "source": os.path.basename(str(src))})
