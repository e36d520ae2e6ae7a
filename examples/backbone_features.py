"""Res2Net as a backbone in Graph mode: multi-scale features feeding a small head of your own.

    python examples/backbone_features.py [--model res2net50_v1b] [--image_size 128] [--steps 3]

``create_model(name, features_only=True, out_indices=(2, 3, 4))`` returns the layer2..layer4 maps at
strides 8, 16 and 32 as a tuple; ``model.feature_info`` gives their channels. The head below reduces
each map to 64 channels, resizes the coarser ones to the finest and sums them (an FPN-style merge),
then predicts a per-pixel class map at stride 8. A few training steps on random data show that the
whole thing compiles and trains in Graph mode; swap in your data and loss.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import mindcv_res2net  # noqa: E402  (sets ONEDNN_MAX_CPU_ISA before mindspore loads)
import mindspore as ms  # noqa: E402
import numpy as np  # noqa: E402
from mindspore import nn, ops  # noqa: E402

from mindcv_res2net import create_model  # noqa: E402


class MergeHead(nn.Cell):
    """Feature maps (N, C_i, H_i, W_i), finest first -> class logits (N, num_classes, H_0, W_0)."""

    def __init__(self, in_channels, num_classes: int, width: int = 64) -> None:
        super().__init__()
        self.lateral = nn.CellList([nn.Conv2d(c, width, 1, has_bias=True) for c in in_channels])
        self.classify = nn.Conv2d(width, num_classes, 3, pad_mode="pad", padding=1, has_bias=True)

    def construct(self, features):
        merged = self.lateral[0](features[0])
        size = merged.shape[2:]
        for i in range(1, len(features)):
            merged = merged + ops.interpolate(self.lateral[i](features[i]), size=size, mode="bilinear")
        return self.classify(ops.relu(merged))


class Segmenter(nn.Cell):
    def __init__(self, backbone: nn.Cell, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = MergeHead(backbone.feature_info.channels(), num_classes)  # of the maps it returns

    def construct(self, images):
        return self.head(self.backbone(images))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="res2net50")
    parser.add_argument("--image_size", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=2)
    parser.add_argument("--num_classes", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    ms.set_device("CPU")
    ms.set_context(mode=ms.GRAPH_MODE)

    backbone = create_model(args.model, features_only=True, out_indices=(2, 3, 4))  # pretrained=True for real use
    print("features:", ", ".join(f"{i['module']}: {i['num_chs']} ch, stride {i['reduction']}"
                                 for i in backbone.feature_info.get_dicts()))
    net = Segmenter(backbone, args.num_classes)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = nn.Momentum(net.trainable_params(), learning_rate=0.01, momentum=0.9)

    def forward(images, masks):
        return loss_fn(net(images), masks)

    grad_fn = ms.value_and_grad(forward, None, optimizer.parameters)

    @ms.jit
    def train_step(images, masks):
        loss, grads = grad_fn(images, masks)
        optimizer(grads)
        return loss

    rng = np.random.default_rng(0)
    size = args.image_size
    images = ms.Tensor(rng.standard_normal((args.batch_size, 3, size, size)).astype(np.float32))
    masks = ms.Tensor(rng.integers(0, args.num_classes, (args.batch_size, size // 8, size // 8)).astype(np.int32))
    net.set_train(True)
    for step in range(args.steps):
        print(f"step {step + 1}: loss {float(train_step(images, masks).asnumpy()):.4f}")
    net.set_train(False)
    print("logits:", tuple(net(images).shape))


if __name__ == "__main__":
    main()
