"""timm's habits that tests/test_model_api.py did not cover yet, each test ported from the upstream one it
names (huggingface/pytorch-image-models ``tests/test_models.py`` and the contracts of ``timm/models/_registry.py``,
``_features.py`` and ``_builder.py`` that those tests rely on), with PyTorch translated to MindSpore; plus
gradient checkpointing (timm's ``set_grad_checkpointing``) and its benchmark rows.
"""
import json
import math

import numpy as np
import pytest

import mindspore as ms
import mindcv_res2net
from mindcv_res2net import create_model, list_models, list_pretrained
from mindcv_res2net.benchmark.plan import BenchmarkSettings, check_request, plan
from mindcv_res2net.benchmark.tables import checkpointing_lines
from mindcv_res2net.models import factory, layers
from mindcv_res2net.models.base import FeatureInfo
from mindcv_res2net.models.registry import get_pretrained_cfg
from mindcv_res2net.weights import save_weights

from conftest import assert_quiet_exit, run, run_tool

SIZE = 32  # every Res2Net and DLA map exists at 32 px (the last at 1x1)


def _x(n=1, size=SIZE, channels=3, seed=0):
    return ms.Tensor(np.random.default_rng(seed).standard_normal((n, channels, size, size)).astype(np.float32))


# ------------------------------------------------------------------------------------------------ in_chans


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
    assert grey(_x(channels=1)).shape == (1, 5)
    assert create_model("res2net50", checkpoint_path=str(path), in_chans=1, num_classes=0).num_classes == 0
    assert mindcv_res2net.models.res2net.res2net50(in_chans=2).in_channels == 2  # the builder too, as timm's
    assert create_model("res2net_dla60", in_chans=4, in_channels=4).in_channels == 4  # the same value twice: fine
    assert create_model("res2net50").in_channels == 3
    with pytest.raises(ValueError) as error:
        create_model("res2net50", in_chans=1, in_channels=3)
    assert str(error.value) == ("in_chans=1 and in_channels=3 disagree: in_chans is timm's name for in_channels, "
                                "give one of them")


# ---------------------------------------------------------------------------------------------- registry


@pytest.mark.e2e
def test_list_pretrained_and_include_tags_follow_timm(monkeypatch):
    """timm test_model_inference's ``list_pretrained(filter)`` and test_model_default_cfgs'
    ``list_models(include_tags=True)``: every ``name.tag`` entry is a weight tag create_model accepts
    with pretrained=False, without downloading anything."""
    assert mindcv_res2net.list_pretrained is list_pretrained
    tagged = list_pretrained()
    assert tagged == list_models(pretrained=True, include_tags=True) == list_models(pretrained=True)
    assert len(tagged) == 26 and all(name.count(".") == 1 for name in tagged)
    assert list_pretrained("res2net50_v1b") == ["res2net50_v1b.mindcv_in1k", "res2net50_v1b.official_in1k"]
    assert list_pretrained("*dla*", exclude_filters="res2next*") == ["res2net_dla60.official_in1k"]
    assert list_models(pretrained=True, include_tags=False) == sorted({n.split(".")[0] for n in tagged})

    with_tags = list_models(include_tags=True)  # published tags, and the bare name of a model without any
    assert set(tagged) < set(with_tags)
    assert set(with_tags) - set(tagged) == {"res2net152", "res2net152_v1b", "se_res2net50"}
    for name in with_tags:  # the tag resolves to its own config (what create_model reads)
        base, _, tag = name.partition(".")
        cfg = get_pretrained_cfg(name)
        assert cfg == get_pretrained_cfg(base, tag or None)
        assert bool(cfg.get("url")) == bool(tag)

    def no_download(*args, **kwargs):
        raise AssertionError("pretrained=False must not download")

    monkeypatch.setattr(factory, "download_weights", no_download)
    for name in ("res2net50.official_in1k", "res2net50_v1b.mindcv_in1k", "paddle_res2net50_14w_8s.paddle_in1k",
                 "res2next_dla60.official_in1k"):  # one of each source and class; the rest differ only in cfg
        model = create_model(name, pretrained=False, num_classes=3)
        assert model.pretrained_cfg["tag"] == name.split(".")[1]
        assert model.pretrained_cfg["url"] == get_pretrained_cfg(name)["url"]
    with pytest.raises(ValueError, match="model 'res2net50' has no pretrained tag 'in21k'; available: "):
        create_model("res2net50.in21k")


def test_list_models_module_takes_a_list():
    """timm test_model_forward_intermediates_features' ``list_models(module=[...])``: the union of the modules."""
    dla = ["res2net_dla60", "res2next_dla60"]
    assert list_models(module=["dla"]) == list_models(module=("dla",)) == list_models(module="dla") == dla
    assert list_models(module=["dla", "res2net"]) == list_models() and len(list_models()) == 19
    assert list_models("res2net50*", module=["res2net"]) == list_models("res2net50*")
    assert list_models(module=["dla"], pretrained=True) == [
        "res2net_dla60.official_in1k", "res2next_dla60.official_in1k"]
    with pytest.raises(ValueError) as error:
        list_models(module=["dla", "resnet"])  # silently [] before; timm's module names are not ours
    assert str(error.value) == "list_models: unknown module 'resnet'; known: dla, res2net"


# ---------------------------------------------------------------------------------------------- features


def test_feature_info_has_timms_constructor_and_indexing(pynative):
    """timm test_model_forward_intermediates: ``FeatureInfo(model.feature_info, len(model.feature_info))``,
    and the indexing of timm's ``_features.FeatureInfo`` (``get``/``get_dicts`` with ``index``)."""
    model = create_model("res2net50_v1b")
    info = FeatureInfo(model.feature_info, len(model.feature_info))
    assert len(info) == 5 and info.out_indices == (0, 1, 2, 3, 4)
    assert info.channels() == [64, 256, 512, 1024, 2048] and info.reduction() == [2, 4, 8, 16, 32]
    _, intermediates = model.forward_intermediates(_x(), output_fmt="NCHW")
    for channels, reduction, o in zip(info.channels(), info.reduction(), intermediates):
        assert o.shape[1] == channels and o.shape[2] <= math.ceil(SIZE / reduction) + 1

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
    outputs = model(_x())
    assert isinstance(outputs, tuple) and len(expected_channels) == len(outputs) == 5
    for e, r, o in zip(expected_channels, expected_reduction, outputs):
        assert e == o.shape[1] and o.shape[0] == 1
        assert o.shape[2] <= math.ceil(SIZE / r) + 1 and o.shape[3] <= math.ceil(SIZE / r) + 1
        assert np.isfinite(o.asnumpy()).all()
    assert model.out_channels == expected_channels

    tail = create_model(name, features_only=True, out_indices=(-3, -1), feature_cls="list")
    tail.set_train(False)
    ms.load_param_into_net(tail, model.parameters_dict())
    picked = tail(_x())
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


# ----------------------------------------------------------------------------------- gradient checkpointing


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
    x = _x(n=2)
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
    x = _x()
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


# ------------------------------------------------------------------------------------------------ benchmark


def test_benchmark_plans_and_reports_grad_checkpointing_rows():
    settings = BenchmarkSettings(modes="graph", batch_size=(2,), image_size=32, steps=1, warmup=0, epoch_images=10,
                                 grad_checkpointing=True)
    configs = plan(check_request(settings), mindcv_models={"res2net50"})
    assert [c.impl for c in configs] == ["mindcv_res2net", "mindcv", "mindcv_res2net (grad checkpointing)"]
    row = dict(model="res2net50", mode="graph", batch_size=8, image_size=224)
    rows = [dict(row, impl="mindcv_res2net", train_peak_memory_mb=3000.0, train_ms_per_step=1000.0),
            dict(row, impl="mindcv_res2net (grad checkpointing)", train_peak_memory_mb=2000.0,
                 train_ms_per_step=1300.0)]
    assert checkpointing_lines(rows) == (
        "res2net50 graph, batch 8 at 224 px: gradient checkpointing 2000 MB train peak vs 3000 MB (0.67x), "
        "1300 vs 1000 ms/step (1.30x)")


@pytest.mark.e2e
def test_benchmark_grad_checkpointing_run_and_refusals(tmp_path, capsys):
    """A tiny PyNative run: both rows measured, the train step's own peak memory included."""
    out = tmp_path / "bench.json"
    proc = run(["tools/benchmark.py", "--models", "res2net50", "--modes", "pynative", "--batch_size", "2",
                "--image_size", "32", "--steps", "1", "--warmup", "0", "--grad_checkpointing", "--json", str(out)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_quiet_exit(proc)
    rows = {r["impl"]: r for r in json.loads(out.read_text())["results"]}
    assert set(rows) == {"mindcv_res2net", "mindcv_res2net (grad checkpointing)"}
    for r in rows.values():
        assert r["train_ms_per_step"] > 0 and r["train_peak_memory_mb"] > 200  # MindSpore alone takes more
        assert r["train_peak_memory_mb"] <= 1.01 * r["peak_host_memory_mb"]  # VmHWM and ru_maxrss: ~1 MB apart
    assert "gradient checkpointing" in proc.stdout and "MB train peak vs" in proc.stdout
    for argv in (["--engines", "onnxruntime", "--grad_checkpointing"], ["--data_only", "--grad_checkpointing"]):
        code, err = run_tool("benchmark", argv, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert err.startswith("error: --grad_checkpointing: measures a MindSpore train step, so it needs --models "
                              "and the mindspore engine")
