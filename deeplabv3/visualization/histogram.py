"""The class-balance chart of ``tools/analyze_dataset.py``: pixel share and image count per class."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from .curves import PathLike, _pyplot, save_figure


def plot_class_histogram(report: Dict[str, Any], out: PathLike) -> Path:
    """Two bar charts (share of labelled pixels, images containing the class) into the PNG ``out``."""
    plt = _pyplot()
    classes = report["classes"]
    names = [c["name"] for c in classes]
    width = max(6.0, 0.35 * len(names))
    fig, axes = plt.subplots(2, 1, figsize=(width, 6), sharex=True)
    axes[0].bar(range(len(names)), [100 * c["share"] for c in classes], color="tab:blue")
    axes[0].set_ylabel("% of labelled pixels")
    axes[1].bar(range(len(names)), [c["images"] for c in classes], color="tab:orange")
    axes[1].set_ylabel(f"images (of {report['num_images']})")
    axes[1].set_xticks(range(len(names)))
    axes[1].set_xticklabels(names, rotation=90 if len(names) > 8 else 0)
    return save_figure(plt, fig, out)
