"""The benchmark's gradient-checkpointing rows (``--grad_checkpointing``): planned beside the plain rows, reported
as memory and time ratios, measured with the train step's own peak memory; refused where no MindSpore train step
is measured."""
import json

import pytest

from helpers.programs import assert_quiet_exit, run, run_tool
from mindcv_res2net.benchmark.plan import BenchmarkSettings, check_request, plan
from mindcv_res2net.benchmark.tables import checkpointing_lines


def test_benchmark_plans_and_reports_grad_checkpointing_rows():
    settings = BenchmarkSettings(modes="graph", batch_size=(2,), image_size=32, steps=1, warmup=0, epoch_images=10,
                                 grad_checkpointing=True)
    configs = plan(check_request(settings), mindcv_models={"res2net50"})
    assert [c.impl for c in configs] == ["mindcv_res2net", "mindcv", "mindcv_res2net (grad checkpointing)"]
    row = dict(model="res2net50", mode="graph", batch_size=8, image_size=224)
    rows = [dict(row, impl="mindcv_res2net", train_peak_memory_mb=3000.0, train_ms_per_step=1000.0),
            dict(row, impl="mindcv_res2net (grad checkpointing)", train_peak_memory_mb=2000.0,
                 train_ms_per_step=1300.0)]
    assert checkpointing_lines(rows) == (
        "res2net50 graph, batch 8 at 224 px: gradient checkpointing 2000 MB train peak vs 3000 MB (0.67x), "
        "1300 vs 1000 ms/step (1.30x)")


@pytest.mark.e2e
def test_benchmark_grad_checkpointing_run_and_refusals(tmp_path, capsys):
    """A tiny PyNative run: both rows measured, the train step's own peak memory included."""
    out = tmp_path / "bench.json"
    proc = run(["tools/benchmark.py", "--models", "res2net50", "--modes", "pynative", "--batch_size", "2",
                "--image_size", "32", "--steps", "1", "--warmup", "0", "--grad_checkpointing", "--json", str(out)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_quiet_exit(proc)
    rows = {r["impl"]: r for r in json.loads(out.read_text())["results"]}
    assert set(rows) == {"mindcv_res2net", "mindcv_res2net (grad checkpointing)"}
    for r in rows.values():
        assert r["train_ms_per_step"] > 0 and r["train_peak_memory_mb"] > 200  # MindSpore alone takes more
        assert r["train_peak_memory_mb"] <= 1.01 * r["peak_host_memory_mb"]  # VmHWM and ru_maxrss: ~1 MB apart
    assert "gradient checkpointing" in proc.stdout and "MB train peak vs" in proc.stdout
    for argv in (["--engines", "onnxruntime", "--grad_checkpointing"], ["--data_only", "--grad_checkpointing"]):
        code, err = run_tool("benchmark", argv, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert err.startswith("error: --grad_checkpointing: measures a MindSpore train step, so it needs --models "
                              "and the mindspore engine")
