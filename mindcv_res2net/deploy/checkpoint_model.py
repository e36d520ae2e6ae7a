"""Which network a checkpoint holds, decided once for validate, predict and export, and that network loaded."""
from typing import Optional

from mindspore import nn

from ..config import ConfigError
from ..models import create_model_from_checkpoint
from ..models.registry import is_model, resolve_name
from ..train.run_folder import checkpoint_to_evaluate, run_metadata
from ..weights import read_checkpoint


def _canonical(model_name: str) -> str:
    """A registered model's own name for a name, alias or ``name.tag``; an unknown name as it is."""
    return resolve_name(model_name) if is_model(model_name) else model_name


def model_to_evaluate(ckpt_path: str, model_name: str, *, model_given: bool = True,
                      num_classes: Optional[int] = None) -> nn.Cell:
    """The network a checkpoint holds, with its trained head and input channels (``create_model_from_checkpoint``).

    ``ckpt_path``: a weight file, or a training run's folder (its best checkpoint, see
    ``checkpoint_to_evaluate``); the file, read once, is kept in ``model.source``. The network is ``model_name``
    (``--model``; '' when not given); a train.py checkpoint records its model, and a ``model_name`` the user
    gave (``model_given``) that contradicts it is a ``ConfigError`` naming ``--model``, while one left at its
    default gives way to the recorded one. A file that records no model needs ``model_name`` (a
    ``ConfigError`` saying so). ``model.run_config`` is the run's stored config, converted (``run_metadata``),
    or None.
    """
    given = model_given and bool(model_name)
    source = checkpoint_to_evaluate(ckpt_path, "--ckpt_path", model_name if given else "")
    state, metadata = read_checkpoint(source)
    run = run_metadata(metadata, source)
    recorded = run.get("model") if source.endswith(".ckpt") else None
    if recorded and _canonical(recorded) != _canonical(model_name):
        if given:
            raise ConfigError(f"--model {model_name}: {source} was trained as model '{recorded}'")
        model_name = recorded
    if not model_name:
        raise ConfigError(f"--model is needed: {source} does not record which model it holds (train.py's "
                          "checkpoints and run folders do); give --model NAME, e.g. --model res2net50")
    model = create_model_from_checkpoint(model_name, source, num_classes=num_classes, contents=(state, metadata))
    model.run_config, model.source = run.get("config"), source
    return model
