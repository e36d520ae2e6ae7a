"""Data sets, transforms and batched loaders."""
from .loader import DATASETS, create_loader, create_source
from .sources import DatasetError

__all__ = ["DATASETS", "DatasetError", "create_loader", "create_source"]
