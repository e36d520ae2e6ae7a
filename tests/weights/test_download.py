"""Pretrained downloads against a local HTTP server on 127.0.0.1 serving files the tests made."""
import hashlib
import io
import os
import socket
import subprocess
import http.server
import threading
import time

import numpy as np
import pytest
from PIL import Image

from helpers.programs import run_main, run_tool
from helpers.checkpoints import model_params
from mindcv_res2net import create_model
from mindcv_res2net.cli.train import main as train_main
from mindcv_res2net.models import registry
from mindcv_res2net.weights import CheckpointError, read_checkpoint, save_weights
from mindcv_res2net.utils.download import DownloadError, download_weights


def _send(handler, body, length="exact", content_type="application/octet-stream", pause=0.0, piece=0):
    """Answer 200 with ``body``; ``length``: "exact", None (no header) or the header's text; ``piece`` bytes
    every ``pause`` seconds (0: all at once)."""
    handler.send_response(200)
    handler.send_header("Content-Type", content_type)
    if length is not None:
        handler.send_header("Content-Length", str(len(body)) if length == "exact" else length)
    handler.end_headers()
    try:
        for start in range(0, len(body), piece or len(body) or 1):
            handler.wfile.write(body[start:start + (piece or len(body))])
            handler.wfile.flush()
            time.sleep(pause)
    except OSError:  # the client gave up, as it should
        pass


class _Server:
    """Serves ``files`` (path -> bytes) on 127.0.0.1; a first path segment in ``MODES`` changes how."""

    MODES = {
        "short": lambda h, body: _send(h, body, length=str(len(body) + 1000)),  # announces more than it sends
        "cut": lambda h, body: _send(h, body[:len(body) // 2], length=None),  # truncated, no Content-Length
        "html": lambda h, body: _send(h, b"<html><body>Sign in</body></html>", content_type="text/html"),
        "page": lambda h, body: _send(h, b"<html><body>Sign in</body></html>" * 10),  # an HTML page, unlabelled
        "trickle": lambda h, body: _send(h, body, pause=0.05, piece=2000),
        "stall": lambda h, body: _send(h, body[:1000] + body, pause=3.0, piece=1000),
        "negative": lambda h, body: _send(h, body, length="-5"),
        "words": lambda h, body: _send(h, body, length="lots"),
        "huge": lambda h, body: _send(h, body, length=str(10 ** 18)),
    }

    def __init__(self):
        self.files, self.requests = {}, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                server.requests.append(self.path)
                mode = self.path.split("/")[1]
                body = server.files.get(self.path[len(mode) + 1:] if mode in server.MODES else self.path)
                if body is None:
                    self.send_error(404)
                    return
                server.MODES.get(mode, _send)(self, body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = _Server()
    yield srv
    srv.close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("MINDCV_RES2NET_CACHE", str(folder))
    monkeypatch.delenv("MINDCV_RES2NET_SKIP_HASH_CHECK", raising=False)
    return folder


def _payload(server, name="weights-abc.bin", size=300_000):
    body = np.random.default_rng(3).bytes(size)
    server.files["/" + name] = body
    return body, hashlib.sha256(body).hexdigest()


def test_download_verifies_and_caches(server, cache):
    body, digest = _payload(server)
    path = download_weights(f"{server.url}/weights-abc.bin", "weights-abc.bin", sha256_prefix=digest[:8], progress=False)
    assert open(path, "rb").read() == body and path == str(cache / "weights-abc.bin")
    download_weights(f"{server.url}/weights-abc.bin", "weights-abc.bin", sha256_prefix=digest[:8], progress=False)
    assert len(server.requests) == 1  # the cached file is reused


def test_download_without_a_published_hash_records_the_one_received(server, cache, capsys):
    body, digest = _payload(server, name="Res2Net50_26w_4s_pretrained.pdparams")
    path = download_weights(f"{server.url}/Res2Net50_26w_4s_pretrained.pdparams",
                            "Res2Net50_26w_4s_pretrained.pdparams", progress=False)
    assert open(path, "rb").read() == body
    assert open(path + ".sha256").read() == f"{digest}  Res2Net50_26w_4s_pretrained.pdparams\n"
    assert f"sha256 {digest} (its source publishes no hash to compare against" in capsys.readouterr().err


def test_corrupted_download_keeps_nothing(server, cache):
    _payload(server)
    with pytest.raises(DownloadError, match=r"http://127\.0\.0\.1:\d+/weights-abc\.bin: sha256 mismatch \(expected "
                                            r"a hash starting with deadbeef, got [0-9a-f]{64}\); nothing was kept.*"
                                            r"MINDCV_RES2NET_SKIP_HASH_CHECK=1"):
        download_weights(f"{server.url}/weights-abc.bin", "weights-abc.bin", sha256_prefix="deadbeef", progress=False)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_hash_check_can_be_bypassed_deliberately(server, cache, monkeypatch):
    body, _ = _payload(server)
    monkeypatch.setenv("MINDCV_RES2NET_SKIP_HASH_CHECK", "1")
    path = download_weights(f"{server.url}/weights-abc.bin", "weights-abc.bin", sha256_prefix="deadbeef", progress=False)
    assert open(path, "rb").read() == body


def test_truncated_download_keeps_nothing(server, cache):
    _, digest = _payload(server)
    with pytest.raises(DownloadError, match=r"/short/weights-abc\.bin: download stopped after 300000 of 301000 bytes; "
                                            r"nothing was kept"):
        download_weights(f"{server.url}/short/weights-abc.bin", "weights-abc.bin", sha256_prefix=digest[:8], progress=False)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_offline_error_says_where_to_put_the_file(server, cache):
    url = f"{server.url}/x.bin"
    server.close()
    with pytest.raises(DownloadError, match=rf"^{url}: cannot connect \(Connection refused\); if this machine is "
                                            rf"offline, download it yourself and put it at {cache}/x\.bin"):
        download_weights(url, "x.bin", progress=False)


@pytest.mark.e2e
def test_create_model_pretrained_downloads_and_loads(server, cache, tmp_path, monkeypatch):
    source = create_model("res2net50", zero_init_last=False)
    weights = model_params(source)
    path = save_weights(weights, tmp_path / "r50.ckpt")
    body = open(path, "rb").read()
    digest = hashlib.sha256(body).hexdigest()
    server.files["/r50-x.ckpt"] = body
    cfgs = dict(registry._pretrained_cfgs["res2net50"])
    cfgs["local_test"] = dict(cfgs["official_in1k"], url=f"{server.url}/r50-x.ckpt", file_name=f"r50-{digest[:8]}.ckpt",
                              sha256=digest[:8], top1=99.0)
    monkeypatch.setitem(registry._pretrained_cfgs, "res2net50", cfgs)
    model = create_model("res2net50.local_test", pretrained=True)
    assert np.array_equal(model_params(model)["layer4.0.conv1.weight"], weights["layer4.0.conv1.weight"])
    assert (cache / f"r50-{digest[:8]}.ckpt").is_file()


# ------------------------------------------------------------------------------ hostile servers: nothing bad is kept


def _weights_npz(server, name="Res2Net50_pretrained.npz"):
    """A real (small) weight file, as a source without a published hash serves it."""
    buffer = io.BytesIO()
    rng = np.random.default_rng(5)
    np.savez(buffer, **{f"layer{i}.weight": rng.standard_normal((64, 256)).astype(np.float32) for i in range(4)})
    server.files["/" + name] = buffer.getvalue()
    return name, buffer.getvalue()


def _fetch(server, mode, name, **limits):
    return download_weights(f"{server.url}/{mode}/{name}" if mode else f"{server.url}/{name}", name,
                            progress=False, validate=read_checkpoint, **limits)


def _assert_nothing_kept(cache):
    assert not cache.exists() or list(cache.iterdir()) == []


def test_a_complete_file_that_reads_is_kept_with_its_recorded_hash(server, cache):
    name, body = _weights_npz(server)
    path = _fetch(server, "", name)
    assert open(path, "rb").read() == body and os.path.isfile(path + ".sha256")
    assert sorted(os.listdir(cache)) == [name, name + ".sha256"]


@pytest.mark.parametrize("mode, message", [
    ("cut", r"the 1\d+ bytes received do not read as the expected file \(Res2Net50_pretrained\.npz: cannot read "),
    ("page", r"the 330 bytes received do not read as the expected file \(Res2Net50_pretrained\.npz: unrecognised "
             r"checkpoint format"),
    ("html", r"the server sent an HTML page \(Content-Type text/html\), not the file; nothing was kept"),
    ("negative", r"the server declares Content-Length '-5', not one byte count; nothing was kept"),
    ("words", r"the server declares Content-Length 'lots', not one byte count; nothing was kept"),
    ("huge", r"Res2Net50_pretrained\.npz: the download declares 1000000000000000000 bytes but only \d+ are free"),
])
def test_a_file_without_a_published_hash_is_kept_only_when_complete_and_readable(server, cache, mode, message):
    name, body = _weights_npz(server)
    with pytest.raises(DownloadError, match=message):
        _fetch(server, mode, name)
    _assert_nothing_kept(cache)
    assert open(_fetch(server, "", name), "rb").read() == body  # the next run downloads it again


def test_an_http_error_status_is_named(server, cache):
    with pytest.raises(DownloadError, match=rf"^{server.url}/missing\.npz: the server answered HTTP 404 \(Not Found\); "
                                            r"download it yourself and put it at "):
        _fetch(server, "", "missing.npz")
    _assert_nothing_kept(cache)


def test_a_cache_folder_that_cannot_be_made_is_named(server, cache, tmp_path, monkeypatch):
    name, _ = _weights_npz(server)
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("MINDCV_RES2NET_CACHE", str(tmp_path / "file" / "cache"))
    with pytest.raises(OSError, match=rf"^cannot write {tmp_path}/file/cache/{name}: Not a directory$"):
        _fetch(server, "", name)


def test_a_trickling_server_meets_the_overall_deadline(server, cache):
    name, _ = _weights_npz(server)
    start = time.monotonic()
    with pytest.raises(DownloadError, match=rf"^{server.url}/trickle/{name}: not complete after 0\.5 s \(\d+ bytes "
                                            r"received, the server is too slow\); nothing was kept; try again"):
        _fetch(server, "trickle", name, deadline_seconds=0.5)
    assert time.monotonic() - start < 3
    _assert_nothing_kept(cache)


def test_a_stalled_read_says_it_stalled(server, cache):
    name, _ = _weights_npz(server)
    with pytest.raises(DownloadError, match=rf"^{server.url}/stall/{name}: no byte for 0\.3 s after 1000 bytes \(the "
                                            r"read stalled\); nothing was kept"):
        _fetch(server, "stall", name, stall_seconds=0.3)
    _assert_nothing_kept(cache)


def test_a_dns_failure_says_so_not_cannot_write(cache, monkeypatch):
    def no_such_host(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    with pytest.raises(DownloadError, match=r"^http://weights\.example\.invalid/r50\.npz: cannot resolve the host "
                                            r"name 'weights\.example\.invalid' \(DNS: Name or service not known\); "
                                            r"if this machine is offline"):
        download_weights("http://weights.example.invalid/r50.npz", "r50.npz", progress=False,
                         validate=read_checkpoint)
    _assert_nothing_kept(cache)


def test_proxy_variables_set_after_a_first_download_apply(server, cache, monkeypatch):
    """urllib's urlopen keeps the proxies of its first call; a notebook that sets a proxy later must get it."""
    _, digest = _payload(server)
    download_weights(f"{server.url}/weights-abc.bin", "weights-abc.bin", sha256_prefix=digest[:8], progress=False)
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # discard port: nothing listens
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(DownloadError, match=r"^http://weights\.example\.invalid/r50\.npz: cannot connect "):
        download_weights("http://weights.example.invalid/r50.npz", "r50.npz", progress=False)
    assert len(server.requests) == 1


def test_leftovers_of_a_killed_download_are_removed(server, cache):
    name, _ = _weights_npz(server)
    finished = subprocess.Popen(["true"])
    finished.wait()  # its pid now names no process: the writer of the leftover was killed
    cache.mkdir()
    leftover = cache / f".partial-download.{finished.pid}.k1ll3d.npz"
    mine = cache / f".partial-download.{os.getpid()}.mine.npz"  # this process's own, being written
    other = cache / f".partial-anon.{finished.pid}.k1ll3d.npz"  # another writer's: not the download's to remove
    for path in (leftover, mine, other):
        path.write_bytes(b"half a file")
    _fetch(server, "", name)
    assert not leftover.exists() and mine.exists() and other.exists()


@pytest.mark.e2e
def test_a_cached_file_that_does_not_read_says_to_delete_it(server, cache, tmp_path, monkeypatch, capsys):
    cfgs = dict(registry._pretrained_cfgs["res2net50"])
    cfgs["local_test"] = dict(cfgs["official_in1k"], url=f"{server.url}/r50.pdparams", file_name="r50.pdparams",
                              sha256="", top1=99.0)
    monkeypatch.setitem(registry._pretrained_cfgs, "res2net50", cfgs)
    cache.mkdir()
    (cache / "r50.pdparams").write_bytes(b"<html>not weights</html>")
    with pytest.raises(CheckpointError, match=rf"^{cache}/r50\.pdparams: unrecognised checkpoint format .*\(the "
                                              rf"cached download of {server.url}/r50\.pdparams: delete it to download "
                                              r"it again\)$"):
        create_model("res2net50.local_test", pretrained=True)
    image = tmp_path / "cat.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    code, err = run_tool("predict", ["--model", "res2net50.local_test", "--pretrained", str(image)], capsys)
    assert code == 2 and err.strip().splitlines()[-1] == (
        f"error: {cache}/r50.pdparams: unrecognised checkpoint format (expected a PyTorch .pth, Paddle .pdparams, "
        f".safetensors, .npz or MindSpore .ckpt file) (the cached download of {server.url}/r50.pdparams: delete it "
        "to download it again)")
    assert server.requests == []


def test_pretrained_offline_leaves_no_run_folder(tmp_path, capsys, monkeypatch, pynative):
    """The download fails (a proxy on a closed port: no network) before the run writes anything."""
    monkeypatch.setenv("MINDCV_RES2NET_CACHE", str(tmp_path / "cache"))
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    out = tmp_path / "run"
    code, _, err = run_main(train_main, ["--pretrained", "--ckpt_save_dir", str(out), "--image_resize", "32",
                                         "--num_samples", "16", "--batch_size", "16", "--mode", "1"], capsys)
    assert code == 2 and err.startswith("error: https://") and "cannot connect" in err and err.count("\n") == 1
    assert not out.exists()
