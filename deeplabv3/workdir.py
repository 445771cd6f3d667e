"""Output directories: one owner at a time, and file-system faults reported as the user's to fix.

Two trainings in one work dir would truncate each other's ``metrics.jsonl`` and overwrite each other's
checkpoints, so a training holds an exclusive OS lock (``fcntl.flock``) on ``<work_dir>/.lock`` for its whole
life. The kernel releases it when the process ends, however it ends (SIGKILL included), so a stale lock never
needs cleaning up; the file only records who holds it (pid, host, start time, command) for the message the next
run prints. Evaluation takes no lock (several may run beside a training, each on its own checkpoint): it writes
under names no training writes (``eval.log``, ``--out``) and refuses an ``--out`` that is a training's file.

File-system faults (a path that is a file, a read-only or full file system) are found before any work where
possible (:func:`ensure_writable_dir`), and an ``OSError`` of that kind during the run is turned into
:class:`FileSystemError` naming the path and the file system that is full or read-only
(:func:`file_system_error`).
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Optional, Union

from .errors import UserError

PathLike = Union[str, os.PathLike]
TRAIN_LOCK = ".lock"
# errno values that are the user's to fix: the disk, the mount or the path, not the program.
USER_ERRNOS = {errno.ENOSPC: "no space left", errno.EDQUOT: "disk quota exceeded", errno.EROFS: "read-only file system",
               errno.EEXIST: "already exists", errno.ENOTDIR: "not a directory", errno.EISDIR: "is a directory",
               errno.EACCES: "permission denied", errno.EPERM: "operation not permitted"}

_held: Dict[Path, int] = {}  # lock file -> open descriptor, kept for the life of the process


class WorkDirBusyError(UserError):
    """Another process holds the directory's lock."""


class FileSystemError(UserError):
    """A path cannot be written: it is a file, read-only, or its file system is full."""


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process (it has not recorded itself yet)"
    return (f"pid {info.get('pid')} on host {info.get('host')}, started {info.get('started')} "
            f"({info.get('command')})")


def hold(directory: PathLike) -> Path:
    """Take the exclusive lock ``<directory>/.lock`` for the rest of this process's life (idempotent).

    Raises :class:`WorkDirBusyError` naming the holder when another process has it.
    """
    directory = ensure_writable_dir(directory, "work dir")
    path = (directory / TRAIN_LOCK).resolve()
    if path in _held:
        return path
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise WorkDirBusyError(f"{directory} is in use by {holder}: its training owns {path}. Wait for it to end "
                               f"(or stop it), or choose another directory (--work-dir / runtime.work_dir)") from None
    record = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime()), "command": " ".join(sys.argv)}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)
    _held[path] = fd
    return path


def ensure_writable_dir(directory: PathLike, what: str) -> Path:
    """Create ``directory`` if needed and prove a file can be created in it; else :class:`FileSystemError`."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise FileSystemError(f"{what} {directory} is a file, not a directory; remove it or choose another path")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:  # named after the directory, not the probe file inside it
        raise file_system_error(OSError(exc.errno, exc.strerror), directory, what) from None
    return directory


def ensure_writable_file(path: PathLike, what: str) -> Path:
    """Check ``path`` can be written later: not a directory, its directory writable (created if needed)."""
    path = Path(path)
    if path.is_dir():
        raise FileSystemError(f"{what} {path} is a directory; give a file name, e.g. {path / 'results.json'}")
    ensure_writable_dir(path.parent, f"the directory of {what} {path},")
    return path


def _mount_point(path: Path) -> Path:
    path = path.resolve()
    while not path.exists():
        path = path.parent
    while path != path.parent and os.stat(path.parent).st_dev == os.stat(path).st_dev:
        path = path.parent
    return path


def describe_file_system(path: PathLike) -> str:
    """``the file system at <mount> (<free> MiB free of <size> MiB)`` for the messages of a full disk."""
    mount = _mount_point(Path(path))
    stats = os.statvfs(mount)
    free, size = stats.f_bavail * stats.f_frsize / 2 ** 20, stats.f_blocks * stats.f_frsize / 2 ** 20
    return f"the file system at {mount} ({free:.1f} MiB free of {size:.1f} MiB)"


def file_system_error(exc: OSError, path: Optional[PathLike] = None, what: str = "") -> Exception:
    """``exc`` as a :class:`FileSystemError` naming the path and what is full or read-only; other errors as is."""
    if exc.errno not in USER_ERRNOS:
        return exc
    target = Path(exc.filename) if exc.filename else Path(path) if path is not None else None
    where = f"{what} {target}" if what and target is not None else str(target) if target is not None else what
    cause = USER_ERRNOS[exc.errno]
    if exc.errno in (errno.ENOSPC, errno.EDQUOT) and target is not None:
        fix = f"{describe_file_system(target)} is full; free space there or write elsewhere"
    elif exc.errno == errno.EROFS and target is not None:
        fix = f"{_mount_point(target)} is mounted read-only; write elsewhere"
    elif exc.errno == errno.EEXIST:
        fix = "remove it or choose another path"
    else:
        fix = "check the path and its permissions, or write elsewhere"
    return FileSystemError(f"{where}: {cause} ({exc.strerror}); {fix}")
