"""Runs a checked benchmark request: every configuration in a fresh worker process, ``--rounds`` times
interleaved, then the report and the JSON file.

A worker is ``python -m mindcv_res2net.benchmark.runner CONFIG_JSON``; it prints one line, ``BENCHMARK
<rows as JSON>`` or, for bad input (a ``UserError`` or ``OSError``), ``BENCHMARK_ERROR <reason>``, which
``run_worker`` reads; any other exception is a bug and shows its traceback on stderr.
"""
import json
import os
import statistics
import subprocess
import sys
from typing import Any, Callable, Dict, List, Tuple

from tqdm import tqdm

from ..utils.errors import UserError
from ..utils.fileio import atomic_path, check_output, is_stdout
from .machine import machine, machine_line
from .measure_data import measure_data
from .measure_model import measure_model
from .measure_onnx import measure_onnx
from .mindcv_compare import mindcv_models
from .plan import OURS, BenchmarkRequest, Config, ModelRun, OnnxRun, PipelineRun, from_json, plan, to_json
from .tables import report

_MEASURE: Dict[type, Callable[[Any], List[dict]]] = {ModelRun: measure_model, OnnxRun: measure_onnx,
                                                     PipelineRun: measure_data}
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def describe(config: Config) -> str:
    """What ``config`` measures, for error messages."""
    if isinstance(config, PipelineRun):
        return f"{config.impl}'s input pipeline"
    if isinstance(config, OnnxRun):
        return f"{config.impl} {config.model} on {config.engine}"
    return f"{config.impl} {config.model} in {config.mode} mode"


def run_worker(config: Config) -> List[dict]:
    """Measure one configuration in a fresh process; its progress bar (slow runs) goes to our stderr. The
    worker's ``BENCHMARK_ERROR`` reason is a ``UserError``; a worker that failed otherwise (its traceback is
    on stderr) a ``RuntimeError``."""
    env = dict(os.environ, GLOG_v=os.environ.get("GLOG_v", "3"))  # MindSpore: errors only on stderr
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (PACKAGE_ROOT, env.get("PYTHONPATH"))))  # a clone without pip
    proc = subprocess.run([sys.executable, "-m", "mindcv_res2net.benchmark.runner", to_json(config)],
                          stdout=subprocess.PIPE, text=True, env=env)
    found = [line for line in proc.stdout.splitlines() if line.startswith(("BENCHMARK ", "BENCHMARK_ERROR "))]
    if found and found[0].startswith("BENCHMARK_ERROR "):
        raise UserError(f"measuring {describe(config)} failed: {found[0].split(' ', 1)[1]}")
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"measuring {describe(config)} failed: worker exit code {proc.returncode} (its "
                           "traceback is above)")
    return json.loads(found[0][len("BENCHMARK "):])


def worker_main(config_json: str) -> int:
    """The worker process: measure the configuration, print its one result line; 0, or 1 on bad input."""
    try:
        config = from_json(config_json)
        rows = _MEASURE[type(config)](config)
    except (UserError, OSError) as exc:  # one line for the parent's error message
        print("BENCHMARK_ERROR " + (str(exc).strip().splitlines() or [type(exc).__name__])[0], flush=True)
        return 1
    print("BENCHMARK " + json.dumps(rows), flush=True)
    return 0


def combine(runs: List[dict]) -> dict:
    """Median of every figure over repeated rounds of one configuration (rounds interleave configurations)."""
    combined = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, float):
            combined[key] = statistics.median(r[key] for r in runs)
    combined["rounds"] = len(runs)
    return combined


def run(request: BenchmarkRequest) -> int:
    """The benchmark of the checked ``request`` (``plan.check_request``): checks --json, measures every planned
    configuration --rounds times, prints the report (to stderr when --json is stdout) and writes --json."""
    settings = request.settings
    if settings.json:
        check_output(settings.json, "--json")
    compared = mindcv_models() if settings.compare else None  # installed, or one line before any worker starts
    configs = plan(request, mindcv_models=None if settings.data_only else compared)
    results: Dict[Tuple[Config, str], List[dict]] = {}
    with tqdm(total=len(configs) * settings.rounds, desc="configurations", unit="run", file=sys.stderr,
              disable=len(configs) * settings.rounds < 2) as progress:
        for _ in range(settings.rounds):
            for config in configs:
                for row in run_worker(config):
                    results.setdefault((config, row["impl"]), []).append(row)
                progress.update()
    combined = [(config, combine(runs)) for (config, _), runs in results.items()]
    data_rows = [row for config, row in combined if isinstance(config, PipelineRun)]
    rows = [row for config, row in combined if not isinstance(config, PipelineRun)]
    host = machine()
    tables = sys.stderr if settings.json and is_stdout(settings.json) else sys.stdout  # the JSON alone on stdout
    print(report(rows, data_rows, machine_line(host)), file=tables)
    if settings.json:
        data = dict(machine=host, results=rows)
        if settings.data_only:
            ours = [r["data_img_s"] for r in data_rows if r["impl"] == OURS]
            data.update(data_img_s=ours[0] if len(ours) == 1 else ours, data_results=data_rows)
        with atomic_path(settings.json) as tmp, open(tmp, "w") as f:
            json.dump(data, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1]))
