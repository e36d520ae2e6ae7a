"""A run's metrics.csv survives what a user's tools write: saved back by a spreadsheet (byte-order mark, line ends,
quoting, reordered and extra columns) it keeps every row on resume; a file that is not ours is kept beside the new
one; any bytes lose nothing, and the rows read back equal."""
import csv
import io
import os

import pytest
from hypothesis import example, given, settings, strategies as st

from helpers.runs import TINY_NET_RUN, metrics_epochs
from mindcv_res2net.cli.train import main as train_main
from mindcv_res2net.utils.logger import MetricsCSV, read_metrics


def _spreadsheet(text: str, bom=True, line_end="\r\n", quote=True, order=None, extra=None) -> bytes:
    """``text`` (a metrics.csv) as a spreadsheet program saves it back: a byte-order mark, its line ends,
    every field quoted, columns reordered and an extra column of notes, trailing blank lines."""
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header = order or rows[0]
    table = [dict(zip(rows[0], row)) for row in rows[1:]]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=line_end, quoting=csv.QUOTE_ALL if quote else csv.QUOTE_MINIMAL)
    writer.writerow(header + ([extra] if extra else []))
    for i, row in enumerate(table):
        writer.writerow([row[k] for k in header] + ([f"note, {i}"] if extra else []))
    return (b"\xef\xbb\xbf" if bom else b"") + (out.getvalue() + line_end * 2).encode()


def test_metrics_saved_back_by_a_spreadsheet_keep_every_row_on_resume(tmp_path, pynative, tiny_model):
    """metrics.csv saved back by a spreadsheet (byte-order mark, CRLF, every field quoted, columns reordered, a
    column of notes) is continued after its own bytes on resume, every earlier row kept."""
    out = str(tmp_path)
    assert train_main(TINY_NET_RUN + ["--epoch_size", "2", "--ckpt_save_dir", out]) == 0
    before = list(csv.DictReader(open(tmp_path / "metrics.csv", newline="")))
    order = ["img_per_s", "epoch", "val_top1", "train_loss", "train_top1", "lr", "val_loss", "val_top5",
             "epoch_seconds"]
    saved = _spreadsheet((tmp_path / "metrics.csv").read_text(), order=order, extra="comment")
    (tmp_path / "metrics.csv").write_bytes(saved)
    assert train_main(["--ckpt_save_dir", out, "--resume", "auto", "--epoch_size", "3"]) == 0
    assert (tmp_path / "metrics.csv").read_bytes().startswith(saved)  # continued after its own bytes
    fields, rows, problem = read_metrics(str(tmp_path / "metrics.csv"))
    assert problem is None and fields == order + ["comment"] and [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert [{k: r[k] for k in before[0]} for r in rows[:2]] == before and rows[1]["comment"] == "note, 1"
    assert not [n for n in os.listdir(tmp_path) if "unreadable" in n]


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\x00\x00garbage", b"loss;acc\n1;2\n",
                                     b"epoch,train_loss\n1,2.3\n"])
def test_metrics_that_are_not_ours_are_kept_beside_the_new_file(tmp_path, pynative, tiny_model, content, caplog):
    """A metrics.csv of random bytes or with a wrong header is kept beside the new file, and train.log says so."""
    out = str(tmp_path)
    assert train_main(TINY_NET_RUN + ["--epoch_size", "1", "--val_while_train", "false", "--ckpt_save_dir", out]) == 0
    (tmp_path / "metrics.csv").write_bytes(content)
    assert train_main(["--ckpt_save_dir", out, "--resume", "auto", "--epoch_size", "2"]) == 0
    kept = [n for n in os.listdir(tmp_path) if n.startswith("metrics.csv.unreadable-")]
    assert len(kept) == 1 and (tmp_path / kept[0]).read_bytes() == content
    assert metrics_epochs(tmp_path) == ["2"]
    line = [r for r in open(tmp_path / "train.log") if "cannot be read as this run's metrics" in r]
    assert len(line) == 1 and " WARNING " in line[0] and f"kept as {tmp_path / kept[0]}" in line[0]


ROW = st.fixed_dictionaries({
    "epoch": st.integers(1, 10 ** 6).map(str), "train_loss": st.floats(0, 50).map("{:.5f}".format),
    "train_top1": st.floats(0, 100).map("{:.3f}".format), "lr": st.floats(0, 1).map("{:.6g}".format),
    "val_loss": st.sampled_from(["", "2.30000"]), "val_top1": st.sampled_from(["", "12.500"]),
    "val_top5": st.sampled_from(["", "50.000"]), "epoch_seconds": st.floats(0, 1e5).map("{:.2f}".format),
    "img_per_s": st.floats(0.01, 1e5).map("{:.2f}".format)})


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(ROW, max_size=6), bom=st.booleans(), crlf=st.booleans(), quote=st.booleans(),
       extra=st.one_of(st.none(), st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=10)
                       .filter(lambda s: s.strip() and s.strip() not in MetricsCSV.FIELDS and "\x00" not in s)))
def test_metrics_rows_read_back_equal_also_after_a_spreadsheet_save(tmp_path_factory, rows, bom, crlf, quote, extra):
    path = str(tmp_path_factory.mktemp("m") / "metrics.csv")
    metrics = MetricsCSV(path)
    for row in rows:
        metrics.append(**row)
    fields, read, problem = read_metrics(path)
    assert (fields, read, problem) == (list(MetricsCSV.FIELDS), rows, None)
    with open(path, newline="") as f:
        saved = _spreadsheet(f.read(), bom=bom, line_end="\r\n" if crlf else "\n", quote=quote, extra=extra)
    with open(path, "wb") as f:
        f.write(saved)
    metrics = MetricsCSV(path, keep_until_epoch=10 ** 6)
    for row in rows[:1]:
        metrics.append(**row)
    fields, read, problem = read_metrics(path)
    assert problem is None and [{k: r[k] for k in MetricsCSV.FIELDS} for r in read] == rows + rows[:1]
    assert open(path, "rb").read().startswith(saved) and len(os.listdir(os.path.dirname(path))) == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.builds(lambda head, tail: head + tail, st.sampled_from([
    b"epoch,train_loss,train_top1,lr,val_loss,val_top1,val_top5,epoch_seconds,img_per_s\r\n1,2,3,4,,,,5,6\r\n",
    b"\xef\xbb\xbfepoch,train_loss,train_top1,lr,val_loss,val_top1,val_top5,epoch_seconds,img_per_s\n"]),
    st.binary(max_size=100)))
@example(b"epoch,train_loss,train_top1,lr,val_loss,val_top1,val_top5,epoch_seconds,img_per_s\r\n1,2,3,4,,,,5")
@example(b"\n\n")
def test_any_bytes_as_metrics_csv_lose_nothing(tmp_path_factory, content):
    """The run goes on (the file is continued or started again), the old bytes still exist byte for byte
    (as the new file's beginning, or set aside beside it), and the new file reads back as metrics."""
    folder = tmp_path_factory.mktemp("m")
    path = str(folder / "metrics.csv")
    with open(path, "wb") as f:
        f.write(content)
    row = dict(epoch=7, train_loss="1.0", train_top1="50.000", lr="0.1", epoch_seconds="1.00", img_per_s="9.00")
    metrics = MetricsCSV(path, keep_until_epoch=10 ** 6)
    metrics.append(**row)
    new = open(path, "rb").read()
    aside = [open(folder / n, "rb").read() for n in os.listdir(folder) if n != "metrics.csv"]
    assert new.startswith(content) or aside == [content]
    fields, rows, problem = read_metrics(path)
    assert problem is None and rows[-1] == dict({k: "" for k in fields}, **{k: str(v) for k, v in row.items()})
