"""The benchmark's report: markdown tables of figure rows, ratio tables and one-line comparisons."""
from typing import List, Optional, Sequence

from .plan import CHECKPOINTED, FOLDED, IMAGENET_TRAIN_IMAGES, MINDCV, OURS


def _fmt(value: Optional[float], spec: str) -> str:
    """``value`` formatted, or a dash when not measured."""
    return "—" if value is None else format(value, spec)


def table(rows: Sequence[dict]) -> str:
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
    epoch_images = next((r["epoch_images"] for r in rows if "epoch_images" in r), IMAGENET_TRAIN_IMAGES)
    lines.append(f"\n*s/epoch is extrapolated from train img/s to {epoch_images:,} images on one device.")
    return "\n".join(lines)


def checkpointing_lines(rows: Sequence[dict]) -> str:
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


def ratio_table(rows: Sequence[dict]) -> str:
    """Ours relative to mindcv per model and mode: speed-ups (> 1 is faster) and time/memory ratios (< 1 is less)."""
    by_key = {(r["impl"], r["model"], r["mode"], r["batch_size"]): r for r in rows}
    lines = ["| model | mode | batch | train speed-up | infer speed-up (batch) | infer speed-up (b1) | "
             "infer speed-up, BN folded (batch / b1) | compile time ratio infer / train | peak memory ratio |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (impl, model, mode, batch), theirs in by_key.items():
        ours = by_key.get((OURS, model, mode, batch))
        if impl != MINDCV or ours is None:
            continue
        fused = by_key.get((FOLDED, model, mode, batch))
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


def engine_ratio_table(rows: Sequence[dict]) -> str:
    """Inference speed of every row against MindSpore Graph (BatchNorm folded where measured) of the same model
    and batch size, as the README's CPU-deployment table shows it; empty without such a baseline."""
    lines = ["| model | batch | implementation | engine | mode | precision | infer (img/s) | infer b1 (ms) | "
             "vs MindSpore Graph |", "|---|---|---|---|---|---|---|---|---|"]
    graph = {(r["model"], r["batch_size"], r["impl"]): r for r in rows
             if r["engine"] == "mindspore" and r["mode"] == "graph"}
    for r in rows:
        base = graph.get((r["model"], r["batch_size"], FOLDED)) or \
            graph.get((r["model"], r["batch_size"], OURS))
        if base is None or not r.get("infer_img_per_s"):
            continue
        folded = ", BN folded" if base["impl"] != OURS else ""
        lines.append(f"| {r['model']} | {r['batch_size']} | {r['impl']} | {r['engine']} | {r['mode']} | "
                     f"{r['precision']} | {r['infer_img_per_s']:.1f} | {r['infer_ms_per_image_b1']:.1f} | "
                     f"{r['infer_img_per_s'] / base['infer_img_per_s']:.2f}x{folded} |")
    return "\n".join(lines) if len(lines) > 3 else ""


def _speedup(slow: Optional[float], fast: Optional[float]) -> str:
    """``slow / fast`` as "1.23x" (times: > 1 means ``fast`` takes less), or a dash when either is missing."""
    return "—" if not (slow and fast) else f"{slow / fast:.2f}x"


def mode_table(rows: Sequence[dict]) -> str:
    """PyNative and Graph side by side per implementation, model, batch and size, as docs/benchmark.md's Results
    table shows them (train s/epoch, inference ms per image at batch 1), with Graph's speed-up over PyNative
    (> 1: Graph faster); empty unless some row was measured in both modes."""
    by_mode = {}
    for r in rows:
        by_mode.setdefault((r["impl"], r["model"], r["batch_size"], r["image_size"]), {})[r["mode"]] = r
    lines = ["| implementation | model | batch | px | PyNative train (s/epoch) | PyNative infer (ms) | "
             "Graph train (s/epoch) | Graph infer (ms) | Graph/PyNative train | Graph/PyNative infer |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for (impl, model, batch, size), modes in by_mode.items():
        if not {"pynative", "graph"} <= set(modes):
            continue
        slow, fast = modes["pynative"], modes["graph"]
        lines.append(f"| {impl} | {model} | {batch} | {size} | {_fmt(slow['train_s_per_epoch'], ',.0f')} | "
                     f"{slow['infer_ms_per_image_b1']:.1f} | {_fmt(fast['train_s_per_epoch'], ',.0f')} | "
                     f"{fast['infer_ms_per_image_b1']:.1f} | "
                     f"{_speedup(slow['train_s_per_epoch'], fast['train_s_per_epoch'])} | "
                     f"{_speedup(slow['infer_ms_per_image_b1'], fast['infer_ms_per_image_b1'])} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def data_table(rows: Sequence[dict], model_rows: Sequence[dict]) -> str:
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


def report(rows: List[dict], data_rows: List[dict], machine_line: str) -> str:
    """Everything printed after a run: the data table (``data_rows`` of --data_only), the figure table, PyNative
    and Graph side by side, gradient checkpointing lines, the engine and mindcv ratio tables that have rows, and the machine."""
    parts = []
    if data_rows:
        parts.append(data_table(data_rows, rows))
    if rows:
        parts.append(table(rows))
    by_mode = mode_table(rows)
    if by_mode:
        parts.append("PyNative and Graph (infer: ms per image at batch 1; Graph/PyNative > 1: Graph faster):\n\n"
                     + by_mode)
    checkpointing = checkpointing_lines(rows)
    if checkpointing:
        parts.append(checkpointing)
    engines_vs_graph = engine_ratio_table(rows)
    if engines_vs_graph:
        parts.append("Inference against MindSpore Graph (speed-up > 1: faster):\n\n" + engines_vs_graph)
    ratios = ratio_table(rows)
    if ratios:
        parts.append("Ours relative to mindcv (speed-up > 1: ours faster; time and memory ratio < 1: ours less):\n\n"
                     + ratios)
    return "\n\n".join(parts + [machine_line])
