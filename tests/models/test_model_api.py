"""timm's and mindcv's model API on our models: the upstream model tests, ported at small sizes.

Each ported test names the upstream test it follows (timm ``tests/test_models.py`` and the contracts of
``timm/models/_registry.py``, ``_features.py`` and ``_builder.py`` that those tests rely on; mindcv
``tests/modules/test_models.py`` and ``test_feature_extraction.py``) and keeps every assertion that has a
MindSpore meaning (not torchscript, fx or torch.compile): heads, features, ``in_chans``, mindcv's
``create_model`` arguments and registration, and gradient checkpointing (timm's ``set_grad_checkpointing``).
"""
import math
import subprocess
import sys

import numpy as np
import pytest

import mindspore as ms
import mindcv_res2net
from mindcv_res2net import create_model
from mindcv_res2net.weights.checkpoint_layout import EMA_PREFIX, OPTIMIZER_PREFIX
from mindcv_res2net.models import layers
from mindcv_res2net.models.base import FeatureInfo, feature_take_indices
from mindcv_res2net.weights import CheckpointError, save_weights

from helpers import PROJECT_DIR

# one of each kind: plain stem, deep stem + avg-down, grouped (Res2NeXt), PaddleClas semantics, DLA tree
REPRESENTATIVE = ["res2net50", "res2net50_v1b", "res2next50", "paddle_res2net50_vd_26w_4s", "res2net_dla60"]
SIZE = 64  # every map is SIZE / reduction pixels wide
SMALL = 32  # every Res2Net and DLA map exists at 32 px (the last at 1x1)


def _x(n=1, size=SIZE, channels=3, seed=0):
    return ms.Tensor(np.random.default_rng(seed).standard_normal((n, channels, size, size)).astype(np.float32))


def _finite(t) -> bool:
    return bool(np.isfinite(t.asnumpy()).all())


@pytest.mark.e2e
@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_default_cfgs_and_heads(name, pynative):
    """timm test_model_default_cfgs: head sizes, unpooled features, pre-logits, every way to drop the head."""
    model = create_model(name)
    model.set_train(False)
    assert model.num_classes >= 0 and model.num_features > 0 and model.head_hidden_size > 0
    cfg = model.default_cfg
    assert model.pretrained_cfg is cfg
    x = _x()
    outputs = model.forward_features(x)
    outputs_pre = model.forward_head(outputs, pre_logits=True)
    # pool_size is given at the cfg's input size (224 -> 7): the same stride 32 at our size
    assert outputs.shape[2:] == tuple(p * SIZE // cfg["input_size"][1] for p in cfg["pool_size"])
    assert outputs.shape[1] == model.num_features
    assert outputs_pre.shape[1] == model.head_hidden_size

    model.reset_classifier(0)
    assert model.num_classes == 0
    pooled = model(x)
    assert len(pooled.shape) == 2 and pooled.shape[1] == model.head_hidden_size
    assert pooled.shape == outputs_pre.shape
    np.testing.assert_allclose(pooled.asnumpy(), outputs_pre.asnumpy(), rtol=1e-5, atol=1e-6)

    model.reset_classifier(0, "")  # no classifier, no pooling: the final map
    unpooled = model(x)
    assert len(unpooled.shape) == 4 and unpooled.shape == outputs.shape

    model = create_model(name, num_classes=0, global_pool="")
    model.set_train(False)
    assert len(model(x).shape) == 4 and model(x).shape[2:] == outputs.shape[2:]

    params = {p.name for p in create_model(name).get_parameters()}  # the cfg's names are the network's
    assert cfg["classifier"] + ".weight" in params
    assert cfg["first_conv"] + ".weight" in params


@pytest.mark.e2e
@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_forward_at_the_cfg_input_size(name, pynative):
    """mindcv test_model_forward (num_classes=10, the input size of get_pretrained_cfg_value) and timm
    test_model_forward (no NaN)."""
    input_size = mindcv_res2net.get_pretrained_cfg_value(name, "input_size")
    model = create_model(name, num_classes=10)
    model.set_train(False)
    y = model(ms.Tensor(np.random.default_rng(0).random((2,) + tuple(input_size)), ms.float32))
    assert y.shape == (2, 10) and _finite(y)


@pytest.mark.e2e
@pytest.mark.parametrize("name", ["res2net50", "res2net_dla60"])
def test_backward_reaches_every_parameter(name, pynative):
    """timm test_model_backward: num_classes=42, every parameter gets a finite gradient."""
    model = create_model(name, num_classes=42)
    model.set_train(True)
    params = model.trainable_params()
    grad_fn = ms.value_and_grad(lambda x: model(x).mean(), None, params)
    (outputs_mean, grads) = grad_fn(_x(n=2))
    assert len(grads) == len(params) and all(_finite(g) for g in grads) and _finite(outputs_mean)
    assert sum(g.size for g in grads) == sum(p.size for p in params)
    assert model(_x(n=2)).shape == (2, 42)
    headless = create_model(name, num_classes=0, global_pool="")
    assert headless(_x(n=2)).shape[1] == headless.num_features  # encoder only: the unpooled channels


@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_forward_features_only(name, pynative):
    """timm test_model_forward_features: the default features_only model gives all five maps, as
    ``feature_info`` describes them."""
    model = create_model(name, features_only=True)
    model.set_train(False)
    expected_channels = model.feature_info.channels()
    expected_reduction = model.feature_info.reduction()
    assert len(expected_channels) == 5 and expected_reduction == [2, 4, 8, 16, 32]
    outputs = model(_x())
    assert isinstance(outputs, list) and len(outputs) == len(expected_channels)
    for channels, reduction, output in zip(expected_channels, expected_reduction, outputs):
        assert output.shape[1] == channels and output.shape[0] == 1
        assert output.shape[2] <= math.ceil(SIZE / reduction) + 1 and output.shape[3] <= math.ceil(SIZE / reduction) + 1
        assert _finite(output)


@pytest.mark.e2e
@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_forward_intermediates(name, pynative):
    """timm test_model_forward_intermediates, plus the index rules of timm's feature_take_indices."""
    model = create_model(name)
    model.set_train(False)
    info = model.feature_info
    x = _x()
    output, intermediates = model.forward_intermediates(x, output_fmt="NCHW")
    assert len(intermediates) == len(info.channels()) == 5
    for channels, reduction, o in zip(info.channels(), info.reduction(), intermediates):
        assert o.shape[1] == channels and o.shape[2] <= math.ceil(SIZE / reduction) + 1 and _finite(o)
    np.testing.assert_array_equal(output.asnumpy(), model.forward_features(x).asnumpy())

    last_two = model.forward_intermediates(x, indices=2, intermediates_only=True)
    assert [o.shape[1] for o in last_two] == info.channels([3, 4])
    np.testing.assert_array_equal(last_two[1].asnumpy(), intermediates[4].asnumpy())
    picked = model.forward_intermediates(x, indices=[-1, 1], intermediates_only=True)  # network order
    assert [o.shape[1] for o in picked] == info.channels([1, 4])
    final, early = model.forward_intermediates(x, indices=[0, 2], stop_early=True)
    assert len(early) == 2 and final.shape == early[1].shape  # stopped after map 2
    with pytest.raises(ValueError, match="output_fmt must be 'NCHW'"):
        model.forward_intermediates(x, output_fmt="NHWC")
    with pytest.raises(ValueError, match="subset of 0..4"):
        model.forward_intermediates(x, indices=[5])

    assert model.prune_intermediate_layers([1, 2]) == [1, 2]
    assert model.num_classes == 0 and model.get_classifier() is None
    pruned = model(x)  # the stages after map 2 are gone, and the head
    np.testing.assert_array_equal(pruned.asnumpy(), intermediates[2].asnumpy())


def test_feature_take_indices_follows_timm():
    assert feature_take_indices(5) == ([0, 1, 2, 3, 4], 4)
    assert feature_take_indices(5, 3) == ([2, 3, 4], 4)
    assert feature_take_indices(5, (-2, 0)) == ([3, 0], 3)
    for bad in (0, 6, (), (7,), (-6,)):
        with pytest.raises(ValueError):
            feature_take_indices(5, bad)


@pytest.mark.e2e
def test_feature_info_has_timm_and_mindcv_keys_and_real_module_names():
    for name in ("res2net50_v1b", "res2next_dla60"):
        model = create_model(name)
        info = model.feature_info
        assert isinstance(info, FeatureInfo) and isinstance(info, list) and len(info) == 5
        cells = dict(model.cells_and_names())
        for entry in info:  # timm's keys, mindcv's keys, and the module exists
            assert entry["num_chs"] == entry["chs"] and entry["module"] == entry["name"] in cells
        assert info.module_name() == [i["module"] for i in info]
        assert info.channels(0) == info[0]["num_chs"] and info.reduction([1, 4]) == [4, 32]
        assert info.get_dicts(keys=["chs"], idx=4) == {"chs": info[4]["chs"]}
    assert create_model("res2net50").feature_info.module_name() == ["act1", "layer1", "layer2", "layer3", "layer4"]
    subset = create_model("res2net50", features_only=True, out_indices=(2, 4)).feature_info
    assert subset.channels() == [512, 2048] and [i["reduction"] for i in subset.get_dicts()] == [8, 32]


@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["pynative", "graph"])
def test_global_pool_and_reset_classifier(mode, request):
    """``global_pool`` through create_model and reset_classifier; in Graph mode the changed head recompiles."""
    request.getfixturevalue(mode)
    x = _x(n=2, size=32)
    model = create_model("res2net50", num_classes=0)
    model.set_train(False)
    final = model.forward_features(x).asnumpy()
    assert np.allclose(model(x).asnumpy(), final.mean(axis=(2, 3)), atol=1e-5)
    model.reset_classifier(0, "max")
    assert np.allclose(model(x).asnumpy(), final.max(axis=(2, 3)), atol=1e-6)
    model.reset_classifier(0, "avgmax")
    assert np.allclose(model(x).asnumpy(), 0.5 * (final.mean(axis=(2, 3)) + final.max(axis=(2, 3))), atol=1e-5)
    model.reset_classifier(3, "avg")
    assert model(x).shape == (2, 3) and model.global_pool == "avg"
    dla = create_model("res2net_dla60", num_classes=4, global_pool="max")
    dla.set_train(False)
    assert dla(x).shape == (2, 4)
    dla.reset_classifier(0, "")
    assert dla(x).shape == (2, 1024, 1, 1)


def test_head_errors_are_one_line():
    with pytest.raises(ValueError, match="global_pool='' .* needs num_classes=0"):
        create_model("res2net50", global_pool="")
    with pytest.raises(ValueError, match="global_pool must be one of 'avg', 'max', 'avgmax' or ''"):
        create_model("res2net50", global_pool="catavgmax")
    model = create_model("res2next_dla60", num_classes=0)
    with pytest.raises(ValueError, match="needs num_classes=0"):
        model.reset_classifier(5, "")


def _training_checkpoint(tmp_path, seed_shift: float):
    """A training checkpoint: trained weights, their EMA (shifted by ``seed_shift``) and optimizer state."""
    model = create_model("res2net50", num_classes=3)
    weights = {p.name: p.asnumpy() for p in model.get_parameters()}
    state = dict(weights)
    state.update({EMA_PREFIX + k: v + seed_shift for k, v in weights.items()})
    state[OPTIMIZER_PREFIX + "global_step"] = np.array([7], np.int32)
    path = tmp_path / "train.ckpt"
    save_weights(state, str(path))
    return path, weights


@pytest.mark.e2e
def test_create_model_takes_mindcv_arguments(tmp_path):
    """mindcv's create_model(checkpoint_path="", ema=, auto_mapping=) with its meaning."""
    path, weights = _training_checkpoint(tmp_path, 0.5)
    key = "layer1.0.conv1.weight"

    def loaded(**kwargs):
        return create_model("res2net50", num_classes=3, checkpoint_path=str(path), **kwargs).parameters_dict()[key]

    np.testing.assert_array_equal(loaded(ema=False).asnumpy(), weights[key])  # the trained weights
    np.testing.assert_array_equal(loaded(ema=True).asnumpy(), weights[key] + 0.5)  # their moving average
    np.testing.assert_array_equal(loaded().asnumpy(), weights[key] + 0.5)  # ours: EMA when there is one
    np.testing.assert_array_equal(loaded(auto_mapping=True).asnumpy(), weights[key] + 0.5)
    plain = tmp_path / "plain.ckpt"
    save_weights(weights, str(plain))
    with pytest.raises(CheckpointError, match="plain.ckpt: holds no EMA weights"):
        create_model("res2net50", num_classes=3, checkpoint_path=str(plain), ema=True)
    assert create_model("res2net50", num_classes=3, checkpoint_path="", ema=False).num_classes == 3
    with pytest.raises(ValueError, match="mutually exclusive"):
        create_model("res2net50", pretrained=True, checkpoint_path=str(plain))
    with pytest.raises(TypeError, match="pretrained must be True or False, got 10"):
        create_model("res2net50", 10)  # mindcv's positional num_classes
    with pytest.raises(TypeError, match="auto_mapping must be True or False"):
        create_model("res2net50", auto_mapping="yes")

# ---------------------------------------------------------------------------------------------- in_chans


@pytest.mark.e2e
def test_in_chans_is_timms_name_for_in_channels(tmp_path, pynative):
    """timm test_model_load_pretrained: ``create_model(name, pretrained=True, in_chans=1, num_classes=5)``
    adapts RGB weights to one channel; here the RGB weights come from a local file (no download)."""
    rgb = create_model("res2net50", num_classes=1000)
    path = tmp_path / "rgb.ckpt"
    save_weights({p.name: p.asnumpy() for p in rgb.get_parameters()}, str(path))
    grey = create_model("res2net50", checkpoint_path=str(path), in_chans=1, num_classes=5)
    assert grey.in_channels == 1 and grey.conv1.weight.shape == (64, 1, 7, 7)
    np.testing.assert_allclose(grey.conv1.weight.asnumpy(), rgb.conv1.weight.asnumpy().sum(axis=1, keepdims=True),
                               rtol=1e-6, atol=1e-7)  # the RGB filter summed, as timm's adapt_input_conv
    grey.set_train(False)
    assert grey(_x(size=SMALL, channels=1)).shape == (1, 5)
    assert create_model("res2net50", checkpoint_path=str(path), in_chans=1, num_classes=0).num_classes == 0
    assert mindcv_res2net.models.res2net.res2net50(in_chans=2).in_channels == 2  # the builder too, as timm's
    assert create_model("res2net_dla60", in_chans=4, in_channels=4).in_channels == 4  # the same value twice: fine
    assert create_model("res2net50").in_channels == 3
    with pytest.raises(ValueError) as error:
        create_model("res2net50", in_chans=1, in_channels=3)
    assert str(error.value) == ("in_chans=1 and in_channels=3 disagree: in_chans is timm's name for in_channels, "
                                "give one of them")


# ---------------------------------------------------------------------------------------------- features


def test_feature_info_has_timms_constructor_and_indexing(pynative):
    """timm test_model_forward_intermediates: ``FeatureInfo(model.feature_info, len(model.feature_info))``,
    and the indexing of timm's ``_features.FeatureInfo`` (``get``/``get_dicts`` with ``index``)."""
    model = create_model("res2net50_v1b")
    info = FeatureInfo(model.feature_info, len(model.feature_info))
    assert len(info) == 5 and info.out_indices == (0, 1, 2, 3, 4)
    assert info.channels() == [64, 256, 512, 1024, 2048] and info.reduction() == [2, 4, 8, 16, 32]
    _, intermediates = model.forward_intermediates(_x(size=SMALL), output_fmt="NCHW")
    for channels, reduction, o in zip(info.channels(), info.reduction(), intermediates):
        assert o.shape[1] == channels and o.shape[2] <= math.ceil(SMALL / reduction) + 1

    picked = FeatureInfo(model.feature_info, (-3, -1))  # negative out_indices count from the end
    assert picked.out_indices == (2, 4) and len(picked) == 5  # len and [i] cover every map, as timm's
    assert picked.channels() == [512, 2048] and picked.module_name() == ["layer2", "layer4"]
    assert picked.channels(0) == 64 and picked.reduction([1, 3]) == [4, 16] and picked.module_name(-1) == "layer4"
    assert picked[0]["module"] == "act1" and [d["index"] for d in picked] == [0, 1, 2, 3, 4]
    assert picked.get_dicts(keys=["num_chs", "index"]) == [{"num_chs": 512, "index": 2}, {"num_chs": 2048, "index": 4}]
    assert picked.get_dicts(idx=1) == dict(num_chs=256, reduction=4, module="layer1", index=1, chs=256, name="layer1")
    assert picked.get_dicts(keys=["reduction"], idx=[0, 4]) == [{"reduction": 2}, {"reduction": 32}]
    assert FeatureInfo(model.feature_info, 2).out_indices == (3, 4)  # an int: the last n
    assert picked.from_other([0]).channels() == [64] and picked.out_indices == (2, 4)
    timm_style = [dict(num_chs=8, reduction=2, module="stem"), dict(num_chs=16, reduction=4, module="stage1")]
    converted = FeatureInfo(timm_style, (0, 1))
    assert converted[1]["chs"] == 16 and converted[1]["name"] == "stage1"  # mindcv's keys added
    assert "index" not in timm_style[0]  # the caller's dicts are copied, not changed
    for bad, message in (([dict(num_chs=8, reduction=4, module="a"), dict(num_chs=8, reduction=2, module="b")],
                          r"feature_info\[1\] needs num_chs > 0, a reduction >= the previous map's \(4\)"),
                         ([dict(num_chs=0, reduction=2, module="a")], r"feature_info\[0\] needs num_chs > 0")):
        with pytest.raises(ValueError, match=message):
            FeatureInfo(bad, 1)
    with pytest.raises(ValueError, match=r"out_indices must be a non-empty subset of 0..4 \(or -5..-1\), got \(5,\)"):
        FeatureInfo(model.feature_info, (5,))


@pytest.mark.e2e
@pytest.mark.parametrize("name", ["res2net50", "res2net_dla60"])
def test_features_only_getter_negative_indices_and_out_channels(name, pynative):
    """timm test_model_forward_intermediates_features (``features_only=True, feature_cls='getter'``) and
    timm's out_indices rule; ``out_channels`` as mindcv's FeatureExtractWrapper models have it."""
    model = create_model(name, pretrained=False, features_only=True, feature_cls="getter")
    model.set_train(False)
    expected_channels = model.feature_info.channels()
    expected_reduction = model.feature_info.reduction()
    outputs = model(_x(size=SMALL))
    assert isinstance(outputs, list) and len(expected_channels) == len(outputs) == 5
    for e, r, o in zip(expected_channels, expected_reduction, outputs):
        assert e == o.shape[1] and o.shape[0] == 1
        assert o.shape[2] <= math.ceil(SMALL / r) + 1 and o.shape[3] <= math.ceil(SMALL / r) + 1
        assert np.isfinite(o.asnumpy()).all()
    assert model.out_channels == expected_channels

    tail = create_model(name, features_only=True, out_indices=(-3, -1), feature_cls="list")
    tail.set_train(False)
    ms.load_param_into_net(tail, model.parameters_dict())
    picked = tail(_x(size=SMALL))
    assert tail.out_indices == (2, 4) and tail.out_channels == tail.feature_info.channels() == expected_channels[2::2]
    for got, want in zip(picked, (outputs[2], outputs[4])):
        np.testing.assert_array_equal(got.asnumpy(), want.asnumpy())
    assert create_model(name, features_only=True, out_indices=2).out_indices == (3, 4)  # an int: the last n
    assert not hasattr(create_model(name, num_classes=3), "out_channels")  # a classifier's output is its logits
    with pytest.raises(ValueError, match=r"out_indices must be a non-empty subset of 0..4 \(or -5..-1\), got \(-6,\)"):
        create_model(name, features_only=True, out_indices=(-6,))


def test_feature_cls_refusals_are_one_line():
    for kwargs, message in ((dict(features_only=True, feature_cls="hook"),
                             "feature_cls must be 'getter' or 'list' (timm's default), got 'hook'"),
                            (dict(features_only=True, feature_cls="fx"),
                             "feature_cls must be 'getter' or 'list' (timm's default), got 'fx'"),
                            (dict(feature_cls="getter"), "feature_cls='getter' needs features_only=True")):
        with pytest.raises(ValueError) as error:
            create_model("res2net50", **kwargs)
        assert str(error.value) == message
    assert create_model("res2net50", features_only=True, feature_cls="GETTER").features_only  # timm lower-cases


# ---------------------------------------------------------------------------------------------- gradient checkpointing


def _loss_and_grads(model, x):
    def loss_fn(images):
        return (model(images) ** 2).mean()

    loss, grads = ms.value_and_grad(loss_fn, None, model.trainable_params())(x)
    return loss.asnumpy(), [g.asnumpy() for g in grads]


def _same_model(name: str):
    """A model with non-zero last-BN gammas (so every block's gradient is non-trivial), and a copy of it."""
    kwargs = dict(num_classes=7) if "dla" in name else dict(num_classes=7, zero_init_last=False)
    a, b = create_model(name, **kwargs), create_model(name, **kwargs)
    ms.load_param_into_net(b, a.parameters_dict())
    a.set_train(True)
    b.set_train(True)
    return a, b


@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["pynative", "graph"])
@pytest.mark.parametrize("name", ["res2net50", "res2net_dla60"])
def test_grad_checkpointing_keeps_loss_and_gradients(name, mode, request, tmp_path, monkeypatch):
    """timm test_model_forward / test_model_backward with ``set_grad_checkpointing()``: the same loss and
    gradients under ``mindspore.value_and_grad`` as the same weights without it (training mode, batch 2)."""
    monkeypatch.chdir(tmp_path)  # a failed Graph compile writes rank_0/ into the working folder
    request.getfixturevalue(mode)
    plain, checkpointed = _same_model(name)
    checkpointed.set_grad_checkpointing()
    assert checkpointed.grad_checkpointing and not plain.grad_checkpointing
    x = _x(n=2, size=SMALL)
    loss, grads = _loss_and_grads(plain, x)
    loss_ckpt, grads_ckpt = _loss_and_grads(checkpointed, x)
    np.testing.assert_allclose(loss_ckpt, loss, rtol=1e-5)
    assert len(grads) == len(grads_ckpt) == len(plain.trainable_params())
    assert all(np.abs(g).max() > 0 for g in grads[:3])  # the stem's gradients are not trivially zero
    for p, g, g_ckpt in zip(plain.trainable_params(), grads, grads_ckpt):  # error at most 1e-5 of each's largest
        assert np.abs(g_ckpt - g).max() <= 1e-5 * np.abs(g).max() + 1e-12, p.name


@pytest.mark.e2e
@pytest.mark.parametrize("name, blocks", [("res2net50", 16), ("res2net_dla60", 16)])
def test_grad_checkpointing_recomputes_each_block_and_switches_off(name, blocks, pynative, monkeypatch):
    """Every block runs under ``mindspore.recompute`` when on (res2net50: 3+4+6+3 blocks; DLA-60: 2 per
    level-1 tree, 16), none when off; forward_intermediates and features_only keep their maps (timm
    test_model_forward_intermediates after ``set_grad_checkpointing()``)."""
    calls = []

    def counting_recompute(block, *args):
        calls.append(type(block).__name__)
        return block(*args)

    monkeypatch.setattr(layers, "recompute", counting_recompute)
    model = create_model(name, features_only=True, out_indices=(1, 4))
    model.set_train(False)
    x = _x(size=SMALL)
    before = model(x)
    final, intermediates = model.forward_intermediates(x)
    assert calls == []
    model.set_grad_checkpointing()
    after = model(x)
    assert calls == ["Bottle2neck"] * blocks
    for a, b in zip(before, after):
        np.testing.assert_allclose(b.asnumpy(), a.asnumpy(), rtol=1e-4, atol=1e-5)
    final_ckpt, _ = model.forward_intermediates(x)
    np.testing.assert_allclose(final_ckpt.asnumpy(), final.asnumpy(), rtol=1e-4, atol=1e-5)
    calls.clear()
    model.set_grad_checkpointing(False)
    model(x)
    assert not model.grad_checkpointing and calls == []
    assert all(not c.grad_checkpointing for _, c in model.cells_and_names() if "grad_checkpointing" in vars(c))


def test_grad_checkpointing_refusals_are_one_line():
    with pytest.raises(ValueError) as error:
        create_model("res2net50", drop_path_rate=0.1).set_grad_checkpointing()
    assert str(error.value) == ("set_grad_checkpointing: not with drop_path_rate > 0: a recomputed block draws a new "
                                "drop-path mask, so its gradients would not match the loss; build the model with "
                                "drop_path_rate=0 or train without gradient checkpointing")
    model = create_model("res2net_dla60", drop_path_rate=0.1)
    model.set_grad_checkpointing(False)  # off is always fine
    with pytest.raises(TypeError, match="set_grad_checkpointing: enable must be True or False, got 'yes'"):
        model.set_grad_checkpointing("yes")


# ------------------------------------------------------------------------------------------ mindcv


@pytest.fixture
def mindcv_registry():
    """mindcv's registry, restored afterwards: registering here must not change mindcv for other tests."""
    from mindcv.models import registry

    saved = {name: getattr(registry, name).copy() for name in (
        "_model_entrypoints", "_model_to_module", "_model_has_pretrained", "_model_pretrained_cfgs")}
    modules = {k: set(v) for k, v in registry._module_to_models.items()}
    yield registry
    for name, value in saved.items():
        getattr(registry, name).clear()
        getattr(registry, name).update(value)
    registry._module_to_models.clear()
    registry._module_to_models.update(modules)


@pytest.mark.e2e
def test_register_with_mindcv(mindcv_registry, pynative):
    import mindcv.models

    assert not mindcv.models.is_model("res2net50_26w_6s")
    registered = mindcv_res2net.register_with_mindcv()
    assert mindcv.models.is_model("res2net50_26w_6s") and "res2net50_26w_6s" in registered
    assert mindcv_res2net.register_with_mindcv() == []  # again: nothing new
    for name in ("res2net50", "res2net101", "res2net152", "res2net50_v1b", "res2net101_v1b", "res2net152_v1b"):
        assert name not in registered  # mindcv's own names stay its own
        assert type(mindcv.models.create_model(name, num_classes=2)).__module__ == "mindcv.models.res2net"
    ours = mindcv.models.create_model("res2net50_26w_6s", num_classes=5, features_only=False)
    assert isinstance(ours, mindcv_res2net.models.Res2Net) and ours.scale == 6 and ours.num_classes == 5
    assert isinstance(mindcv.models.create_model("res2net50_26w_4s"), mindcv_res2net.models.Res2Net)  # our alias
    assert mindcv.models.get_pretrained_cfg_value("res2net50_26w_8s", "first_conv") == "conv1"
    assert mindcv.models.is_model_pretrained("res2net_dla60")
    assert "res2net_dla60" in mindcv.models.list_models(module="mindcv_plugin")

    replaced = mindcv_res2net.register_with_mindcv(replace=True)
    assert sorted(replaced) == ["res2net101", "res2net101_v1b", "res2net152", "res2net152_v1b", "res2net50",
                                "res2net50_v1b"]
    assert isinstance(mindcv.models.create_model("res2net152_v1b", num_classes=2), mindcv_res2net.models.Res2Net)
    assert "res2net50" not in mindcv.models.list_models(module="res2net")


@pytest.mark.e2e
def test_mindcv_create_trainer_trains_our_model(mindcv_registry, pynative):
    """One training step of a model built by mindcv's create_model, with mindcv's loss, optimizer and
    create_trainer (mindspore.Model)."""
    import mindspore.dataset as ds
    from mindcv.loss import create_loss
    from mindcv.models import create_model as mindcv_create_model
    from mindcv.optim import create_optimizer
    from mindcv.utils import create_trainer

    mindcv_res2net.register_with_mindcv()
    network = mindcv_create_model("res2net50_26w_6s", num_classes=4, in_channels=3, drop_rate=0.0,
                                  drop_path_rate=0.0, pretrained=False, checkpoint_path="", ema=False)
    before = {p.name: p.asnumpy().copy() for p in network.trainable_params()}
    optimizer = create_optimizer(network.trainable_params(), "momentum", lr=0.1, weight_decay=1e-4)
    trainer = create_trainer(network, create_loss("CE"), optimizer, metrics={"acc"}, amp_level="O0",
                             amp_cast_list=None, loss_scale_type="fixed", loss_scale=1.0)
    rng = np.random.default_rng(0)
    data = ds.NumpySlicesDataset({"image": rng.standard_normal((4, 3, 32, 32)).astype(np.float32),
                                  "label": rng.integers(0, 4, 4).astype(np.int32)}, shuffle=False).batch(4)
    trainer.train(1, data, dataset_sink_mode=False)
    after = {p.name: p.asnumpy() for p in network.trainable_params()}
    assert all(np.isfinite(v).all() for v in after.values())
    assert not np.array_equal(before["fc.weight"], after["fc.weight"])
    assert not np.array_equal(before["layer1.0.convs.0.weight"], after["layer1.0.convs.0.weight"])


@pytest.mark.parametrize("name", ["res2net50_v1b", "res2net_dla60"])
def test_mindcv_feature_extract_wrapper(name, pynative):
    """mindcv test_feature_extraction_result_using_feature_wrapper on our classes: mindcv's wrapper runs
    the network cell by cell from ``feature_info``'s names and gives exactly our maps."""
    from mindcv.models.features import FeatureExtractWrapper

    net = create_model(name)
    net.set_train(False)
    x = _x()
    y0 = net.forward_intermediates(x, intermediates_only=True)
    wrapped = FeatureExtractWrapper(net, [0, 1, 2, 3, 4])
    wrapped.set_train(False)
    y1 = wrapped(x)
    assert len(y0) == len(y1) == 5 and wrapped.out_channels == net.feature_info.channels()
    for z0, z1 in zip(y0, y1):
        np.testing.assert_equal(z1.asnumpy(), z0.asnumpy())
    only = FeatureExtractWrapper(net, [1])  # test_feature_extraction_indices_using_feature_wrapper
    np.testing.assert_equal(only(x)[0].asnumpy(), y1[1].asnumpy())


@pytest.mark.e2e
def test_mindcv_scripts_run_our_models(tmp_path):
    """Automatic registration when mindcv is imported first, and the runner for mindcv's own scripts."""
    script = tmp_path / "mindcv_script.py"
    script.write_text("import sys\nfrom mindcv.models import create_model\n"
                      "m = create_model(sys.argv[1], num_classes=3)\nprint(type(m).__name__, m.scale)\n")
    env_code = ("import mindcv.models, mindcv_res2net\n"
                "print(mindcv.models.is_model('res2net50_14w_8s'), mindcv.models.is_model('res2next_dla60'))")
    auto = subprocess.run([sys.executable, "-c", env_code], cwd=PROJECT_DIR, capture_output=True, text=True,
                          timeout=300)
    assert auto.stdout.split() == ["True", "True"], auto.stderr
    runner = subprocess.run([sys.executable, "-m", "mindcv_res2net.cli.mindcv_run", str(script), "res2net50_26w_8s"],
                            cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300)
    assert runner.returncode == 0 and runner.stdout.split() == ["Res2Net", "8"], runner.stderr
    missing = subprocess.run([sys.executable, "-m", "mindcv_res2net.cli.mindcv_run", str(tmp_path / "no.py")],
                             cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and missing.stderr.strip().startswith("error: ") and \
        "no such script" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
