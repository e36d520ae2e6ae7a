"""Weight files: readers of every published format, per-source name maps, the training checkpoint's
layout, strict loading, saving.

``read_checkpoint(path)`` reads any supported file, ``load_checkpoint(model, path)`` maps it strictly
onto a model, ``save_weights`` writes ``.ckpt`` / ``.safetensors`` (``deploy.convert.convert_weights``
does all three).
"""
from .formats import (CheckpointError, read_checkpoint, read_checkpoint_metadata, read_mindspore_checkpoint,
                      save_weights)
from .loading import load_checkpoint, map_state_dict, non_finite_tensors
from .torch_file import UnsafePickleError

__all__ = ["CheckpointError", "UnsafePickleError", "load_checkpoint", "map_state_dict", "non_finite_tensors",
           "read_checkpoint", "read_checkpoint_metadata", "read_mindspore_checkpoint", "save_weights"]
