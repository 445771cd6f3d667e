"""Training checkpoints: what they hold, how they are written, which one a resume picks.

A training checkpoint is one MindSpore ``.ckpt`` holding

* every network parameter under its own name (BatchNorm statistics included), so ``tools/eval.py`` and
  ``model.init_checkpoint`` load it like any weights file;
* the optimizer state an exact resume needs: ``global_step`` (the LR index) and the ``moments.*``;
* dot-less loop state (the network loader ignores dot-less names): ``loss_scale``, ``loss_scale_good_steps``,
  and the :class:`~deeplabv3.engine.loop_state.LoopState` entries ``step``, ``data_epoch``, ``data_batch`` (where the
  data stream continues), ``skipped_steps``, ``nonfinite_run``, ``best_metric``, ``best_step`` and ``format``.

Files are written with :func:`~deeplabv3.models.checkpoint.save_checkpoint_atomic` (temporary name, fsync,
rename), and the ``last_checkpoint`` pointer is rewritten atomically only after its target is complete. A process
killed at any moment therefore leaves complete checkpoints only, a pointer to one of them (at worst the previous
one), and at most a ``*.tmp-<pid>*`` file (MindSpore stages its own ``.tmp`` inside that slot), which the next
run removes. Periodic checkpoints are ``checkpoints/step_<step>.ckpt``; the newest ``train.keep_checkpoint_max``
up to the current step are kept.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence, Union

import mindspore as ms
import numpy as np

from ..fileio import pid_alive, write_text_atomic
from ..models.checkpoint import CheckpointError, save_checkpoint_atomic
from .loop_state import LoopState

PathLike = Union[str, os.PathLike]
POINTER = "last_checkpoint"
BEST = "best.ckpt"
_PERIODIC = re.compile(r"step_(\d+)\.ckpt")
_TEMP = re.compile(r".*\.tmp-(\d+)(\..*)?")


def checkpoint_dir(work_dir: PathLike) -> Path:
    return Path(work_dir) / "checkpoints"


def periodic_path(work_dir: PathLike, step: int) -> Path:
    return checkpoint_dir(work_dir) / f"step_{step:08d}.ckpt"


def periodic_checkpoints(work_dir: PathLike) -> List[Path]:
    """Complete periodic checkpoints, oldest first (temporary files never match the name pattern)."""
    folder = checkpoint_dir(work_dir)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if _PERIODIC.fullmatch(p.name) and p.is_file()]
    return sorted(found, key=_step_of)


def latest_checkpoint(work_dir: PathLike) -> Optional[Path]:
    """The checkpoint ``last_checkpoint`` names; without a pointer, the newest periodic checkpoint."""
    pointer = Path(work_dir) / POINTER
    if pointer.is_file():
        target = Path(work_dir) / pointer.read_text(encoding="utf-8").strip()
        if not target.is_file():
            raise CheckpointError(f"{pointer} names {target}, which does not exist; pass --resume CKPT with the "
                                  f"checkpoint to continue from")
        return target
    found = periodic_checkpoints(work_dir)
    return found[-1] if found else None


def remove_stale_temp_files(work_dir: PathLike) -> List[Path]:
    """Delete temporary files left by killed writers (their process no longer exists)."""
    removed = []
    for folder in (Path(work_dir), checkpoint_dir(work_dir)):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            match = _TEMP.fullmatch(path.name)
            writer = int(match.group(1)) if match else None
            if writer is not None and path.is_file() and (writer == os.getpid() or not pid_alive(writer)):
                path.unlink()
                removed.append(path)
    return removed


def save_training_checkpoint(work_dir: PathLike, params: Sequence[ms.Parameter], state: LoopState,
                             keep_max: int) -> Path:
    """Write ``checkpoints/step_<step>.ckpt``, point ``last_checkpoint`` at it, drop the oldest beyond
    ``keep_max``."""
    path = periodic_path(work_dir, state.step)
    save_checkpoint_atomic(list(params), path, append_dict=state.entries())
    write_text_atomic(Path(work_dir) / POINTER, f"{path.relative_to(work_dir)}\n")
    # Checkpoints ahead of this step belong to an abandoned continuation (a resume from an older checkpoint);
    # they are left alone until this run overwrites them.
    older = [p for p in periodic_checkpoints(work_dir) if _step_of(p) < state.step]
    for old in older[:max(0, len(older) - (keep_max - 1))]:
        old.unlink()
    return path


def _step_of(path: Path) -> int:
    match = _PERIODIC.fullmatch(path.name)
    assert match is not None
    return int(match.group(1))


def save_best(work_dir: PathLike, params: Sequence[ms.Parameter], step: int, metric: str, value: float) -> Path:
    """``best.ckpt``: the network's weights at the best evaluation so far, with its step and figure."""
    return save_checkpoint_atomic(list(params), Path(work_dir) / BEST,
                                  append_dict={"step": step, "metric": metric, "metric_value": float(value)})


def restore_parameters(params: Sequence[ms.Parameter], entries: Mapping[str, Any], source: str) -> None:
    """Set ``params`` from ``entries`` by name; every one must be present with its shape."""
    missing = [p.name for p in params if p.name not in entries]
    if missing:
        raise CheckpointError(f"{source} lacks {len(missing)} training-state tensors (first: {missing[0]}); it was "
                              f"written by another configuration (e.g. other frozen layers or optimizer); start "
                              f"from its weights with model.init_checkpoint instead of --resume")
    for param in params:
        value = np.asarray(entries[param.name])
        if tuple(value.shape) != tuple(param.shape):
            raise CheckpointError(f"{source}: '{param.name}' has shape {tuple(value.shape)}, the run expects "
                                  f"{tuple(param.shape)}; the checkpoint belongs to another configuration")
        param.set_data(ms.Tensor(value, dtype=param.dtype))

