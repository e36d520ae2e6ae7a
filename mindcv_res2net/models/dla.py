"""Res2Net-DLA-60 and Res2NeXt-DLA-60: Deep Layer Aggregation trees of Res2Net blocks (official ``dla.py``).

The trees share ``Bottle2neck`` with the Res2Net class: here the block's split width and output
channels come from the tree, a block of stride 2 is the non-cascading stage block, and the tree
hands each level's first block its residual. Parameter names follow the official files
(``level3.tree1.tree2.convs.0.weight``), with MindSpore's BatchNorm names.
"""
import math
from typing import List, Optional, Sequence, Tuple

from mindspore import Tensor, nn, ops
from mindspore.common import initializer as init

from ..utils.errors import UserError
from ..weights.names import DLA_STEM_CONV
from .base import FeatureClassifier, check_training_switches
from .factory import build_model_with_cfg
from .layers import conv_bn, run_block
from .registry import Variant, register_model
from .res2net import Bottle2neck, official_cfg

__all__ = ["DlaRoot", "DlaTree", "Res2NetDLA"]


class DlaRoot(nn.Cell):
    """Aggregation node: 1x1 conv (no bias) over the concatenated inputs, BN, ReLU.

    ``construct(inputs: tuple of (N, C_i, H, W)) -> (N, out_channels, H, W)``, sum(C_i) = ``in_channels``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv, self.bn = conv_bn(in_channels, out_channels, 1)
        self.relu = nn.ReLU()

    def construct(self, inputs: Tuple[Tensor, ...]) -> Tensor:
        return self.relu(self.bn(self.conv(ops.concat(inputs, axis=1))))


class DlaTree(nn.Cell):
    """A DLA tree of ``levels`` levels: (N, in_channels, H, W) -> (N, out_channels, H / stride, W / stride).

    One level: ``bottom = MaxPool(stride)(x)``, residual ``project(bottom)`` (1x1 conv + BN when the
    channels change), two blocks, and a root over ``[x2, x1, *children]``; ``children`` gets ``bottom``
    in a level root. More levels: two sub-trees, the first one's output passed on as a child.
    ``drop_path_rates``: the blocks' rates, consumed from the front in the order the blocks are built.
    ``grad_checkpointing`` (set by the network's ``set_grad_checkpointing``) recomputes each block in
    the backward pass.
    """

    def __init__(self, levels: int, in_channels: int, out_channels: int, *, stride: int, block_args: dict,
                 drop_path_rates: List[float], level_root: bool = False, root_channels: int = 0) -> None:
        super().__init__()
        root_channels = (root_channels or 2 * out_channels) + (in_channels if level_root else 0)
        self.levels, self.level_root = levels, level_root
        self.grad_checkpointing = False
        self.has_unused_project = levels > 1 and in_channels != out_channels  # in the official files only
        self.downsample = nn.MaxPool2d(stride, stride) if stride > 1 else None
        self.project = None
        if levels == 1:
            self.tree1 = Bottle2neck(in_channels, 0, stride, is_stage_block=stride > 1, out_channels=out_channels,
                                     drop_path=drop_path_rates.pop(0), **block_args)
            self.tree2 = Bottle2neck(out_channels, 0, 1, out_channels=out_channels,
                                     drop_path=drop_path_rates.pop(0), **block_args)
            if in_channels != out_channels:
                self.project = nn.SequentialCell(*conv_bn(in_channels, out_channels, 1))
            self.root = DlaRoot(root_channels, out_channels)
        else:  # the official code builds a `project` here too, but never uses it (see unused_weight_prefixes)
            self.tree1 = DlaTree(levels - 1, in_channels, out_channels, stride=stride, block_args=block_args,
                                 drop_path_rates=drop_path_rates)
            self.tree2 = DlaTree(levels - 1, out_channels, out_channels, stride=1, block_args=block_args,
                                 drop_path_rates=drop_path_rates, root_channels=root_channels + out_channels)

    def construct(self, x: Tensor, children: Tuple[Tensor, ...] = ()) -> Tensor:
        bottom = x if self.downsample is None else self.downsample(x)
        if self.level_root:
            children = children + (bottom,)
        if self.levels == 1:
            x1 = run_block(self.tree1, x, bottom if self.project is None else self.project(bottom),
                           checkpoint=self.grad_checkpointing)
            x2 = run_block(self.tree2, x1, checkpoint=self.grad_checkpointing)
            return self.root((x2, x1) + children)
        x1 = self.tree1(x)
        return self.tree2(x1, children + (x1,))


@ops.constexpr
def _check_input_size(height: int, width: int) -> None:
    """Sides of 32k or 32k - 1 pixels, where every tree's 2x2 max-pool and stride-2 convolution agree
    (checked when the graph is built, in either mode)."""
    if (height + 1) // 2 % 16 or (width + 1) // 2 % 16:
        raise UserError(f"Res2Net-DLA takes images whose sides are 32k or 32k - 1 pixels (as the official DLA: "
                        f"its 2x2 max-pools and stride-2 convolutions must agree), got {height}x{width}")


class Res2NetDLA(FeatureClassifier):
    """DLA-60 with Res2Net (``cardinality=1, base_width=28``) or Res2NeXt (``cardinality=8, base_width=4``) blocks.

    Args:
        levels: tree depths of level2..level5 (DLA-60: 1, 2, 3, 1).
        channels: output channels of base_layer, level0..level5 (DLA-60: 16, 16, 32, 128, 256, 512, 1024).
        scale, cardinality, base_width: the blocks' splits; split width floor(out * base_width / 64) *
            cardinality // 2 (28, 56, 112, 224 for Res2Net; 32, 64, 128, 256 for Res2NeXt).
        num_classes: classifier outputs (a 1x1 convolution, as the official files store it); 0: pooled features.
        in_channels, drop_rate, drop_path_rate, global_pool: as for ``Res2Net``.
        features_only, out_indices: the maps at stride 2^(i+1) for i in ``out_indices``: level1..level5.
        norm_eval: as for ``Res2Net``. ``output_stride`` and ``frozen_stages`` are refused (ValueError)
            unless left at 32 and -1: the trees have no dilated form, and no stem/stage split to freeze.

    Input (N, in_channels, H, W); output logits (N, num_classes). Like the official network it runs
    when each side is 32k or 32k - 1 pixels (224 and 223 both work): every tree's 2x2 max-pool must
    give the size its stride-2 convolution gives. Other sizes are a one-line ``ValueError``.
    """

    def __init__(self, levels: Sequence[int] = (1, 2, 3, 1), channels: Sequence[int] = (16, 16, 32, 128, 256, 512,
                 1024), *, scale: int = 4, cardinality: int = 1, base_width: int = 28, num_classes: int = 1000,
                 in_channels: int = 3, drop_rate: float = 0.0, drop_path_rate: float = 0.0,
                 features_only: bool = False, out_indices: Optional[Sequence[int]] = None,
                 global_pool: str = "avg", output_stride: int = 32, frozen_stages: int = -1,
                 norm_eval: bool = False) -> None:
        super().__init__(in_channels=in_channels, num_classes=num_classes, features_only=features_only,
                         out_indices=out_indices, global_pool=global_pool, drop_rate=drop_rate,
                         drop_path_rate=drop_path_rate)
        if output_stride != 32 or frozen_stages != -1:
            raise UserError(f"Res2Net-DLA supports neither output_stride nor frozen_stages (got output_stride="
                            f"{output_stride!r}, frozen_stages={frozen_stages!r}); use a Res2Net variant")
        check_training_switches(frozen_stages, norm_eval=norm_eval)
        if len(levels) != 4 or len(channels) != 7:
            raise UserError(f"levels must give 4 tree depths and channels 7 widths, got {levels} and {channels}")
        self.base_layer = nn.SequentialCell(
            nn.Conv2d(self.in_channels, channels[0], 7, pad_mode="pad", padding=3, has_bias=False),
            nn.BatchNorm2d(channels[0], eps=1e-5, momentum=0.9), nn.ReLU())
        self.level0 = nn.SequentialCell(*conv_bn(channels[0], channels[1], 3), nn.ReLU())
        self.level1 = nn.SequentialCell(*conv_bn(channels[1], channels[2], 3, stride=2), nn.ReLU())
        blocks = sum(2 ** (depth - 1) * 2 for depth in levels)
        rates = [self.drop_path_rate * i / max(blocks - 1, 1) for i in range(blocks)]
        self.unused_weight_prefixes: List[str] = []  # tensors of the official files that the network never uses
        for index, depth in enumerate(levels):
            out = channels[index + 3]
            width = int(math.floor(out * base_width / 64.0)) * cardinality // 2
            tree = DlaTree(depth, channels[index + 2], out, stride=2,
                           block_args=dict(width=width, scale=scale, cardinality=cardinality), drop_path_rates=rates,
                           level_root=index > 0)
            setattr(self, f"level{index + 2}", tree)
            self.unused_weight_prefixes += [".".join(filter(None, (f"level{index + 2}", name, "project."))) for name, cell
                                            in tree.cells_and_names() if getattr(cell, "has_unused_project", False)]
        self._set_up_head([(channels[i + 2], 2 ** (i + 1), f"level{i + 1}") for i in range(5)], channels[-1])
        for _, cell in self.cells_and_names():
            if isinstance(cell, nn.Conv2d) and cell is not self.fc:
                cell.weight.set_data(init.initializer(init.HeNormal(mode="fan_out", nonlinearity="relu"),
                                                      cell.weight.shape, cell.weight.dtype))
        self._apply_training_switches((), frozen_stages=frozen_stages, norm_eval=norm_eval)

    stage_names = ("level2", "level3", "level4", "level5")
    pool_keeps_dims = True

    def forward_stem(self, x: Tensor) -> Tensor:
        """(N, in_channels, H, W) image -> (N, 32, H / 2, W / 2) output of level1 (feature map 0)."""
        _check_input_size(x.shape[2], x.shape[3])
        return self.level1(self.level0(self.base_layer(x)))

    def make_classifier(self, num_classes: int) -> nn.Cell:
        return nn.Conv2d(self.num_features, num_classes, 1, has_bias=True)

    def classify(self, x: Tensor) -> Tensor:
        """(N, C, 1, 1) pooled features -> (N, num_classes) logits of the 1x1-convolution classifier."""
        return ops.flatten(self.fc(x))  # flatten, not reshape: MindSpore's ONNX export loses a final Reshape


# ---------------------------------------------------------------------------------------------
# Variants and their published weights


# name: Variant(constructor arguments, {tag: default cfg}, official long name), as in res2net.py
VARIANTS = {
    "res2net_dla60": Variant(dict(cardinality=1, base_width=28), {
        "official_in1k": official_cfg("res2net_dla60_4s-d88db7f9.pth", 78.47, first_conv=DLA_STEM_CONV)},
        "dla60_res2net"),
    "res2next_dla60": Variant(dict(cardinality=8, base_width=4), {
        "official_in1k": official_cfg("res2next_dla60_4s-d327927b.pth", 78.45, first_conv=DLA_STEM_CONV)},
        "dla60_res2next"),
}


def _create(name: str, pretrained: bool, **kwargs) -> Res2NetDLA:
    """The network of row ``VARIANTS[name]``, with weights as asked (the arguments of ``create_model``)."""
    return build_model_with_cfg(Res2NetDLA, name, pretrained, arch=VARIANTS[name].arch, **kwargs)


@register_model
def res2net_dla60(pretrained: bool = False, **kwargs) -> Res2NetDLA:
    """Res2Net-DLA-60 (official dla.py): 20.85M parameters used (21.15M counted with 15 unused)."""
    return _create("res2net_dla60", pretrained, **kwargs)


@register_model
def res2next_dla60(pretrained: bool = False, **kwargs) -> Res2NetDLA:
    """Res2NeXt-DLA-60 (official dla.py), cardinality 8: 17.03M parameters used."""
    return _create("res2next_dla60", pretrained, **kwargs)


__all__ += list(VARIANTS)
