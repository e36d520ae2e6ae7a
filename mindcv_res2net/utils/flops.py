"""Count multiply-adds of a network's convolutions and dense layers by running one forward pass."""
from typing import Tuple

import mindspore as ms
import numpy as np
from mindspore import nn


def count_macs(model: nn.Cell, input_shape: Tuple[int, ...]) -> Tuple[int, tuple]:
    """(multiply-adds of one forward pass on zeros of ``input_shape``, output shape).

    Counts Conv2d and Dense layers, as the Res2Net paper does (res2net50: about 4.2e9 at 224 px).
    Runs in PyNative mode, which forward hooks need; the previous mode is restored.
    """
    total = [0]

    def hook(cell, _inputs, output):
        if isinstance(cell, nn.Conv2d):
            kh, kw = cell.kernel_size
            total[0] += int(output.size) * (cell.in_channels // cell.group) * kh * kw
        else:
            total[0] += int(output.size) * cell.in_channels

    mode = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    handles = [cell.register_forward_hook(hook) for _, cell in model.cells_and_names()
               if isinstance(cell, (nn.Conv2d, nn.Dense))]
    was_training = model.training
    try:
        model.set_train(False)
        output = model(ms.Tensor(np.zeros(input_shape, np.float32)))
    finally:
        for handle in handles:
            handle.remove()
        model.set_train(was_training)
        ms.set_context(mode=mode)
    shape = tuple(o.shape for o in output) if isinstance(output, tuple) else tuple(output.shape)
    return total[0], shape
