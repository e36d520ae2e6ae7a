"""Semantic segmentation on a dilated Res2Net backbone: output stride 8 against 32, on real data offline.

    python examples/dense_prediction.py [--output_strides 8 32] [--image_size 32] [--steps 80]

Data: scikit-learn's 1,797 digit scans (bundled, the package's ``digits`` source and its stratified 80/20
split), upsampled bilinearly from 8x8 to ``--image_size`` pixels. Each pixel's label is 0 (background)
where the scan has no ink (upsampled intensity below ``--ink``) and 1 + the digit where it has: eleven
classes, so a pixel needs both the fine outline and the whole digit's identity.

Model: ``create_model(name, features_only=True, out_indices=(4,), output_stride=S, frozen_stages=F)``; a
3x3 + 1x1 convolution head turns the last map (stride S) into class logits, upsampled bilinearly to the
image. Trained with Adam and per-pixel cross-entropy on the training split, evaluated by the mean IoU of
the eleven classes (and pixel accuracy) on the held-out split. Without ``--ckpt_path`` the backbone
starts from its random initialisation (no download is needed), and its frozen stages stay random
features; pass a weight file (any format the converter reads, head included) to start from it.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import mindcv_res2net  # noqa: E402  (sets ONEDNN_MAX_CPU_ISA before mindspore loads)
import mindspore as ms  # noqa: E402
import numpy as np  # noqa: E402
from mindspore import nn, ops  # noqa: E402

from mindcv_res2net import create_model  # noqa: E402
from mindcv_res2net.data import create_source  # noqa: E402
from mindcv_res2net.models.base import FROZEN_STAGES  # noqa: E402
from mindcv_res2net.models.res2net import OUTPUT_STRIDES  # noqa: E402
from mindcv_res2net.utils.argtypes import HelpFormatter, OneLineParser, image_size, positive_int  # noqa: E402
from mindcv_res2net.utils.cli import run_cli  # noqa: E402

NUM_CLASSES = 11  # background + the ten digits


def digit_segmentation(split: str, image_size: int, ink: float, limit: int = 0):
    """(images (N, 1, S, S) float32 in [0, 1], masks (N, S, S) int32 in 0..10) of a digits split."""
    source = create_source("digits", split)
    images, labels = source.images[..., 0], source.labels
    if limit:
        images, labels = images[:limit], labels[:limit]
    scans = ms.Tensor(images[:, None].astype(np.float32) / 255.0)
    upsampled = ops.interpolate(scans, size=(image_size, image_size), mode="bilinear").asnumpy()
    masks = np.where(upsampled[:, 0] >= ink, labels[:, None, None] + 1, 0).astype(np.int32)
    return upsampled, masks


class Segmenter(nn.Cell):
    """Backbone's last map (N, C, H/S, W/S) -> 3x3 conv, ReLU, 1x1 conv -> logits upsampled to (N, classes, H, W)."""

    def __init__(self, backbone: nn.Cell, num_classes: int, width: int = 128) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.SequentialCell(
            nn.Conv2d(backbone.feature_info[-1]["num_chs"], width, 3, pad_mode="pad", padding=1, has_bias=True),
            nn.ReLU(), nn.Conv2d(width, num_classes, 1, has_bias=True))

    def construct(self, images):
        logits = self.head(self.backbone(images)[-1])
        return ops.interpolate(logits, size=images.shape[2:], mode="bilinear")


def confusion(pred: np.ndarray, true: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) pixel counts, rows the true class."""
    return np.bincount(true.reshape(-1) * num_classes + pred.reshape(-1),
                       minlength=num_classes ** 2).reshape(num_classes, num_classes)


def mean_iou(matrix: np.ndarray) -> float:
    """Mean over the classes present (in truth or prediction) of TP / (TP + FP + FN)."""
    tp = np.diag(matrix).astype(np.float64)
    union = matrix.sum(0) + matrix.sum(1) - tp
    return float(np.mean(tp[union > 0] / union[union > 0]))


def run(args, output_stride: int, train_set, val_set) -> dict:
    """Train a fresh backbone + head at ``output_stride``; returns its val mIoU, pixel accuracy and seconds."""
    ms.set_seed(args.seed)
    backbone = create_model(args.model, features_only=True, out_indices=(4,), output_stride=output_stride,
                            frozen_stages=args.frozen_stages, norm_eval=args.norm_eval,
                            checkpoint_path=args.ckpt_path or None)
    mean, std = (np.array(backbone.pretrained_cfg[k], np.float32).reshape(1, 3, 1, 1) for k in ("mean", "std"))
    net = Segmenter(backbone, NUM_CLASSES)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = nn.Adam(net.trainable_params(), learning_rate=args.lr)

    def forward(images, masks):
        return loss_fn(net(images), masks)

    grad_fn = ms.value_and_grad(forward, None, optimizer.parameters)

    def train_step(images, masks):
        loss, grads = grad_fn(images, masks)
        optimizer(grads)
        return loss

    if args.mode == "graph":
        train_step = ms.jit(train_step)

    def batch(images):
        return ms.Tensor((np.repeat(images, 3, axis=1) - mean) / std)

    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    net.set_train(True)
    for step in range(1, args.steps + 1):
        chosen = rng.choice(len(train_set[0]), args.batch_size, replace=False)
        loss = float(train_step(batch(train_set[0][chosen]), ms.Tensor(train_set[1][chosen])).asnumpy())
        if step % args.log_interval == 0 or step == args.steps:
            print(f"os{output_stride} step {step}/{args.steps}: loss {loss:.4f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    train_seconds = time.perf_counter() - start
    net.set_train(False)
    matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    for i in range(0, len(val_set[0]), args.batch_size):
        logits = net(batch(val_set[0][i:i + args.batch_size])).asnumpy()
        matrix += confusion(logits.argmax(axis=1), val_set[1][i:i + args.batch_size], NUM_CLASSES)
    return dict(output_stride=output_stride, miou=mean_iou(matrix), pixel_accuracy=np.trace(matrix) / matrix.sum(),
                train_seconds=train_seconds, seconds=time.perf_counter() - start)


def main(argv=None) -> int:
    parser = OneLineParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--model", default="res2net50", help="a Res2Net variant (not DLA)")
    parser.add_argument("--output_strides", type=int, nargs="+", default=[8, 32], choices=OUTPUT_STRIDES,
                        help="one run per output stride")
    parser.add_argument("--frozen_stages", type=int, default=1, choices=FROZEN_STAGES,
                        help="stem and stages 1..i frozen (-1: none)")
    parser.add_argument("--norm_eval", action="store_true", help="every BatchNorm in eval mode while training")
    parser.add_argument("--image_size", type=image_size, default=32, help="pixels per side")
    parser.add_argument("--steps", type=positive_int, default=80, help="training steps per run")
    parser.add_argument("--batch_size", type=positive_int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--ink", type=float, default=0.25, help="intensity (0..1) from which a pixel is ink")
    parser.add_argument("--train_samples", type=int, default=0, help="use only N training scans (0: all 1,437)")
    parser.add_argument("--val_samples", type=int, default=0, help="use only N held-out scans (0: all 360)")
    parser.add_argument("--ckpt_path", default="", help="backbone weights to start from (default: random)")
    parser.add_argument("--log_interval", type=positive_int, default=20, help="steps between loss lines")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mode", choices=("graph", "pynative"), default="graph",
                        help="graph: the training step compiled (ms.jit); pynative: run eagerly")
    args = parser.parse_args(argv)
    if not 0.0 < args.ink < 1.0:
        parser.error(f"--ink: must lie strictly between 0 and 1, got {args.ink}")
    if not args.lr > 0:
        parser.error(f"--lr: must be positive, got {args.lr}")
    for flag in ("train_samples", "val_samples"):
        if getattr(args, flag) < 0:
            parser.error(f"--{flag}: must be 0 (all) or a positive count, got {getattr(args, flag)}")
    ms.set_context(mode=ms.GRAPH_MODE if args.mode == "graph" else ms.PYNATIVE_MODE)
    train_set = digit_segmentation("train", args.image_size, args.ink, args.train_samples)
    val_set = digit_segmentation("val", args.image_size, args.ink, args.val_samples)
    if args.batch_size > len(train_set[0]):
        parser.error(f"--batch_size: {args.batch_size} is more than the {len(train_set[0])} training scans")
    print(f"{len(train_set[0])} training / {len(val_set[0])} held-out scans at {args.image_size} px, "
          f"{NUM_CLASSES} classes; {args.model}, frozen_stages {args.frozen_stages}, {args.steps} steps of "
          f"{args.batch_size}", flush=True)
    results = [run(args, stride, train_set, val_set) for stride in args.output_strides]
    for r in results:
        print(f"output_stride {r['output_stride']}: mIoU {r['miou']:.4f}, pixel accuracy {r['pixel_accuracy']:.4f}, "
              f"training {r['train_seconds']:.0f} s, total {r['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    run_cli(main)
