"""Measure training and inference speed per model and execution mode, each configuration in its own process.

    python tools/benchmark.py --device_target CPU --models res2net50,res2net50_v1b --modes pynative,graph \\
        --batch_size 32 --image_size 224 --compare mindcv --fuse_bn --rounds 2 --json bench.json

Per configuration: Graph compile time (first step), steady-state train ms/step and img/s (median of
--steps after --warmup, momentum SGD + cross-entropy through the training script's own TrainStep),
s/epoch for --epoch_images images (extrapolated from img/s), inference ms per image at batch 1 and
ms per batch at --batch_size, peak host memory, parameters and GFLOPs (multiply-adds x 1e-9).

--grad_checkpointing adds a row per model and mode: our train step with every block recomputed in the
backward pass (``model.set_grad_checkpointing()``), to compare its peak memory and time with the plain
row. "train peak mem" is the process's peak resident memory during the train steps alone (Linux: the
peak counter is reset after the inference measurements); "peak mem" covers the whole run.

--compare mindcv also measures mindcv's res2net of the same name (num_classes=1000, mindcv's own loss,
optimizer and train step) in the same environment (ONEDNN_MAX_CPU_ISA included) and adds a table of
ratios; names mindcv lacks are skipped with a note. --fuse_bn adds our inference with BatchNorm folded
into the convolutions as its own row. --rounds N repeats every configuration N times, interleaved, and
reports medians, which evens out a noisy machine. Prints markdown tables and writes every figure with
the machine's description to --json. Runs slower than a few seconds show progress bars on stderr.

--data_only measures the training input pipeline alone, as steady-state img/s after its first batch
(--data_batches batches), on an image folder DATA_DIR/train/<class>/<image> with train.py's ImageNet
training transforms (RandomResizedCrop, flip, normalise) and --num_parallel_workers workers:

    python tools/benchmark.py --data_only --dataset imagefolder --data_dir DIR --batch_size 32 \
        --image_size 224 --num_parallel_workers 2 --compare mindcv --rounds 3 --json data.json

Without --models it builds no network; with --models it also measures their train step at the same
batch (--modes) and says whether data or compute bounds training. --compare mindcv adds mindcv 0.3's
pipeline (create_dataset + create_transforms + create_loader, the same workers) on the same folder.
tools/make_photo_folder.py makes such a folder of real photographs offline.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

IMAGENET_TRAIN_IMAGES = 1_281_167
MODES = {"graph": 0, "pynative": 1}
OURS, MINDCV = "mindcv_res2net", "mindcv"
CHECKPOINTED = OURS + " (grad checkpointing)"
ENGINES = ("mindspore", "onnxruntime", "onnxruntime_int8")


def _timed(fn, repeats: int, warmup: int, progress):
    """(first call seconds, median seconds of ``repeats`` calls after ``warmup`` more)."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    progress.update()
    for _ in range(warmup):
        fn()
        progress.update()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        progress.update()
    return first, statistics.median(times)


def _build(cfg: dict):
    """(model, train step) of the configuration's implementation, SGD momentum 0.9, lr 0.01, wd 1e-4."""
    if cfg["impl"] == MINDCV:
        # mindcv's model, loss and optimizer; with a fixed loss scale of 1 and no EMA, clipping or
        # accumulation, mindcv's create_trainer hands them to mindspore.Model, which trains with TrainOneStepCell.
        import mindcv
        from mindcv.loss import create_loss as mindcv_loss
        from mindcv.optim import create_optimizer as mindcv_optimizer
        from mindspore import nn

        model = mindcv.create_model(cfg["model"], num_classes=1000)
        optimizer = mindcv_optimizer(model.trainable_params(), "momentum", 0.01, 1e-4)
        return model, lambda: nn.TrainOneStepCell(nn.WithLossCell(model, mindcv_loss("CE")), optimizer)
    from mindcv_res2net.engine.train_step import TrainStep
    from mindcv_res2net.loss import create_loss
    from mindcv_res2net.models import create_model
    from mindcv_res2net.optim import create_optimizer

    model = create_model(cfg["model"], num_classes=1000)
    if cfg["impl"] == CHECKPOINTED:
        model.set_grad_checkpointing()
    optimizer = create_optimizer(model.trainable_params(), "momentum", 0.01, 1e-4)
    return model, lambda: TrainStep(model, create_loss("CE", 1000), optimizer)


def _reset_peak_memory() -> bool:
    """Restart the kernel's peak resident-memory count (VmHWM) from the current size; False where it
    cannot (not Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_memory_mb() -> float:
    """Peak resident memory (MB) since the process started or ``_reset_peak_memory``, VmHWM of /proc/self/status.

    Unlike ``ru_maxrss``, it does not include the size of the process that started this one."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:"))


def measure(cfg: dict) -> list:
    """Rows of one configuration, measured in this process (called by the worker).

    With ``fuse_bn`` (our implementation only) a second row gives inference with every BatchNorm
    folded into its convolution (``mindcv_res2net.models.fuse``), measured after training.
    """
    import mindspore as ms
    import numpy as np
    from tqdm import tqdm

    from mindcv_res2net.models.fuse import fuse_batchnorm
    from mindcv_res2net.utils.device import set_device
    from mindcv_res2net.utils.flops import count_macs

    set_device(cfg["device_target"], MODES[cfg["mode"]])
    if cfg.get("data_only"):
        return measure_data(cfg)
    if cfg.get("engine", "").startswith("onnxruntime"):
        return measure_onnxruntime(cfg)
    size, batch, steps, warmup = cfg["image_size"], cfg["batch_size"], cfg["steps"], cfg["warmup"]
    model, make_train_step = _build(cfg)
    params = sum(p.size for p in model.trainable_params())
    macs, _ = count_macs(model, (1, 3, size, size))
    ms.set_context(mode=MODES[cfg["mode"]])
    rng = np.random.default_rng(0)
    images = ms.Tensor(rng.standard_normal((batch, 3, size, size)).astype(np.float32))
    single = ms.Tensor(rng.standard_normal((1, 3, size, size)).astype(np.float32))
    labels = ms.Tensor(rng.integers(0, 1000, batch).astype(np.int32))
    phases = 5 if cfg["fuse_bn"] else 3
    label = f"{cfg['impl']} {cfg['model']} {cfg['mode']}"
    with tqdm(total=phases * (1 + warmup + steps), desc=label, unit="step", file=sys.stderr, delay=5,
              leave=False, dynamic_ncols=True) as progress:
        model.set_train(False)
        infer_first, infer_batch = _timed(lambda: model(images).asnumpy(), steps, warmup, progress)
        _, infer_one = _timed(lambda: model(single).asnumpy(), steps, warmup, progress)
        step = make_train_step()
        step.set_train(True)
        peak_before_train = _peak_memory_mb()
        counted = _reset_peak_memory()
        train_first, train_step = _timed(lambda: _first(step(images, labels)).asnumpy(), steps, warmup, progress)
        train_peak = _peak_memory_mb() if counted else None
        img_per_s = batch / train_step
        row = dict(cfg, params=params, gflops=macs / 1e9, infer_compile_s=infer_first, train_compile_s=train_first,
                   infer_ms_per_image_b1=infer_one * 1e3, infer_ms_per_batch=infer_batch * 1e3,
                   infer_img_per_s=batch / infer_batch, train_ms_per_step=train_step * 1e3,
                   train_img_per_s=img_per_s, train_s_per_epoch=cfg["epoch_images"] / img_per_s,
                   train_peak_memory_mb=train_peak)
        row.update(engine="mindspore", precision="fp32")
        rows = [row]
        if cfg["fuse_bn"]:
            fused = fuse_batchnorm(model)  # a new graph: the folded weights are constants of a new compile
            fused_batch = _timed(lambda: fused(images).asnumpy(), steps, warmup, progress)[1]
            fused_one = _timed(lambda: fused(single).asnumpy(), steps, warmup, progress)[1]
            rows.append(_inference_row(cfg, cfg["impl"] + " (BN folded)", "mindspore", "fp32", params, macs,
                                       fused_batch, fused_one, compile_s=None))
    peak = max(peak_before_train, _peak_memory_mb())
    for r in rows:
        r["peak_host_memory_mb"] = peak
    return rows


def measure_onnxruntime(cfg: dict) -> list:
    """One row: ONNX Runtime inference (batch and batch 1) of our model, exported here with BatchNorm folded."""
    import tempfile

    import numpy as np
    from tqdm import tqdm

    from mindcv_res2net.engine.export import export_network
    from mindcv_res2net.engine.onnx_runtime import OnnxClassifier, import_onnxruntime
    from mindcv_res2net.models import create_model
    from mindcv_res2net.utils.flops import count_macs

    import_onnxruntime()
    size, batch, steps, warmup = cfg["image_size"], cfg["batch_size"], cfg["steps"], cfg["warmup"]
    model = create_model(cfg["model"], num_classes=1000)
    params = sum(p.size for p in model.trainable_params())
    macs, _ = count_macs(model, (1, 3, size, size))
    rng = np.random.default_rng(0)
    images = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
    int8 = cfg["engine"] == "onnxruntime_int8"
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as folder:
        path = export_network(model, os.path.join(folder, cfg["model"]), "ONNX", batch_size=-1, image_size=size,
                              fuse_bn=True)
        if int8:  # speed only: calibrated on 4 random batches (accuracy: validate.py on a trained checkpoint)
            from mindcv_res2net.engine.quantize import quantize_int8

            int8_path = os.path.join(folder, "int8.onnx")
            quantize_int8(path, int8_path,
                          [rng.standard_normal((8, 3, size, size)).astype(np.float32) for _ in range(4)])
            path = int8_path
        start = time.perf_counter()
        classifier = OnnxClassifier(path)
        load_s = time.perf_counter() - start
        with tqdm(total=2 * (1 + warmup + steps), desc=f"onnxruntime {cfg['model']}", unit="step", file=sys.stderr,
                  delay=5, leave=False, dynamic_ncols=True) as progress:
            first_batch, infer_batch = _timed(lambda: classifier.run(images), steps, warmup, progress)
            _, infer_one = _timed(lambda: classifier.run(images[:1]), steps, warmup, progress)
    label = "onnxruntime INT8" if int8 else "onnxruntime, BN folded"
    row = _inference_row(dict(cfg, mode="—"), f"{OURS} ({label})", "onnxruntime", "int8" if int8 else "fp32", params,
                         macs, infer_batch, infer_one, compile_s=load_s + first_batch)
    return [dict(row, peak_host_memory_mb=_peak_memory_mb())]


def _inference_row(cfg: dict, impl: str, engine: str, precision: str, params: int, macs: float, batch_s: float,
                   one_s: float, compile_s) -> dict:
    """A row with inference figures only: ``batch_s`` seconds per batch of ``cfg["batch_size"]``, ``one_s`` per
    single image, ``compile_s`` the first call (None: not measured); the training columns stay empty."""
    return dict(cfg, impl=impl, engine=engine, precision=precision, params=params, gflops=macs / 1e9,
                infer_compile_s=compile_s, train_compile_s=None, infer_ms_per_image_b1=one_s * 1e3,
                infer_ms_per_batch=batch_s * 1e3, infer_img_per_s=cfg["batch_size"] / batch_s, train_ms_per_step=None,
                train_img_per_s=None, train_s_per_epoch=None, train_peak_memory_mb=None)


def _data_pipeline(cfg: dict):
    """The training input pipeline of ``cfg["impl"]`` on ``cfg["data_dir"]``: an iterator of image batches."""
    if cfg["impl"] == MINDCV:  # mindcv 0.3: create_dataset + create_transforms + create_loader, as its train.py
        from mindcv.data import create_dataset, create_loader, create_transforms

        dataset = create_dataset(name="imagenet", root=cfg["data_dir"], split="train", shuffle=True,
                                 num_parallel_workers=cfg["num_parallel_workers"])
        transforms = create_transforms(dataset_name="imagenet", image_resize=cfg["image_size"], is_training=True)
        loader = create_loader(dataset, cfg["batch_size"], drop_remainder=True, is_training=True,
                               transform=transforms, num_parallel_workers=cfg["num_parallel_workers"])
        return loader.create_tuple_iterator(num_epochs=1, do_copy=False)  # as its Model.train iterates
    from mindcv_res2net.data import DataConfig, create_loader
    from mindcv_res2net.data.loader import iterate_batches
    from mindcv_res2net.models import get_pretrained_cfg

    data = DataConfig(dataset=cfg["dataset"], data_dir=cfg["data_dir"], batch_size=cfg["batch_size"],
                      image_resize=cfg["image_size"], num_parallel_workers=cfg["num_parallel_workers"],
                      normalize_on_device=not cfg.get("host_normalize", False))
    start = time.perf_counter()
    loader = create_loader(data, data.train_split, True, get_pretrained_cfg("res2net50"))
    cfg["setup_s"] = time.perf_counter() - start  # listing the folder and the pre-scan of every file
    return iterate_batches(loader.for_epoch(0))


def measure_data(cfg: dict) -> list:
    """One row: steady-state img/s of the training input pipeline alone, after its first batch (no network)."""
    from tqdm import tqdm

    batches = cfg["data_batches"]
    iterator = _data_pipeline(cfg)
    start = time.perf_counter()
    first = next(iterator)
    first_s = time.perf_counter() - start
    images = 0
    with tqdm(total=batches, desc=f"{cfg['impl']} data", unit="batch", file=sys.stderr, delay=5, leave=False) as bar:
        start = time.perf_counter()
        for batch in iterator:
            images += batch[0].shape[0]
            bar.update()
            if bar.n >= batches:
                break
        seconds = time.perf_counter() - start
    if images == 0:
        raise ValueError(f"{cfg['data_dir']}/train holds too few images for more than one batch of {cfg['batch_size']}")
    peak = _peak_memory_mb()  # MindSpore's workers are threads
    return [dict(cfg, first_batch_s=first_s, batches_timed=bar.n, data_img_s=images / seconds,
                 batch_dtype=str(first[0].dtype), batch_shape=list(first[0].shape), peak_host_memory_mb=peak)]


def _first(output):
    """The loss of a train step's output (ours returns (loss, logits), mindcv's the loss alone)."""
    return output[0] if isinstance(output, tuple) else output


def machine() -> dict:
    cpu, flags = platform.processor(), ""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        cpu = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name"))
        flags = next(line for line in info.splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        pass
    import mindspore as ms

    from importlib.metadata import PackageNotFoundError, version

    def installed(package: str):
        try:
            return version(package)
        except PackageNotFoundError:
            return None
    names = set(flags.split(":", 1)[-1].split())
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16",
                       "amx_int8") if f in names]
    return dict(cpu=cpu, cores=os.cpu_count(), avx512="avx512f" in names, isa=isa, mindspore=ms.__version__,
                mindcv=installed("mindcv"), onnxruntime=installed("onnxruntime"), onnx=installed("onnx"),
                python=platform.python_version(),
                onednn_max_cpu_isa=os.environ.get("ONEDNN_MAX_CPU_ISA", "(unset)"), date=time.strftime("%Y-%m-%d"))


def _fmt(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def table(rows) -> str:
    """Every row: implementation, model, mode and all figures."""
    lines = ["| implementation | model | mode | batch | px | params (M) | GFLOPs | compile infer / train (s) | "
             "train (ms/step) | train (img/s) | train (s/epoch)* | infer b1 (ms/img) | infer (ms/batch) | "
             "train peak mem (MB) | peak mem (MB) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        compile_s = f"{_fmt(r['infer_compile_s'], '.1f')} / {_fmt(r['train_compile_s'], '.1f')}"
        lines.append(f"| {r['impl']} | {r['model']} | {r['mode']} | {r['batch_size']} | {r['image_size']} | "
                     f"{r['params'] / 1e6:.2f} | {r['gflops']:.2f} | {compile_s} | "
                     f"{_fmt(r['train_ms_per_step'], '.0f')} | {_fmt(r['train_img_per_s'], '.2f')} | "
                     f"{_fmt(r['train_s_per_epoch'], '.0f')} | {r['infer_ms_per_image_b1']:.1f} | "
                     f"{r['infer_ms_per_batch']:.0f} | {_fmt(r.get('train_peak_memory_mb'), '.0f')} | "
                     f"{r['peak_host_memory_mb']:.0f} |")
    epoch_images = rows[0]["epoch_images"] if rows else IMAGENET_TRAIN_IMAGES
    lines.append(f"\n*s/epoch is extrapolated from train img/s to {epoch_images:,} images on one device.")
    return "\n".join(lines)


def checkpointing_lines(rows) -> str:
    """Per model and mode: the train step's peak memory and time with gradient checkpointing against without."""
    by_key = {(r["impl"], r["model"], r["mode"], r["batch_size"]): r for r in rows}
    lines = []
    for (impl, model, mode, batch), on in by_key.items():
        off = by_key.get((OURS, model, mode, batch))
        if impl != CHECKPOINTED or off is None or None in (on["train_peak_memory_mb"], off["train_peak_memory_mb"]):
            continue
        lines.append(f"{model} {mode}, batch {on['batch_size']} at {on['image_size']} px: gradient checkpointing "
                     f"{on['train_peak_memory_mb']:.0f} MB train peak vs {off['train_peak_memory_mb']:.0f} MB "
                     f"({on['train_peak_memory_mb'] / off['train_peak_memory_mb']:.2f}x), "
                     f"{on['train_ms_per_step']:.0f} vs {off['train_ms_per_step']:.0f} ms/step "
                     f"({on['train_ms_per_step'] / off['train_ms_per_step']:.2f}x)")
    return "\n".join(lines)


def ratio_table(rows) -> str:
    """Ours relative to mindcv per model and mode: speed-ups (> 1 is faster) and time/memory ratios (< 1 is less)."""
    by_key = {(r["impl"], r["model"], r["mode"], r["batch_size"]): r for r in rows}
    lines = ["| model | mode | batch | train speed-up | infer speed-up (batch) | infer speed-up (b1) | "
             "infer speed-up, BN folded (batch / b1) | compile time ratio infer / train | peak memory ratio |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (impl, model, mode, batch), theirs in by_key.items():
        ours = by_key.get((OURS, model, mode, batch))
        if impl != MINDCV or ours is None:
            continue
        fused = by_key.get((OURS + " (BN folded)", model, mode, batch))
        fused_text = "—" if fused is None else (
            f"{fused['infer_img_per_s'] / theirs['infer_img_per_s']:.2f}x / "
            f"{theirs['infer_ms_per_image_b1'] / fused['infer_ms_per_image_b1']:.2f}x")
        lines.append(
            f"| {model} | {mode} | {batch} | {ours['train_img_per_s'] / theirs['train_img_per_s']:.2f}x | "
            f"{ours['infer_img_per_s'] / theirs['infer_img_per_s']:.2f}x | "
            f"{theirs['infer_ms_per_image_b1'] / ours['infer_ms_per_image_b1']:.2f}x | {fused_text} | "
            f"{ours['infer_compile_s'] / theirs['infer_compile_s']:.2f} / "
            f"{ours['train_compile_s'] / theirs['train_compile_s']:.2f} | "
            f"{ours['peak_host_memory_mb'] / theirs['peak_host_memory_mb']:.2f} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def engine_ratio_table(rows) -> str:
    """Inference speed of every row against MindSpore Graph (BatchNorm folded where measured) of the same model
    and batch size, as the README's CPU-deployment table shows it; empty without such a baseline."""
    lines = ["| model | batch | implementation | engine | precision | infer (img/s) | infer b1 (ms) | "
             "vs MindSpore Graph |", "|---|---|---|---|---|---|---|---|"]
    graph = {(r["model"], r["batch_size"], r["impl"]): r for r in rows
             if r["engine"] == "mindspore" and r["mode"] == "graph"}
    for r in rows:
        base = graph.get((r["model"], r["batch_size"], OURS + " (BN folded)")) or \
            graph.get((r["model"], r["batch_size"], OURS))
        if base is None or not r.get("infer_img_per_s"):
            continue
        folded = ", BN folded" if base["impl"] != OURS else ""
        lines.append(f"| {r['model']} | {r['batch_size']} | {r['impl']} | {r['engine']} | {r['precision']} | "
                     f"{r['infer_img_per_s']:.1f} | {r['infer_ms_per_image_b1']:.1f} | "
                     f"{r['infer_img_per_s'] / base['infer_img_per_s']:.2f}x{folded} |")
    return "\n".join(lines) if len(lines) > 3 else ""


def batch_sizes(text: str) -> tuple:
    """``--batch_size``: one batch size or a comma-separated list of them (each measured in turn)."""
    try:
        sizes = tuple(int(n) for n in str(text).split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes integers separated by commas, got '{text}'") from None
    if min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be at least 1, got '{text}'")
    return sizes


def combine(runs) -> dict:
    """Median of every figure over repeated rounds of one configuration (rounds interleave configurations)."""
    combined = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, float):
            combined[key] = statistics.median(r[key] for r in runs)
    combined["rounds"] = len(runs)
    return combined


def _mindcv_models() -> set:
    import importlib.util

    if importlib.util.find_spec("mindcv") is None:
        raise ValueError("--compare mindcv needs mindcv installed beside MindSpore: pip install mindcv==0.3.0")
    import mindcv

    return set(mindcv.list_models("res2net*"))


def plan(models, modes, args, mindcv_models=None, engines=("mindspore",)) -> list:
    """Configurations to measure. MindSpore: ours for every model and mode, mindcv's where ``mindcv_models``
    has the name. ONNX Runtime engines: ours once per model, on the CPU."""
    impls = {OURS: set(models)}
    if mindcv_models is not None:
        impls[MINDCV] = {name for name in models if name in mindcv_models}
        for name in models:
            if name not in mindcv_models:
                print(f"note: mindcv has no {name}; measuring ours only", file=sys.stderr)
    sizes = args.batch_size if isinstance(args.batch_size, tuple) else (args.batch_size,)
    common = dict(image_size=args.image_size, steps=args.steps, warmup=args.warmup, epoch_images=args.epoch_images)
    if getattr(args, "grad_checkpointing", False):
        impls[CHECKPOINTED] = set(models)
    configs = [dict(common, batch_size=batch, impl=impl, model=name, mode=mode, device_target=args.device_target,
                    fuse_bn=args.fuse_bn and impl == OURS)
               for batch in sizes for name in models for mode in modes for impl, names in impls.items()
               if name in names] if "mindspore" in engines else []
    return configs + [dict(common, batch_size=batch, impl=OURS, engine=engine, model=name, mode="graph",
                           device_target="CPU", fuse_bn=True)
                      for batch in sizes for engine in engines if engine.startswith("onnxruntime") for name in models]


def _check_data_args(args) -> None:
    """--data_only's folder and numbers, checked before any worker starts."""
    if args.dataset not in ("imagefolder", "imagenet"):
        raise ValueError(f"--data_only measures image folders: --dataset imagefolder or imagenet, got '{args.dataset}'")
    if not args.data_dir:
        raise ValueError("--data_only needs --data_dir DIR holding train/<class>/<image> (tools/make_photo_folder.py "
                         "makes one)")
    if not os.path.isdir(os.path.join(args.data_dir, "train")):
        raise ValueError(f"--data_dir {args.data_dir}: no train/ folder (expected train/<class>/<image>)")
    try:
        args.num_parallel_workers = [int(n) for n in str(args.num_parallel_workers).split(",")]
    except ValueError:
        raise ValueError(f"--num_parallel_workers takes integers separated by commas, got "
                         f"'{args.num_parallel_workers}'") from None
    if min(args.num_parallel_workers) < 1 or args.data_batches < 1:
        raise ValueError("--num_parallel_workers and --data_batches must be at least 1")


def run_worker(cfg: dict) -> list:
    """Measure one configuration in a fresh process; its progress bar (slow runs) goes to our stderr."""
    env = dict(os.environ, GLOG_v=os.environ.get("GLOG_v", "3"))  # MindSpore: errors only on stderr
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (package_root, env.get("PYTHONPATH"))))  # a clone without pip
    proc = subprocess.run([sys.executable, "-m", "mindcv_res2net.cli.benchmark", "--worker", json.dumps(cfg)],
                          stdout=subprocess.PIPE, text=True, env=env)
    found = [line for line in proc.stdout.splitlines() if line.startswith(("BENCHMARK ", "BENCHMARK_ERROR "))]
    if proc.returncode != 0 or not found or found[0].startswith("BENCHMARK_ERROR "):
        reason = found[0].split(" ", 1)[1] if found else f"worker exit code {proc.returncode}"
        what = f"{cfg['impl']}'s input pipeline" if cfg.get("data_only") else \
            f"{cfg['impl']} {cfg['model']} in {cfg['mode']} mode"
        raise RuntimeError(f"measuring {what} failed: {reason}")
    return json.loads(found[0][len("BENCHMARK "):])


def data_table(rows, model_rows) -> str:
    """The data rows, mindcv's img/s ratio where measured, and whether data or compute bounds each model."""
    mindcv = {(r["num_parallel_workers"], r["batch_size"]): r["data_img_s"] for r in rows if r["impl"] == MINDCV}
    lines = ["| pipeline | workers | batch | px | data (img/s) | vs mindcv | set-up (s) | first batch (s) | "
             "peak mem (MB) | batch |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        key = (r["num_parallel_workers"], r["batch_size"])
        ratio = r["data_img_s"] / mindcv[key] if r["impl"] != MINDCV and key in mindcv else None
        lines.append(f"| {r['impl']} | {r['num_parallel_workers']} | {r['batch_size']} | {r['image_size']} | "
                     f"{r['data_img_s']:.0f} | {_fmt(ratio, '.2f') + ('x' if ratio else '')} | "
                     f"{_fmt(r.get('setup_s'), '.2f')} | {r['first_batch_s']:.2f} | {r['peak_host_memory_mb']:.0f} | "
                     f"{r['batch_dtype']} {tuple(r['batch_shape'])} |")
    if any(r.get("setup_s") is not None for r in rows):
        lines.append("\nset-up: listing the folder and scanning every file's header and end (ours only).")
    ours = [r for r in rows if r["impl"] == OURS]
    for m in model_rows:
        for r in ours:
            bound = "data" if r["data_img_s"] < m["train_img_per_s"] else "compute"
            lines.append(f"\n{m['model']} {m['mode']} trains at {m['train_img_per_s']:.1f} img/s (batch "
                         f"{m['batch_size']}); our pipeline with {r['num_parallel_workers']} workers feeds "
                         f"{r['data_img_s']:.0f} img/s: {bound} bounds the run")
    return "\n".join(lines)


def main(argv=None) -> int:
    from mindcv_res2net.utils.argtypes import HelpFormatter, OneLineParser, image_size

    parser = OneLineParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--device_target", default="CPU")
    parser.add_argument("--models", default=None, help="comma-separated registered names (default res2net50; "
                        "with --data_only: none)")
    parser.add_argument("--modes", default="pynative,graph", help="comma-separated: pynative, graph")
    parser.add_argument("--batch_size", type=batch_sizes, default=(32,),
                        help="batch size, or a comma-separated list (e.g. 1,8,32) measured in turn")
    parser.add_argument("--image_size", type=image_size, default=224)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps after the first")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat every configuration this many times, interleaved, and report medians")
    parser.add_argument("--epoch_images", type=int, default=IMAGENET_TRAIN_IMAGES)
    parser.add_argument("--compare", default="", help="'mindcv': also measure mindcv's res2net of the same name")
    parser.add_argument("--fuse_bn", action="store_true",
                        help="add a row: our inference with BatchNorm folded into the convolutions")
    parser.add_argument("--grad_checkpointing", action="store_true",
                        help="add a row: our train step with gradient checkpointing (each block recomputed in the "
                             "backward pass), to compare its peak memory and time")
    parser.add_argument("--json", default="", help="write every figure here")
    parser.add_argument("--engines", default="mindspore",
                        help="comma-separated: mindspore, onnxruntime (our model exported with BatchNorm folded and "
                             "run by ONNX Runtime on the CPU: inference rows), onnxruntime_int8 (the same, statically "
                             "quantized to INT8)")
    parser.add_argument("--data_only", action="store_true", help="measure the training input pipeline alone")
    parser.add_argument("--dataset", default="imagefolder", help="with --data_only: imagefolder (or imagenet)")
    parser.add_argument("--data_dir", default="", help="with --data_only: a folder holding train/<class>/<image>")
    parser.add_argument("--num_parallel_workers", default="2",
                        help="with --data_only: data workers, or a comma-separated list (e.g. 1,2) measured in turn")
    parser.add_argument("--host_normalize", action="store_true",
                        help="with --data_only: our pipeline normalises to float32 on the host (train.py's "
                             "--normalize_on_device false) instead of handing uint8 to the step")
    parser.add_argument("--data_batches", type=int, default=30, help="with --data_only: batches timed per run")
    parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        try:
            rows = measure(json.loads(args.worker))
        except Exception as exc:  # one line for the parent's error message
            print("BENCHMARK_ERROR " + (str(exc).strip().splitlines() or [type(exc).__name__])[0], flush=True)
            return 1
        print("BENCHMARK " + json.dumps(rows), flush=True)
        return 0

    from tqdm import tqdm

    from mindcv_res2net.engine.onnx_runtime import import_onnxruntime
    from mindcv_res2net.models.registry import resolve_name
    from mindcv_res2net.utils.device import normalize_device_target

    args.device_target = normalize_device_target(args.device_target)
    if args.models is None:
        args.models = "" if args.data_only else "res2net50"
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for name in models:
        resolve_name(name)  # unknown: clear error with suggestions
    modes = [m.strip().lower() for m in args.modes.split(",") if m.strip()]
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"--modes takes pynative and/or graph, got '{mode}'")
    if args.steps < 1 or args.warmup < 0 or args.rounds < 1:
        raise ValueError("--steps >= 1, --warmup >= 0 and --rounds >= 1 are required")
    if args.compare not in ("", MINDCV):
        raise ValueError(f"--compare takes 'mindcv', got '{args.compare}'")
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    for engine in engines:
        if engine not in ENGINES:
            raise ValueError(f"--engines takes {', '.join(ENGINES)}, got '{engine}'")
    if any(e.startswith("onnxruntime") for e in engines):
        import_onnxruntime()
    if args.grad_checkpointing and (not models or "mindspore" not in engines):
        raise ValueError("--grad_checkpointing: measures a MindSpore train step, so it needs --models and the "
                         f"mindspore engine (got --models '{args.models}', --engines '{args.engines}')")
    if args.data_only:
        _check_data_args(args)
        modes = [m for m in modes if m == "graph"] or modes[:1]  # the train-step rate to compare with
    configs = plan(models, modes, args, _mindcv_models() if args.compare and not args.data_only else None, engines)
    if args.data_only:
        configs = [dict(impl=impl, data_only=True, model="", mode="graph", device_target=args.device_target,
                        dataset=args.dataset, data_dir=args.data_dir, batch_size=batch, image_size=args.image_size,
                        num_parallel_workers=workers, data_batches=args.data_batches,
                        host_normalize=args.host_normalize and impl == OURS)
                   for batch in args.batch_size for workers in args.num_parallel_workers
                   for impl in ([OURS, MINDCV] if args.compare else [OURS])] + configs
    results = {}
    with tqdm(total=len(configs) * args.rounds, desc="configurations", unit="run", file=sys.stderr,
              disable=len(configs) * args.rounds < 2) as progress:
        for _ in range(args.rounds):
            for cfg in configs:
                for row in run_worker(cfg):
                    key = (row["impl"], row["model"], row["mode"], row["batch_size"], row.get("data_only"),
                           row.get("num_parallel_workers"))
                    results.setdefault(key, []).append(row)
                progress.update()
    rows = [combine(runs) for runs in results.values()]
    if args.data_only:
        data_rows = [r for r in rows if r.get("data_only")]
        rows = [r for r in rows if not r.get("data_only")]
        print(data_table(data_rows, rows))
        if rows:
            print()
    if rows:
        print(table(rows))
    checkpointing = checkpointing_lines(rows)
    if checkpointing:
        print("\n" + checkpointing)
    engines_vs_graph = engine_ratio_table(rows)
    if engines_vs_graph:
        print("\nInference against MindSpore Graph (speed-up > 1: faster):\n")
        print(engines_vs_graph)
    ratios = ratio_table(rows)
    if ratios:
        print("\nOurs relative to mindcv (speed-up > 1: ours faster; time and memory ratio < 1: ours less):\n")
        print(ratios)
    host = machine()
    print(f"\nmachine: {host['cpu']}, {host['cores']} cores, {' '.join(host['isa']) or 'no AVX2'}; MindSpore "
          f"{host['mindspore']}, ONEDNN_MAX_CPU_ISA={host['onednn_max_cpu_isa']}; {host['date']}")
    if args.json:
        from mindcv_res2net.utils.fileio import atomic_path

        with atomic_path(args.json) as tmp, open(tmp, "w") as f:
            data = dict(machine=host, results=rows)
            if args.data_only:
                ours = [r["data_img_s"] for r in data_rows if r["impl"] == OURS]
                data.update(data_img_s=ours[0] if len(ours) == 1 else ours, data_results=data_rows)
            json.dump(data, f, indent=1)
    return 0


def cli() -> None:
    """Console script ``res2net-benchmark``."""
    from mindcv_res2net.utils.cli import run_cli

    run_cli(main)


if __name__ == "__main__":
    cli()
