"""What the benchmark is asked and what it measures: ``BenchmarkSettings`` (the flags of tools/benchmark.py,
each declared on its field), checked once into a ``BenchmarkRequest``, and every configuration to measure,
one small typed record each, listed by ``plan()``.

A configuration crosses to its worker process as JSON (``to_json`` / ``from_json``); a figure row is
the configuration's fields plus the figures measured.
"""
import argparse
import dataclasses
import json
import os
import sys
from dataclasses import dataclass
from typing import ClassVar, List, Optional, Set, Tuple, Union

from ..config import derive_flags, flag
from ..data.datasets import DATASETS, FOLDER_DATASET, dataset_names
from ..models.registry import resolve_name
from ..utils import argtypes
from ..utils.argtypes import ConfigError
from ..utils.device import MODE_BY_NAME, normalize_device_target
from ..utils.engines import BENCHMARK_ENGINES, import_onnxruntime
from ..utils.errors import UserError

IMAGENET_TRAIN_IMAGES = 1_281_167
DEFAULT_MODEL = "res2net50"
OURS, MINDCV = "mindcv_res2net", "mindcv"
CHECKPOINTED = OURS + " (grad checkpointing)"
FOLDED = OURS + " (BN folded)"
FULL_DECODE = OURS + " (full decode)"
# The --help groups, in order; a flag of DATA_ONLY other than its default needs --data_only
DATA_ONLY = "input pipeline (--data_only)"
GROUPS = ("system", "models", "timing", "rows", DATA_ONLY)
_OTHER_FOLDERS = " or ".join(name for name in dataset_names(lambda spec: spec.image_folder) if name != FOLDER_DATASET)


def batch_sizes(text: str) -> Tuple[int, ...]:
    """``--batch_size``: one batch size or a comma-separated list of them (each measured in turn)."""
    try:
        sizes = tuple(int(n) for n in str(text).split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes integers separated by commas, got '{text}'") from None
    if min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be at least 1, got '{text}'")
    return sizes


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchmarkSettings:
    """What tools/benchmark.py is asked, as given: each field is the flag of the same name (declared with
    ``flag``). Lists of names and worker counts stay the comma-separated text given; ``check_request`` reads
    and checks them."""

    device_target: str = flag("CPU", "system", "CPU, GPU or Ascend")
    json: str = flag("", "system", "write every figure here", metavar="PATH")
    models: Optional[str] = flag(None, "models", f"comma-separated registered names (default {DEFAULT_MODEL}; "
                                 "with --data_only: none)", metavar="NAMES")
    modes: str = flag("pynative,graph", "models", "comma-separated: pynative, graph", metavar="NAMES")
    engines: str = flag("mindspore", "models", "comma-separated: mindspore, onnxruntime (our model exported with "
                        "BatchNorm folded and run by ONNX Runtime on the CPU: inference rows), onnxruntime_int8 (the "
                        "same, statically quantized to INT8)", metavar="NAMES")
    batch_size: Tuple[int, ...] = flag((32,), "models", "batch size, or a comma-separated list (e.g. 1,8,32) "
                                       "measured in turn", converter=batch_sizes, metavar="SIZES")
    image_size: int = flag(224, "models", f"pixels per side, {argtypes.MIN_IMAGE_SIZE} to "
                           f"{argtypes.MAX_IMAGE_SIZE}", converter=argtypes.image_size)
    steps: int = flag(5, "timing", "timed steps per measurement (median)")
    warmup: int = flag(2, "timing", "untimed steps after the first")
    rounds: int = flag(1, "timing", "repeat every configuration this many times, interleaved, and report medians")
    epoch_images: int = flag(IMAGENET_TRAIN_IMAGES, "timing", "images per epoch for s/epoch, extrapolated from "
                             "img/s (ImageNet's training set)")
    compare: str = flag("", "rows", f"'{MINDCV}': also measure mindcv's res2net of the same name")
    fuse_bn: bool = flag(False, "rows", "add a row: our inference with BatchNorm folded into the convolutions")
    grad_checkpointing: bool = flag(False, "rows", "add a row: our train step with gradient checkpointing (each "
                                    "block recomputed in the backward pass), to compare its peak memory and time")
    data_only: bool = flag(False, DATA_ONLY, "measure the training input pipeline alone")
    dataset: str = flag(FOLDER_DATASET, DATA_ONLY, f"with --data_only: {FOLDER_DATASET} (or {_OTHER_FOLDERS})")
    data_dir: str = flag("", DATA_ONLY, "with --data_only: a folder holding train/<class>/<image>", metavar="PATH")
    num_parallel_workers: str = flag("2", DATA_ONLY, "with --data_only: data workers, or a comma-separated list "
                                     "(e.g. 1,2) measured in turn", metavar="COUNTS")
    host_normalize: bool = flag(False, DATA_ONLY, "with --data_only: our pipeline normalises to float32 on the host "
                                "(train.py's --normalize_on_device false) instead of handing uint8 to the step")
    full_decode: bool = flag(False, DATA_ONLY, "with --data_only: add a row: our pipeline with train.py's "
                             "--reduced_decode false (every JPEG decoded in full)")
    data_batches: int = flag(30, DATA_ONLY, "with --data_only: batches timed per run")


BENCHMARK_FLAGS = derive_flags([BenchmarkSettings], groups=GROUPS, programs=("benchmark",))


@dataclass(frozen=True, kw_only=True)
class BenchmarkRequest:
    """``settings`` checked, their lists read: the ``device_target`` by its name, the ``models`` (none with
    --data_only and no --models), ``modes`` (lower case) and ``engines``, and the data ``workers`` of each
    pipeline run (--data_only; else none)."""

    settings: BenchmarkSettings
    device_target: str
    models: Tuple[str, ...]
    modes: Tuple[str, ...]
    engines: Tuple[str, ...]
    workers: Tuple[int, ...]


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


def _names(text: str, flag_name: str) -> Tuple[str, ...]:
    """The comma-separated items of ``text`` given to ``--flag_name`` (spaces around them dropped); an empty
    list or item (``''``, ``a,,b``, ``a,``) is a ``ConfigError`` naming the flag."""
    items = tuple(item.strip() for item in text.split(","))
    if not all(items):
        raise ConfigError(f"--{flag_name} '{text}': an empty name; give a comma-separated list without empty items")
    return items


def check_request(settings: BenchmarkSettings) -> BenchmarkRequest:
    """The request of ``settings``, every flag checked before any worker starts (a ``ConfigError`` naming the
    flag); a flag of the --data_only group other than its default, without --data_only, would be ignored: it
    is refused."""
    if not settings.data_only:
        for name, declared in BENCHMARK_FLAGS.items():
            if declared.group == DATA_ONLY and getattr(settings, name) != declared.default:
                raise ConfigError(f"--{name}: measures the input pipeline, so it needs --data_only")
    device_target = normalize_device_target(settings.device_target)
    if settings.models is None:  # with --data_only alone no network: the input pipeline only
        models: Tuple[str, ...] = () if settings.data_only else (DEFAULT_MODEL,)
    else:
        models = _names(settings.models, "models")
    for name in models:
        resolve_name(name)  # unknown: clear error with suggestions
    modes = tuple(m.lower() for m in _names(settings.modes, "modes"))
    for mode in modes:
        if mode not in MODE_BY_NAME:
            raise ConfigError(f"--modes takes {' and/or '.join(MODE_BY_NAME)}, got '{mode}'")
    if settings.steps < 1 or settings.warmup < 0 or settings.rounds < 1:  # --image_size: checked by its flag
        raise ConfigError("--steps >= 1, --warmup >= 0 and --rounds >= 1 are required")
    if settings.compare not in ("", MINDCV):
        raise ConfigError(f"--compare takes '{MINDCV}', got '{settings.compare}'")
    engines = _names(settings.engines, "engines")
    for engine in engines:
        if engine not in BENCHMARK_ENGINES:
            raise ConfigError(f"--engines takes {', '.join(BENCHMARK_ENGINES)}, got '{engine}'")
    if any(e.startswith("onnxruntime") for e in engines):
        import_onnxruntime()
    if settings.grad_checkpointing and (not models or "mindspore" not in engines):
        raise ConfigError("--grad_checkpointing: measures a MindSpore train step, so it needs --models and the "
                          f"mindspore engine (got --models '{','.join(models)}', --engines '{settings.engines}')")
    return BenchmarkRequest(settings=settings, device_target=device_target, models=models, modes=modes,
                            engines=engines, workers=_data_workers(settings) if settings.data_only else ())


def _data_workers(settings: BenchmarkSettings) -> Tuple[int, ...]:
    """--data_only's folder and numbers checked; returns the worker counts of --num_parallel_workers."""
    if settings.dataset not in DATASETS or not DATASETS[settings.dataset].image_folder:
        folders = " or ".join(dataset_names(lambda spec: spec.image_folder))
        raise ConfigError(f"--data_only measures image folders: --dataset {folders}, got '{settings.dataset}'")
    if not settings.data_dir:
        raise ConfigError("--data_only needs --data_dir DIR holding train/<class>/<image> (tools/make_photo_folder.py "
                          "makes one)")
    if not os.path.isdir(os.path.join(settings.data_dir, "train")):
        raise ConfigError(f"--data_dir {settings.data_dir}: no train/ folder (expected train/<class>/<image>)")
    try:
        workers = tuple(int(n) for n in settings.num_parallel_workers.split(","))
    except ValueError:
        raise ConfigError(f"--num_parallel_workers takes integers separated by commas, got "
                          f"'{settings.num_parallel_workers}'") from None
    if min(workers) < 1 or settings.data_batches < 1:
        raise ConfigError("--num_parallel_workers and --data_batches must be at least 1")
    return workers


def plan(request: BenchmarkRequest, *, mindcv_models: Optional[Set[str]] = None) -> List[Config]:
    """Configurations to measure, one per batch size of --batch_size:

    - with --data_only: the input pipelines first (ours, ours decoding every JPEG in full with --full_decode,
      and mindcv's with --compare), once per worker count of ``request.workers``; the networks then run in
      Graph mode only (or the first mode);
    - MindSpore: ours for every model and mode (and with gradient checkpointing on --grad_checkpointing),
      mindcv's where ``mindcv_models`` has the name;
    - ONNX Runtime engines: ours once per model, on the CPU.
    """
    settings, models, modes = request.settings, request.models, request.modes
    if settings.data_only:
        modes = tuple(m for m in modes if m == "graph") or modes[:1]  # the train-step rate to compare with
    impls = {OURS: set(models)}
    if mindcv_models is not None:
        impls[MINDCV] = {name for name in models if name in mindcv_models}
        for name in models:
            if name not in mindcv_models:
                print(f"note: mindcv has no {name}; measuring ours only", file=sys.stderr)
    if settings.grad_checkpointing:
        impls[CHECKPOINTED] = set(models)
    pipelines = [PipelineRun(impl=impl, dataset=settings.dataset, data_dir=settings.data_dir, batch_size=batch,
                             image_size=settings.image_size, num_parallel_workers=workers,
                             data_batches=settings.data_batches,
                             host_normalize=settings.host_normalize and impl != MINDCV,
                             device_target=request.device_target, reduced_decode=impl != FULL_DECODE)
                 for batch in settings.batch_size for workers in request.workers
                 for impl in [OURS] + [FULL_DECODE] * settings.full_decode + [MINDCV] * bool(settings.compare)]
    networks = [ModelRun(impl=impl, model=name, mode=mode, batch_size=batch, image_size=settings.image_size,
                         steps=settings.steps, warmup=settings.warmup, epoch_images=settings.epoch_images,
                         device_target=request.device_target, fuse_bn=settings.fuse_bn and impl == OURS)
                for batch in settings.batch_size for name in models for mode in modes for impl, names in impls.items()
                if name in names] if "mindspore" in request.engines else []
    exports = [OnnxRun(engine=engine, model=name, batch_size=batch, image_size=settings.image_size,
                       steps=settings.steps, warmup=settings.warmup)
               for batch in settings.batch_size for engine in request.engines if engine.startswith("onnxruntime")
               for name in models]
    return pipelines + networks + exports
