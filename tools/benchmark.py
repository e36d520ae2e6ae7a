"""Measure training and inference speed per model and execution mode, each configuration in its own process.

    python tools/benchmark.py --device_target CPU --models res2net50,res2net50_v1b --modes pynative,graph \\
        --batch_size 32 --image_size 224 --json bench.json

Per configuration: Graph compile time (first step), steady-state train ms/step and img/s (median of
--steps after --warmup, momentum SGD + cross-entropy through the training script's own TrainStep),
s/epoch for --epoch_images images (extrapolated from img/s), inference ms per image at batch 1 and
ms per batch at --batch_size, peak host memory, parameters and GFLOPs (multiply-adds x 1e-9).
Prints a markdown table and writes every figure with the machine's description to --json.
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

IMAGENET_TRAIN_IMAGES = 1_281_167
MODES = {"graph": 0, "pynative": 1}


def _timed(fn, repeats: int, warmup: int):
    """(first call seconds, median seconds of ``repeats`` calls after ``warmup`` more)."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def measure(cfg: dict) -> dict:
    """One configuration, in this process (called by the worker)."""
    import mindcv_res2net  # noqa: F401  (ONEDNN_MAX_CPU_ISA before mindspore)
    import mindspore as ms
    import numpy as np

    from mindcv_res2net.engine.train_step import TrainStep
    from mindcv_res2net.loss import create_loss
    from mindcv_res2net.models import create_model
    from mindcv_res2net.optim import create_optimizer
    from mindcv_res2net.utils.device import set_device
    from mindcv_res2net.utils.flops import count_macs

    set_device(cfg["device_target"], MODES[cfg["mode"]])
    size, batch = cfg["image_size"], cfg["batch_size"]
    model = create_model(cfg["model"], num_classes=1000)
    params = sum(p.size for p in model.trainable_params())
    macs, _ = count_macs(model, (1, 3, size, size))
    ms.set_context(mode=MODES[cfg["mode"]])
    rng = np.random.default_rng(0)
    images = ms.Tensor(rng.standard_normal((batch, 3, size, size)).astype(np.float32))
    single = ms.Tensor(rng.standard_normal((1, 3, size, size)).astype(np.float32))
    labels = ms.Tensor(rng.integers(0, 1000, batch).astype(np.int32))

    model.set_train(False)
    infer_first, infer_batch = _timed(lambda: model(images).asnumpy(), cfg["steps"], cfg["warmup"])
    _, infer_one = _timed(lambda: model(single).asnumpy(), cfg["steps"], cfg["warmup"])
    optimizer = create_optimizer(model.trainable_params(), "momentum", 0.01, 1e-4)
    step = TrainStep(model, create_loss("CE", 1000), optimizer)
    step.set_train(True)
    train_first, train_step = _timed(lambda: step(images, labels)[0].asnumpy(), cfg["steps"], cfg["warmup"])
    img_per_s = batch / train_step
    return dict(cfg, params=params, gflops=macs / 1e9, infer_compile_s=infer_first, train_compile_s=train_first,
                infer_ms_per_image_b1=infer_one * 1e3, infer_ms_per_batch=infer_batch * 1e3,
                infer_img_per_s=batch / infer_batch, train_ms_per_step=train_step * 1e3, train_img_per_s=img_per_s,
                train_s_per_epoch=cfg["epoch_images"] / img_per_s,
                peak_host_memory_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def machine() -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import mindspore as ms

    return dict(cpu=cpu, cores=os.cpu_count(), mindspore=ms.__version__, python=platform.python_version(),
                onednn_max_cpu_isa=os.environ.get("ONEDNN_MAX_CPU_ISA", "(unset)"),
                date=time.strftime("%Y-%m-%d"))


def table(rows) -> str:
    lines = ["| model | mode | batch | px | params (M) | GFLOPs | compile infer / train (s) | train (ms/step) | "
             "train (img/s) | train (s/epoch)* | infer b1 (ms/img) | infer (ms/batch) | peak mem (MB) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        compile_s = f"{r['infer_compile_s']:.1f} / {r['train_compile_s']:.1f}"
        lines.append(f"| {r['model']} | {r['mode']} | {r['batch_size']} | {r['image_size']} | {r['params'] / 1e6:.2f} | "
                     f"{r['gflops']:.2f} | {compile_s} | {r['train_ms_per_step']:.0f} | "
                     f"{r['train_img_per_s']:.2f} | {r['train_s_per_epoch']:.0f} | {r['infer_ms_per_image_b1']:.1f} | "
                     f"{r['infer_ms_per_batch']:.0f} | {r['peak_host_memory_mb']:.0f} |")
    epoch_images = rows[0]["epoch_images"] if rows else IMAGENET_TRAIN_IMAGES
    lines.append(f"\n*s/epoch is extrapolated from train img/s to {epoch_images:,} images on one device.")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device_target", default="CPU")
    parser.add_argument("--models", default="res2net50", help="comma-separated registered names")
    parser.add_argument("--modes", default="pynative,graph", help="comma-separated: pynative, graph")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps after the first")
    parser.add_argument("--epoch_images", type=int, default=IMAGENET_TRAIN_IMAGES)
    parser.add_argument("--json", default="", help="write every figure here")
    parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print("BENCHMARK " + json.dumps(measure(json.loads(args.worker))), flush=True)
        return 0

    from mindcv_res2net.models.registry import resolve_name
    from mindcv_res2net.utils.device import normalize_device_target

    target = normalize_device_target(args.device_target)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for name in models:
        resolve_name(name)  # unknown: clear error with suggestions
    modes = [m.strip().lower() for m in args.modes.split(",") if m.strip()]
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"--modes takes pynative and/or graph, got '{mode}'")
    if args.steps < 1 or args.warmup < 0 or args.batch_size < 1 or args.image_size < 32:
        raise ValueError("--steps >= 1, --warmup >= 0, --batch_size >= 1 and --image_size >= 32 are required")
    rows = []
    for name in models:
        for mode in modes:
            cfg = dict(model=name, mode=mode, device_target=target, batch_size=args.batch_size,
                       image_size=args.image_size, steps=args.steps, warmup=args.warmup,
                       epoch_images=args.epoch_images)
            print(f"measuring {name} in {mode} mode ...", file=sys.stderr, flush=True)
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(cfg)],
                                  capture_output=True, text=True)
            found = [line for line in proc.stdout.splitlines() if line.startswith("BENCHMARK ")]
            if proc.returncode != 0 or not found:
                tail = " ".join(proc.stderr.strip().splitlines()[-1:])
                raise RuntimeError(f"measuring {name} in {mode} mode failed: {tail}")
            rows.append(json.loads(found[0][len("BENCHMARK "):]))
    print(table(rows))
    if args.json:
        from mindcv_res2net.utils.checkpoint import atomic_path

        with atomic_path(args.json) as tmp, open(tmp, "w") as f:
            json.dump(dict(machine=machine(), results=rows), f, indent=1)
    return 0


if __name__ == "__main__":
    from mindcv_res2net.utils.cli import run_cli

    run_cli(main)
