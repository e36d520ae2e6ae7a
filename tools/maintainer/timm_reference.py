"""Reference speed of timm's Res2Net (PyTorch, eager) with tools/benchmark.py's shapes and method.

PyTorch never enters mindcv_res2net or its tests: run this only inside a throwaway venv, e.g.

    python3 -m venv /tmp/timm-venv && /tmp/timm-venv/bin/pip install torch==2.14.1 timm==1.0.31
    /tmp/timm-venv/bin/python tools/maintainer/timm_reference.py --models res2net50 --batch_size 32 --image_size 224

Names map to timm's: res2net50 -> res2net50_26w_4s, res2net101 -> res2net101_26w_4s, and the v1b
nets (deep stem, avg-down) -> res2net50d / res2net101d. Per model: inference ms per image at batch 1,
ms per batch, train ms/step with momentum SGD + cross-entropy (median of --steps after --warmup),
peak host memory; printed as one JSON line per model and written to --json.
"""
import argparse
import json
import platform
import statistics
import time

TIMM_NAMES = {"res2net50": "res2net50_26w_4s", "res2net101": "res2net101_26w_4s", "res2net152": "res2net152_26w_4s",
              "res2net50_26w_6s": "res2net50_26w_6s", "res2net50_26w_8s": "res2net50_26w_8s",
              "res2net50_48w_2s": "res2net50_48w_2s", "res2net50_14w_8s": "res2net50_14w_8s",
              "res2next50": "res2next50", "res2net50_v1b": "res2net50d", "res2net101_v1b": "res2net101d"}


def peak_memory_mb() -> float:
    """Peak resident memory (MB) of this process, VmHWM (``ru_maxrss`` would include its parent's size)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:"))


def median_seconds(fn, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(name: str, batch: int, size: int, steps: int, warmup: int) -> dict:
    import timm
    import torch

    torch.manual_seed(0)
    model = timm.create_model(TIMM_NAMES[name], num_classes=1000)
    images, single = torch.randn(batch, 3, size, size), torch.randn(1, 3, size, size)
    labels = torch.randint(0, 1000, (batch,))
    model.eval()
    with torch.no_grad():
        infer_batch = median_seconds(lambda: model(images), steps, warmup + 1)
        infer_one = median_seconds(lambda: model(single), steps, warmup + 1)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    train = median_seconds(train_step, steps, warmup + 1)
    return dict(impl=f"timm {timm.__version__} (PyTorch {torch.__version__}, eager)", model=name,
                timm_model=TIMM_NAMES[name], batch_size=batch, image_size=size, threads=torch.get_num_threads(),
                params=sum(p.numel() for p in model.parameters()), infer_ms_per_image_b1=infer_one * 1e3,
                infer_ms_per_batch=infer_batch * 1e3, infer_img_per_s=batch / infer_batch,
                train_ms_per_step=train * 1e3, train_img_per_s=batch / train,
                peak_host_memory_mb=peak_memory_mb(),
                python=platform.python_version(), date=time.strftime("%Y-%m-%d"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="res2net50")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in TIMM_NAMES]
    if unknown:
        parser.error(f"--models: no timm counterpart for {', '.join(unknown)} (known: {', '.join(TIMM_NAMES)})")
    rows = [measure(name, args.batch_size, args.image_size, args.steps, args.warmup) for name in names]
    for row in rows:
        print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
