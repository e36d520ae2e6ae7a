"""Optimizers by name (mindcv's), with biases and BatchNorm parameters excluded from weight decay."""
from mindspore import nn

from ..utils.argtypes import ConfigError

# Each optimizer by name, with the flags (besides --lr and --weight_decay) that ``create_optimizer`` reads for it
OPTIMIZER_FLAGS = {"sgd": ("momentum", "use_nesterov"), "momentum": ("momentum", "use_nesterov"), "adam": ("eps",),
                   "adamw": ("eps",), "rmsprop": ("momentum", "eps")}
OPTIMIZERS = tuple(OPTIMIZER_FLAGS)


def param_groups(params, weight_decay: float, *, filter_bias_and_bn: bool = True):
    """Weight decay only on weights of rank > 1 (convolutions, dense) unless the filter is off."""
    if not filter_bias_and_bn or weight_decay == 0:
        return [{"params": list(params), "weight_decay": weight_decay}]
    decay = [p for p in params if len(p.shape) > 1]
    no_decay = [p for p in params if len(p.shape) <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0},
            {"order_params": list(params)}]


def create_optimizer(params, opt: str, lr, *, weight_decay: float = 0.0, momentum: float = 0.9,
                     nesterov: bool = False, filter_bias_and_bn: bool = True, eps: float = 1e-8) -> nn.Optimizer:
    """``lr``: a float or the per-step schedule (numpy array). Gradients given to it must be unscaled."""
    if opt not in OPTIMIZERS:
        raise ConfigError(f"--opt must be one of {', '.join(OPTIMIZERS)}, got '{opt}'")
    params = list(params)
    groups = param_groups(params, weight_decay, filter_bias_and_bn=filter_bias_and_bn)
    lr = lr.tolist() if hasattr(lr, "tolist") else lr
    if opt == "momentum":
        return nn.Momentum(groups, lr, momentum, use_nesterov=nesterov)
    if opt == "sgd":
        return nn.SGD(groups, lr, momentum=momentum, nesterov=nesterov and momentum > 0)
    if opt == "adam":
        return nn.Adam(groups, lr, eps=eps)
    if opt == "adamw":
        return nn.AdamWeightDecay(groups, lr, eps=eps)
    return nn.RMSProp(groups, lr, decay=0.9, momentum=momentum, epsilon=eps)
