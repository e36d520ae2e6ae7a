"""The benchmark package's plan (typed configurations, their JSON to the worker) and the cli's refusals
(the import direction of every module: test_layout.py)."""
import dataclasses
import json
import re
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.programs import run_tool
from mindcv_res2net.benchmark.plan import (BENCHMARK_FLAGS, DATA_ONLY, MINDCV, OURS, BenchmarkSettings, ModelRun,
                                           OnnxRun, PipelineRun, check_request, from_json, plan, to_json)
from mindcv_res2net.benchmark.runner import worker_main
from mindcv_res2net.utils.engines import BENCHMARK_ENGINES, INFERENCE_ENGINES, check_engine
from mindcv_res2net.config import ConfigError
from mindcv_res2net.data import DatasetError
from mindcv_res2net.utils.errors import UserError

TEXT = st.text(max_size=12)
NUMBER = st.integers(0, 1 << 40)
CONFIGS = st.one_of(
    st.builds(ModelRun, impl=TEXT, model=TEXT, mode=TEXT, batch_size=NUMBER, image_size=NUMBER, steps=NUMBER,
              warmup=NUMBER, epoch_images=NUMBER, device_target=TEXT, fuse_bn=st.booleans()),
    st.builds(OnnxRun, engine=TEXT, model=TEXT, batch_size=NUMBER, image_size=NUMBER, steps=NUMBER, warmup=NUMBER),
    st.builds(PipelineRun, impl=TEXT, dataset=TEXT, data_dir=TEXT, batch_size=NUMBER, image_size=NUMBER,
              num_parallel_workers=NUMBER, data_batches=NUMBER, host_normalize=st.booleans(), device_target=TEXT))
JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), TEXT,
                        st.lists(st.integers(), max_size=2))


@given(CONFIGS)
def test_a_configuration_crosses_to_its_worker_unchanged(config):
    assert from_json(to_json(config)) == config


@settings(max_examples=200)
@given(CONFIGS, st.data())
def test_a_configuration_with_other_fields_is_refused_in_one_line(config, data):
    """Dropped or added fields: a ``UserError`` naming the kind's fields, never a TypeError from the
    constructor. The values of our own fields are not checked again."""
    fields = json.loads(to_json(config))
    name = data.draw(st.sampled_from(sorted(set(fields) - {"kind"})))
    if data.draw(st.booleans()):
        del fields[name]
    else:
        fields[name + "_extra"] = data.draw(JSON_VALUES)
    with pytest.raises(UserError, match=rf"^benchmark configuration: {fields['kind']} takes the fields "):
        from_json(json.dumps(fields))


@given(st.one_of(st.text(max_size=40), JSON_VALUES.map(json.dumps),
                 st.dictionaries(TEXT, JSON_VALUES, max_size=3).map(json.dumps)))
def test_any_text_is_a_configuration_or_a_one_line_user_error(text):
    try:
        from_json(text)
    except UserError as exc:
        assert str(exc).startswith("benchmark configuration: ") and "\n" not in str(exc)


def test_configuration_refusals_say_what_is_wrong():
    with pytest.raises(UserError, match=r"^benchmark configuration: not JSON: '\{oops'$"):
        from_json("{oops")
    with pytest.raises(UserError, match="not an object naming one of ModelRun, OnnxRun, PipelineRun"):
        from_json('{"kind": "Shell"}')
    for kind in ("[]", "{}", "[\"ModelRun\"]"):  # the retyped kind Hypothesis found: once a TypeError
        with pytest.raises(UserError, match="not an object naming one of ModelRun, OnnxRun, PipelineRun"):
            from_json(f'{{"kind": {kind}}}')


def test_worker_reports_a_bad_configuration_in_one_line(capsys):
    assert worker_main('{"kind": "OnnxRun"}') == 1
    out = capsys.readouterr().out
    assert out.startswith("BENCHMARK_ERROR benchmark configuration: OnnxRun takes the fields engine, model, ")
    assert len(out.splitlines()) == 1


def test_worker_reports_bad_input_in_one_line_and_a_bug_with_its_traceback(monkeypatch, capsys):
    """A ``UserError`` while measuring is the worker's one result line; any other exception is a bug and
    propagates (the worker process prints its traceback)."""
    from mindcv_res2net.benchmark import runner

    config = to_json(OnnxRun(engine="onnxruntime", model="res2net50", batch_size=2, image_size=32, steps=1, warmup=0))

    def refuse(run):
        raise DatasetError("photos/train holds too few images")

    monkeypatch.setitem(runner._MEASURE, OnnxRun, refuse)
    assert worker_main(config) == 1
    assert capsys.readouterr().out == "BENCHMARK_ERROR photos/train holds too few images\n"
    monkeypatch.setitem(runner._MEASURE, OnnxRun, lambda run: {}["missing"])
    with pytest.raises(KeyError):
        worker_main(config)


@pytest.mark.parametrize("stdout, returncode, error, message", [
    ("BENCHMARK_ERROR --data_dir photos: no images\n", 1, UserError,
     "measuring mindcv_res2net res2net50 on onnxruntime failed: --data_dir photos: no images"),
    ("", 1, RuntimeError, "measuring mindcv_res2net res2net50 on onnxruntime failed: worker exit code 1 (its "
                          "traceback is above)")])
def test_a_failed_worker_is_a_user_error_only_when_it_says_why(monkeypatch, stdout, returncode, error, message):
    from mindcv_res2net.benchmark import runner

    monkeypatch.setattr(runner.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, returncode, stdout))
    config = OnnxRun(engine="onnxruntime", model="res2net50", batch_size=2, image_size=32, steps=1, warmup=0)
    with pytest.raises(error) as raised:
        runner.run_worker(config)
    assert type(raised.value) is error and str(raised.value) == message


@pytest.mark.parametrize("argv, message", [
    (["--modes", "eager"], "--modes takes graph and/or pynative, got 'eager'"),
    (["--models", "res2net50,"], "--models 'res2net50,': an empty name"),
    (["--steps", "0"], "--steps >= 1, --warmup >= 0 and --rounds >= 1 are required"),
    (["--compare", "timm"], "--compare takes 'mindcv', got 'timm'"),
    (["--engines", "tensorrt"], "--engines takes mindspore, onnxruntime, onnxruntime_int8, got 'tensorrt'"),
    (["--data_only", "--dataset", "cifar10", "--data_dir", "x"], "--data_only measures image folders: --dataset "
                                                                 "imagenet or imagefolder, got 'cifar10'"),
    (["--data_only", "--data_dir", "/nonexistent"], "--data_dir /nonexistent: no train/ folder"),
    (["--data_dir", "photos"], "--data_dir: measures the input pipeline, so it needs --data_only")])
def test_benchmark_flag_refusals_are_config_errors(argv, message):
    from mindcv_res2net.cli import benchmark

    with pytest.raises(ConfigError, match=f"^{re.escape(message)}"):
        benchmark.main(argv)


def test_compare_mindcv_checks_mindcv_before_any_worker_also_for_data_only(monkeypatch, tmp_path):
    from mindcv_res2net.benchmark import runner
    from mindcv_res2net.cli import benchmark

    def not_installed():
        raise UserError("--compare mindcv needs mindcv installed")

    def no_worker(config):
        raise AssertionError(f"a worker started for {config}")

    monkeypatch.setattr(runner, "mindcv_models", not_installed)
    monkeypatch.setattr(runner, "run_worker", no_worker)
    (tmp_path / "train").mkdir()
    with pytest.raises(UserError, match="^--compare mindcv needs mindcv installed$"):
        benchmark.main(["--data_only", "--data_dir", str(tmp_path), "--compare", "mindcv"])


def test_the_benchmarks_modes_are_the_devices_modes_by_name():
    """``--modes graph`` runs MindSpore's Graph mode and ``pynative`` PyNative: one table of mode names."""
    import mindspore as ms

    from mindcv_res2net.utils.device import MODE_BY_NAME, MODES

    assert {name: MODES[number] for name, number in MODE_BY_NAME.items()} == {
        "graph": ms.GRAPH_MODE, "pynative": ms.PYNATIVE_MODE}


def test_plan_puts_pipelines_first_one_batch_size_each(tmp_path):
    """--data_only --batch_size 4,8 --num_parallel_workers 1,2 --compare mindcv --host_normalize with one model:
    a pipeline per batch, worker count and implementation (host normalisation ours only), then the model
    in Graph mode alone, then ONNX Runtime."""
    (tmp_path / "train").mkdir()
    request = check_request(BenchmarkSettings(
        data_only=True, compare=MINDCV, dataset="imagefolder", data_dir=str(tmp_path), batch_size=(4, 8),
        num_parallel_workers="1,2", data_batches=3, host_normalize=True, models="res2net50", modes="pynative,graph",
        image_size=32, steps=1, warmup=0, epoch_images=10, engines=",".join(BENCHMARK_ENGINES)))
    configs = plan(request)
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


@pytest.fixture
def requested(monkeypatch):
    """The checked requests ``benchmark.main`` hands to the runner, kept instead of measured."""
    from mindcv_res2net.benchmark import runner

    kept = []
    monkeypatch.setattr(runner, "run", lambda request: kept.append(request) or 0)
    return kept


def test_benchmark_switches_take_true_false_or_nothing(requested):
    """As train.py's: ``--fuse_bn`` alone is true, ``--fuse_bn false`` false; abbreviations still work."""
    from mindcv_res2net.cli import benchmark

    for argv, fuse_bn, grad_checkpointing in ((["--fuse_bn"], True, False), (["--fuse_bn", "false"], False, False),
                                              (["--grad_checkpointing", "yes", "--fuse_bn=true"], True, True)):
        assert benchmark.main(argv) == 0
        settings = requested[-1].settings
        assert (settings.fuse_bn, settings.grad_checkpointing) == (fuse_bn, grad_checkpointing), argv
    assert benchmark.main(["--model", "res2net50_v1b"]) == 0 and requested[-1].models == ("res2net50_v1b",)
    with pytest.raises(ConfigError, match=r"^argument --fuse_bn: expected a boolean \(true/false\), got 'maybe'$"):
        benchmark.main(["--fuse_bn", "maybe"])


def test_the_request_is_read_once_from_settings_that_stay_as_given(requested, tmp_path):
    from mindcv_res2net.cli import benchmark

    (tmp_path / "train").mkdir()
    assert benchmark.main(["--device_target", "cpu", "--modes", "GRAPH", "--batch_size", "4,8", "--data_only",
                           "--data_dir", str(tmp_path), "--num_parallel_workers", "1, 2"]) == 0
    (request,) = requested
    assert (request.device_target, request.models, request.modes, request.engines, request.workers) == (
        "CPU", (), ("graph",), ("mindspore",), (1, 2))
    assert request.settings == BenchmarkSettings(device_target="cpu", modes="GRAPH", batch_size=(4, 8), data_only=True,
                                                 data_dir=str(tmp_path), num_parallel_workers="1, 2")
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.settings.models = "res2net50"  # type: ignore[misc]


def test_every_benchmark_setting_is_one_flag_with_its_default():
    from mindcv_res2net.cli import benchmark

    fields = dataclasses.fields(BenchmarkSettings)
    assert list(BENCHMARK_FLAGS) == [f.name for f in fields]  # declared in --help order
    assert all(BENCHMARK_FLAGS[f.name].default == f.default and BENCHMARK_FLAGS[f.name].help for f in fields)
    assert benchmark.parse_settings([]) == BenchmarkSettings()


DATA_ONLY_FLAGS = [name for name, flag in BENCHMARK_FLAGS.items() if flag.group == DATA_ONLY and name != "data_only"]


def test_the_data_only_flags_are_one_help_group(capsys):
    """--help lists the flags that need --data_only under one heading, and only those."""
    from mindcv_res2net.cli import benchmark

    with pytest.raises(SystemExit):
        benchmark.main(["--help"])
    group = capsys.readouterr().out.split(f"\n{DATA_ONLY}:\n", 1)[1]
    assert re.findall(r"^  --(\w+)", group, re.M) == ["data_only"] + DATA_ONLY_FLAGS
    assert DATA_ONLY_FLAGS == ["dataset", "data_dir", "num_parallel_workers", "host_normalize", "full_decode", "data_batches"]


@pytest.mark.parametrize("name", DATA_ONLY_FLAGS)
def test_every_flag_of_the_data_only_group_is_refused_without_data_only(name):
    """The refusal reads the group of the flag table: a value other than the default would be ignored."""
    from mindcv_res2net.cli import benchmark

    default = BENCHMARK_FLAGS[name].default
    other = "true" if isinstance(default, bool) else str(default + 1) if isinstance(default, int) else default + "x"
    with pytest.raises(ConfigError, match=f"^--{name}: measures the input pipeline, so it needs --data_only$"):
        benchmark.main([f"--{name}", other])
    with pytest.raises(ConfigError, match=r"^--modes takes"):  # at its default it is no error
        benchmark.main([f"--{name}", str(default).lower(), "--modes", "eager"])
