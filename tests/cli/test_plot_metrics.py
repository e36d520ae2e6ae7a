"""tools/plot_metrics.py: a PNG of loss and top-1 per epoch from a run's metrics.csv, read as the training run
reads it; clear errors."""
import pytest

from helpers.programs import run, run_tool
from mindcv_res2net.cli.reports import metric_series

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
    assert code == 2 and "metrics.csv, epoch 1: train_loss is not a number: 'abc'" in err
    (tmp_path / "metrics.csv").write_text(HEADER)
    code, err = run_tool("plot_metrics", [str(tmp_path)], capsys)
    assert code == 2 and "no epochs recorded yet" in err
    assert not (tmp_path / "metrics.png").exists()


def test_plot_reads_the_metrics_as_the_run_does_and_leaves_out_a_row_cut_by_a_kill(tmp_path):
    """A spreadsheet's save (CRLF, quotes, columns reordered and added, epoch as 2.0) reads as the run reads it,
    and the row a killed run left half-written is left out with a warning, not plotted as a point."""
    columns = HEADER.strip().split(",")
    reordered = ["note"] + columns[::-1]
    rows = [dict(zip(columns, "1,2.1,30.5,0.001,1.9,40.0,80.0,10,5".split(","))),
            dict(zip(columns, "2.0,1.2,60.0,0.001,,,,10,5".split(",")))]
    lines = [",".join(f'"{name}"' for name in reordered)]
    lines += [",".join(["checked"] + [row[name] for name in columns[::-1]]) for row in rows]
    (tmp_path / "metrics.csv").write_bytes(("\r\n".join(lines) + "\r\n3,0.").encode())
    with pytest.warns(UserWarning, match=r"row 4 \('3,0\.'\) is not a complete metrics row; plotting its 2 "
                                         r"complete rows"):
        data = metric_series(str(tmp_path / "metrics.csv"))
    assert data == {"epoch": [1, 2], "train_loss": [2.1, 1.2], "val_loss": [1.9, None], "train_top1": [30.5, 60.0],
                    "val_top1": [40.0, None]}


def test_plot_metrics_takes_the_run_metrics_file(tmp_path, capsys):
    missing = str(tmp_path / "run" / "metrics.csv")
    code, err = run_tool("plot_metrics", [missing], capsys)
    assert code == 2 and err == (f"error: {missing}: file not found (give a train.py --ckpt_save_dir holding "
                                 "metrics.csv, or that metrics.csv)\n")
