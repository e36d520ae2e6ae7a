"""Engine names, defined once, and the check that ONNX Runtime is installed.

``INFERENCE_ENGINES``: what runs a classifier (``--engine`` of validate.py and predict).
``BENCHMARK_ENGINES``: what the benchmark times (``--engines``): the inference engines plus ONNX
Runtime on the static INT8 export.
"""
from .argtypes import ConfigError

INFERENCE_ENGINES = ("mindspore", "onnxruntime")
BENCHMARK_ENGINES = INFERENCE_ENGINES + ("onnxruntime_int8",)


def check_engine(name: str) -> str:
    """``name`` if it is one of ``INFERENCE_ENGINES``, else a ``ConfigError`` naming ``--engine``."""
    if name not in INFERENCE_ENGINES:
        raise ConfigError(f"--engine must be one of {', '.join(INFERENCE_ENGINES)}, got '{name}'")
    return name


def import_onnxruntime():
    """The ``onnxruntime`` module, or a ``ConfigError`` (``--engine onnxruntime``) saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("--engine onnxruntime needs the onnxruntime package: pip install onnxruntime "
                          "(or pip install 'mindcv-res2net[export]')") from None
    return onnxruntime
