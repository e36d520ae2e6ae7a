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

from ..data.datasets import DATASETS, dataset_names
from ..models.registry import resolve_name
from ..utils.argtypes import ConfigError
from ..utils.device import MODE_BY_NAME, normalize_device_target
from ..utils.engines import BENCHMARK_ENGINES, import_onnxruntime
from ..utils.errors import UserError

IMAGENET_TRAIN_IMAGES = 1_281_167
OURS, MINDCV = "mindcv_res2net", "mindcv"
CHECKPOINTED = OURS + " (grad checkpointing)"
FOLDED = OURS + " (BN folded)"
FULL_DECODE = OURS + " (full decode)"


@dataclass(frozen=True, kw_only=True)
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


@dataclass(frozen=True, kw_only=True)
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


@dataclass(frozen=True, kw_only=True)
class PipelineRun:
    """Steady-state img/s of ``impl``'s training input pipeline alone on ``data_dir``/train/<class>/<image>,
    ``data_batches`` batches timed after the first; ``host_normalize``: ours hands float32, not uint8;
    ``reduced_decode``: ours decodes large JPEGs at a reduced scale (train.py's --reduced_decode)."""

    impl: str
    dataset: str
    data_dir: str
    batch_size: int
    image_size: int
    num_parallel_workers: int
    data_batches: int
    host_normalize: bool
    device_target: str
    reduced_decode: bool = True


Config = Union[ModelRun, OnnxRun, PipelineRun]
_KINDS = {kind.__name__: kind for kind in (ModelRun, OnnxRun, PipelineRun)}


def to_json(config: Config) -> str:
    """``config`` as one JSON object naming its kind (what the worker's command line carries)."""
    return json.dumps(dict(dataclasses.asdict(config), kind=type(config).__name__))


def from_json(text: str) -> Config:
    """The configuration ``to_json`` wrote. Its fields are ours and are not checked again; text that is not
    a configuration at all (not JSON, no kind, other fields) is a one-line ``UserError`` saying so."""
    try:
        fields = json.loads(text)
    except ValueError:
        raise UserError(f"benchmark configuration: not JSON: {text[:80]!r}") from None
    name = fields.pop("kind", None) if isinstance(fields, dict) else None
    kind = _KINDS.get(name) if isinstance(name, str) else None  # a list or an object is no kind (nor hashable)
    if kind is None:
        raise UserError(f"benchmark configuration: not an object naming one of {', '.join(_KINDS)}: {text[:80]!r}")
    declared = [f.name for f in dataclasses.fields(kind)]
    if set(fields) != set(declared):
        raise UserError(f"benchmark configuration: {kind.__name__} takes the fields {', '.join(declared)}, got "
                        f"{', '.join(fields) or 'none'}")
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
    ``a,,b``, ``a,``) is a ``ConfigError`` naming the flag."""
    text = getattr(args, flag)
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise ConfigError(f"--{flag} '{text}': an empty name; give a comma-separated list without empty items")
    return items


def check_request(args: argparse.Namespace) -> Tuple[List[str], List[str], List[str]]:
    """(models, modes, engines) of the parsed flags, every flag checked before any worker starts (a
    ``ConfigError`` naming the flag); fills in ``device_target``, ``models`` and the worker counts."""
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
        if mode not in MODE_BY_NAME:
            raise ConfigError(f"--modes takes {' and/or '.join(MODE_BY_NAME)}, got '{mode}'")
    if args.steps < 1 or args.warmup < 0 or args.rounds < 1:  # --image_size: checked by its argument type
        raise ConfigError("--steps >= 1, --warmup >= 0 and --rounds >= 1 are required")
    if args.compare not in ("", MINDCV):
        raise ConfigError(f"--compare takes '{MINDCV}', got '{args.compare}'")
    engines = _names(args, "engines")
    for engine in engines:
        if engine not in BENCHMARK_ENGINES:
            raise ConfigError(f"--engines takes {', '.join(BENCHMARK_ENGINES)}, got '{engine}'")
    if any(e.startswith("onnxruntime") for e in engines):
        import_onnxruntime()
    if args.grad_checkpointing and (not models or "mindspore" not in engines):
        raise ConfigError("--grad_checkpointing: measures a MindSpore train step, so it needs --models and the "
                         f"mindspore engine (got --models '{args.models}', --engines '{args.engines}')")
    if args.data_only:
        args.num_parallel_workers = _checked_data_args(args)
    return models, modes, engines


def _checked_data_args(args: argparse.Namespace) -> Tuple[int, ...]:
    """--data_only's folder and numbers checked; returns the worker counts of --num_parallel_workers."""
    if args.dataset not in DATASETS or not DATASETS[args.dataset].image_folder:
        folders = " or ".join(dataset_names(lambda spec: spec.image_folder))
        raise ConfigError(f"--data_only measures image folders: --dataset {folders}, got '{args.dataset}'")
    if not args.data_dir:
        raise ConfigError("--data_only needs --data_dir DIR holding train/<class>/<image> (tools/make_photo_folder.py "
                         "makes one)")
    if not os.path.isdir(os.path.join(args.data_dir, "train")):
        raise ConfigError(f"--data_dir {args.data_dir}: no train/ folder (expected train/<class>/<image>)")
    try:
        workers = tuple(int(n) for n in str(args.num_parallel_workers).split(","))
    except ValueError:
        raise ConfigError(f"--num_parallel_workers takes integers separated by commas, got "
                         f"'{args.num_parallel_workers}'") from None
    if min(workers) < 1 or args.data_batches < 1:
        raise ConfigError("--num_parallel_workers and --data_batches must be at least 1")
    return workers


def plan(models: Sequence[str], modes: Sequence[str], args: argparse.Namespace, *,
         mindcv_models: Optional[Set[str]] = None, engines: Sequence[str] = ("mindspore",)) -> List[Config]:
    """Configurations to measure, one per batch size of ``args.batch_size`` (a tuple):

    - with ``args.data_only``: the input pipelines first (ours, ours decoding every JPEG in full with
      ``args.full_decode``, and mindcv's with ``args.compare``), once per ``args.num_parallel_workers``;
      the networks then run in Graph mode only (or the first mode);
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
    pipelines = [PipelineRun(impl=impl, dataset=args.dataset, data_dir=args.data_dir, batch_size=batch,
                             image_size=args.image_size, num_parallel_workers=workers, data_batches=args.data_batches,
                             host_normalize=args.host_normalize and impl != MINDCV, device_target=args.device_target,
                             reduced_decode=impl != FULL_DECODE)
                 for batch in args.batch_size for workers in args.num_parallel_workers
                 for impl in [OURS] + [FULL_DECODE] * getattr(args, "full_decode", False)
                 + [MINDCV] * bool(args.compare)] if data_only else []
    networks = [ModelRun(impl=impl, model=name, mode=mode, batch_size=batch, image_size=args.image_size,
                         steps=args.steps, warmup=args.warmup, epoch_images=args.epoch_images,
                         device_target=args.device_target, fuse_bn=args.fuse_bn and impl == OURS)
                for batch in args.batch_size for name in models for mode in modes for impl, names in impls.items()
                if name in names] if "mindspore" in engines else []
    exports = [OnnxRun(engine=engine, model=name, batch_size=batch, image_size=args.image_size, steps=args.steps,
                       warmup=args.warmup)
               for batch in args.batch_size for engine in engines if engine.startswith("onnxruntime")
               for name in models]
    return pipelines + networks + exports
