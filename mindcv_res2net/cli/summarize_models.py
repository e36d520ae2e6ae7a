"""Build registered models and print name, parameters, GFLOPs (multiply-adds x 1e-9) and output shape.

    python tools/summarize_models.py                       # every registered model at 224 px
    python tools/summarize_models.py --models res2net50 --image_size 64
"""
import time

from mindcv_res2net.models import create_model, list_models
from mindcv_res2net.models.registry import resolve_name
from mindcv_res2net.utils.cli import run_cli
from mindcv_res2net.utils.device import set_device
from mindcv_res2net.utils.flops import count_macs


def main(argv=None) -> int:
    from mindcv_res2net.utils.argtypes import HelpFormatter, OneLineParser, image_size, positive_int

    parser = OneLineParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--models", default="*", help="comma-separated names or shell patterns (default: all)")
    parser.add_argument("--image_size", type=image_size, default=224, help="square input size in pixels")
    parser.add_argument("--num_classes", type=positive_int, default=1000)
    args = parser.parse_args(argv)
    names = []
    for pattern in args.models.split(","):
        matched = list_models(pattern.strip()) or [resolve_name(pattern.strip())]  # unknown: clear error
        names += [n for n in matched if n not in names]
    set_device("CPU")
    print(f"{'model':<28} {'params':>12} {'GFLOPs':>8} {'output':>14} {'build s':>8}")
    for name in names:
        start = time.perf_counter()
        model = create_model(name, num_classes=args.num_classes)
        build_s = time.perf_counter() - start
        params = sum(p.size for p in model.trainable_params())
        macs, shape = count_macs(model, (1, 3, args.image_size, args.image_size))
        print(f"{name:<28} {params:>12,} {macs / 1e9:>8.2f} {str(shape):>14} {build_s:>8.1f}", flush=True)
    return 0


def cli() -> None:
    """Console script ``res2net-summarize``."""
    run_cli(main)


if __name__ == "__main__":
    cli()
