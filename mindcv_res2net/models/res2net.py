"""Res2Net, Res2Net-v1b and Res2NeXt (Gao et al., "Res2Net: A New Multi-scale Backbone Architecture").

One block class and one network class; every published variant is a set of constructor
arguments (layers, base width, scale, cardinality, stem, shortcut). Parameter names follow the
official PyTorch code (``layer1.0.convs.0.weight``), with MindSpore's BatchNorm names
(``gamma``, ``beta``, ``moving_mean``, ``moving_variance``).
"""
import math
import numbers
from typing import Optional, Sequence

from mindspore import Tensor, lazy_inline, nn, ops
from mindspore.common import initializer as init

from ..utils.errors import UserError
from ..weights.names import CLASSIFIER, DEEP_STEM_CONV, STEM_CONV
from .base import FeatureClassifier, check_training_switches
from .factory import build_model_with_cfg
from .layers import AvgPool2dCeil, AvgPool2dSame, DropPath, Pool2dPad, SqueezeExcite, conv_bn, run_block
from .registry import Variant, register_model

__all__ = ["Bottle2neck", "Res2Net"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OUTPUT_STRIDES = (8, 16, 32)  # reduction of the final map; below 32 the last stages dilate instead of striding


class Bottle2neck(nn.Cell):
    """Res2Net bottleneck: 1x1 conv, ``scale`` hierarchical 3x3 splits, 1x1 conv, residual add.

    Input (N, in_channels, H, W); output (N, out_channels, H / stride, W / stride), ``out_channels``
    ``planes * 4`` and the split width ``floor(planes * base_width / 64) * cardinality`` unless given
    (the DLA trees give both). ``is_stage_block`` marks a stage block: its splits do not cascade and its last
    split is average-pooled (3x3, ``stride``, padding 1) instead of passed through; the pool counts the
    zero padding unless ``exclusive_pool`` (PaddleClas). ``cardinality > 1`` groups the 3x3
    convolutions (Res2NeXt). ``se_reduction > 0`` adds squeeze-excitation on the residual branch before
    the add, as SENet places it. The residual is ``downsample(x)``, ``x``, or the ``shortcut`` the
    caller passes (a DLA tree's projection). ``dilation`` dilates (and pads by) every 3x3 convolution,
    as timm's ``first_dilation`` does in its Res2Net block; the pool never dilates.
    """

    expansion = 4

    @lazy_inline(policy="front")
    def __init__(self, in_channels: int, planes: int, stride: int = 1, *, downsample: Optional[nn.Cell] = None,
                 base_width: int = 26, scale: int = 4, cardinality: int = 1, is_stage_block: bool = False,
                 drop_path: float = 0.0, exclusive_pool: bool = False, width: Optional[int] = None,
                 out_channels: Optional[int] = None, se_reduction: int = 0, dilation: int = 1) -> None:
        super().__init__()
        width = width or int(math.floor(planes * (base_width / 64.0))) * cardinality
        out_channels = out_channels or planes * self.expansion
        self.width = width
        self.scale = scale
        self.nums = max(scale - 1, 1)  # number of 3x3 convolutions
        self.is_stage_block = is_stage_block

        self.conv1, self.bn1 = conv_bn(in_channels, width * scale, 1)
        convs, bns = [], []
        for _ in range(self.nums):
            conv, bn = conv_bn(width, width, 3, stride=stride, groups=cardinality, dilation=dilation)
            convs.append(conv)
            bns.append(bn)
        self.convs = nn.CellList(convs)
        self.bns = nn.CellList(bns)
        self.pool = Pool2dPad("avg", 3, stride, padding=1, count_include_pad=not exclusive_pool) \
            if is_stage_block and scale > 1 else None
        self.conv3, self.bn3 = conv_bn(width * scale, out_channels, 1)
        self.se = SqueezeExcite(out_channels, se_reduction) if se_reduction > 0 else None
        self.split = ops.Split(axis=1, output_num=scale)  # the primitive: ops.split fails on a dynamic batch
        self.relu = nn.ReLU()
        self.downsample = downsample
        self.drop_path = DropPath(drop_path) if drop_path > 0 else None

    def construct(self, x: Tensor, shortcut: Optional[Tensor] = None) -> Tensor:
        if shortcut is None:
            shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        splits = self.split(out)
        outs = ()
        sp = splits[0]
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            if i > 0:
                sp = splits[i] if self.is_stage_block else sp + splits[i]
            sp = self.relu(bn(conv(sp)))
            outs += (sp,)
        if self.scale > 1:
            outs += (splits[self.nums] if self.pool is None else self.pool(splits[self.nums]),)
        out = self.bn3(self.conv3(ops.concat(outs, axis=1)))
        if self.se is not None:
            out = self.se(out)
        if self.drop_path is not None:
            out = self.drop_path(out)
        return self.relu(out + shortcut)


class Res2Net(FeatureClassifier):
    """Res2Net backbone and classifier.

    Args:
        layers: blocks per stage, e.g. (3, 4, 6, 3) for the 50-layer nets.
        base_width: 3x3 split width per 64 planes (26 for Res2Net-50 26w_4s).
        scale: number of splits per block (the "s" of 26w_4s).
        cardinality: groups of each 3x3 convolution (8 for Res2NeXt-50, else 1).
        deep_stem: three 3x3 convolutions (32, 32, 64 channels) instead of one 7x7 (v1b).
        avg_down: shortcut is AvgPool(stride, ceil_mode) + 1x1 conv instead of a strided 1x1 conv (v1b).
        stage_blocks: which blocks are stage blocks (no cascade, pooled last split): "first", each
            stage's first block (official); "strided", exactly the blocks of stride 2 (PaddleClas, whose
            layer1 therefore cascades in every block).
        exclusive_pool: the stage blocks' 3x3 average pool ignores the zero padding (PaddleClas).
        se_reduction: squeeze-excitation in every block with this channel reduction (0: none; SE-Res2Net: 16).
        num_classes: classifier outputs (an int >= 0); 0 builds a head-less model returning pooled features.
        global_pool: the head's pooling, "avg" (published), "max", "avgmax" or "" (none: needs
            ``num_classes=0``, and the model returns the final feature map).
        in_channels: input image channels (an int >= 1).
        drop_rate: dropout before the classifier (training only), in [0, 1).
        drop_path_rate: stochastic depth of the last block, in [0, 1); rates grow linearly from 0 over blocks.
        features_only: return the ``out_indices`` feature maps as a list instead of logits (``out_indices``
            None: all five; 0 = the stem activation ``act1`` at stride 2, 1..4 = layer1..layer4 at strides
            4..32; an int n: the last n). ``out_indices`` without ``features_only`` is an error.
        zero_init_last: start every block's last BatchNorm gamma at zero (training from scratch).
        output_stride: 32, 16 or 8, the reduction of the final map. Below 32 the stages that would
            reach a larger stride keep stride 1 and dilate their 3x3 convolutions instead (2 after one
            such stage, 4 after two), as timm's ``make_blocks``: a dilated stage's first block uses the
            previous stage's dilation, its later blocks the stage's; the first block keeps its
            (stride-1) pool; v1b's avg-down shortcut then pools 2x2 at stride 1 with 'SAME' zero
            padding (timm's ``downsample_avg``). ``feature_info`` reductions follow (e.g. 2, 4, 8, 8, 8).
        frozen_stages: mmpretrain's: -1 nothing; 0 the stem; i the stem and layer1..layer_i. Frozen
            parameters are absent from ``trainable_params()``, frozen BatchNorms stay in eval mode
            while the model trains, and frozen blocks have no stochastic depth.
        norm_eval: mmpretrain's: every BatchNorm stays in eval mode while the model trains (running
            statistics never change); its affine parameters still train unless frozen.

    Input (N, in_channels, H, W) float32; output logits (N, num_classes), (N, 2048) when
    ``num_classes=0`` (the map (N, 2048, H / output_stride, W / output_stride) with ``global_pool=""``
    too), or a list of (N, C_i, H / r_i, W / r_i) when ``features_only``.
    """

    def __init__(self, layers: Sequence[int], base_width: int = 26, scale: int = 4, *, cardinality: int = 1,
                 deep_stem: bool = False, avg_down: bool = False, stage_blocks: str = "first",
                 exclusive_pool: bool = False, se_reduction: int = 0, num_classes: int = 1000, in_channels: int = 3,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.0, features_only: bool = False,
                 out_indices: Optional[Sequence[int]] = None, global_pool: str = "avg",
                 zero_init_last: bool = True, output_stride: int = 32, frozen_stages: int = -1,
                 norm_eval: bool = False) -> None:
        super().__init__(in_channels=in_channels, num_classes=num_classes, features_only=features_only,
                         out_indices=out_indices, global_pool=global_pool, drop_rate=drop_rate,
                         drop_path_rate=drop_path_rate)
        if len(layers) != 4:
            raise UserError(f"layers must give 4 stage depths, got {tuple(layers)}")
        if isinstance(output_stride, bool) or not isinstance(output_stride, numbers.Integral) or \
                output_stride not in OUTPUT_STRIDES:
            raise UserError(f"output_stride must be 8, 16 or 32, got {output_stride!r}")
        check_training_switches(frozen_stages, norm_eval=norm_eval)
        if stage_blocks not in ("first", "strided"):
            raise UserError(f"stage_blocks must be 'first' or 'strided', got '{stage_blocks}'")
        self.base_width, self.scale, self.cardinality = base_width, scale, cardinality
        self.avg_down = avg_down
        self.stage_blocks, self.exclusive_pool, self.se_reduction = stage_blocks, exclusive_pool, se_reduction

        if deep_stem:
            self.conv1 = nn.SequentialCell(
                *conv_bn(self.in_channels, 32, 3, stride=2), nn.ReLU(),
                *conv_bn(32, 32, 3), nn.ReLU(),
                conv_bn(32, 64, 3)[0],
            )
        else:
            self.conv1 = nn.Conv2d(self.in_channels, 64, 7, stride=2, pad_mode="pad", padding=3, has_bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5, momentum=0.9)
        self.act1 = nn.ReLU()
        self.maxpool = Pool2dPad("max", 3, 2, padding=1)

        total_blocks = sum(layers)
        block_rates = [self.drop_path_rate * i / max(total_blocks - 1, 1) for i in range(total_blocks)]
        feature_maps = [(64, 2, "act1")]
        in_planes, net_stride, dilation = 64, 4, 1
        for stage, (planes, depth) in enumerate(zip((64, 128, 256, 512), layers)):
            stage_stride = 1 if stage == 0 else 2
            rates, block_rates = block_rates[:depth], block_rates[depth:]
            if stage < frozen_stages:  # a frozen stage runs as in eval mode
                rates = [0.0] * depth
            prev_dilation = dilation
            if net_stride >= output_stride:  # dilate instead of striding
                dilation *= stage_stride
                stride = 1
            else:
                net_stride *= stage_stride
                stride = stage_stride
            layer = self._make_layer(in_planes, planes, depth, stride=stride, drop_path_rates=rates, dilation=dilation,
                                     first_dilation=prev_dilation,
                                     is_stage_block=stage_blocks == "first" or stage_stride != 1)
            setattr(self, f"layer{stage + 1}", layer)
            in_planes = planes * Bottle2neck.expansion
            feature_maps.append((in_planes, net_stride, f"layer{stage + 1}"))
        self._set_up_head(feature_maps, in_planes)
        self._init_weights(zero_init_last)
        self._apply_training_switches((self.conv1, self.bn1), frozen_stages=frozen_stages, norm_eval=norm_eval)

    def _make_layer(self, in_planes: int, planes: int, depth: int, *, stride: int, drop_path_rates, dilation: int,
                    first_dilation: int, is_stage_block: bool) -> nn.SequentialCell:
        """One stage: the first block strides by ``stride`` (1 in a dilated stage) with 3x3 dilation
        ``first_dilation``, the others keep the size with ``dilation``; ``is_stage_block`` marks the first
        block as the non-cascading, pooling one."""
        out_channels = planes * Bottle2neck.expansion
        downsample = None
        if stride != 1 or in_planes != out_channels:
            conv, bn = conv_bn(in_planes, out_channels, 1, stride=1 if self.avg_down else stride)
            if self.avg_down:  # index 0 stays the (possibly identity) pool, as in the official keys
                pool = AvgPool2dCeil(stride) if stride > 1 else AvgPool2dSame(2) if dilation > 1 else nn.Identity()
                downsample = nn.SequentialCell(pool, conv, bn)
            else:
                downsample = nn.SequentialCell(conv, bn)
        arch = dict(base_width=self.base_width, scale=self.scale, cardinality=self.cardinality,
                    exclusive_pool=self.exclusive_pool, se_reduction=self.se_reduction)
        blocks = [Bottle2neck(in_planes, planes, stride, downsample=downsample, is_stage_block=is_stage_block,
                              drop_path=drop_path_rates[0], dilation=first_dilation, **arch)]
        blocks += [Bottle2neck(out_channels, planes, drop_path=rate, dilation=dilation, **arch)
                   for rate in drop_path_rates[1:]]
        return nn.SequentialCell(*blocks)

    def _init_weights(self, zero_init_last: bool) -> None:
        for _, cell in self.cells_and_names():
            if isinstance(cell, nn.Conv2d):
                cell.weight.set_data(init.initializer(init.HeNormal(mode="fan_out", nonlinearity="relu"),
                                                      cell.weight.shape, cell.weight.dtype))
            elif isinstance(cell, Bottle2neck) and zero_init_last:
                cell.bn3.gamma.set_data(init.initializer("zeros", cell.bn3.gamma.shape, cell.bn3.gamma.dtype))

    stage_names = ("layer1", "layer2", "layer3", "layer4")

    def forward_stem(self, x: Tensor) -> Tensor:
        """(N, in_channels, H, W) image -> (N, 64, H / 2, W / 2) stem activation (feature map 0)."""
        return self.act1(self.bn1(self.conv1(x)))

    def enter_stages(self, x: Tensor) -> Tensor:
        return self.maxpool(x)

    def run_stage(self, name: str, x: Tensor) -> Tensor:
        """Stage ``name`` on ``x``, each block under ``mindspore.recompute`` with ``grad_checkpointing``."""
        stage = getattr(self, name)
        if not self.grad_checkpointing or not isinstance(stage, nn.SequentialCell):  # pruned: an Identity
            return stage(x)
        for block in stage:
            x = run_block(block, x, checkpoint=True)
        return x

    def make_classifier(self, num_classes: int) -> nn.Cell:
        return nn.Dense(self.num_features, num_classes)


# ---------------------------------------------------------------------------------------------
# Variants and their published weights (listed in docs/weights.md)

OFFICIAL_URL = "https://shanghuagao.oss-cn-beijing.aliyuncs.com/res2net/"
MINDCV_URL = "https://download.mindspore.cn/toolkits/mindcv/res2net/"
PADDLE_URL = "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/"
MMPRETRAIN_URL = "https://download.openmmlab.com/mmclassification/v0/res2net/"


def _cfg(url: str = "", source: str = "", *, top1: Optional[float] = None, top5: Optional[float] = None,
         deep_stem: bool = False, hashed_name: bool = True, first_conv: Optional[str] = None) -> dict:
    """Default config of one weight file. ``sha256`` is the 8-hex prefix in the file name ("" when the
    source publishes no hash: ``hashed_name=False``)."""
    file_name = url.rsplit("/", 1)[-1]
    stem = file_name.rsplit(".", 1)[0]
    return dict(
        url=url, file_name=file_name, sha256=stem.rsplit("-", 1)[-1] if url and hashed_name else "", source=source,
        top1=top1, top5=top5, num_classes=1000, input_size=(3, 224, 224), pool_size=(7, 7),
        crop_pct=0.875, interpolation="bilinear", mean=IMAGENET_MEAN, std=IMAGENET_STD,
        first_conv=first_conv or (DEEP_STEM_CONV if deep_stem else STEM_CONV), classifier=CLASSIFIER,
    )


def official_cfg(file_name: str, top1: float, **kw) -> dict:
    return _cfg(OFFICIAL_URL + file_name, "official", top1=top1, **kw)


def _mindcv(file_name: str, top1: float, top5: float, **kw) -> dict:
    return _cfg(MINDCV_URL + file_name, "mindcv", top1=top1, top5=top5, **kw)


def _mmpretrain(file_name: str, top1: float) -> dict:
    """mmpretrain's re-hosting of an official file under its own key names (``backbone.``, ``head.fc.``)."""
    return _cfg(MMPRETRAIN_URL + file_name, "mmpretrain", top1=top1)


def _paddle(model: str, top1: float, top5: float, **kw) -> dict:
    """PaddleClas' dygraph weights of ``model`` (e.g. Res2Net50_vd_26w_4s_ssld); their names carry no hash."""
    return _cfg(f"{PADDLE_URL}{model}_pretrained.pdparams", "paddle", top1=top1, top5=top5, hashed_name=False, **kw)


_R50, _R101, _R152, _R200 = (3, 4, 6, 3), (3, 4, 23, 3), (3, 8, 36, 3), (3, 12, 48, 3)
_V1B = dict(deep_stem=True, avg_down=True)
_PADDLE = dict(stage_blocks="strided", exclusive_pool=True)  # PaddleClas' semantics (see Res2Net's docstring)
_VD = dict(_V1B, **_PADDLE)

# name: Variant(constructor arguments, {tag: default cfg}, official long name): a variant as data; its
# builder function (res2net50() ...), below, is registered with its row
VARIANTS = {
    "res2net50": Variant(dict(layers=_R50), {
        "official_in1k": official_cfg("res2net50_26w_4s-06e79181.pth", 77.99),
        "mindcv_in1k": _mindcv("res2net50-f42cf71b.ckpt", 79.35, 94.64)}, "res2net50_26w_4s"),
    "res2net101": Variant(dict(layers=_R101), {
        "official_in1k": official_cfg("res2net101_26w_4s-02a759a1.pth", 79.19),
        "mindcv_in1k": _mindcv("res2net101-8ae60132.ckpt", 79.56, 94.70),
        "mmpretrain_in1k": _mmpretrain("res2net101-w26-s4_3rdparty_8xb32_in1k_20210927-870b6c36.pth", 79.19)},
        "res2net101_26w_4s"),
    "res2net152": Variant(dict(layers=_R152), {"": _cfg()}, "res2net152_26w_4s"),
    "res2net50_v1b": Variant(dict(layers=_R50, **_V1B), {
        "official_in1k": official_cfg("res2net50_v1b_26w_4s-3cf99910.pth", 80.27, deep_stem=True),
        "mindcv_in1k": _mindcv("res2net50_v1b-99304e92.ckpt", 80.32, 95.09, deep_stem=True)}, "res2net50_v1b_26w_4s"),
    "res2net101_v1b": Variant(dict(layers=_R101, **_V1B), {
        "official_in1k": official_cfg("res2net101_v1b_26w_4s-0812c246.pth", 81.23, deep_stem=True),
        "mindcv_in1k": _mindcv("res2net101_v1b-7e6db001.ckpt", 81.14, 95.41, deep_stem=True)}, "res2net101_v1b_26w_4s"),
    "res2net152_v1b": Variant(dict(layers=_R152, **_V1B), {"": _cfg(deep_stem=True)}, "res2net152_v1b_26w_4s"),
    "res2net50_26w_6s": Variant(dict(layers=_R50, scale=6), {
        "official_in1k": official_cfg("res2net50_26w_6s-19041792.pth", 78.58)}),
    "res2net50_26w_8s": Variant(dict(layers=_R50, scale=8), {
        "official_in1k": official_cfg("res2net50_26w_8s-2c7c9f12.pth", 79.20),
        "mmpretrain_in1k": _mmpretrain("res2net50-w26-s8_3rdparty_8xb32_in1k_20210927-f547a94b.pth", 79.20)}),
    "res2net50_48w_2s": Variant(dict(layers=_R50, base_width=48, scale=2), {
        "official_in1k": official_cfg("res2net50_48w_2s-afed724a.pth", 77.32)}),
    "res2net50_14w_8s": Variant(dict(layers=_R50, base_width=14, scale=8), {
        "official_in1k": official_cfg("res2net50_14w_8s-6527dddc.pth", 78.14),
        "mmpretrain_in1k": _mmpretrain("res2net50-w14-s8_3rdparty_8xb32_in1k_20210927-bc967bf1.pth", 78.14)}),
    "res2next50": Variant(dict(layers=_R50, base_width=4, scale=4, cardinality=8), {
        "official_in1k": official_cfg("res2next50_4s-6ef7e7bf.pth", 78.24)}),
    "se_res2net50": Variant(dict(layers=_R50, se_reduction=16), {"": _cfg()}),
    "paddle_res2net50_26w_4s": Variant(dict(layers=_R50, **_PADDLE), {
        "paddle_in1k": _paddle("Res2Net50_26w_4s", 79.33, 94.57)}),
    "paddle_res2net50_14w_8s": Variant(dict(layers=_R50, base_width=14, scale=8, **_PADDLE), {
        "paddle_in1k": _paddle("Res2Net50_14w_8s", 79.46, 94.70)}),
    "paddle_res2net50_vd_26w_4s": Variant(dict(layers=_R50, **_VD), {
        "paddle_ssld_in1k": _paddle("Res2Net50_vd_26w_4s_ssld", 83.10, 96.60, deep_stem=True),
        "paddle_in1k": _paddle("Res2Net50_vd_26w_4s", 79.75, 94.91, deep_stem=True)}, "res2net50_vd"),
    "paddle_res2net101_vd_26w_4s": Variant(dict(layers=_R101, **_VD), {
        "paddle_ssld_in1k": _paddle("Res2Net101_vd_26w_4s_ssld", 83.90, 97.10, deep_stem=True),
        "paddle_in1k": _paddle("Res2Net101_vd_26w_4s", 80.64, 95.22, deep_stem=True)}, "res2net101_vd"),
    "paddle_res2net200_vd_26w_4s": Variant(dict(layers=_R200, **_VD), {
        "paddle_ssld_in1k": _paddle("Res2Net200_vd_26w_4s_ssld", 85.13, 97.42, deep_stem=True),
        "paddle_in1k": _paddle("Res2Net200_vd_26w_4s", 81.21, 95.71, deep_stem=True)}, "res2net200_vd"),
}


def _create(name: str, pretrained: bool, **kwargs) -> Res2Net:
    """The network of row ``VARIANTS[name]``, with weights as asked (the arguments of ``create_model``)."""
    return build_model_with_cfg(Res2Net, name, pretrained, arch=VARIANTS[name].arch, **kwargs)


@register_model
def res2net50(pretrained: bool = False, **kwargs) -> Res2Net:
    """Res2Net-50 26w_4s: 25.70M parameters, 4.2 GMACs at 224 px."""
    return _create("res2net50", pretrained, **kwargs)


@register_model
def res2net101(pretrained: bool = False, **kwargs) -> Res2Net:
    """Res2Net-101 26w_4s."""
    return _create("res2net101", pretrained, **kwargs)


@register_model
def res2net152(pretrained: bool = False, **kwargs) -> Res2Net:
    """Res2Net-152 26w_4s (no published weights)."""
    return _create("res2net152", pretrained, **kwargs)


@register_model
def res2net50_v1b(pretrained: bool = False, **kwargs) -> Res2Net:
    """Res2Net-50-v1b 26w_4s: deep stem and avg-down shortcut."""
    return _create("res2net50_v1b", pretrained, **kwargs)


@register_model
def res2net101_v1b(pretrained: bool = False, **kwargs) -> Res2Net:
    """Res2Net-101-v1b 26w_4s."""
    return _create("res2net101_v1b", pretrained, **kwargs)


@register_model
def res2net152_v1b(pretrained: bool = False, **kwargs) -> Res2Net:
    """Res2Net-152-v1b 26w_4s (no published weights)."""
    return _create("res2net152_v1b", pretrained, **kwargs)


@register_model
def res2net50_26w_6s(pretrained: bool = False, **kwargs) -> Res2Net:
    """Res2Net-50 26w_6s."""
    return _create("res2net50_26w_6s", pretrained, **kwargs)


@register_model
def res2net50_26w_8s(pretrained: bool = False, **kwargs) -> Res2Net:
    """Res2Net-50 26w_8s."""
    return _create("res2net50_26w_8s", pretrained, **kwargs)


@register_model
def res2net50_48w_2s(pretrained: bool = False, **kwargs) -> Res2Net:
    """Res2Net-50 48w_2s."""
    return _create("res2net50_48w_2s", pretrained, **kwargs)


@register_model
def res2net50_14w_8s(pretrained: bool = False, **kwargs) -> Res2Net:
    """Res2Net-50 14w_8s."""
    return _create("res2net50_14w_8s", pretrained, **kwargs)


@register_model
def res2next50(pretrained: bool = False, **kwargs) -> Res2Net:
    """Res2NeXt-50 4w_4s, cardinality 8."""
    return _create("res2next50", pretrained, **kwargs)


@register_model
def se_res2net50(pretrained: bool = False, **kwargs) -> Res2Net:
    """SE-Res2Net-50 26w_4s: squeeze-excitation (reduction 16) in every block (no published weights)."""
    return _create("se_res2net50", pretrained, **kwargs)


@register_model
def paddle_res2net50_26w_4s(pretrained: bool = False, **kwargs) -> Res2Net:
    """PaddleClas Res2Net50_26w_4s: stride-based cascade rule, exclusive split pooling."""
    return _create("paddle_res2net50_26w_4s", pretrained, **kwargs)


@register_model
def paddle_res2net50_14w_8s(pretrained: bool = False, **kwargs) -> Res2Net:
    """PaddleClas Res2Net50_14w_8s."""
    return _create("paddle_res2net50_14w_8s", pretrained, **kwargs)


@register_model
def paddle_res2net50_vd_26w_4s(pretrained: bool = False, **kwargs) -> Res2Net:
    """PaddleClas Res2Net50_vd_26w_4s: deep stem and avg-down shortcut, PaddleClas' semantics."""
    return _create("paddle_res2net50_vd_26w_4s", pretrained, **kwargs)


@register_model
def paddle_res2net101_vd_26w_4s(pretrained: bool = False, **kwargs) -> Res2Net:
    """PaddleClas Res2Net101_vd_26w_4s."""
    return _create("paddle_res2net101_vd_26w_4s", pretrained, **kwargs)


@register_model
def paddle_res2net200_vd_26w_4s(pretrained: bool = False, **kwargs) -> Res2Net:
    """PaddleClas Res2Net200_vd_26w_4s (3-12-48-3, 76.2M parameters; SSLD: 85.13% top-1)."""
    return _create("paddle_res2net200_vd_26w_4s", pretrained, **kwargs)


__all__ += list(VARIANTS)
