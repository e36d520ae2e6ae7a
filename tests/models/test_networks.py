"""The networks at small inputs: classifier and headless use, grey input, features_only, the pools (ceil mode,
exclusive average, exportable), drop path, zero-initialised last BatchNorm, PaddleClas semantics, SE, and the
Res2Net-DLA (the registry: test_registry.py; parity with the official networks: test_parity.py)."""
import numpy as np
import pytest

import mindspore as ms
from mindcv_res2net import create_model
from mindcv_res2net.models.layers import AvgPool2dCeil, DropPath, Pool2dPad, exportable_pools


def _x(n=2, size=64, channels=3, seed=0):
    return ms.Tensor(np.random.default_rng(seed).standard_normal((n, channels, size, size)).astype(np.float32))


@pytest.mark.e2e
def test_classifier_api(pynative):
    model = create_model("res2net50", num_classes=7)
    model.set_train(False)
    x = _x()
    assert model(x).shape == (2, 7)
    feats = model.forward_features(x)
    assert feats.shape == (2, 2048, 2, 2) and model.num_features == 2048
    assert model.forward_head(feats, pre_logits=True).shape == (2, 2048)
    assert np.allclose(model.forward_head(feats).asnumpy(), model(x).asnumpy(), atol=1e-5)
    assert model.get_classifier().weight.shape == (7, 2048)
    model.reset_classifier(3)
    assert model(x).shape == (2, 3)
    assert {p.name for p in model.get_classifier().get_parameters()} == {"fc.weight", "fc.bias"}
    model.reset_classifier(0)
    assert model.get_classifier() is None and model(x).shape == (2, 2048)


def test_headless_and_grey_input(pynative):
    model = create_model("res2net50_v1b", num_classes=0, in_channels=1)
    model.set_train(False)
    assert model(_x(channels=1)).shape == (2, 2048)
    assert not any(p.name.startswith("fc.") for p in model.get_parameters())


@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["pynative", "graph"])
def test_features_only(mode, request):
    request.getfixturevalue(mode)
    model = create_model("res2net50", features_only=True, out_indices=(0, 1, 2, 3, 4))
    model.set_train(False)
    feats = model(_x(size=64))
    assert isinstance(feats, list)
    assert [tuple(f.shape) for f in feats] == [(2, 64, 32, 32), (2, 256, 16, 16), (2, 512, 8, 8),
                                               (2, 1024, 4, 4), (2, 2048, 2, 2)]
    assert [(i["num_chs"], i["reduction"]) for i in model.feature_info] == [
        (64, 2), (256, 4), (512, 8), (1024, 16), (2048, 32)]
    subset = create_model("res2next50", features_only=True, out_indices=(2, 4))
    subset.set_train(False)
    assert [tuple(f.shape) for f in subset(_x(size=64))] == [(2, 512, 8, 8), (2, 2048, 2, 2)]
    assert subset.feature_info.reduction() == [8, 32]  # the outputs' (timm's FeatureInfo.out_indices)
    assert subset.get_classifier() is None


def test_features_only_rejects_bad_indices():
    with pytest.raises(ValueError, match="out_indices must be a non-empty subset of 0..4"):
        create_model("res2net50", features_only=True, out_indices=(1, 5))


def _avg_pool_ceil_reference(x: np.ndarray, size: int) -> np.ndarray:
    """PyTorch's AvgPool2d(size, size, ceil_mode=True, count_include_pad=False), in numpy."""
    n, c, h, w = x.shape
    out = np.zeros((n, c, -(-h // size), -(-w // size)))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = x[:, :, i * size:(i + 1) * size, j * size:(j + 1) * size].mean(axis=(2, 3))
    return out


@pytest.mark.parametrize("explicit_pad", [False, True])
def test_avg_down_pool_keeps_and_averages_partial_edge_windows(explicit_pad, pynative):
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 6)).astype(np.float32)  # odd height: a partial window
    got = AvgPool2dCeil(2, explicit_pad=explicit_pad)(ms.Tensor(x)).asnumpy()
    assert got.shape == (2, 3, 5, 3)
    np.testing.assert_allclose(got, _avg_pool_ceil_reference(x, 2), atol=1e-6)


def test_exportable_pools_replaces_every_padded_pool_also_inside_sequential_cells(pynative):
    model = create_model("res2net50_v1b", num_classes=3)
    model.set_train(False)
    x = _x(1, size=72)  # 72 px: layer3's shortcut pool sees 9x9, with partial windows
    before = model(x).asnumpy()
    exportable_pools(model)
    pools = [c for _, c in model.cells_and_names() if isinstance(c, (Pool2dPad, AvgPool2dCeil))]
    assert len(pools) == 1 + 4 + 3 and all(p.explicit_pad for p in pools)  # stem, first blocks, v1b shortcuts
    for layer in (model.layer2, model.layer3, model.layer4):  # what the shortcut really runs
        assert layer[0].downsample.cell_list[0].explicit_pad
    np.testing.assert_allclose(model(x).asnumpy(), before, atol=1e-5)


@pytest.mark.e2e
def test_drop_path_rates_grow_linearly_and_are_inactive_in_eval(pynative):
    model = create_model("res2net50", num_classes=4, drop_rate=0.5, drop_path_rate=0.2)
    rates = [cell.drop_prob for _, cell in model.cells_and_names() if isinstance(cell, DropPath)]
    assert len(rates) == 15  # block 0 has rate 0 and no DropPath
    assert np.allclose(rates, [0.2 * i / 15 for i in range(1, 16)])
    # non-zero last BN so that the residual branches matter
    for p in model.get_parameters():
        if p.name.endswith("bn3.gamma"):
            p.set_data(ms.Tensor(np.ones(p.shape, np.float32)))
    x = _x(n=4, size=32)
    model.set_train(False)
    eval_a, eval_b = model(x).asnumpy(), model(x).asnumpy()
    assert np.array_equal(eval_a, eval_b)
    plain = create_model("res2net50", num_classes=4)
    for p, q in zip(plain.get_parameters(), model.get_parameters()):
        p.set_data(q.data.copy())
    plain.set_train(False)
    assert np.allclose(plain(x).asnumpy(), eval_a, atol=1e-5)
    model.set_train(True)
    plain.set_train(True)
    train_out = model(x).asnumpy()
    assert not np.allclose(train_out, plain(x).asnumpy(), atol=1e-3)


def test_drop_path_scales_kept_samples():
    drop = DropPath(0.5)
    drop.set_train(True)
    out = drop(ms.Tensor(np.ones((64, 3), np.float32))).asnumpy()
    assert set(np.unique(out)) <= {0.0, 2.0} and 0 < (out[:, 0] == 0).sum() < 64
    assert (out == out[:, :1]).all()  # whole samples are dropped
    with pytest.raises(ValueError, match="drop_path probability"):
        DropPath(1.0)


def test_zero_init_last_default_and_opt_out():
    gammas = lambda m: [p.asnumpy() for p in m.get_parameters() if p.name.endswith("bn3.gamma")]  # noqa: E731
    assert all((g == 0).all() for g in gammas(create_model("res2net50")))
    assert all((g == 1).all() for g in gammas(create_model("res2net50", zero_init_last=False)))


@pytest.mark.e2e
def test_graph_mode_training_step_runs(graph):
    from mindspore import nn

    model = create_model("res2net50_v1b", num_classes=3, drop_path_rate=0.1)
    net = nn.TrainOneStepCell(nn.WithLossCell(model, nn.SoftmaxCrossEntropyWithLogits(sparse=True)),
                              nn.Momentum(model.trainable_params(), 0.01, 0.9))
    net.set_train(True)
    loss = net(_x(n=2, size=32), ms.Tensor(np.array([0, 2], np.int32)))
    assert np.isfinite(loss.asnumpy()).all()


@pytest.mark.e2e
def test_paddle_semantics_are_constructor_arguments():
    official, paddle = create_model("res2net50_v1b"), create_model("paddle_res2net50_vd_26w_4s")
    assert [p.name for p in official.get_parameters()] == [p.name for p in paddle.get_parameters()]
    # the stride rule: layer1's first block cascades (no pool), later stages' first blocks pool exclusively
    assert official.layer1[0].is_stage_block and not paddle.layer1[0].is_stage_block and paddle.layer1[0].pool is None
    assert paddle.layer2[0].is_stage_block and paddle.layer2[0].pool.exclusive and not official.layer2[0].pool.exclusive
    assert sum(p.size for p in create_model("paddle_res2net200_vd_26w_4s").trainable_params()) == 76_215_536


@pytest.mark.parametrize("explicit_pad", [False, True])
def test_exclusive_average_pool_ignores_the_padding(explicit_pad, pynative):
    x = np.random.default_rng(1).standard_normal((1, 2, 5, 4)).astype(np.float32)
    got = Pool2dPad("avg", 3, 2, padding=1, explicit_pad=explicit_pad, count_include_pad=False)(ms.Tensor(x)).asnumpy()
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=np.nan)
    want = np.array([[[[np.nanmean(padded[0, c, 2 * i:2 * i + 3, 2 * j:2 * j + 3]) for j in range(2)]
                       for i in range(3)] for c in range(2)]])
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_se_res2net50_adds_squeeze_excitation_before_the_residual_add(pynative):
    from mindcv_res2net.models.layers import SqueezeExcite

    plain, se = create_model("res2net50"), create_model("se_res2net50")
    extra = sum(2 * c * (c // 16) + c // 16 + c for c in [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3)
    assert sum(p.size for p in se.trainable_params()) == sum(p.size for p in plain.trainable_params()) + extra
    block = se.layer2[1]
    assert isinstance(block.se, SqueezeExcite) and block.se.fc1.weight.shape == (32, 512, 1, 1)
    x = np.random.default_rng(0).standard_normal((2, 512, 4, 4)).astype(np.float32)
    squeeze = x.mean(axis=(2, 3))
    hidden = np.maximum(squeeze @ block.se.fc1.weight.asnumpy()[:, :, 0, 0].T + block.se.fc1.bias.asnumpy(), 0)
    gate = 1 / (1 + np.exp(-(hidden @ block.se.fc2.weight.asnumpy()[:, :, 0, 0].T + block.se.fc2.bias.asnumpy())))
    np.testing.assert_allclose(block.se(ms.Tensor(x)).asnumpy(), x * gate[:, :, None, None], atol=1e-5)


@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["pynative", "graph"])
def test_dla_api_features_head_and_grey_input(mode, request):
    request.getfixturevalue(mode)
    model = create_model("res2next_dla60", num_classes=5, in_channels=1, drop_path_rate=0.1)
    model.set_train(False)
    x = _x(size=64, channels=1)
    assert model(x).shape == (2, 5) and model.forward_features(x).shape == (2, 1024, 2, 2)
    feats = create_model("res2net_dla60", features_only=True, out_indices=(0, 1, 2, 3, 4))
    feats.set_train(False)
    assert [tuple(f.shape) for f in feats(_x(size=64))] == [(2, 32, 32, 32), (2, 128, 16, 16), (2, 256, 8, 8),
                                                           (2, 512, 4, 4), (2, 1024, 2, 2)]
    assert [(i["num_chs"], i["reduction"]) for i in feats.feature_info] == [
        (32, 2), (128, 4), (256, 8), (512, 16), (1024, 32)]
    headless = create_model("res2net_dla60", num_classes=0)
    headless.set_train(False)
    assert headless(_x(size=64)).shape == (2, 1024)


@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["pynative", "graph"])
def test_dla_runs_where_the_official_runs_and_names_the_constraint_elsewhere(mode, request, tmp_path, monkeypatch):
    request.getfixturevalue(mode)
    monkeypatch.chdir(tmp_path)  # a failed Graph compile writes rank_0/om/analyze_fail.ir into the working folder
    model = create_model("res2net_dla60", num_classes=3)
    model.set_train(False)
    assert model(_x(n=1, size=63)).shape == (1, 3) and model(_x(n=1, size=64)).shape == (1, 3)
    with pytest.raises(ValueError, match=r"sides are 32k or 32k - 1 pixels .* got 65x65"):
        model(_x(n=1, size=65))
