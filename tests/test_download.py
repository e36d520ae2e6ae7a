"""Pretrained downloads against a local HTTP server on 127.0.0.1 serving files the tests made."""
import hashlib
import http.server
import threading

import numpy as np
import pytest

from conftest import model_params
from mindcv_res2net import create_model
from mindcv_res2net.models import registry
from mindcv_res2net.weights import save_weights
from mindcv_res2net.utils.download import DownloadError, download_weights


class _Server:
    """Serves ``files`` (path -> bytes); ``/short/...`` announces more bytes than it sends."""

    def __init__(self):
        self.files, self.requests = {}, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                server.requests.append(self.path)
                body = server.files.get(self.path.replace("/short", "", 1))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                extra = 1000 if self.path.startswith("/short") else 0
                self.send_header("Content-Length", str(len(body) + extra))
                self.end_headers()
                self.wfile.write(body)

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
    path = download_weights(f"{server.url}/weights-abc.bin", "weights-abc.bin", digest[:8], progress=False)
    assert open(path, "rb").read() == body and path == str(cache / "weights-abc.bin")
    download_weights(f"{server.url}/weights-abc.bin", "weights-abc.bin", digest[:8], progress=False)
    assert len(server.requests) == 1  # the cached file is reused


def test_download_without_a_published_hash_records_the_one_received(server, cache, capsys):
    body, digest = _payload(server, name="Res2Net50_26w_4s_pretrained.pdparams")
    path = download_weights(f"{server.url}/Res2Net50_26w_4s_pretrained.pdparams",
                            "Res2Net50_26w_4s_pretrained.pdparams", "", progress=False)
    assert open(path, "rb").read() == body
    assert open(path + ".sha256").read() == f"{digest}  Res2Net50_26w_4s_pretrained.pdparams\n"
    assert f"sha256 {digest} (its source publishes no hash to compare against" in capsys.readouterr().err


def test_corrupted_download_keeps_nothing(server, cache):
    _payload(server)
    with pytest.raises(DownloadError, match=r"sha256 mismatch for http://127\.0\.0\.1:\d+/weights-abc\.bin: expected "
                                            r"a hash starting with deadbeef, got [0-9a-f]{64}; nothing was kept.*"
                                            r"MINDCV_RES2NET_SKIP_HASH_CHECK=1"):
        download_weights(f"{server.url}/weights-abc.bin", "weights-abc.bin", "deadbeef", progress=False)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_hash_check_can_be_bypassed_deliberately(server, cache, monkeypatch):
    body, _ = _payload(server)
    monkeypatch.setenv("MINDCV_RES2NET_SKIP_HASH_CHECK", "1")
    path = download_weights(f"{server.url}/weights-abc.bin", "weights-abc.bin", "deadbeef", progress=False)
    assert open(path, "rb").read() == body


def test_truncated_download_keeps_nothing(server, cache):
    _, digest = _payload(server)
    with pytest.raises(DownloadError, match=r"(stopped after|could not download)"):
        download_weights(f"{server.url}/short/weights-abc.bin", "weights-abc.bin", digest[:8], progress=False)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_offline_error_says_where_to_put_the_file(server, cache):
    url = f"{server.url}/x.bin"
    server.close()
    with pytest.raises(DownloadError, match=rf"could not download {url} .*put it at {cache}/x\.bin"):
        download_weights(url, "x.bin", "", progress=False)


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
