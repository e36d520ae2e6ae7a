"""tools/benchmark.py on a tiny configuration: every figure present and plausible, clear errors."""
import argparse
import json

import pytest

from helpers.programs import assert_quiet_exit, load_script, run, run_tool


@pytest.mark.e2e
def test_benchmark_tiny_graph_run(tmp_path):
    out = tmp_path / "bench.json"
    proc = run(["tools/benchmark.py", "--models", "res2net50_v1b", "--modes", "graph", "--batch_size", "2",
                "--image_size", "32", "--steps", "2", "--warmup", "0", "--epoch_images", "1000", "--json", str(out)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_quiet_exit(proc)
    data = json.loads(out.read_text())
    assert data["machine"]["cores"] >= 1 and data["machine"]["onednn_max_cpu_isa"] == "AVX2"
    (row,) = data["results"]
    assert row["model"] == "res2net50_v1b" and row["mode"] == "graph" and row["params"] == 25718352
    assert 0 < row["gflops"] < 1 and row["train_compile_s"] > 0 and row["infer_ms_per_image_b1"] > 0
    assert abs(row["train_s_per_epoch"] - 1000 / row["train_img_per_s"]) < 1e-6
    assert abs(row["train_img_per_s"] - 2000 / row["train_ms_per_step"]) < 1e-6
    assert "| res2net50_v1b | graph | 2 | 32 | 25.72 |" in proc.stdout and "extrapolated" in proc.stdout


@pytest.mark.e2e
def test_benchmark_compare_mindcv_and_folded_rows(tmp_path):
    pytest.importorskip("mindcv")
    out = tmp_path / "bench.json"
    proc = run(["tools/benchmark.py", "--models", "res2net50", "--modes", "pynative", "--batch_size", "2",
                "--image_size", "32", "--steps", "1", "--warmup", "0", "--compare", "mindcv", "--fuse_bn",
                "--json", str(out)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["machine"]["mindcv"] == "0.3.0"
    rows = {r["impl"]: r for r in data["results"]}
    assert set(rows) == {"mindcv_res2net", "mindcv_res2net (BN folded)", "mindcv"}
    assert rows["mindcv_res2net"]["params"] == rows["mindcv"]["params"] == 25699120  # = the parity manifest
    assert rows["mindcv"]["train_img_per_s"] > 0
    folded = rows["mindcv_res2net (BN folded)"]
    assert folded["train_img_per_s"] is None and folded["infer_ms_per_image_b1"] > 0
    assert "| res2net50 | pynative | 2 |" in proc.stdout.split("Ours relative to mindcv")[1]


def test_benchmark_plan_skips_names_mindcv_lacks(capsys):
    from mindcv_res2net.benchmark.plan import BenchmarkSettings, check_request, plan
    request = check_request(BenchmarkSettings(models="res2net50,res2next50", modes="graph,pynative", batch_size=(2,),
                                              image_size=32, steps=1, warmup=0, epoch_images=10, fuse_bn=True))
    configs = plan(request, mindcv_models={"res2net50", "res2net101"})
    assert [(c.impl, c.model, c.mode, c.fuse_bn) for c in configs] == [
        ("mindcv_res2net", "res2net50", "graph", True), ("mindcv", "res2net50", "graph", False),
        ("mindcv_res2net", "res2net50", "pynative", True), ("mindcv", "res2net50", "pynative", False),
        ("mindcv_res2net", "res2next50", "graph", True), ("mindcv_res2net", "res2next50", "pynative", True)]
    assert "note: mindcv has no res2next50; measuring ours only" in capsys.readouterr().err
    assert len(plan(check_request(BenchmarkSettings(modes="graph")))) == 1  # no --compare: ours only


def test_benchmark_bad_arguments(capsys):
    code, err = run_tool("benchmark", ["--models", "res2net5"], capsys)
    assert code == 2 and err.startswith("error: unknown model 'res2net5'; did you mean")
    code, err = run_tool("benchmark", ["--modes", "eager"], capsys)
    assert code == 2 and "error: --modes takes graph and/or pynative, got 'eager'" in err
    code, err = run_tool("benchmark", ["--compare", "timm"], capsys)
    assert code == 2 and "error: --compare takes 'mindcv', got 'timm'" in err


@pytest.mark.e2e
def test_benchmark_data_only_measures_pipelines_without_a_network(tmp_path, capsys):
    """--data_only: our pipeline and mindcv's on the same photo folder, img/s in the table and the JSON;
    no network is built without --models. Errors before any worker starts are one line."""
    pytest.importorskip("mindcv")
    photo_tool = load_script("tools/make_photo_folder.py")
    photo_tool.make_photo_folder(str(tmp_path / "photos"), classes=2, images_per_class=12, seed=0)
    out = tmp_path / "data.json"
    proc = run(["tools/benchmark.py", "--data_only", "--data_dir", str(tmp_path / "photos"), "--batch_size", "4",
                "--image_size", "64", "--num_parallel_workers", "1", "--data_batches", "3", "--compare", "mindcv",
                "--json", str(out)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_quiet_exit(proc)
    data = json.loads(out.read_text())
    assert data["results"] == [] and data["data_img_s"] > 0  # no network measured
    rows = {r["impl"]: r for r in data["data_results"]}
    assert set(rows) == {"mindcv_res2net", "mindcv"}
    for row in rows.values():
        assert row["batches_timed"] == 3 and row["data_img_s"] > 0 and row["batch_shape"] == [4, 3, 64, 64]
        assert row["peak_host_memory_mb"] > 0
    assert rows["mindcv_res2net"]["batch_dtype"] == "UInt8" and rows["mindcv"]["batch_dtype"] == "Float32"
    assert rows["mindcv_res2net"]["setup_s"] > 0  # the pre-scan of the 24 files
    assert "| mindcv_res2net | 1 | 4 | 64 |" in proc.stdout and "params" not in proc.stdout
    proc = run(["tools/benchmark.py", "--data_only", "--data_dir", str(tmp_path / "photos"), "--batch_size", "4",
                "--image_size", "32", "--num_parallel_workers", "1,2", "--data_batches", "2", "--host_normalize"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| mindcv_res2net | 1 | 4 | 32 |" in proc.stdout and "| mindcv_res2net | 2 | 4 | 32 |" in proc.stdout
    assert "Float32 (4, 3, 32, 32)" in proc.stdout
    code, err = run_tool("benchmark", ["--data_only", "--data_dir", str(tmp_path / "photos"),
                                       "--num_parallel_workers", "1,x"], capsys)
    assert code == 2 and "--num_parallel_workers takes integers separated by commas" in err
    code, err = run_tool("benchmark", ["--data_only", "--data_dir", str(tmp_path / "photos"),
                                       "--num_parallel_workers", "2,0"], capsys)
    assert code == 2 and "--num_parallel_workers and --data_batches must be at least 1" in err
    code, err = run_tool("benchmark", ["--data_only", "--data_dir", str(tmp_path)], capsys)
    assert code == 2 and err.strip().endswith("no train/ folder (expected train/<class>/<image>)")
    code, err = run_tool("benchmark", ["--data_only"], capsys)
    assert code == 2 and "--data_only needs --data_dir" in err and len(err.strip().splitlines()) == 1


def test_benchmark_batch_size_list_and_ratio_against_mindspore_graph(capsys):
    """--batch_size 1,8: every configuration once per batch size; the engine table divides each row's img/s by
    MindSpore Graph's (BatchNorm folded where measured) of the same model and batch, as the table of
    docs/deploy_onnxruntime_int8.md."""
    from mindcv_res2net.benchmark.plan import BenchmarkSettings, batch_sizes, check_request, plan
    from mindcv_res2net.benchmark.tables import engine_ratio_table

    settings = BenchmarkSettings(batch_size=batch_sizes("1,8"), image_size=32, steps=1, warmup=0, epoch_images=10,
                                 fuse_bn=True, modes="graph", engines="mindspore,onnxruntime")
    configs = plan(check_request(settings))
    assert [(c.batch_size, c.engine) for c in configs] == [
        (1, "mindspore"), (8, "mindspore"), (1, "onnxruntime"), (8, "onnxruntime")]

    def row(impl, engine, batch, img_s, mode="graph"):
        return dict(impl=impl, engine=engine, precision="fp32", model="res2net50", mode=mode, batch_size=batch,
                    infer_img_per_s=img_s, infer_ms_per_image_b1=10.0)
    rows = [row("mindcv_res2net", "mindspore", 8, 18.0), row("mindcv_res2net (BN folded)", "mindspore", 8, 20.0),
            row("mindcv_res2net (onnxruntime, BN folded)", "onnxruntime", 8, 50.0, mode="—"),
            row("mindcv_res2net", "mindspore", 1, 5.0, mode="pynative")]  # no Graph baseline at batch 1
    lines = engine_ratio_table(rows).splitlines()
    assert lines[2].endswith("| 0.90x, BN folded |") and lines[3].endswith("| 1.00x, BN folded |")
    assert lines[4].endswith("| 2.50x, BN folded |") and len(lines) == 5
    assert lines[0].startswith("| model | batch | implementation | engine | mode |")
    assert lines[2].startswith("| res2net50 | 8 | mindcv_res2net | mindspore | graph |")
    assert lines[4].startswith("| res2net50 | 8 | mindcv_res2net (onnxruntime, BN folded) | onnxruntime | — |")
    assert engine_ratio_table(rows[3:]) == ""
    for bad, message in (("0,2", "batch sizes must be at least 1, got '0,2'"),
                         ("8,x", "takes integers separated by commas, got '8,x'")):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            batch_sizes(bad)


def test_benchmark_prints_pynative_and_graph_side_by_side_with_the_ratio():
    """Rows of both modes: the table docs/benchmark.md shows (PyNative and Graph train s/epoch and infer ms side
    by side) with Graph's speed-up over PyNative; the inference-only folded row has no train figure."""
    from mindcv_res2net.benchmark.tables import mode_table, report

    def row(impl, mode, epoch_s, infer_ms):
        return dict(impl=impl, engine="mindspore", precision="fp32", model="res2net50", mode=mode, batch_size=32,
                    image_size=224, train_s_per_epoch=epoch_s, infer_ms_per_image_b1=infer_ms, params=25.7e6,
                    gflops=4.3, infer_compile_s=6.5, train_compile_s=None if epoch_s is None else 23.7,
                    train_ms_per_step=None if epoch_s is None else 1000.0, infer_ms_per_batch=3000.0,
                    train_img_per_s=None if epoch_s is None else 32.0, infer_img_per_s=10.0, peak_host_memory_mb=5732.0)
    rows = [row("mindcv_res2net", "pynative", 898539.4, 1214.0), row("mindcv_res2net", "graph", 389602.0, 115.0),
            row("mindcv_res2net (BN folded)", "pynative", None, 405.0),
            row("mindcv_res2net (BN folded)", "graph", None, 100.0), row("mindcv", "graph", 480000.0, 165.0)]
    lines = mode_table(rows).splitlines()
    assert lines[0] == ("| implementation | model | batch | px | PyNative train (s/epoch) | PyNative infer (ms) | "
                        "Graph train (s/epoch) | Graph infer (ms) | Graph/PyNative train | Graph/PyNative infer |")
    assert lines[2] == "| mindcv_res2net | res2net50 | 32 | 224 | 898,539 | 1214.0 | 389,602 | 115.0 | 2.31x | 10.56x |"
    assert lines[3] == "| mindcv_res2net (BN folded) | res2net50 | 32 | 224 | — | 405.0 | — | 100.0 | — | 4.05x |"
    assert len(lines) == 4  # mindcv was measured in Graph mode only
    assert mode_table(rows[1:2] + rows[4:]) == ""
    printed = report(rows, [], "machine")
    assert "\n\nPyNative and Graph (infer: ms per image at batch 1; Graph/PyNative > 1: Graph faster):\n\n" + \
        "\n".join(lines) + "\n\n" in printed
