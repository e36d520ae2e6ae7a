"""Data sets, transforms and batched loaders."""
from .config import DataConfig, eval_preprocessing
from .loader import DATASETS, create_loader, create_source
from .sources import DatasetError

__all__ = ["DATASETS", "DataConfig", "DatasetError", "create_loader", "create_source", "eval_preprocessing"]
