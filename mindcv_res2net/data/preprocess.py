"""Evaluation preprocessing of image files outside a data loader (prediction, INT8 calibration).

``preprocess_for(pre, C)(path)`` gives one (C, H, W) float32 image, normalised on the host exactly as
``checkpoint_eval`` decides for the network's weights.
"""
import dataclasses
import os
from typing import List, Optional, Sequence

import numpy as np

from .settings import CheckpointEval, EvalPreprocessing, checkpoint_eval
from .image_files import list_images, load_rgb
from .transforms import eval_transforms


def expand_paths(inputs: Sequence[str]) -> List[str]:
    """Files as given, folders replaced by their image files (the data loader's extensions, recursively,
    sorted; entries that are not regular files skipped with a warning)."""
    paths = []
    for item in inputs:
        paths += list_images(item) if os.path.isdir(item) else [item]
    return paths


def prediction_eval(model, run_config: Optional[dict] = None, source: str = "") -> CheckpointEval:
    """How images are prepared for ``model`` outside a data loader (predict, INT8 calibration): the one
    rule ``checkpoint_eval`` with its run's stored config, normalised on the host; ``source`` names the
    weights in its line."""
    return checkpoint_eval(source or "the model's weights", run_config, model.default_cfg,
                           in_channels=model.in_channels, normalize_on_device=False)


def preprocess_for(pre: EvalPreprocessing, in_channels: int):
    """``fn(path) -> (C, H, W) float32``: an image file through ``pre`` (decoded as RGB; grey for 1 channel;
    with ``pre.reduced_decode`` a large JPEG at the reduced DCT scale the data loader decodes it at), with the
    checks of ``load_rgb``: a corrupt file or one too elongated for ``pre.resize`` raises ``DatasetError``
    naming it. Evaluation "as stored" (CIFAR at 32 px) is for a data set's own records: a
    file is stretched to ``pre.size`` squared, so that its own size never reaches the network."""
    if pre.resize is None and not pre.stretch:
        pre = dataclasses.replace(pre, stretch=True)
    ops = eval_transforms(pre, on_host=True)
    reduce_to = pre.resize if pre.reduced_decode else None

    def preprocess(path: str) -> np.ndarray:
        image = load_rgb(path, pre.resize, reduce_to=reduce_to)
        if in_channels == 1:
            image = image.mean(axis=-1, keepdims=True).astype(np.uint8)
        for op in ops:
            image = op(image)
        return np.asarray(image, np.float32)

    return preprocess


def eval_preprocess(model, run_config: Optional[dict] = None):
    """``fn(path) -> (C, H, W) float32``: a training run's eval preprocessing (its stored config), else
    the model's default config (see ``prediction_eval``)."""
    return preprocess_for(prediction_eval(model, run_config).preprocessing, model.in_channels)
