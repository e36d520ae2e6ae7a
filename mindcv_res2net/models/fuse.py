"""Inference-time folding of BatchNorm into the preceding convolution.

In eval mode BatchNorm is an affine map per channel, ``y = gamma * (x - mean) / sqrt(var + eps) + beta``,
so ``BN(conv(x))`` equals one convolution with weight ``w * s`` and bias ``beta - mean * s`` where
``s = gamma / sqrt(var + eps)``. Folding removes one full pass over every activation map; the
outputs agree with the unfolded network to float32 rounding. The folded model is for inference
and export only: it has no BatchNorm statistics left to train.
"""
import mindspore as ms
import numpy as np
from mindspore import nn

__all__ = ["fuse_batchnorm"]


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold ``bn`` into ``conv`` in place (float64 arithmetic, stored in the conv's dtype)."""
    gamma, beta = bn.gamma.asnumpy().astype(np.float64), bn.beta.asnumpy().astype(np.float64)
    mean, var = bn.moving_mean.asnumpy().astype(np.float64), bn.moving_variance.asnumpy().astype(np.float64)
    scale = gamma / np.sqrt(var + bn.eps)
    weight = conv.weight.asnumpy().astype(np.float64)
    bias = conv.bias.asnumpy().astype(np.float64) if conv.has_bias else np.zeros(weight.shape[0])
    dtype = conv.weight.dtype
    conv.weight.set_data(ms.Tensor((weight * scale.reshape(-1, 1, 1, 1)).astype(np.float32), dtype))
    conv.bias = ms.Parameter(ms.Tensor(((bias - mean) * scale + beta).astype(np.float32), dtype),
                             name=conv.weight.name.rsplit(".", 1)[0] + ".bias")
    conv.has_bias = True


def _last_conv(cell):
    """``cell`` itself if a Conv2d, else the last cell of a SequentialCell when that is a Conv2d."""
    if isinstance(cell, nn.Conv2d):
        return cell
    if isinstance(cell, nn.SequentialCell) and len(cell) and isinstance(cell[len(cell) - 1], nn.Conv2d):
        return cell[len(cell) - 1]
    return None


def fuse_batchnorm(model: nn.Cell) -> nn.Cell:
    """Fold every BatchNorm2d that directly follows a Conv2d into it; returns ``model`` (modified, eval mode).

    Recognised pairs: consecutive cells of a SequentialCell (``[conv, bn, ...]``), sibling attributes
    ``convX``/``bnX`` (the conv may be a SequentialCell ending in a conv, as in the deep stem), and
    index-aligned ``convs``/``bns`` CellLists. Folded BatchNorms become ``nn.Identity``.
    """
    model.set_train(False)
    for _, cell in list(model.cells_and_names()):
        if isinstance(cell, nn.SequentialCell):
            for i in range(len(cell) - 1):
                if isinstance(cell[i], nn.Conv2d) and isinstance(cell[i + 1], nn.BatchNorm2d):
                    _fold(cell[i], cell[i + 1])
                    cell[i + 1] = nn.Identity()
            continue
        children = dict(cell.name_cells())
        for name, child in children.items():
            if name.startswith("bn") and isinstance(child, nn.BatchNorm2d):
                conv = _last_conv(children.get("conv" + name[2:]))
                if conv is not None:
                    _fold(conv, child)
                    setattr(cell, name, nn.Identity())
        convs, bns = children.get("convs"), children.get("bns")
        if isinstance(convs, nn.CellList) and isinstance(bns, nn.CellList) and len(convs) == len(bns):
            for i in range(len(bns)):
                if isinstance(convs[i], nn.Conv2d) and isinstance(bns[i], nn.BatchNorm2d):
                    _fold(convs[i], bns[i])
                    bns[i] = nn.Identity()
    return model
