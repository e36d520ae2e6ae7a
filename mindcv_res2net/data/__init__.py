"""Data sets, transforms and batched loaders."""
from .loader import DATASETS, create_loader, create_source
from .settings import CheckpointEval, DataConfig, checkpoint_eval, eval_preprocessing
from .image_files import DatasetError

__all__ = ["DATASETS", "CheckpointEval", "DataConfig", "DatasetError", "checkpoint_eval", "create_loader",
           "create_source", "eval_preprocessing"]
