"""Convert published or trained Res2Net weights into a MindSpore checkpoint, without PyTorch.

    python tools/convert_weights.py res2net50_26w_4s-06e79181.pth res2net50.ckpt --model res2net50
    python tools/convert_weights.py res2net50.safetensors r50.safetensors --model res2net50

SRC: official PyTorch .pth (zip or legacy torch.save format), .safetensors (timm hub), .npz with
PyTorch names, or a MindSpore .ckpt (this package's or mindcv's names). DST: .ckpt, or
.safetensors by suffix or --format. A training checkpoint of train.py is stripped to its network
weights (EMA averages when present) with its class names and config, about a third of its size:

    python tools/convert_weights.py runs/res2net50-digits-20261206-230257/res2net50-best.ckpt digits.ckpt --model res2net50
 The mapping is strict: nothing is written unless every
parameter of the model is filled with the right shape and no tensor of SRC is left unused. DST is
checked before anything is read: never SRC itself (also through a link or a hard link), a folder or a
read-only file; a link's target is replaced, /dev/stdout or a named pipe receives the complete file.
"""

import sys

from mindcv_res2net.utils.cli import run_cli
from mindcv_res2net.deploy.convert import convert_weights
from mindcv_res2net.utils.device import set_device
from mindcv_res2net.utils.fileio import is_stdout


def main(argv=None) -> int:
    from mindcv_res2net.utils.argtypes import HelpFormatter, ToolParser

    parser = ToolParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("src", help="weight file to read")
    parser.add_argument("dst", help="MindSpore .ckpt or .safetensors file to write")
    parser.add_argument("--model", required=True, help="registered model name or alias, e.g. res2net50")
    parser.add_argument("--num_classes", type=int, default=None,
                        help="classes of the written head (default: the file's); another count drops the file's "
                             "classifier for a new one (0: a head-less backbone)")
    parser.add_argument("--format", choices=("ckpt", "safetensors"), default=None,
                        help="output format (default: from DST's suffix, else ckpt)")
    args = parser.parse_args(argv)
    set_device("CPU")
    dst = convert_weights(args.src, args.dst, args.model, num_classes=args.num_classes, fmt=args.format)
    print(f"wrote {dst} for {args.model}", file=sys.stderr if is_stdout(dst) else sys.stdout)
    return 0


def cli() -> None:
    """Console script ``res2net-convert``."""
    run_cli(main)


if __name__ == "__main__":
    cli()
