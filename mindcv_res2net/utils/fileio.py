"""Atomic file writes, the up-front check of a program's outputs, the clean-up of what a killed writer
left behind, and sha256 records beside files.

A file is written under a temporary name in its destination folder and renamed over the final
name only when complete, so a crash, a kill or a full disk never leaves a partial file under a
real name. Temporary names are ``.partial-<owner>.<pid>.<random><suffix>``: the owner (a training
run's identity) and the writing process say whose a leftover is, so a later process of the same
owner removes only its own dead writers' files.

What an output path names decides how it is written (``atomic_path``): a new name or a regular file
is replaced atomically as above; a symbolic link is followed (its target is replaced, the link stays
a link); a character device or a named pipe (``/dev/null``, ``/dev/stdout``, ``mkfifo``), or an open
file reached through ``/dev/stdout``, ``/dev/fd/N`` or ``/proc/<pid>/fd/N``, receives the complete
bytes once they are written (never renamed over, never chmod-ed); anything else (a folder, a block
device, a socket) is refused. ``check_output`` refuses, before a program starts its work, an output
that could not be written or is one of its inputs.
"""
import hashlib
import os
import re
import shutil
import stat
import sys
import tempfile
from contextlib import contextmanager
from typing import Iterator, List, NamedTuple, Optional, Sequence

from .errors import UserError

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


class Output(NamedTuple):
    """Where an output path's bytes go (``output_target``): ``path`` with every link followed; ``stream``:
    written through (a character device, a named pipe or an open file), not renamed over; ``fd``: this
    process's own descriptor to write to (``/dev/stdout``, ``/dev/fd/N``), or None."""

    path: str
    stream: bool
    fd: Optional[int]


class _Refused(Exception):
    """Why a path cannot be an output (a phrase: "is a folder")."""


_FD_FOLDER = re.compile(r"^/proc/(\d+)(?:/task/\d+)?/fd$")  # a process's open files, as links
_MAX_LINKS = 40  # as the kernel's limit on links followed in one path
_COPY_CHUNK = 1 << 20  # bytes per read when streaming a finished file into a device or pipe


def _follow(path: str):
    """(``path`` with every symbolic link followed, the pid whose open file it names or None). A link into
    ``/proc/<pid>/fd`` names an open file (a pipe, a terminal, a deleted file): it is not followed further."""
    current = os.path.join(os.getcwd(), path)
    for _ in range(_MAX_LINKS):
        folder = os.path.realpath(os.path.dirname(current))
        current = os.path.join(folder, os.path.basename(current))
        match = _FD_FOLDER.match(folder)
        if match:
            return current, int(match.group(1))
        if not os.path.islink(current):
            return current, None
        current = os.path.join(folder, os.readlink(current))
    raise _Refused("too many levels of symbolic links")


def _target(path: str) -> Output:
    """``Output`` of ``path``, or ``_Refused`` saying why nothing can be written there."""
    target, pid = _follow(os.fspath(path))
    try:
        mode = os.stat(target).st_mode
    except (FileNotFoundError, NotADirectoryError):  # a new name (a file on its path: its folder's check says so)
        if pid is not None:
            raise _Refused("names no open file") from None
        if os.path.basename(target) in ("", ".", ".."):
            raise _Refused("names a folder") from None
        return Output(target, False, None)
    except OSError as exc:
        raise _Refused(exc.strerror or str(exc)) from None
    if stat.S_ISDIR(mode):
        raise _Refused("is a folder")
    if stat.S_ISBLK(mode):
        raise _Refused("is a block device")
    if stat.S_ISSOCK(mode):
        raise _Refused("is a socket")
    if stat.S_ISREG(mode) and pid is None:
        return Output(target, False, None)
    if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
        raise _Refused("is not a regular file, a character device or a pipe")
    name = os.path.basename(target)
    own = pid == os.getpid() and name.isdigit()
    return Output(target, True, int(name) if own else None)


def output_target(path: str) -> Output:
    """Where the bytes written to ``path`` go (see the module docstring); a ``WriteError`` naming ``path``
    for a folder, a block device, a socket or a loop of links."""
    try:
        return _target(path)
    except _Refused as why:
        raise WriteError(f"cannot write {path}: {why}") from None


def is_stdout(path: str) -> bool:
    """True if ``path`` names this process's standard output (``/dev/stdout``, or the file or pipe it is):
    a program then prints its messages to stderr, not into its output."""
    try:
        return os.path.samestat(os.stat(path), os.fstat(sys.stdout.fileno()))
    except (OSError, ValueError, AttributeError):  # no such file; stdout closed or not a file (captured)
        return False


def _writable_folder(folder: str) -> Optional[str]:
    """Why no file can be created in ``folder`` (made if missing), or None: the nearest existing folder on
    its path is tried with a temporary file, which also finds read-only and virtual file systems."""
    existing = folder
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return f"{existing} is not a folder"
    try:
        fd, probe = tempfile.mkstemp(prefix=f"{PARTIAL_PREFIX}check.{os.getpid()}.", dir=existing)
    except OSError as exc:
        return f"cannot create a file in {existing} ({exc.strerror or exc})"
    os.close(fd)
    os.remove(probe)
    return None


def check_output(path: str, flag: str, inputs: Sequence[str] = ()) -> Output:
    """Refuse, before any work, an output ``path`` that a program (its flag or argument ``flag``) could not
    or must not write: a folder, a block device, a socket, a read-only file, a place where no file can be
    created, or one of ``inputs`` (the same file, also through a link or a hard link). A ``UserError``
    "``flag path``: why"; returns ``output_target(path)``."""
    shown = f"{flag} {path}"
    if not os.fspath(path):
        raise UserError(f"{flag}: an empty path")
    try:
        out = _target(path)
    except _Refused as why:
        raise UserError(f"{shown}: {why}") from None
    for source in inputs:
        try:
            same = os.path.samefile(source, out.path)
        except OSError:  # a missing input is its reader's error
            same = False
        if same:
            named = "" if os.path.abspath(source) == os.path.abspath(path) else f" ({source})"
            raise UserError(f"{shown}: is the input file{named}; give another output path")
    if out.stream:
        return out
    if os.path.exists(out.path) and (not os.stat(out.path).st_mode & 0o222 or not os.access(out.path, os.W_OK)):
        raise UserError(f"{shown}: is read-only; give another output path, or make it writable")
    why = _writable_folder(os.path.dirname(out.path))
    if why:
        raise UserError(f"{shown}: {why}")
    return out


def check_output_folder(path: str, flag: str) -> None:
    """Refuse, before any work, a folder ``path`` to write into (``flag``) that is not a folder or where no
    file can be created (a ``UserError`` "``flag path``: why")."""
    if not os.fspath(path):
        raise UserError(f"{flag}: an empty path")
    target = os.path.realpath(path)
    if os.path.exists(target) and not os.path.isdir(target):
        raise UserError(f"{flag} {path}: is not a folder")
    why = _writable_folder(target)
    if why:
        raise UserError(f"{flag} {path}: {why}")


@contextmanager
def _partial_file(shown: str, *, folder: Optional[str], suffix: str, owner: str) -> Iterator[str]:
    """A new temporary file ``.partial-<owner>.<pid>.<random><suffix>`` in ``folder`` (made if missing; None:
    the system's temporary folder), removed when the block ends. An ``OSError`` in the block (disk full,
    file too large, no permission) is re-raised as a ``WriteError`` naming ``shown``."""
    try:
        if folder is not None:
            os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f"{PARTIAL_PREFIX}{_check_owner(owner)}.{os.getpid()}.", suffix=suffix,
                                   dir=folder)
        os.close(fd)
    except OSError as exc:
        reason = exc.strerror or exc
        raise WriteError(f"cannot write {shown}: " + (f"no temporary file in {tempfile.gettempdir()} ({reason})"
                                                      if folder is None else f"{reason}")) from None
    try:
        yield tmp
    except WriteError:
        raise
    except OSError as exc:
        raise WriteError(f"cannot write {shown}: {exc.strerror or exc}") from None
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)


@contextmanager
def _written_through(out: Output, shown: str, *, suffix: str, owner: str) -> Iterator[str]:
    """A temporary path in the system's temporary folder whose bytes go into the stream ``out`` once the
    block succeeds (a device or pipe is never renamed over)."""
    with _partial_file(shown, folder=None, suffix=suffix, owner=owner) as tmp:
        yield tmp
        if out.fd is not None:  # this process's own descriptor: write where it stands, never close it
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            dest = os.fdopen(os.dup(out.fd), "wb")
        else:
            dest = open(out.path, "wb")
        with open(tmp, "rb") as src, dest:
            shutil.copyfileobj(src, dest, _COPY_CHUNK)


@contextmanager
def atomic_path(path: str, *, suffix: str = "", owner: str = "anon", replace: bool = True) -> Iterator[str]:
    """A temporary path whose complete file becomes ``path`` only if the block succeeds.

    ``path`` is written as ``output_target`` says: a new name or a regular file (also a link's target)
    by renaming the temporary file in its folder over it; a device, a pipe or an open file by streaming
    the bytes into it; a folder, a block device or a socket is a ``WriteError``. On any error the
    temporary file is removed; an ``OSError`` (disk full, file too large, no permission) is re-raised
    naming ``path``. ``suffix`` ends the temporary name. ``replace=False``: the name itself (not followed)
    must not exist, and a file created there meanwhile (another process's) is kept, and that is an error.
    """
    shown = os.path.abspath(os.fspath(path))
    if replace:
        out = output_target(shown)
        if out.stream:
            with _written_through(out, shown, suffix=suffix, owner=owner) as tmp:
                yield tmp
            return
        path = out.path
    else:
        path = shown
    with _partial_file(shown, folder=os.path.dirname(path), suffix=suffix, owner=owner) as tmp:
        yield tmp
        share_as_umask(tmp)
        if replace:
            os.replace(tmp, path)
        else:
            try:
                _rename_without_replacing(tmp, path)
            except FileExistsError:
                raise WriteError(f"cannot write {shown}: another process created it meanwhile") from None


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
