"""Data sets, transforms and batched loaders: the registry of data sets (``datasets``), their readers
(``sources``, ``image_files``), transforms, loaders and evaluation preprocessing."""
from .datasets import DATASETS, DatasetSpec, dataset_spec
from .loader import create_loader, create_source
from .settings import CheckpointEval, DataConfig, checkpoint_eval, eval_preprocessing
from .image_files import DatasetError

__all__ = ["DATASETS", "CheckpointEval", "DataConfig", "DatasetError", "DatasetSpec", "checkpoint_eval",
           "create_loader", "create_source", "dataset_spec", "eval_preprocessing"]
