"""Outputs never replace what is not theirs: a program's output paths are checked before its work starts
(never its input, a folder, a read-only file or an unwritable place); a link's target is replaced and the
link kept; a device, a named pipe or stdout receives the bytes and is never renamed over."""
import os
import socket
import stat
import sys
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.programs import run_tool
from mindcv_res2net.cli.reports import metric_series
from mindcv_res2net.deploy.predict import read_labels
from mindcv_res2net.utils.cli import run_cli
from mindcv_res2net.utils.fileio import WriteError, atomic_path, output_target

ROOT = os.geteuid() == 0


@pytest.fixture
def tiny_ckpt(tiny_model, tmp_path):
    """A tiny_net weight file (20000 classes: 320 kB, more than a pipe holds at once) and its bytes."""
    from mindcv_res2net.models import create_model
    from mindcv_res2net.weights import save_weights

    model = create_model(tiny_model, num_classes=20000)
    path = tmp_path / "src.ckpt"
    save_weights({p.name: p.asnumpy() for p in model.get_parameters()}, str(path))
    return path


def convert(src, dst, capsys):
    return run_tool("convert_weights", [str(src), str(dst), "--model", "tiny_net"], capsys)


def converted_bytes(src, tmp_path, capsys) -> bytes:
    """What the converter writes for ``src`` into a new regular file."""
    folder = tmp_path / "reference"
    folder.mkdir()
    assert convert(src, folder / "ref.ckpt", capsys)[0] == 0
    return (folder / "ref.ckpt").read_bytes()


def test_convert_refuses_its_own_input_also_through_links(tiny_ckpt, tmp_path, capsys):
    before = tiny_ckpt.read_bytes()
    os.link(tiny_ckpt, tmp_path / "hard.ckpt")
    os.symlink(tiny_ckpt, tmp_path / "soft.ckpt")
    for dst, named in ((tiny_ckpt, ""), (tmp_path / "hard.ckpt", f" ({tiny_ckpt})"),
                       (tmp_path / "soft.ckpt", f" ({tiny_ckpt})")):
        code, err = convert(tiny_ckpt, dst, capsys)
        assert code == 2 and err == f"error: dst {dst}: is the input file{named}; give another output path\n"
    code, err = convert(tmp_path / "soft.ckpt", tiny_ckpt, capsys)  # the input given through the link
    assert code == 2 and "is the input file" in err
    assert tiny_ckpt.read_bytes() == before and os.stat(tiny_ckpt).st_nlink == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hard.ckpt", "soft.ckpt", "src.ckpt"]


def test_convert_through_a_symlink_replaces_its_target_and_keeps_the_link(tiny_ckpt, tmp_path, capsys):
    expected = converted_bytes(tiny_ckpt, tmp_path, capsys)
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "old.ckpt").write_bytes(b"old")
    os.symlink(tmp_path / "store" / "old.ckpt", tmp_path / "link.ckpt")
    os.symlink(tmp_path / "store" / "new.ckpt", tmp_path / "dangling.ckpt")  # cp and the shell create the target
    for link, target in (("link.ckpt", "old.ckpt"), ("dangling.ckpt", "new.ckpt")):
        assert convert(tiny_ckpt, tmp_path / link, capsys)[0] == 0
        assert os.readlink(tmp_path / link) == str(tmp_path / "store" / target)
        assert (tmp_path / "store" / target).read_bytes() == expected
    assert sorted(os.listdir(tmp_path / "store")) == ["new.ckpt", "old.ckpt"]


@pytest.mark.skipif(not ROOT, reason="making a device node needs root")
def test_convert_into_a_null_device_leaves_it_a_device(tiny_ckpt, tmp_path, capsys):
    """/dev/null's twin (character device 1:3): the real one was replaced by a 95 MB regular file."""
    null = tmp_path / "null"
    try:
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("this file system refuses device nodes")
    mode = os.stat(null).st_mode
    code, err = convert(tiny_ckpt, null, capsys)
    assert code == 0, err
    info = os.stat(null)
    assert stat.S_ISCHR(info.st_mode) and info.st_rdev == os.makedev(1, 3) and info.st_mode == mode  # never chmod-ed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null", "src.ckpt"]


def test_convert_into_a_named_pipe_streams_the_whole_file(tiny_ckpt, tmp_path, capsys):
    expected = converted_bytes(tiny_ckpt, tmp_path, capsys)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []

    def read():
        with open(fifo, "rb") as f:
            received.append(f.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    code, err = convert(tiny_ckpt, fifo, capsys)
    reader.join(timeout=30)
    assert code == 0, err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and received == [expected]


def test_convert_to_stdout_writes_the_file_alone_on_stdout(tiny_ckpt, tmp_path, capfdbinary):
    """``/dev/stdout``'s twin (a link to /proc/self/fd/1): the file on stdout, the 'wrote' line on stderr."""
    import convert_weights

    expected = converted_bytes(tiny_ckpt, tmp_path, capfdbinary)
    os.symlink("/proc/self/fd/1", tmp_path / "stdout")
    capfdbinary.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: convert_weights.main([str(tiny_ckpt), str(tmp_path / "stdout"), "--model", "tiny_net"]))
    out, err = capfdbinary.readouterr()
    assert exit_info.value.code == 0 and out == expected
    assert err == f"wrote {tmp_path / 'stdout'} for tiny_net\n".encode()
    assert os.path.islink(tmp_path / "stdout")
    assert output_target("/dev/stdout").stream and output_target("/dev/stdout").fd == 1


@pytest.mark.parametrize("kind", ["folder", "block device", "socket"])
def test_atomic_path_refuses_what_is_not_a_file(tmp_path, kind):
    path = tmp_path / "out"
    if kind == "folder":
        path.mkdir()
    elif kind == "block device":
        if not ROOT:
            pytest.skip("making a device node needs root")
        os.mknod(path, stat.S_IFBLK | 0o600, os.makedev(7, 250))  # a loop device number: never opened here
    else:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(path))  # the socket file stays after the socket closes
    with pytest.raises(WriteError, match=f"^cannot write {path}: is a {kind}$"):
        with atomic_path(str(path)) as tmp:
            open(tmp, "w").write("data")
    assert os.listdir(tmp_path) == ["out"] and not stat.S_ISREG(os.lstat(path).st_mode)


@pytest.fixture
def no_measuring(monkeypatch):
    """The benchmark's workers raise: a test passes only if the run stops before measuring anything."""
    import mindcv_res2net.benchmark.runner as runner

    def measured(config):
        raise AssertionError(f"measured {config} although the run should have stopped")

    monkeypatch.setattr(runner, "run_worker", measured)


def test_benchmark_checks_its_json_before_measuring(tmp_path, capsys, no_measuring):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("")
    (tmp_path / "read_only.json").write_text("{}")
    (tmp_path / "read_only.json").chmod(0o444)
    cases = [("folder", "is a folder"), ("file/bench.json", f"{tmp_path}/file is not a folder"),
             ("read_only.json", "is read-only; give another output path, or make it writable")]
    for name, why in cases:
        code, err = run_tool("benchmark", ["--json", str(tmp_path / name)], capsys)
        assert code == 2 and err == f"error: --json {tmp_path / name}: {why}\n", err
    if os.path.isdir("/sys/kernel"):  # sysfs: no file can be created there, not even by root
        code, err = run_tool("benchmark", ["--json", "/sys/kernel/bench.json"], capsys)
        assert code == 2 and err.startswith("error: --json /sys/kernel/bench.json: cannot create a file in "
                                            "/sys/kernel (")
    assert (tmp_path / "read_only.json").read_text() == "{}"


def test_benchmark_refuses_a_read_only_folder_before_measuring(tmp_path, capsys, no_measuring):
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    try:
        (tmp_path / "ro" / "probe").write_text("")
    except PermissionError:
        pass
    else:
        pytest.skip("this process writes into read-only folders (root with CAP_DAC_OVERRIDE)")
    code, err = run_tool("benchmark", ["--json", str(tmp_path / "ro" / "bench.json")], capsys)
    assert code == 2 and f"cannot create a file in {tmp_path / 'ro'} (Permission denied)" in err


def test_benchmark_refuses_empty_lists(tmp_path, capsys, no_measuring):
    (tmp_path / "train").mkdir()
    cases = [(["--models", ""], "--models ''"), (["--models", "res2net50,,"], "--models 'res2net50,,'"),
             (["--models", "res2net50,"], "--models 'res2net50,'"), (["--modes", ""], "--modes ''"),
             (["--engines", " , mindspore"], "--engines ' , mindspore'"),
             (["--data_only", "--data_dir", str(tmp_path), "--models", ""], "--models ''")]
    for argv, shown in cases:
        code, err = run_tool("benchmark", argv, capsys)
        assert code == 2 and err == f"error: {shown}: an empty name; give a comma-separated list without empty items\n"
    code, err = run_tool("benchmark", ["--data_only", "--data_dir", str(tmp_path), "--num_parallel_workers", ""],
                         capsys)
    assert code == 2 and err == "error: --num_parallel_workers takes integers separated by commas, got ''\n"


HEADER = "epoch,train_loss,train_top1,lr,val_loss,val_top1,val_top5,epoch_seconds,img_per_s\n"


def test_plot_metrics_checks_its_files_before_needing_matplotlib(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # not installed: importing it raises ImportError
    code, err = run_tool("plot_metrics", [str(tmp_path / "missing")], capsys)
    assert code == 2 and err.startswith(f"error: {tmp_path}/missing/metrics.csv: file not found")
    (tmp_path / "metrics.csv").write_text(HEADER + "1,2.1,30.5,0.001,1.9,40.0,80.0,10,5\n")
    (tmp_path / "plots").mkdir()
    for out, why in (("metrics.csv", "is the input file"), ("plots", "is a folder")):
        code, err = run_tool("plot_metrics", [str(tmp_path), "--out", str(tmp_path / out)], capsys)
        assert code == 2 and err.startswith(f"error: --out {tmp_path / out}: {why}")
    code, err = run_tool("plot_metrics", [str(tmp_path)], capsys)
    assert code == 2 and err == ('error: plot_metrics needs the matplotlib package: pip install matplotlib (or, in '
                                 'a clone, pip install -e ".[plot]")\n')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv", "plots"]


def test_plot_metrics_reads_a_csv_saved_with_a_byte_order_mark(tmp_path):
    (tmp_path / "metrics.csv").write_bytes(b"\xef\xbb\xbf" + (HEADER + "1,2.5,30,0.1,,,,1,1\n").encode())
    data = metric_series(str(tmp_path / "metrics.csv"))
    assert data["epoch"] == [1.0] and data["train_loss"] == [2.5] and data["val_loss"] == [None]


def test_export_checks_its_output_before_reading_the_checkpoint(tmp_path, capsys):
    (tmp_path / "weights.ckpt").write_bytes(b"not read: the output is refused first")
    (tmp_path / "out.mindir").mkdir()
    os.symlink(tmp_path / "weights.ckpt", tmp_path / "same.onnx")
    for name, fmt, why in (("out", "MINDIR", "is a folder"),
                           ("same", "ONNX", f"is the input file ({tmp_path / 'weights.ckpt'})")):
        code, err = run_tool("export", ["--model", "res2net50", "--ckpt_path", str(tmp_path / "weights.ckpt"),
                                        "--format", fmt, "--file_name", str(tmp_path / name)], capsys)
        suffix = ".onnx" if fmt == "ONNX" else ".mindir"
        assert code == 2 and err.startswith(f"error: --file_name {tmp_path / name}{suffix}: {why}"), err


def test_make_photo_folder_refuses_a_root_that_is_a_file(tmp_path, capsys):
    (tmp_path / "photos").write_text("a file")
    code, err = run_tool("make_photo_folder", [str(tmp_path / "photos"), "--classes", "1"], capsys)
    assert code == 2 and err == f"error: root {tmp_path / 'photos'}: is not a folder\n"


def test_predict_labels_binary_file_and_byte_order_mark(tmp_path, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    code, err = run_tool("predict", ["--model", "res2net50", "--ckpt_path", "unused.ckpt", "--labels", str(labels),
                                     "x.png"], capsys)
    assert code == 2 and err == f"error: --labels {labels}: not UTF-8 text (byte 0); give one class name per line\n"
    labels.write_bytes(b"cat\x00\x00dog\n")
    with pytest.raises(ValueError, match=rf"^--labels {labels}: a binary file \(NUL bytes\)"):
        read_labels(str(labels))
    labels.write_bytes("\ufeffcat\r\ndog\n\n  bird \n".encode())  # as a spreadsheet saves it
    assert read_labels(str(labels)) == ["cat", "dog", "bird"]


@settings(max_examples=200, deadline=None)
@given(names=st.lists(st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1)
                      .map(str.strip).filter(lambda n: n and n[0] != "\ufeff"), max_size=20),
       bom=st.booleans(), crlf=st.booleans())
def test_labels_read_back(tmp_path_factory, names, bom, crlf):
    path = tmp_path_factory.mktemp("labels") / "labels.txt"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + ("\r\n" if crlf else "\n").join(names).encode())
    assert read_labels(str(path)) == names


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300))
def test_labels_any_bytes_read_or_one_clean_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("labels") / "labels.txt"
    path.write_bytes(data)
    try:
        names = read_labels(str(path))
    except ValueError as exc:
        assert str(exc).startswith(f"--labels {path}: ") and "\n" not in str(exc)
    else:
        assert all(isinstance(n, str) and n and n == n.strip() for n in names)
