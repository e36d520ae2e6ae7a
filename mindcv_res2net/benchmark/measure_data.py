"""Steady-state img/s of a training input pipeline alone (``measure_data``), run in a worker process."""
import dataclasses
import sys
import time
from typing import Iterator, List

from tqdm import tqdm

from ..data import DataConfig, DatasetError, create_loader
from ..data.loader import iterate_batches
from ..models import get_pretrained_cfg
from ..utils.device import MODE_BY_NAME, set_device
from .mindcv_compare import mindcv_pipeline
from .plan import MINDCV, PipelineRun
from .timing import peak_memory_mb


def our_pipeline(run: PipelineRun, timings: dict) -> Iterator:
    """train.py's ImageNet training pipeline on ``run.data_dir``: an iterator of (images, labels) batches;
    ``timings["setup_s"]``: seconds to list the folder and pre-scan every file."""
    data = DataConfig(dataset=run.dataset, data_dir=run.data_dir, batch_size=run.batch_size,
                      image_resize=run.image_size, num_parallel_workers=run.num_parallel_workers,
                      normalize_on_device=not run.host_normalize, reduced_decode=run.reduced_decode)
    start = time.perf_counter()
    loader = create_loader(data, data.train_split, train=True, model_cfg=get_pretrained_cfg("res2net50"))
    timings["setup_s"] = time.perf_counter() - start
    return iterate_batches(loader.for_epoch(0))


def measure_data(run: PipelineRun) -> List[dict]:
    """One row: img/s over ``run.data_batches`` batches after the first (no network), the first batch's
    seconds, dtype and shape, set-up seconds (ours) and peak memory (MindSpore's workers are threads)."""
    set_device(run.device_target, MODE_BY_NAME["graph"])
    timings = {}
    iterator = mindcv_pipeline(run) if run.impl == MINDCV else our_pipeline(run, timings)
    start = time.perf_counter()
    first = next(iterator)
    first_s = time.perf_counter() - start
    images = 0
    with tqdm(total=run.data_batches, desc=f"{run.impl} data", unit="batch", file=sys.stderr, delay=5,
              leave=False) as bar:
        start = time.perf_counter()
        for batch in iterator:
            images += batch[0].shape[0]
            bar.update()
            if bar.n >= run.data_batches:
                break
        seconds = time.perf_counter() - start
    if images == 0:
        raise DatasetError(f"{run.data_dir}/train holds too few images for more than one batch of {run.batch_size}")
    return [dict(dataclasses.asdict(run), **timings, first_batch_s=first_s, batches_timed=bar.n,
                 data_img_s=images / seconds, batch_dtype=str(first[0].dtype), batch_shape=list(first[0].shape),
                 peak_host_memory_mb=peak_memory_mb())]
