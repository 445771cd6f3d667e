"""Training curves from ``metrics.jsonl``: loss (per logged step and its interval mean), learning rate, mIoU.

matplotlib is an optional dependency (the ``plot`` extra); reading the records needs only the standard library,
so :func:`read_metrics` works everywhere and :func:`plot_training_curves` says how to install what it lacks.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Union

from ..errors import UserError
from ..fileio import atomic_path

PathLike = Union[str, os.PathLike]
METRICS = "metrics.jsonl"


@dataclass
class Curves:
    """Series by step; ``eval`` holds the evaluation records' figures."""

    steps: List[int] = field(default_factory=list)
    loss: List[float] = field(default_factory=list)
    loss_avg: List[float] = field(default_factory=list)
    lr: List[float] = field(default_factory=list)
    eval_steps: List[int] = field(default_factory=list)
    miou: List[float] = field(default_factory=list)


def metrics_file(path: PathLike) -> Path:
    """``path`` itself, or ``<path>/metrics.jsonl`` for a work directory."""
    path = Path(path)
    found = path / METRICS if path.is_dir() else path
    if not found.is_file():
        raise UserError(f"{found}: no such metrics file; give a training work directory or its metrics.jsonl")
    return found


def read_metrics(path: PathLike) -> Curves:
    """The curves of a work directory or ``metrics.jsonl``.

    A record of a step seen before replaces the earlier one (a resumed run repeats steps after its checkpoint);
    a final line cut short by a kill is skipped.
    """
    train: Dict[int, Dict[str, Any]] = {}
    evals: Dict[int, Dict[str, Any]] = {}
    source = metrics_file(path)
    for line in source.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        target = evals if record.get("type") == "eval" else train
        target[int(record["step"])] = record
    if not train:
        raise UserError(f"{source} holds no training records yet")
    curves = Curves()
    for step in sorted(train):
        record = train[step]
        curves.steps.append(step)
        curves.loss.append(float(record["loss"]))
        curves.loss_avg.append(float(record.get("loss_avg", record["loss"])))
        curves.lr.append(float(record["lr"]))
    for step in sorted(evals):
        if evals[step].get("mIoU") is not None:
            curves.eval_steps.append(step)
            curves.miou.append(float(evals[step]["mIoU"]))
    return curves


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise UserError("plotting needs matplotlib, an optional dependency: pip install 'deeplabv3[plot]' "
                        "(or pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_training_curves(path: PathLike, out: PathLike) -> Path:
    """Draw loss and LR (and mIoU when evaluated) against the step into the PNG ``out``."""
    curves = read_metrics(path)
    plt = _pyplot()
    rows = 3 if curves.miou else 2
    fig, axes = plt.subplots(rows, 1, figsize=(8, 2.6 * rows), sharex=True)
    axes[0].plot(curves.steps, curves.loss, lw=0.8, alpha=0.5, label="loss (logged step)")
    axes[0].plot(curves.steps, curves.loss_avg, lw=1.5, label="loss (interval mean)")
    axes[0].set_ylabel("loss")
    axes[0].legend(loc="upper right")
    axes[1].plot(curves.steps, curves.lr, color="tab:green")
    axes[1].set_ylabel("learning rate")
    if curves.miou:
        axes[2].plot(curves.eval_steps, curves.miou, marker="o", color="tab:red")
        axes[2].set_ylabel("mIoU (%)")
    axes[-1].set_xlabel("step")
    return save_figure(plt, fig, out)


def save_figure(plt: Any, fig: Any, out: PathLike) -> Path:
    """Lay out ``fig``, write it to the PNG ``out`` atomically and close it."""
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return out
