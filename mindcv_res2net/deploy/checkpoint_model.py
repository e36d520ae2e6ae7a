"""Which network a checkpoint holds, decided once for validate, predict and export, and that network loaded."""
from typing import Optional

from mindspore import nn

from ..models import create_model_from_checkpoint
from ..models.registry import is_model, resolve_name
from ..train.run_folder import checkpoint_to_evaluate, recorded_model, run_config


def _canonical(model_name: str) -> str:
    """A registered model's own name for a name, alias or ``name.tag``; an unknown name as it is."""
    return resolve_name(model_name) if is_model(model_name) else model_name


def model_to_evaluate(ckpt_path: str, model_name: str, model_given: bool = True,
                      num_classes: Optional[int] = None) -> nn.Cell:
    """The network a checkpoint holds, with its trained head and input channels (``create_model_from_checkpoint``).

    ``ckpt_path``: a weight file, or a training run's folder (its best checkpoint, see
    ``checkpoint_to_evaluate``); the file read is kept in ``model.source``. The network is ``model_name``
    (``--model``); a train.py checkpoint records its model, and a ``model_name`` the user gave
    (``model_given``) that contradicts it is a ``ValueError`` naming ``--model``, while one left at its
    default gives way to the recorded one. ``model.run_config`` is the run's stored config, converted
    (``run_config``), or None.
    """
    source = checkpoint_to_evaluate(ckpt_path, "--ckpt_path", model_name if model_given else "")
    recorded = recorded_model(source)
    if recorded and _canonical(recorded) != _canonical(model_name):
        if model_given:
            raise ValueError(f"--model {model_name}: {source} was trained as model '{recorded}'")
        model_name = recorded
    model = create_model_from_checkpoint(model_name, source, num_classes)
    model.run_config, model.source = run_config(model.run_config, source), source
    return model
