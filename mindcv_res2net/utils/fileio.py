"""Atomic file writes, the clean-up of what a killed writer left behind, and sha256 records beside files.

A file is written under a temporary name in its destination folder and renamed over the final
name only when complete, so a crash, a kill or a full disk never leaves a partial file under a
real name. Temporary names are ``.partial-<owner>.<pid>.<random><suffix>``: the owner (a training
run's identity) and the writing process say whose a leftover is, so a later process of the same
owner removes only its own dead writers' files.
"""
import hashlib
import os
import re
import stat
import tempfile
from contextlib import contextmanager
from typing import Iterator, List, Optional

PARTIAL_PREFIX = ".partial-"
OWNER_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # a temporary file's owner: a run id or "anon"


class WriteError(OSError):
    """A file could not be written (disk full, file too large, no permission); nothing was left behind."""


def current_umask() -> int:
    """The process's umask (read from /proc where possible: setting it to read it races with threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def share_as_umask(path: str) -> None:
    """Give ``path`` the permissions a plain ``open()`` would (0o666 less the umask: 0644 under umask 022),
    whatever wrote it: ``mkstemp`` makes files 0600 and MindSpore's exporters make them 0400."""
    os.chmod(path, 0o666 & ~current_umask())


def _check_owner(owner: str) -> str:
    if not OWNER_PATTERN.match(owner):
        raise ValueError(f"invalid temporary-file owner {owner!r} (letters, digits, '-' and '_' only)")
    return owner


def _rename_without_replacing(tmp: str, path: str) -> None:
    """Give ``tmp`` the name ``path`` unless a file of that name exists (``FileExistsError``), atomically
    where the file system has hard links."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # no hard links here: check, then rename (a narrow race)
        if os.path.lexists(path):
            raise FileExistsError(path) from None
        os.replace(tmp, path)


@contextmanager
def atomic_path(path: str, suffix: str = "", owner: str = "anon", replace: bool = True) -> Iterator[str]:
    """A temporary path in ``path``'s folder, renamed to ``path`` only if the block succeeds.

    On any error the temporary file is removed; an ``OSError`` (disk full, file too large, no
    permission) is re-raised naming ``path``. ``suffix`` ends the temporary name. ``replace=False``:
    a file already named ``path`` (another process's, created meanwhile) is kept, and that is an error.
    """
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f"{PARTIAL_PREFIX}{_check_owner(owner)}.{os.getpid()}.", suffix=suffix,
                                   dir=folder)
        os.close(fd)
    except OSError as exc:
        raise WriteError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        yield tmp
        share_as_umask(tmp)
        if replace:
            os.replace(tmp, path)
        else:
            try:
                _rename_without_replacing(tmp, path)
            except FileExistsError:
                raise WriteError(f"cannot write {path}: another process created it meanwhile") from None
    except WriteError:
        raise
    except OSError as exc:
        raise WriteError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def stale_partial_files(folder: str, owner: str) -> List[str]:
    """Temporary files of ``owner`` in ``folder`` whose writing process is gone (killed mid-write).

    Only regular files are listed: never a folder (a killed export's staging folder), a link or a
    file whose writer is still running.
    """
    if not os.path.isdir(folder):
        return []
    pattern = re.compile(rf"^{re.escape(PARTIAL_PREFIX + _check_owner(owner))}\.(\d+)\.")
    found = []
    for name in sorted(os.listdir(folder)):
        match = pattern.match(name)
        if not match or int(match.group(1)) == os.getpid() or _process_alive(int(match.group(1))):
            continue
        path = os.path.join(folder, name)
        if stat.S_ISREG(os.lstat(path).st_mode):
            found.append(path)
    return found


SHA256_SUFFIX = ".sha256"  # a file's recorded digest, beside it: "<64 hex>  <name>\n" (sha256sum's format)
_SHA256_CHUNK = 1 << 20


def file_sha256(path: str) -> str:
    """The sha256 of a file, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_SHA256_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_sha256_record(path: str, digest: str, owner: str = "anon") -> str:
    """Record ``digest`` as ``path``'s sha256 in ``path + SHA256_SUFFIX`` (written atomically); returns its path."""
    record = path + SHA256_SUFFIX
    with atomic_path(record, owner=owner) as tmp, open(tmp, "w") as f:
        f.write(f"{digest}  {os.path.basename(path)}\n")
    return record


def recorded_sha256(path: str) -> Optional[str]:
    """The sha256 recorded beside ``path``, or None when there is no readable record (a missing, damaged
    or oversized one: only its first 200 bytes are read)."""
    try:
        with open(path + SHA256_SUFFIX, "rb") as f:
            head = f.read(200)
    except OSError:
        return None
    digest = head.split(b" ", 1)[0].decode("ascii", "replace")
    return digest if re.fullmatch(r"[0-9a-f]{64}", digest) else None
