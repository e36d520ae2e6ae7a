"""One optimisation step as a Cell, compiled whole in Graph mode."""
import mindspore as ms
from mindspore import nn, ops


class TrainStep(nn.Cell):
    """Forward, loss x ``loss_scale``, backward, unscale, optional global-norm clip, optimizer update.

    ``construct(images (N, C, H, W), labels) -> (loss scalar, logits (N, K))``. ``grad_reducer``
    averages gradients across data-parallel ranks (identity on one device).
    """

    def __init__(self, model: nn.Cell, loss_fn: nn.Cell, optimizer: nn.Optimizer, loss_scale: float = 1.0,
                 clip_grad: bool = False, clip_value: float = 15.0, grad_reducer: nn.Cell = None) -> None:
        super().__init__(auto_prefix=False)
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.weights = optimizer.parameters
        self.loss_scale = float(loss_scale)
        self.inverse_scale = ms.Tensor(1.0 / self.loss_scale, ms.float32)
        self.hyper_map = ops.HyperMap()
        self.clip_grad = clip_grad
        self.clip_value = float(clip_value)
        self.grad_reducer = grad_reducer
        self.grad_fn = ops.value_and_grad(self._scaled_loss, None, self.weights, has_aux=True)

    def _scaled_loss(self, images, labels):
        logits = self.model(images)
        loss = self.loss_fn(logits, labels)
        return loss * self.loss_scale, loss, logits

    def construct(self, images, labels):
        (_, loss, logits), grads = self.grad_fn(images, labels)
        if self.grad_reducer is not None:
            grads = self.grad_reducer(grads)
        if self.loss_scale != 1.0:
            grads = self.hyper_map(ops.partial(ops.mul, self.inverse_scale), grads)
        if self.clip_grad:
            grads = ops.clip_by_global_norm(grads, self.clip_value)
        self.optimizer(grads)
        return loss, logits


def top_k_correct(logits: ms.Tensor, labels: ms.Tensor, k: int) -> int:
    """How many rows of ``logits`` have their label (index, or argmax of soft targets) in the top ``k``."""
    logits = logits.asnumpy()
    labels = labels.asnumpy()
    if labels.ndim == 2:
        labels = labels.argmax(-1)
    k = min(k, logits.shape[1])
    top = (-logits).argsort(axis=1)[:, :k]
    return int((top == labels[:, None]).any(axis=1).sum())
