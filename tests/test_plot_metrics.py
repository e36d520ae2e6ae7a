"""tools/plot_metrics.py: a PNG of loss and top-1 per epoch from a run's metrics.csv; clear errors."""
import pytest

from conftest import run, run_tool

HEADER = "epoch,train_loss,train_top1,lr,val_loss,val_top1,val_top5,epoch_seconds,img_per_s\n"


@pytest.mark.e2e
def test_plot_from_metrics_csv(tmp_path):
    pytest.importorskip("matplotlib")
    (tmp_path / "metrics.csv").write_text(HEADER + "1,2.1,30.5,0.001,1.9,40.0,80.0,10,5\n"
                                          "2,1.2,60.0,0.001,,,,10,5\n3,0.6,85.0,0.0005,0.5,88.0,99.0,10,5\n")
    proc = run(["tools/plot_metrics.py", str(tmp_path / "metrics.csv"), "--title", "digits"])  # or the folder
    assert proc.returncode == 0, proc.stderr[-2000:]
    png = (tmp_path / "metrics.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1000, 400)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv", "metrics.png"]


def test_plot_errors(tmp_path, capsys):
    code, err = run_tool("plot_metrics", [str(tmp_path)], capsys)
    assert code == 2 and err.endswith(f"error: {tmp_path}/metrics.csv: file not found (give a train.py --ckpt_save_dir "
                                      "holding metrics.csv, or that metrics.csv)\n")
    (tmp_path / "metrics.csv").write_text(HEADER + "1,abc,30,0.1,,,,1,1\n")
    code, err = run_tool("plot_metrics", [str(tmp_path)], capsys)
    assert code == 2 and "line 2: train_loss is not a number: 'abc'" in err
    (tmp_path / "metrics.csv").write_text(HEADER)
    code, err = run_tool("plot_metrics", [str(tmp_path)], capsys)
    assert code == 2 and "no epochs recorded yet" in err
    assert not (tmp_path / "metrics.png").exists()
