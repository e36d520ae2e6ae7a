"""A tiny network registered as ``--model tiny_net``: the training, checkpoint and resume mechanics of
train.py without res2net50's compile and step time. The ``tiny_model`` fixture registers it for one test; a
script started by a test (msrun) calls ``register()``."""
from mindspore import nn, ops

from mindcv_res2net.models import registry
from mindcv_res2net.models.factory import build_model_with_cfg
from mindcv_res2net.models.res2net import _cfg

NAME = "tiny_net"


class TinyNet(nn.Cell):
    """conv 3x3 / 2 -> BatchNorm -> ReLU -> global average -> dense: (N, C, H, W) -> (N, num_classes).
    Weights, biases and BatchNorm statistics, as a real network has, at a fraction of the compile time."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, **unused) -> None:
        super().__init__()
        self.num_classes, self.in_channels = num_classes, in_channels
        self.conv1 = nn.Conv2d(in_channels, 4, 3, stride=2, has_bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.fc = nn.Dense(4, num_classes)

    def construct(self, x):
        return self.fc(ops.relu(self.bn1(self.conv1(x))).mean((2, 3)))


def tiny_net(pretrained: bool = False, **kwargs) -> TinyNet:
    """The registered builder of ``TinyNet``, as ``res2net50`` is of its network."""
    return build_model_with_cfg(TinyNet, NAME, pretrained, arch={}, **kwargs)


def registry_entries() -> list:
    """[(registry table, this network's entry)]: what registering ``tiny_net`` adds."""
    return [(registry._builders, tiny_net), (registry._pretrained_cfgs, {"": _cfg()})]


def register() -> None:
    """Register ``tiny_net`` for the rest of the process."""
    for table, entry in registry_entries():
        table[NAME] = entry
