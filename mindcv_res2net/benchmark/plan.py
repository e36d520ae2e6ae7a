"""Every configuration the benchmark measures, one small typed record each, listed by ``plan()``.

A configuration crosses to its worker process as JSON (``to_json`` / ``from_json``); a figure row is
the configuration's fields plus the figures measured.
"""
import argparse
import dataclasses
import json
import os
import sys
from dataclasses import dataclass
from typing import ClassVar, List, Optional, Sequence, Set, Tuple, Union

from ..models.registry import resolve_name
from ..utils.device import normalize_device_target
from ..utils.engines import BENCHMARK_ENGINES, import_onnxruntime

IMAGENET_TRAIN_IMAGES = 1_281_167
MIN_IMAGE_SIZE = 32  # pixels per side: the smallest input every network takes
MODES = {"graph": 0, "pynative": 1}
OURS, MINDCV = "mindcv_res2net", "mindcv"
CHECKPOINTED = OURS + " (grad checkpointing)"
FOLDED = OURS + " (BN folded)"


@dataclass(frozen=True)
class ModelRun:
    """Train and inference timing of ``impl``'s ``model`` in MindSpore ``mode``: (batch_size, 3, image_size,
    image_size) random images, median of ``steps`` calls after the first and ``warmup`` more; s/epoch
    extrapolated to ``epoch_images``; ``fuse_bn`` adds a row of inference with BatchNorm folded."""

    engine: ClassVar[str] = "mindspore"
    impl: str
    model: str
    mode: str
    batch_size: int
    image_size: int
    steps: int
    warmup: int
    epoch_images: int
    device_target: str
    fuse_bn: bool


@dataclass(frozen=True)
class OnnxRun:
    """Inference timing of our ``model`` exported to ONNX (BatchNorm folded, dynamic batch) and run by ONNX
    Runtime on the CPU; ``engine`` onnxruntime (fp32) or onnxruntime_int8 (static INT8)."""

    impl: ClassVar[str] = OURS
    device_target: ClassVar[str] = "CPU"
    engine: str
    model: str
    batch_size: int
    image_size: int
    steps: int
    warmup: int


@dataclass(frozen=True)
class PipelineRun:
    """Steady-state img/s of ``impl``'s training input pipeline alone on ``data_dir``/train/<class>/<image>,
    ``data_batches`` batches timed after the first; ``host_normalize``: ours hands float32, not uint8."""

    impl: str
    dataset: str
    data_dir: str
    batch_size: int
    image_size: int
    num_parallel_workers: int
    data_batches: int
    host_normalize: bool
    device_target: str


Config = Union[ModelRun, OnnxRun, PipelineRun]
_KINDS = {kind.__name__: kind for kind in (ModelRun, OnnxRun, PipelineRun)}


def to_json(config: Config) -> str:
    """``config`` as one JSON object naming its kind (what the worker's command line carries)."""
    return json.dumps(dict(dataclasses.asdict(config), kind=type(config).__name__))


def from_json(text: str) -> Config:
    """The configuration ``to_json`` wrote: its kind, exactly its fields, each of its declared type (an int
    is never a bool); anything else is a ValueError saying what is wrong."""
    try:
        fields = json.loads(text)
    except ValueError:
        raise ValueError(f"benchmark configuration: not JSON: {text[:80]!r}") from None
    name = fields.pop("kind", None) if isinstance(fields, dict) else None
    kind = _KINDS.get(name) if isinstance(name, str) else None  # a list or an object is no kind (nor hashable)
    if kind is None:
        raise ValueError(f"benchmark configuration: not an object naming one of {', '.join(_KINDS)}: {text[:80]!r}")
    declared = {f.name: f.type for f in dataclasses.fields(kind)}
    if set(fields) != set(declared):
        raise ValueError(f"benchmark configuration: {kind.__name__} takes the fields {', '.join(declared)}, got "
                         f"{', '.join(fields) or 'none'}")
    for name, value in fields.items():
        want = declared[name]  # str, int or bool
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise ValueError(f"benchmark configuration: {kind.__name__}.{name} must be {want.__name__}, got {value!r}")
    return kind(**fields)


def batch_sizes(text: str) -> Tuple[int, ...]:
    """``--batch_size``: one batch size or a comma-separated list of them (each measured in turn)."""
    try:
        sizes = tuple(int(n) for n in str(text).split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes integers separated by commas, got '{text}'") from None
    if min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be at least 1, got '{text}'")
    return sizes


def _names(args: argparse.Namespace, flag: str) -> List[str]:
    """The comma-separated items of ``--flag`` (spaces around them dropped); an empty list or item (``''``,
    ``a,,b``, ``a,``) is a ValueError naming the flag."""
    text = getattr(args, flag)
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise ValueError(f"--{flag} '{text}': an empty name; give a comma-separated list without empty items")
    return items


def check_request(args: argparse.Namespace) -> Tuple[List[str], List[str], List[str]]:
    """(models, modes, engines) of the parsed flags, every flag checked before any worker starts (a
    ValueError naming the flag); fills in ``device_target``, ``models`` and the worker counts."""
    args.device_target = normalize_device_target(args.device_target)
    if args.models is None and args.data_only:  # no network: the input pipeline alone
        models = []
        args.models = ""
    else:
        args.models = "res2net50" if args.models is None else args.models
        models = _names(args, "models")
    for name in models:
        resolve_name(name)  # unknown: clear error with suggestions
    modes = [m.lower() for m in _names(args, "modes")]
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"--modes takes pynative and/or graph, got '{mode}'")
    if args.steps < 1 or args.warmup < 0 or args.image_size < MIN_IMAGE_SIZE or args.rounds < 1:
        raise ValueError(f"--steps >= 1, --warmup >= 0, --image_size >= {MIN_IMAGE_SIZE} and --rounds >= 1 are "
                         "required")
    if args.compare not in ("", MINDCV):
        raise ValueError(f"--compare takes 'mindcv', got '{args.compare}'")
    engines = _names(args, "engines")
    for engine in engines:
        if engine not in BENCHMARK_ENGINES:
            raise ValueError(f"--engines takes {', '.join(BENCHMARK_ENGINES)}, got '{engine}'")
    if any(e.startswith("onnxruntime") for e in engines):
        import_onnxruntime()
    if args.grad_checkpointing and (not models or "mindspore" not in engines):
        raise ValueError("--grad_checkpointing: measures a MindSpore train step, so it needs --models and the "
                         f"mindspore engine (got --models '{args.models}', --engines '{args.engines}')")
    if args.data_only:
        args.num_parallel_workers = _checked_data_args(args)
    return models, modes, engines


def _checked_data_args(args: argparse.Namespace) -> Tuple[int, ...]:
    """--data_only's folder and numbers checked; returns the worker counts of --num_parallel_workers."""
    if args.dataset not in ("imagefolder", "imagenet"):
        raise ValueError(f"--data_only measures image folders: --dataset imagefolder or imagenet, got '{args.dataset}'")
    if not args.data_dir:
        raise ValueError("--data_only needs --data_dir DIR holding train/<class>/<image> (tools/make_photo_folder.py "
                         "makes one)")
    if not os.path.isdir(os.path.join(args.data_dir, "train")):
        raise ValueError(f"--data_dir {args.data_dir}: no train/ folder (expected train/<class>/<image>)")
    try:
        workers = tuple(int(n) for n in str(args.num_parallel_workers).split(","))
    except ValueError:
        raise ValueError(f"--num_parallel_workers takes integers separated by commas, got "
                         f"'{args.num_parallel_workers}'") from None
    if min(workers) < 1 or args.data_batches < 1:
        raise ValueError("--num_parallel_workers and --data_batches must be at least 1")
    return workers


def plan(models: Sequence[str], modes: Sequence[str], args: argparse.Namespace,
         mindcv_models: Optional[Set[str]] = None, engines: Sequence[str] = ("mindspore",)) -> List[Config]:
    """Configurations to measure, one per batch size of ``args.batch_size`` (a tuple):

    - with ``args.data_only``: the input pipelines first (ours, and mindcv's with ``args.compare``), once
      per ``args.num_parallel_workers``; the networks then run in Graph mode only (or the first mode);
    - MindSpore: ours for every model and mode (and with gradient checkpointing on
      ``args.grad_checkpointing``), mindcv's where ``mindcv_models`` has the name;
    - ONNX Runtime engines: ours once per model, on the CPU.
    """
    data_only = getattr(args, "data_only", False)
    if data_only:
        modes = [m for m in modes if m == "graph"] or list(modes[:1])  # the train-step rate to compare with
    impls = {OURS: set(models)}
    if mindcv_models is not None:
        impls[MINDCV] = {name for name in models if name in mindcv_models}
        for name in models:
            if name not in mindcv_models:
                print(f"note: mindcv has no {name}; measuring ours only", file=sys.stderr)
    if getattr(args, "grad_checkpointing", False):
        impls[CHECKPOINTED] = set(models)
    pipelines = [PipelineRun(impl, args.dataset, args.data_dir, batch, args.image_size, workers, args.data_batches,
                             args.host_normalize and impl == OURS, args.device_target)
                 for batch in args.batch_size for workers in args.num_parallel_workers
                 for impl in ([OURS, MINDCV] if args.compare else [OURS])] if data_only else []
    networks = [ModelRun(impl, name, mode, batch, args.image_size, args.steps, args.warmup, args.epoch_images,
                         args.device_target, args.fuse_bn and impl == OURS)
                for batch in args.batch_size for name in models for mode in modes for impl, names in impls.items()
                if name in names] if "mindspore" in engines else []
    exports = [OnnxRun(engine, name, batch, args.image_size, args.steps, args.warmup)
               for batch in args.batch_size for engine in engines if engine.startswith("onnxruntime")
               for name in models]
    return pipelines + networks + exports
