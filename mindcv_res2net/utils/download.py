"""Downloads with a progress bar, a checksum and an atomic rename; published weights go to a cache.

Every claim of the server is checked before a file gets its final name: the declared length (a number,
not more than the free disk), the content type (an HTML page is not a weight file), the bytes received
against the declared length and the published hash, and, through the caller's ``validate``, that the
file reads as the format expected. Stalls and slow trickles end at a deadline; the temporary files of a
killed download are removed by the next one.
"""
import contextlib
import hashlib
import http.client
import os
import shutil
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Callable, Optional

from tqdm import tqdm

from .errors import UserError
from .fileio import WriteError, atomic_path, file_sha256, stale_partial_files, write_sha256_record

CACHE_ENV = "MINDCV_RES2NET_CACHE"
SKIP_HASH_ENV = "MINDCV_RES2NET_SKIP_HASH_CHECK"
STALL_SECONDS = 60.0  # default: a connection or a read with no byte for this long has stalled
DEADLINE_SECONDS = 3600.0  # default: a whole download, however slowly its bytes trickle in
_CHUNK = 1 << 20
_OWNER = "download"  # owner of the temporary files (see fileio.atomic_path)


class DownloadError(UserError):
    """A file could not be fetched or failed verification; nothing was kept."""


def cache_dir() -> str:
    """Weight cache folder: ``$MINDCV_RES2NET_CACHE`` or ``~/.cache/mindcv_res2net/checkpoints``."""
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "mindcv_res2net",
                                                     "checkpoints")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _connect(url: str, stall_seconds: float, place_hint: str):
    """The open HTTP response of ``url``, or a DownloadError saying why there is none (DNS, refused, status).

    The opener is built per call, so the proxy variables of this moment apply (``urlopen`` keeps those
    of its first call for the life of the process).
    """
    try:
        return urllib.request.build_opener().open(url, timeout=stall_seconds)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{url}: the server answered HTTP {exc.code} ({exc.reason}); {place_hint}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, socket.gaierror):
            what = f"cannot resolve the host name {urllib.parse.urlsplit(url).hostname!r} (DNS: {reason.strerror})"
        elif isinstance(reason, TimeoutError):
            what = f"no answer within {stall_seconds:g} s"
        else:
            what = f"cannot connect ({getattr(reason, 'strerror', None) or reason})"
        raise DownloadError(f"{url}: {what}; if this machine is offline, {place_hint}") from None
    except TimeoutError:
        raise DownloadError(f"{url}: no answer within {stall_seconds:g} s; {place_hint}") from None
    except (OSError, http.client.HTTPException, ValueError) as exc:  # broken status line, bad URL
        raise DownloadError(f"{url}: cannot download ({_first_line(exc)}); {place_hint}") from None


def _declared_length(response, url: str) -> Optional[int]:
    """The Content-Length the server declares (None without one); anything but one byte count is refused."""
    values = response.headers.get_all("Content-Length") or []
    if not values:
        return None
    if len(set(v.strip() for v in values)) > 1 or not values[0].strip().isdigit():
        shown = ", ".join(repr(v[:40]) for v in values[:3])
        raise DownloadError(f"{url}: the server declares Content-Length {shown}, not one byte count; "
                            "nothing was kept")
    return int(values[0])


def download_file(url: str, dst: str, *, sha256_prefix: str = "", md5: str = "", progress: bool = True,
                  place_hint: Optional[str] = None, validate: Optional[Callable[[str], object]] = None,
                  stall_seconds: float = STALL_SECONDS, deadline_seconds: float = DEADLINE_SECONDS) -> str:
    """Fetch ``url`` to ``dst`` under a temporary name; rename only once complete and verified.

    ``sha256_prefix``: the sha256 must start with it (skipped with ``$MINDCV_RES2NET_SKIP_HASH_CHECK=1``);
    ``md5``: the full md5 must equal it; ``validate(path)``: raises ValueError or OSError when the file
    does not read as the expected format. ``stall_seconds``: longest wait for a byte; ``deadline_seconds``:
    longest whole download. On any failure nothing is left at ``dst``, and the temporary files of
    killed downloads in its folder are removed first.
    """
    place_hint = place_hint or f"download it yourself and put it at {dst}"
    dst = os.path.abspath(dst)
    for leftover in stale_partial_files(os.path.dirname(dst), _OWNER):
        with contextlib.suppress(FileNotFoundError):  # another download may remove it first
            os.remove(leftover)
    start = time.monotonic()
    with _connect(url, stall_seconds, place_hint) as response:
        total = _declared_length(response, url)
        if response.headers.get_content_type() == "text/html":
            raise DownloadError(f"{url}: the server sent an HTML page (Content-Type text/html), not the file; "
                                f"nothing was kept; {place_hint}")
        folder = os.path.dirname(dst)
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise WriteError(f"cannot write {dst}: {exc.strerror or exc}") from None
        free = shutil.disk_usage(folder).free
        if total is not None and total > free:
            raise DownloadError(f"{dst}: the download declares {total} bytes but only {free} are free in {folder}; "
                                "nothing was kept")
        sha256, md5_digest = hashlib.sha256(), hashlib.md5()
        done = 0
        with atomic_path(dst, suffix=os.path.splitext(dst)[1], owner=_OWNER) as tmp:
            with open(tmp, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, desc=os.path.basename(dst),
                                              disable=not progress) as bar:
                while True:
                    try:
                        chunk = response.read1(_CHUNK)
                    except TimeoutError:
                        raise DownloadError(f"{url}: no byte for {stall_seconds:g} s after {done} bytes (the read "
                                            f"stalled); nothing was kept; try again, or {place_hint}") from None
                    except (OSError, http.client.HTTPException) as exc:
                        raise DownloadError(f"{url}: the connection broke after {done} bytes ({_first_line(exc)}); "
                                            f"nothing was kept; try again, or {place_hint}") from None
                    if not chunk:
                        break
                    out.write(chunk)
                    sha256.update(chunk)
                    md5_digest.update(chunk)
                    done += len(chunk)
                    bar.update(len(chunk))
                    if time.monotonic() - start > deadline_seconds:
                        raise DownloadError(f"{url}: not complete after {deadline_seconds:g} s ({done} bytes "
                                            f"received, the server is too slow); nothing was kept; try again, "
                                            f"or {place_hint}")
            if total is not None and done != total:
                raise DownloadError(f"{url}: download stopped after {done} of {total} bytes; nothing was kept; "
                                    f"try again, or {place_hint}")
            actual = sha256.hexdigest()
            if sha256_prefix and not actual.startswith(sha256_prefix) and os.environ.get(SKIP_HASH_ENV) != "1":
                raise DownloadError(
                    f"{url}: sha256 mismatch (expected a hash starting with {sha256_prefix}, got {actual}); "
                    f"nothing was kept in the cache. To accept this file deliberately set {SKIP_HASH_ENV}=1, "
                    f"or {place_hint}")
            if md5 and md5_digest.hexdigest() != md5:
                raise DownloadError(f"{url}: md5 mismatch (expected {md5}, got {md5_digest.hexdigest()}); "
                                    f"nothing was kept; {place_hint}")
            if validate is not None:
                try:
                    validate(tmp)
                except (ValueError, OSError) as exc:
                    reason = _first_line(exc).replace(tmp, os.path.basename(dst))
                    raise DownloadError(f"{url}: the {done} bytes received do not read as the expected file "
                                        f"({reason}); nothing was kept; try again, or {place_hint}") from None
    return dst


def download_weights(url: str, file_name: str, *, sha256_prefix: str = "", progress: bool = True,
                     validate: Optional[Callable[[str], object]] = None, stall_seconds: float = STALL_SECONDS,
                     deadline_seconds: float = DEADLINE_SECONDS) -> str:
    """Path of ``file_name`` in the cache, downloading ``url`` first if it is not there.

    A file already in the cache is returned as it is (that is how a user places a file by hand); the
    caller reads it and, if it does not read, says to delete it. A new download must be complete, have a
    sha256 starting with ``sha256_prefix`` and pass ``validate(path)`` (see ``download_file``) before it
    gets its final name; without a prefix (PaddleClas publishes none) the sha256 received is printed and
    recorded in ``<file>.sha256``.
    """
    dst = os.path.join(cache_dir(), file_name)
    if os.path.isfile(dst):
        return dst
    hint = (f"download it yourself and put it at {dst} (cache folder set by ${CACHE_ENV}), or pass a local file "
            "(checkpoint_path= in Python, --ckpt_path on the command line)")
    download_file(url, dst, sha256_prefix=sha256_prefix, progress=progress, place_hint=hint, validate=validate,
                  stall_seconds=stall_seconds, deadline_seconds=deadline_seconds)
    if not sha256_prefix:  # the source publishes no hash: record what was received, so it can be compared later
        digest = file_sha256(dst)
        record = write_sha256_record(dst, digest, owner=_OWNER)
        print(f"{file_name}: sha256 {digest} (its source publishes no hash to compare against; recorded in "
              f"{record})", file=sys.stderr)
    return dst

