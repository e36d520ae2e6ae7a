"""Downloads with a progress bar, a checksum and an atomic rename; published weights go to a cache."""
import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from typing import Optional

from tqdm import tqdm

from .fileio import atomic_path

CACHE_ENV = "MINDCV_RES2NET_CACHE"
SKIP_HASH_ENV = "MINDCV_RES2NET_SKIP_HASH_CHECK"
_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A file could not be fetched or failed verification; nothing was kept."""


def cache_dir() -> str:
    """Weight cache folder: ``$MINDCV_RES2NET_CACHE`` or ``~/.cache/mindcv_res2net/checkpoints``."""
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "mindcv_res2net",
                                                     "checkpoints")


def download_file(url: str, dst: str, sha256_prefix: str = "", md5: str = "", progress: bool = True,
                  place_hint: Optional[str] = None) -> str:
    """Fetch ``url`` to ``dst`` under a temporary name; rename only once complete and verified.

    ``sha256_prefix``: the sha256 must start with it (skipped with ``$MINDCV_RES2NET_SKIP_HASH_CHECK=1``);
    ``md5``: the full md5 must equal it. On any failure nothing is left at ``dst``.
    """
    place_hint = place_hint or f"download it yourself and put it at {dst}"
    sha256, md5_digest = hashlib.sha256(), hashlib.md5()
    try:
        with atomic_path(dst) as tmp:
            with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                done = 0
                with tqdm(total=total, unit="B", unit_scale=True, desc=os.path.basename(dst),
                          disable=not progress) as bar:
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        sha256.update(chunk)
                        md5_digest.update(chunk)
                        done += len(chunk)
                        bar.update(len(chunk))
            if total is not None and done != total:
                raise DownloadError(f"download of {url} stopped after {done} of {total} bytes; nothing was kept; "
                                    f"try again, or {place_hint}")
            actual = sha256.hexdigest()
            if sha256_prefix and not actual.startswith(sha256_prefix) and os.environ.get(SKIP_HASH_ENV) != "1":
                raise DownloadError(
                    f"sha256 mismatch for {url}: expected a hash starting with {sha256_prefix}, got {actual}; "
                    f"nothing was kept in the cache. To accept this file deliberately set {SKIP_HASH_ENV}=1, "
                    f"or {place_hint}")
            if md5 and md5_digest.hexdigest() != md5:
                raise DownloadError(f"md5 mismatch for {url}: expected {md5}, got {md5_digest.hexdigest()}; "
                                    f"nothing was kept; {place_hint}")
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"could not download {url} ({reason}); if this machine is offline, {place_hint}") from None
    return dst


def download_weights(url: str, file_name: str, sha256_prefix: str = "", progress: bool = True) -> str:
    """Path of ``file_name`` in the cache, downloading ``url`` first if it is not there.

    A file already in the cache is used as it is (that is how a user places a file by hand). A new
    download must have a sha256 starting with ``sha256_prefix`` before it gets its final name; without a
    prefix (PaddleClas publishes none) the sha256 received is printed and recorded in ``<file>.sha256``.
    """
    dst = os.path.join(cache_dir(), file_name)
    if os.path.isfile(dst):
        return dst
    hint = (f"download it yourself and put it at {dst} (cache folder set by ${CACHE_ENV}), or pass a local file "
            "(checkpoint_path= in Python, --ckpt_path on the command line)")
    download_file(url, dst, sha256_prefix=sha256_prefix, progress=progress, place_hint=hint)
    if not sha256_prefix:  # the source publishes no hash: record what was received, so it can be compared later
        digest = file_sha256(dst)
        with atomic_path(dst + ".sha256") as tmp, open(tmp, "w") as f:
            f.write(f"{digest}  {file_name}\n")
        print(f"{file_name}: sha256 {digest} (its source publishes no hash to compare against; recorded in "
              f"{dst}.sha256)", file=sys.stderr)
    return dst


def file_sha256(path: str) -> str:
    """The sha256 of a file, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
