"""Small building blocks shared by the networks, and timm's layer config switches."""
from typing import Optional

from mindspore import nn, ops, recompute

# timm's layer config (timm.layers.config), read by the layers as they are built:
# - exportable: padded pools are built in their ONNX-exportable form (a Pad and an unpadded pool, as
#   ``exportable_pools`` makes them for ONNX export); the same numbers;
# - scriptable: TorchScript has no MindSpore counterpart and every network here compiles in Graph mode as
#   built, so it changes nothing; kept so that timm's code that sets and reads it runs unchanged;
# - no_jit, no_activation_jit: timm's choice of non-scripted activations; ours are never scripted: no effect.
_LAYER_CONFIG = dict(scriptable=False, exportable=False, no_jit=False, no_activation_jit=False)


class set_layer_config:  # noqa: N801  (timm's name: called as a function, used as a context manager)
    """Set the layer config flags that are not None, as timm's ``set_layer_config``: at once when called,
    and back to their previous values at the end of a ``with`` block."""

    def __init__(self, *, scriptable: Optional[bool] = None, exportable: Optional[bool] = None,
                 no_jit: Optional[bool] = None, no_activation_jit: Optional[bool] = None) -> None:
        self.previous = dict(_LAYER_CONFIG)
        given = dict(scriptable=scriptable, exportable=exportable, no_jit=no_jit, no_activation_jit=no_activation_jit)
        _LAYER_CONFIG.update({key: bool(value) for key, value in given.items() if value is not None})

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc_info) -> bool:
        _LAYER_CONFIG.update(self.previous)
        return False


class set_scriptable(set_layer_config):  # noqa: N801
    """timm's ``set_scriptable(mode)``: no effect on our networks (they compile in Graph mode as built)."""

    def __init__(self, mode: bool) -> None:
        super().__init__(scriptable=mode)


class set_exportable(set_layer_config):  # noqa: N801
    """timm's ``set_exportable(mode)``: padded pools built while it is on are ONNX-exportable."""

    def __init__(self, mode: bool) -> None:
        super().__init__(exportable=mode)


class set_no_jit(set_layer_config):  # noqa: N801
    """timm's ``set_no_jit(mode)``: no effect here (no layer is scripted)."""

    def __init__(self, mode: bool) -> None:
        super().__init__(no_jit=mode)


def is_scriptable() -> bool:
    return _LAYER_CONFIG["scriptable"]


def is_exportable() -> bool:
    return _LAYER_CONFIG["exportable"]


def is_no_jit() -> bool:
    return _LAYER_CONFIG["no_jit"]


class DropPath(nn.Cell):
    """Stochastic depth: zero a whole sample's residual branch with probability ``drop_prob``.

    Kept samples are scaled by ``1 / (1 - drop_prob)``; the identity in eval mode or when
    ``drop_prob == 0``. Input (N, ...), output the same shape.
    """

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_path probability must be in [0, 1), got {drop_prob}")
        self.drop_prob = float(drop_prob)
        self.dropout = nn.Dropout(p=self.drop_prob) if self.drop_prob > 0 else None

    def construct(self, x):
        if self.dropout is None or not self.training:
            return x
        mask_shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        return x * self.dropout(ops.ones(mask_shape, x.dtype))

    def extend_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class SqueezeExcite(nn.Cell):
    """Squeeze-and-excitation (Hu et al., SENet): ``x * sigmoid(fc2(relu(fc1(mean(x)))))`` with 1x1
    convolutions (bias) of ``channels -> channels // reduction -> channels``. (N, C, H, W) in and out."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1, has_bias=True)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(hidden, channels, 1, has_bias=True)
        self.sigmoid = nn.Sigmoid()

    def construct(self, x):
        return x * self.sigmoid(self.fc2(self.relu(self.fc1(ops.mean(x, (2, 3), keep_dims=True)))))


def run_block(block: nn.Cell, *inputs, checkpoint: bool):
    """``block(*inputs)``; with ``checkpoint`` under ``mindspore.recompute``, which recomputes the block's
    activations in the backward pass instead of keeping them (gradient checkpointing)."""
    if checkpoint:
        return recompute(block, *inputs)
    return block(*inputs)


def conv_bn(in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, groups: int = 1,
            dilation: int = 1) -> list:
    """[Conv2d (no bias, 'same'-style padding ``dilation * (k // 2)``), BatchNorm2d] as a list of cells."""
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, pad_mode="pad",
                  padding=dilation * (kernel_size // 2), dilation=dilation, group=groups, has_bias=False),
        nn.BatchNorm2d(out_channels, eps=1e-5, momentum=0.9),
    ]


class Pool2dPad(nn.Cell):
    """Max or average pooling with symmetric padding, as PyTorch's ``padding`` argument.

    ``kind="max"`` ignores the padding (PyTorch MaxPool2d). ``kind="avg"`` counts it as zeros and
    divides by the full window (``count_include_pad=True``), or with ``count_include_pad=False``
    divides by the real pixels of each window only (Paddle's ``exclusive=True``). By default
    MindSpore's fused "pad"-mode kernels run; the max pool drops its added depth axis with a reshape,
    not ``squeeze``, whose shape check would stay in a dynamic-batch MINDIR and make it fail to load.
    ``explicit_pad=True`` (default: ``is_exportable()``) builds a zero Pad + an unpadded pool instead, made
    of operators ONNX has (see ``exportable_pools``): the same output for average pooling (an exclusive one
    divides by the same pool of a map of ones), and for max pooling of non-negative input (the stem's max
    pool follows a ReLU). Input (N, C, H, W), output (N, C, H', W').
    """

    def __init__(self, kind: str, kernel_size: int, stride: int, *, padding: int,
                 explicit_pad: Optional[bool] = None, count_include_pad: bool = True) -> None:
        super().__init__()
        if kind not in ("max", "avg"):
            raise ValueError(f"pool kind must be 'max' or 'avg', got '{kind}'")
        explicit_pad = is_exportable() if explicit_pad is None else explicit_pad
        self.kind, self.kernel_size, self.stride, self.padding = kind, kernel_size, stride, padding
        self.explicit_pad, self.count_include_pad = explicit_pad, count_include_pad
        self.exclusive = kind == "avg" and not count_include_pad and padding > 0
        if explicit_pad:
            self.pad = ops.Pad(((0, 0), (0, 0), (padding, padding), (padding, padding)))
            self.pool = (nn.MaxPool2d if kind == "max" else nn.AvgPool2d)(kernel_size, stride, pad_mode="valid")
        elif kind == "max":
            self.pool = nn.MaxPool2d(kernel_size, stride, pad_mode="pad", padding=padding)
        else:
            self.pool = nn.AvgPool2d(kernel_size, stride, pad_mode="pad", padding=padding,
                                     count_include_pad=count_include_pad)

    def construct(self, x):
        if self.explicit_pad:
            if self.exclusive:
                ones = x[:, :1] * 0.0 + 1.0
                return self.pool(self.pad(x)) / self.pool(self.pad(ones))
            return self.pool(self.pad(x))
        if self.kind == "max":
            out = self.pool.max_pool(ops.expand_dims(x, 2))[0]
            return out.reshape(-1, out.shape[1], out.shape[3], out.shape[4])
        return self.pool(x)

    def extend_repr(self) -> str:
        return f"{self.kind}, kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}" + \
            (", exclusive" if self.exclusive else "") + (", explicit_pad" if self.explicit_pad else "")

    def with_explicit_pad(self) -> "Pool2dPad":
        return Pool2dPad(self.kind, self.kernel_size, self.stride, padding=self.padding, explicit_pad=True,
                         count_include_pad=self.count_include_pad)


class AvgPool2dCeil(nn.Cell):
    """Average pooling over ``size`` x ``size`` windows at stride ``size`` that keeps a partial window at
    the bottom/right edge and averages only the pixels inside it: PyTorch's
    ``AvgPool2d(size, size, ceil_mode=True, count_include_pad=False)``, the v1b shortcut's pool.

    By default MindSpore's kernel for exactly that runs (AvgPool3D inside, which ONNX export lacks).
    ``explicit_pad=True`` (default: ``is_exportable()``) computes the same from operators ONNX has: zero-pad
    ``size - 1`` rows and columns at the bottom/right, an unpadded average pool, divided by the same pool of
    a map of ones (the fraction of real pixels in each window). Input (N, C, H, W), output
    (N, C, ceil(H/size), ceil(W/size)).
    """

    def __init__(self, size: int, *, explicit_pad: Optional[bool] = None) -> None:
        super().__init__()
        self.size, self.explicit_pad = size, is_exportable() if explicit_pad is None else explicit_pad
        if self.explicit_pad:
            self.pad = ops.Pad(((0, 0), (0, 0), (0, size - 1), (0, size - 1)))
            self.pool = nn.AvgPool2d(size, size, pad_mode="valid")
        else:
            self.pool = nn.AvgPool2d(size, size, ceil_mode=True, count_include_pad=False)

    def construct(self, x):
        if not self.explicit_pad:
            return self.pool(x)
        ones = x[:, :1] * 0.0 + 1.0
        return self.pool(self.pad(x)) / self.pool(self.pad(ones))

    def extend_repr(self) -> str:
        return f"size={self.size}, ceil_mode, count_include_pad=False" + (", explicit_pad" if self.explicit_pad else "")

    def with_explicit_pad(self) -> "AvgPool2dCeil":
        return AvgPool2dCeil(self.size, explicit_pad=True)


class AvgPool2dSame(nn.Cell):
    """Average pooling over ``size`` x ``size`` windows at stride 1 with TensorFlow's 'SAME' zero padding
    (``(size - 1) // 2`` rows/columns before, the rest after), dividing every window by its full area:
    the padded zeros count. timm's ``AvgPool2dSame(size, 1)``, which its avg-down shortcut uses in a
    dilated stage (it pads explicitly, so ``count_include_pad=False`` has nothing to exclude). Made of
    a Pad and an unpadded pool, both ONNX operators. Input (N, C, H, W), output the same shape.
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        before = (size - 1) // 2
        self.size = size
        self.pad = ops.Pad(((0, 0), (0, 0), (before, size - 1 - before), (before, size - 1 - before)))
        self.pool = nn.AvgPool2d(size, 1, pad_mode="valid")

    def construct(self, x):
        return self.pool(self.pad(x))

    def extend_repr(self) -> str:
        return f"size={self.size}, stride=1, same zero padding"


def exportable_pools(model: nn.Cell) -> nn.Cell:
    """Switch every padded pool of ``model`` (``Pool2dPad``, ``AvgPool2dCeil``) to its explicit-padding
    form, for ONNX export (in place). Exact for Res2Net, whose only padded max pool reads a ReLU output.
    """
    for _, cell in list(model.cells_and_names()):
        for name, child in list(cell.name_cells().items()):
            if isinstance(child, (Pool2dPad, AvgPool2dCeil)) and not child.explicit_pad:
                if isinstance(cell, nn.SequentialCell):  # its construct runs a list that setattr misses
                    cell[list(cell.name_cells()).index(name)] = child.with_explicit_pad()
                else:
                    setattr(cell, name, child.with_explicit_pad())
    return model
