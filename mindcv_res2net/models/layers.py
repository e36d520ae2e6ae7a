"""Small building blocks shared by the networks."""
from mindspore import nn, ops


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


def conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1) -> list:
    """[Conv2d (no bias, 'same'-style padding k//2), BatchNorm2d] as a list of cells."""
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, pad_mode="pad",
                  padding=kernel_size // 2, group=groups, has_bias=False),
        nn.BatchNorm2d(out_channels, eps=1e-5, momentum=0.9),
    ]

