"""Stand-ins for the weight files a user has: a trained-like checkpoint, and a pickle that would run code."""
import os

import numpy as np

import mindspore as ms


def model_params(model) -> dict:
    """{parameter name: numpy array} of a network."""
    return {p.name: p.asnumpy() for p in model.get_parameters()}


class PickleExploit:
    """Pickles as a call of ``os.system`` that creates ``marker``: a malicious weight file's payload."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def save_trained_like_checkpoint(path, num_classes: int, metadata: dict = None, seed: int = 0,
                                 model_name: str = "res2net50"):
    """A ``model_name`` network with non-trivial BatchNorm (gamma and running statistics in [0.5, 1.5]) saved to ``path``.

    Returns the model in eval mode: a stand-in for a trained checkpoint whose logits depend on every tensor.
    Built in PyNative mode (the mode is restored afterwards).
    """
    from mindcv_res2net import create_model
    from mindcv_res2net.weights import save_weights

    mode = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    try:
        model = create_model(model_name, num_classes=num_classes)
        rng = np.random.default_rng(seed)
        for p in model.get_parameters():
            if "moving_" in p.name or "gamma" in p.name:
                p.set_data(ms.Tensor(rng.uniform(0.5, 1.5, p.shape).astype(np.float32)))
        save_weights(model_params(model), str(path), metadata=metadata)
    finally:
        ms.set_context(mode=mode)
    model.set_train(False)
    return model


# class folders as train.py meets them: a newline, bytes that are not UTF-8 (Latin-1 "café"), a backslash
ODD_CLASS_NAMES = ["new\nline", os.fsdecode(b"caf\xe9"), "back\\slash"] + [str(d) for d in range(3, 10)]
