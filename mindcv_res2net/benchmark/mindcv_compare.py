"""mindcv 0.3's side of ``--compare mindcv``: its network and train step, its input pipeline, its names.

mindcv is an optional package, imported inside the functions that use it.
"""
import importlib.util
from typing import Callable, Iterator, Set, Tuple

from mindspore import nn

from ..data.datasets import DATASETS
from ..utils.errors import UserError
from .plan import PipelineRun


def mindcv_models() -> Set[str]:
    """mindcv's registered res2net names; a ``UserError`` naming --compare when mindcv is not installed."""
    if importlib.util.find_spec("mindcv") is None:
        raise UserError("--compare mindcv needs mindcv installed beside MindSpore: pip install mindcv==0.3.0")
    import mindcv

    return set(mindcv.list_models("res2net*"))


def mindcv_network(model_name: str) -> Tuple[nn.Cell, Callable[[], nn.Cell]]:
    """(model, train-step maker) as mindcv trains: its model (1000 classes), cross-entropy and momentum SGD
    (lr 0.01, wd 1e-4). With a fixed loss scale of 1 and no EMA, clipping or accumulation, mindcv's
    create_trainer hands them to mindspore.Model, which trains with TrainOneStepCell."""
    import mindcv
    from mindcv.loss import create_loss
    from mindcv.optim import create_optimizer

    model = mindcv.create_model(model_name, num_classes=1000)
    optimizer = create_optimizer(model.trainable_params(), "momentum", 0.01, weight_decay=1e-4)
    return model, lambda: nn.TrainOneStepCell(nn.WithLossCell(model, create_loss("CE")), optimizer)


def mindcv_pipeline(run: PipelineRun) -> Iterator:
    """mindcv's training pipeline on ``run.data_dir`` (create_dataset + create_transforms + create_loader, as
    its train.py, under mindcv's name of ``run.dataset``): an iterator of (images, labels) batches, as its
    Model.train iterates."""
    from mindcv.data import create_dataset, create_loader, create_transforms

    name = DATASETS[run.dataset].mindcv_name
    dataset = create_dataset(name=name, root=run.data_dir, split="train", shuffle=True,
                             num_parallel_workers=run.num_parallel_workers)
    transforms = create_transforms(dataset_name=name, image_resize=run.image_size, is_training=True)
    loader = create_loader(dataset, run.batch_size, drop_remainder=True, is_training=True, transform=transforms,
                           num_parallel_workers=run.num_parallel_workers)
    return loader.create_tuple_iterator(num_epochs=1, do_copy=False)
