"""The learning-rate schedules (warmup, cosine, step, multi-step, stairs, constant), the optimizers and their
parameter groups (no weight decay on biases and BatchNorm), and the loss (label smoothing, soft targets) against
their formulas."""
import numpy as np
import pytest

import mindspore as ms
from mindcv_res2net import create_model
from mindcv_res2net.loss import create_loss
from mindcv_res2net.optim import create_optimizer, param_groups
from mindcv_res2net.scheduler import create_scheduler


def test_schedulers():
    lr = create_scheduler("cosine_decay", 0.1, steps_per_epoch=10, epochs=5, warmup_epochs=1, min_lr=0.001)
    assert lr.shape == (50,) and lr[0] == 0.0 and np.isclose(lr[9], 0.09) and np.isclose(lr[10], 0.1)
    assert np.all(np.diff(lr[10:]) <= 0) and lr[-1] > 0.001 and np.isclose(lr[-1], 0.001, atol=2e-3)
    step = create_scheduler("step_decay", 1.0, steps_per_epoch=2, epochs=6, decay_epochs=2, decay_rate=0.5)
    assert step.tolist() == [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25]
    multi = create_scheduler("multi_step_decay", 1.0, steps_per_epoch=1, epochs=5, milestones=(2, 4), decay_rate=0.1)
    assert np.allclose(multi, [1, 1, 0.1, 0.1, 0.01])
    stair = create_scheduler("cosine_decay", 1.0, steps_per_epoch=4, epochs=3, lr_epoch_stair=True)
    assert len(set(stair[:4].tolist())) == 1 and stair[4] < stair[3]
    assert (create_scheduler("constant", 0.3, steps_per_epoch=3, epochs=2) == np.float32(0.3)).all()
    with pytest.raises(ValueError, match="--scheduler must be one of"):
        create_scheduler("poly", 0.1, steps_per_epoch=1, epochs=1)


def test_no_weight_decay_on_bias_and_batchnorm():
    model = create_model("res2net50", num_classes=10)
    groups = param_groups(model.trainable_params(), 1e-4)
    assert all(len(p.shape) > 1 for p in groups[0]["params"]) and groups[0]["weight_decay"] == 1e-4
    names = {p.name for p in groups[1]["params"]}
    assert "fc.bias" in names and "bn1.gamma" in names and groups[1]["weight_decay"] == 0.0
    for opt in ("sgd", "momentum", "adam", "adamw", "rmsprop"):
        create_optimizer(model.trainable_params(), opt, np.full(4, 0.01, np.float32), weight_decay=1e-4)
    with pytest.raises(ValueError, match="--opt must be one of"):
        create_optimizer(model.trainable_params(), "lion", 0.1)


def test_label_smoothing_loss_matches_formula():
    logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]], np.float32)
    labels = np.array([0, 2], np.int32)
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    expected = np.mean([-(0.9 * log_p[i, labels[i]] + 0.1 * log_p[i].mean()) for i in range(2)])
    got = create_loss("CE", 3, label_smoothing=0.1)(ms.Tensor(logits), ms.Tensor(labels)).asnumpy()
    assert np.isclose(got, expected, atol=1e-6)
    soft = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]], np.float32)
    got = create_loss("CE", 3, soft_targets=True)(ms.Tensor(logits), ms.Tensor(soft)).asnumpy()
    assert np.isclose(got, np.mean(-(soft * log_p).sum(1)), atol=1e-6)
