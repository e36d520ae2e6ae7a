"""Cross-entropy with label smoothing, for class indices or soft (mixup/cutmix) targets."""
from mindspore import nn, ops

from ..utils.argtypes import ConfigError


class CrossEntropy(nn.Cell):
    """Mean cross-entropy of logits (N, K) against labels (N,) int or soft targets (N, K) float.

    ``label_smoothing`` applies to index labels; soft targets come already smoothed by the mixer.
    """

    def __init__(self, num_classes: int, *, label_smoothing: float = 0.0, soft_targets: bool = False) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"--label_smoothing must be in [0, 1), got {label_smoothing}")
        self.num_classes = num_classes
        self.smoothing = label_smoothing
        self.soft_targets = soft_targets

    def construct(self, logits, labels):
        log_probs = ops.log_softmax(logits.astype("float32"), -1)
        if self.soft_targets:
            targets = labels.astype("float32")
        else:
            targets = ops.one_hot(labels, self.num_classes, 1.0 - self.smoothing, 0.0) + \
                self.smoothing / self.num_classes
        return -(targets * log_probs).sum(-1).mean()


def create_loss(name: str, num_classes: int, *, label_smoothing: float = 0.0, soft_targets: bool = False) -> nn.Cell:
    if name != "CE":
        raise ConfigError(f"--loss must be CE, got '{name}'")
    return CrossEntropy(num_classes, label_smoothing=label_smoothing, soft_targets=soft_targets)
