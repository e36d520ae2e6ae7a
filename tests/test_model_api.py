"""timm's and mindcv's model API on our models: the upstream model tests, ported at small sizes.

Each ported test names the upstream test it follows (timm ``tests/test_models.py``, mindcv
``tests/modules/test_models.py`` and ``test_feature_extraction.py``) and keeps every assertion that
has a MindSpore meaning (not torchscript, fx or torch.compile).
"""
import math
import subprocess
import sys

import numpy as np
import pytest

import mindspore as ms
import mindcv_res2net
from mindcv_res2net import create_model, list_models
from mindcv_res2net.weights.checkpoint_layout import EMA_PREFIX, OPTIMIZER_PREFIX
from mindcv_res2net.models.base import FeatureInfo, feature_take_indices
from mindcv_res2net.weights import CheckpointError, save_weights

from conftest import PROJECT_DIR

# one of each kind: plain stem, deep stem + avg-down, grouped (Res2NeXt), PaddleClas semantics, DLA tree
REPRESENTATIVE = ["res2net50", "res2net50_v1b", "res2next50", "paddle_res2net50_vd_26w_4s", "res2net_dla60"]
SIZE = 64  # every map is SIZE / reduction pixels wide


def _x(n=1, size=SIZE, seed=0):
    return ms.Tensor(np.random.default_rng(seed).standard_normal((n, 3, size, size)).astype(np.float32))


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
    assert isinstance(outputs, tuple) and len(outputs) == len(expected_channels)
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


def test_registry_functions_of_timm_and_mindcv():
    """timm's list_models filters and mindcv test_models' registry checks (list_modules, model_entrypoint,
    is_model_in_modules, is_model_pretrained)."""
    names = list_models()
    assert names == sorted(names) and len(names) == 19
    modules = mindcv_res2net.list_modules()
    assert modules == ["dla", "res2net"]
    assert all(mindcv_res2net.is_model_in_modules(n, modules) for n in names)
    assert all(callable(mindcv_res2net.model_entrypoint(n)) for n in names)
    assert list_models(module="dla") == ["res2net_dla60", "res2next_dla60"]
    assert list_models(filter=["res2net50_2*", "*dla*"], exclude_filters="res2next*") == [
        "res2net50_26w_6s", "res2net50_26w_8s", "res2net_dla60"]
    tagged = list_models("res2net101", pretrained=True)
    assert set(tagged) == {"res2net101.official_in1k", "res2net101.mindcv_in1k", "res2net101.mmpretrain_in1k"}
    assert tagged[0] == "res2net101.mindcv_in1k"  # 79.56: the best-scoring first
    assert list_models(pattern="res2net50_v1*") == list_models("res2net50_v1*") == ["res2net50_v1b"]
    assert list_models(name_matches_cfg=True) == names
    assert "res2net50_26w_4s" in list_models(include_aliases=True, exclude_filters="res2net50")
    assert sum(mindcv_res2net.is_model_pretrained(n) for n in names) == 16  # all but res2net152(_v1b), SE
    assert mindcv_res2net.is_model_pretrained("res2net50") and not mindcv_res2net.is_model_pretrained("res2net152")
    assert mindcv_res2net.is_model_pretrained("res2net50.official_in1k")
    assert not mindcv_res2net.is_model_pretrained("nope")
    assert mindcv_res2net.get_pretrained_cfg_value("res2net50_v1b", "first_conv") == "conv1.0"
    assert mindcv_res2net.get_pretrained_cfg_value("res2net50", "no_such_key") is None
    assert mindcv_res2net.get_pretrained_cfg_value("nope", "input_size") is None


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
