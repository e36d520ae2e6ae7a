"""The training step: gradient accumulation equals a larger batch; EMA; loss scaling is exact."""
import numpy as np
import pytest

import mindspore as ms
from mindspore import nn
from mindcv_res2net.train.train_step import TrainStep
from mindcv_res2net.loss import create_loss
from mindcv_res2net.optim import create_optimizer


def _mlp(seed=0):
    ms.set_seed(seed)
    net = nn.SequentialCell(nn.Dense(8, 16), nn.ReLU(), nn.Dense(16, 3))
    rng = np.random.default_rng(seed)
    for p in net.get_parameters():
        p.set_data(ms.Tensor(rng.standard_normal(p.shape).astype(np.float32) * 0.3))
    return net


def _step(net, **kw):
    opt = create_optimizer(net.trainable_params(), "momentum", np.full(20, 0.1, np.float32), weight_decay=1e-3)
    step = TrainStep(net, create_loss("CE", 3), opt, **kw)
    step.set_train(True)
    return step


def _weights(net):
    return [p.asnumpy().copy() for p in net.trainable_params()]


@pytest.mark.parametrize("mode", ["pynative", "graph"])
def test_accumulation_equals_larger_batch(mode, request):
    request.getfixturevalue(mode)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 8, 8)).astype(np.float32)  # 3 updates of 8 samples
    y = rng.integers(0, 3, (3, 8)).astype(np.int32)
    big, small = _mlp(), _mlp()
    big_step, small_step = _step(big), _step(small, accumulation_steps=4, loss_scale=8.0)
    for i in range(3):
        big_step(ms.Tensor(x[i]), ms.Tensor(y[i]))
        for j in range(4):
            part = slice(2 * j, 2 * j + 2)
            small_step(ms.Tensor(x[i, part]), ms.Tensor(y[i, part]), j == 3)
    for a, b in zip(_weights(big), _weights(small)):
        assert np.abs(a - b).max() < 1e-5
    assert not np.allclose(_weights(big)[0], _weights(_mlp())[0])  # it did train


def test_ema_follows_weights(pynative):
    net = _mlp()
    start = _weights(net)
    step = _step(net, ema_decay=0.5)
    x, y = ms.Tensor(np.ones((4, 8), np.float32)), ms.Tensor(np.array([0, 1, 2, 0], np.int32))
    step(x, y)
    after_one = _weights(net)
    ema = [p.asnumpy() for p in step.ema]
    assert [p.name for p in step.ema][0] == "ema." + net.trainable_params()[0].name
    for e, w0, w1 in zip(ema, start, after_one):
        assert np.allclose(e, 0.5 * w0 + 0.5 * w1, atol=1e-6)


def test_bad_accumulation_steps():
    with pytest.raises(ValueError, match="--gradient_accumulation_steps must be at least 1"):
        _step(_mlp(), accumulation_steps=0)


def test_dynamic_loss_scale_skips_overflowing_updates(pynative):
    net = _mlp()
    start = _weights(net)
    step = _step(net, loss_scale=2.0 ** 127, dynamic_loss_scale=True)
    big = ms.Tensor(np.full((4, 8), 1e4, np.float32))  # large inputs: scaled gradients overflow float32
    x, y = ms.Tensor(np.ones((4, 8), np.float32)), ms.Tensor(np.array([0, 1, 2, 0], np.int32))
    step(big, y)
    assert all(np.array_equal(a, b) for a, b in zip(start, _weights(net)))  # update skipped
    assert float(step.scaler.scale_value.asnumpy()) == 2.0 ** 126  # scale halved
    small = _step(_mlp(), loss_scale=1024.0, dynamic_loss_scale=True)
    small(x, y)
    assert not np.allclose(start[0], small.model.trainable_params()[0].asnumpy())
