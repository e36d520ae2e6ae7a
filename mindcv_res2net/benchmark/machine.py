"""The machine a benchmark ran on: CPU, cores, vector ISA, package versions, oneDNN's ISA cap, date."""
import os
import platform
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Optional

import mindspore as ms

ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")


def installed(package: str) -> Optional[str]:
    """The installed version of ``package``, None when it is not installed."""
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def machine() -> dict:
    """cpu, cores, avx512, isa (the ``ISA_FLAGS`` the CPU has), mindspore/mindcv/onnxruntime/onnx/python
    versions, onednn_max_cpu_isa and date (Y-m-d)."""
    cpu, flags = platform.processor(), ""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        cpu = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name"))
        flags = next(line for line in info.splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        pass
    names = set(flags.split(":", 1)[-1].split())
    return dict(cpu=cpu, cores=os.cpu_count(), avx512="avx512f" in names, isa=[f for f in ISA_FLAGS if f in names],
                mindspore=ms.__version__, mindcv=installed("mindcv"), onnxruntime=installed("onnxruntime"),
                onnx=installed("onnx"), python=platform.python_version(),
                onednn_max_cpu_isa=os.environ.get("ONEDNN_MAX_CPU_ISA", "(unset)"), date=time.strftime("%Y-%m-%d"))


def machine_line(host: dict) -> str:
    """``machine()`` in one line, as the report ends."""
    return (f"machine: {host['cpu']}, {host['cores']} cores, {' '.join(host['isa']) or 'no AVX2'}; MindSpore "
            f"{host['mindspore']}, ONEDNN_MAX_CPU_ISA={host['onednn_max_cpu_isa']}; {host['date']}")
