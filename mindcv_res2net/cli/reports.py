"""The programs that report what a model or a run is: ``summarize_models`` (every model's parameters, GFLOPs
and output shape) and ``plot_metrics`` (a training run's curves)."""
import os
import sys
import time
import warnings

from tqdm import tqdm

from mindcv_res2net.models import create_model, list_models
from mindcv_res2net.models.registry import resolve_name
from mindcv_res2net.utils.cli import run_cli
from mindcv_res2net.utils.device import set_device
from mindcv_res2net.utils.errors import UserError
from mindcv_res2net.utils.fileio import atomic_path, check_output, is_stdout
from mindcv_res2net.utils.flops import count_macs
from mindcv_res2net.utils.logger import metrics_epoch, read_metrics

SUMMARIZE_HELP = """Build registered models and print name, parameters, GFLOPs (multiply-adds x 1e-9) and output shape.

    python tools/summarize_models.py                       # every registered model at 224 px
    python tools/summarize_models.py --models res2net50 --image_size 64
"""

PLOT_HELP = """Plot a training run's loss and top-1 per epoch (train and validation) into a PNG.

    python tools/plot_metrics.py RUN_DIR [--out RUN_DIR/metrics.png] [--title TEXT]

RUN_DIR is a train.py --ckpt_save_dir holding metrics.csv (one row per epoch), or that metrics.csv itself. Validation curves
appear when the run validated (--val_while_train). Needs matplotlib (pip install -e ".[plot]").
"""


def summarize_main(argv=None) -> int:
    from mindcv_res2net.utils.argtypes import HelpFormatter, OneLineParser, image_size, positive_int

    parser = OneLineParser(description=SUMMARIZE_HELP, formatter_class=HelpFormatter)
    parser.add_argument("--models", default="*", help="comma-separated names or shell patterns (default: all)")
    parser.add_argument("--image_size", type=image_size, default=224, help="square input size in pixels")
    parser.add_argument("--num_classes", type=positive_int, default=1000)
    args = parser.parse_args(argv)
    names = []
    for pattern in args.models.split(","):
        matched = list_models(pattern.strip()) or [resolve_name(pattern.strip())]  # unknown: clear error
        names += [n for n in matched if n not in names]
    set_device("CPU")
    print(f"{'model':<28} {'params':>12} {'GFLOPs':>8} {'output':>14} {'build s':>8}", flush=True)
    with tqdm(total=len(names), desc="building", unit="model", file=sys.stderr, disable=len(names) < 2,
              leave=False) as progress:  # the rows may go to a file: the bar on stderr says which model is built
        for name in names:
            progress.set_postfix_str(name)
            start = time.perf_counter()
            model = create_model(name, num_classes=args.num_classes)
            build_s = time.perf_counter() - start
            params = sum(p.size for p in model.trainable_params())
            macs, shape = count_macs(model, (1, 3, args.image_size, args.image_size))
            progress.write(f"{name:<28} {params:>12,} {macs / 1e9:>8.2f} {str(shape):>14} {build_s:>8.1f}",
                           file=sys.stdout)
            sys.stdout.flush()
            progress.update()
    return 0


def summarize_cli() -> None:
    """Console script ``res2net-summarize``."""
    run_cli(summarize_main)


SERIES = ("train_loss", "val_loss", "train_top1", "val_top1")


def metric_series(path: str) -> dict:
    """``{"epoch": [...], "train_loss": [...], ...}`` of a run's metrics.csv, read as the training run reads it
    (``utils.logger.read_metrics``: a spreadsheet's BOM, CRLF, quotes, other columns); a missing value (no
    validation that epoch) is None. Rows that are not complete (cut short by a kill) are left out with a
    warning; a file without a complete row, or that is not a metrics.csv, is a ``UserError``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: file not found (give a train.py --ckpt_save_dir holding metrics.csv, or "
                                "that metrics.csv)")
    fields, rows, problem = read_metrics(path)
    if fields is None:
        raise UserError(f"{path}: not a metrics.csv of train.py ({problem})")
    if not rows:
        raise UserError(f"{path}: no epochs recorded yet" + (f" ({problem})" if problem else ""))
    if problem:
        warnings.warn(f"{path}: {problem}; plotting its {len(rows)} complete rows")
    data = {key: [] for key in ("epoch",) + SERIES}
    for row in rows:
        epoch = metrics_epoch(row)
        data["epoch"].append(epoch)
        for key in SERIES:
            text = row[key].strip()
            try:
                data[key].append(float(text) if text else None)
            except ValueError:
                raise UserError(f"{path}, epoch {epoch}: {key} is not a number: '{text}'") from None
    return data


def plot_metrics(run_dir: str, out: str = "", title: str = "") -> str:
    """Write the PNG (default ``RUN_DIR/metrics.png``, via a temporary file); returns its path. ``run_dir``
    may also be the run's metrics.csv (any file: read as one). The metrics and ``out`` are checked before
    matplotlib is imported (a missing matplotlib is one line saying what to install)."""
    if os.path.isfile(run_dir) or run_dir.endswith(".csv"):
        run_dir, metrics_path = os.path.dirname(os.path.abspath(run_dir)), run_dir
    else:
        metrics_path = os.path.join(run_dir, "metrics.csv")
    data = metric_series(metrics_path)
    out = out or os.path.join(run_dir, "metrics.png")
    check_output(out, "--out", inputs=(metrics_path,))
    try:
        import matplotlib
    except ImportError:
        raise UserError('plot_metrics needs the matplotlib package: pip install matplotlib (or, in a clone, '
                        'pip install -e ".[plot]")') from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (loss_ax, top1_ax) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, (train_key, val_key), label in ((loss_ax, SERIES[:2], "loss"), (top1_ax, SERIES[2:], "top-1 (%)")):
        for key, style in ((train_key, "o-"), (val_key, "s--")):
            points = [(e, v) for e, v in zip(data["epoch"], data[key]) if v is not None]
            if points:
                ax.plot(*zip(*points), style, label=key.replace("_", " ").replace("top1", "top-1"))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title or os.path.basename(os.path.abspath(run_dir)))
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return out


def plot_main(argv=None) -> int:
    from mindcv_res2net.utils.argtypes import HelpFormatter, ToolParser

    parser = ToolParser(description=PLOT_HELP, formatter_class=HelpFormatter)
    parser.add_argument("run_dir", help="a train.py --ckpt_save_dir, or its metrics.csv")
    parser.add_argument("--out", default="", help="PNG path (default RUN_DIR/metrics.png)")
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    out = plot_metrics(args.run_dir, args.out, args.title)
    print(f"wrote {out}", file=sys.stderr if is_stdout(out) else sys.stdout)
    return 0


def plot_cli() -> None:
    """Console script ``res2net-plot``."""
    run_cli(plot_main)

