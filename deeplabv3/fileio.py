"""Atomic file output: write to a temporary name in the same directory, rename only when complete.

A process killed mid-write leaves at most a ``*.tmp-<pid>`` file that nothing in the project reads, never a file
under the final name with partial content. A write that fails (a full or read-only disk) removes its temporary
file and raises :class:`~deeplabv3.workdir.FileSystemError` naming the final path.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator, Union

from .workdir import file_system_error

PathLike = Union[str, os.PathLike]


def temp_name(path: PathLike) -> Path:
    """The temporary sibling of ``path`` used while it is being written."""
    path = Path(path)
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically, on error it is removed."""
    path = Path(path)
    tmp = temp_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise file_system_error(exc, path) from None
    finally:
        if tmp.exists():
            tmp.unlink()


def file_mode() -> int:
    """``0o666`` less the process's umask: the mode ``open()`` gives new files, for writers that set their own
    (MindSpore's checkpoints and MindRecord files are otherwise readable by their owner only)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o077)  # no /proc: read the umask by setting it, briefly to a strict one
    os.umask(mask)
    return 0o666 & ~mask


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs; a temporary file of a dead writer is a leftover to remove."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_text_atomic(path: PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: PathLike, data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
