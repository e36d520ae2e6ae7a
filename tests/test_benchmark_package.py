"""The benchmark package's plan (typed configurations, their JSON to the worker) and the cli's refusals
(the import direction of every module: test_layout.py)."""
import argparse
import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import run_tool
from mindcv_res2net.benchmark.plan import (MINDCV, OURS, ModelRun, OnnxRun, PipelineRun, from_json, plan,
                                           to_json)
from mindcv_res2net.benchmark.runner import worker_main
from mindcv_res2net.utils.engines import BENCHMARK_ENGINES, INFERENCE_ENGINES, check_engine

TEXT = st.text(max_size=12)
NUMBER = st.integers(0, 1 << 40)
CONFIGS = st.one_of(
    st.builds(ModelRun, TEXT, TEXT, TEXT, NUMBER, NUMBER, NUMBER, NUMBER, NUMBER, TEXT, st.booleans()),
    st.builds(OnnxRun, TEXT, TEXT, NUMBER, NUMBER, NUMBER, NUMBER),
    st.builds(PipelineRun, TEXT, TEXT, TEXT, NUMBER, NUMBER, NUMBER, NUMBER, st.booleans(), TEXT))
JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), TEXT,
                        st.lists(st.integers(), max_size=2))


@given(CONFIGS)
def test_a_configuration_crosses_to_its_worker_unchanged(config):
    assert from_json(to_json(config)) == config


@settings(max_examples=200)
@given(CONFIGS, st.data())
def test_a_changed_configuration_is_refused_with_a_value_error(config, data):
    """Dropped, added or retyped fields (a bool for an int too) and foreign kinds: ValueError, never a
    TypeError from the constructor or a configuration of the wrong types."""
    fields = json.loads(to_json(config))
    name = data.draw(st.sampled_from(sorted(fields)))
    change = data.draw(st.sampled_from(("drop", "add", "retype")))
    if change == "drop":
        del fields[name]
    elif change == "add":
        fields[name + "_extra"] = data.draw(JSON_VALUES)
    else:
        fields[name] = data.draw(JSON_VALUES.filter(lambda v: type(v) is not type(fields[name])))
    with pytest.raises(ValueError, match=r"^benchmark configuration: "):
        from_json(json.dumps(fields))


def test_configuration_refusals_say_what_is_wrong():
    with pytest.raises(ValueError, match=r"^benchmark configuration: not JSON: '\{oops'$"):
        from_json("{oops")
    with pytest.raises(ValueError, match="not an object naming one of ModelRun, OnnxRun, PipelineRun"):
        from_json('{"kind": "Shell"}')
    for kind in ("[]", "{}", "[\"ModelRun\"]"):  # the retyped kind Hypothesis found: once a TypeError
        with pytest.raises(ValueError, match="not an object naming one of ModelRun, OnnxRun, PipelineRun"):
            from_json(f'{{"kind": {kind}}}')
    fields = dict(json.loads(to_json(OnnxRun("onnxruntime", "res2net50", 2, 32, 1, 0))), batch_size=True)
    with pytest.raises(ValueError, match=r"^benchmark configuration: OnnxRun.batch_size must be int, got True$"):
        from_json(json.dumps(fields))


def test_worker_reports_a_bad_configuration_in_one_line(capsys):
    assert worker_main('{"kind": "OnnxRun"}') == 1
    out = capsys.readouterr().out
    assert out.startswith("BENCHMARK_ERROR benchmark configuration: OnnxRun takes the fields engine, model, ")
    assert len(out.splitlines()) == 1


def test_plan_puts_pipelines_first_one_batch_size_each(tmp_path):
    """--data_only --batch_size 4,8 --num_parallel_workers 1,2 --compare mindcv --host_normalize with one model:
    a pipeline per batch, worker count and implementation (host normalisation ours only), then the model
    in Graph mode alone, then ONNX Runtime."""
    args = argparse.Namespace(data_only=True, compare=MINDCV, dataset="imagefolder", data_dir=str(tmp_path),
                              batch_size=(4, 8), num_parallel_workers=(1, 2), data_batches=3, host_normalize=True,
                              image_size=32, steps=1, warmup=0, epoch_images=10, device_target="CPU", fuse_bn=False)
    configs = plan(["res2net50"], ["pynative", "graph"], args, engines=BENCHMARK_ENGINES)
    pipelines = [c for c in configs if isinstance(c, PipelineRun)]
    assert configs[:len(pipelines)] == pipelines and len(pipelines) == 8
    assert [(c.batch_size, c.num_parallel_workers, c.impl, c.host_normalize) for c in pipelines[:4]] == [
        (4, 1, OURS, True), (4, 1, MINDCV, False), (4, 2, OURS, True), (4, 2, MINDCV, False)]
    networks = configs[len(pipelines):]
    assert [(type(c).__name__, c.engine, c.batch_size) for c in networks] == [
        ("ModelRun", "mindspore", 4), ("ModelRun", "mindspore", 8), ("OnnxRun", "onnxruntime", 4),
        ("OnnxRun", "onnxruntime_int8", 4), ("OnnxRun", "onnxruntime", 8), ("OnnxRun", "onnxruntime_int8", 8)]
    assert {c.mode for c in networks if isinstance(c, ModelRun)} == {"graph"}
    assert all(type(getattr(c, "batch_size")) is int for c in configs)
    assert all(dataclasses.is_dataclass(c) for c in configs)


@pytest.mark.parametrize("argv, flag", [(["--data_dir", "photos"], "--data_dir"),
                                        (["--host_normalize"], "--host_normalize"),
                                        (["--num_parallel_workers", "4"], "--num_parallel_workers"),
                                        (["--data_batches", "5"], "--data_batches")])
def test_benchmark_refuses_pipeline_flags_without_data_only(argv, flag, capsys):
    code, err = run_tool("benchmark", ["--models", "res2net50"] + argv, capsys)
    assert code == 2 and err == f"error: {flag}: measures the input pipeline, so it needs --data_only\n"


def test_engine_names_are_defined_once():
    from mindcv_res2net.cli.parser import create_parser

    assert BENCHMARK_ENGINES[:len(INFERENCE_ENGINES)] == INFERENCE_ENGINES
    (engine,) = [a for a in create_parser()._actions if a.dest == "engine"]
    assert tuple(engine.choices) == INFERENCE_ENGINES
    assert check_engine("onnxruntime") == "onnxruntime"
    with pytest.raises(ValueError, match=r"^--engine must be one of mindspore, onnxruntime, got 'onnxruntime_int8'$"):
        check_engine("onnxruntime_int8")
