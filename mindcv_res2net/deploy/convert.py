"""Convert a weight file of any supported format into a MindSpore checkpoint for a registered model."""
import os
from typing import Optional

from ..models import create_model, create_model_from_checkpoint
from ..utils.fileio import check_output
from ..weights import save_weights
from ..train.run_folder import run_config


def convert_weights(src: str, dst: str, model_name: str, *, num_classes: Optional[int] = None,
                    fmt: Optional[str] = None) -> str:
    """Read ``src`` (PyTorch .pth zip/legacy, .safetensors, .npz, MindSpore/mindcv .ckpt), map it strictly
    onto ``model_name`` and write ``dst`` (``.ckpt``, or ``.safetensors`` by suffix or ``fmt``).

    ``num_classes`` None keeps the file's head; another count replaces the classifier by a freshly
    initialised one (0: a head-less backbone). A training checkpoint is stripped to its network
    weights (the EMA averages when it has them): no optimizer state; its class names, input
    channels and training config are kept. Nothing is written when the file is unsafe, unreadable
    or does not fit the model, and ``dst`` is checked first (``check_output``): never ``src`` itself (also
    through a link or a hard link), a folder or a read-only file.
    """
    check_output(dst, "dst", inputs=(src,))
    metadata = {"model": model_name, "source": os.path.basename(str(src))}
    if num_classes is None:
        model = create_model_from_checkpoint(model_name, src)
        metadata["in_channels"] = model.in_channels
        if model.num_classes:  # 0: a head-less file stays head-less
            metadata["num_classes"] = model.num_classes
        if model.class_names:
            metadata["class_names"] = list(model.class_names)
        if model.run_config:
            run_config(model.run_config, src)  # a stored config that a run could not read is not copied on
            metadata["config"] = model.run_config
    else:
        model = create_model(model_name, num_classes=num_classes, checkpoint_path=src)
    weights = {p.name: p.asnumpy() for p in model.get_parameters()}
    return save_weights(weights, dst, fmt=fmt, metadata=metadata)
