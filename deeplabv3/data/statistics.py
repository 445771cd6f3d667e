"""Class statistics of a training set: pixel and image counts per class, and class weights drawn from them.

The counts come from the labels as training reads them: the index PNGs of a list file, or the label bytes of a
MindRecord. Two classic balancings turn them into ``loss.class_weights: auto``:

* ``inverse_frequency``: ``w_c = 1 / f_c`` with ``f_c`` the class's share of all labelled pixels;
* ``median_frequency`` (Eigen & Fergus 2015): ``w_c = median(f) / f_c`` with ``f_c`` the class's pixels over the
  pixels of the images it appears in.

Both are scaled so the present classes' weights average 1 (the loss keeps its magnitude); a class absent from
the data gets weight 1 (no pixel of it is ever weighted).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Sequence, Tuple

import cv2
import numpy as np

from .io import DataError, PathLike, read_label
from .lists import read_list

BALANCINGS = ("inverse_frequency", "median_frequency")


@dataclass
class ClassStats:
    """Per-class pixel and image counts, the pixels of the images each class is in, and stray values."""
    num_classes: int
    ignore_label: int = 255
    pixels: np.ndarray = field(init=False)
    images: np.ndarray = field(init=False)
    image_pixels: np.ndarray = field(init=False)
    ignored: int = 0
    num_images: int = 0
    stray: Dict[int, Dict[str, int]] = field(default_factory=dict)  # value -> {source: pixel count}
    sizes: Dict[Tuple[int, int], int] = field(default_factory=dict)  # (height, width) -> images

    def __post_init__(self) -> None:
        for name in ("pixels", "images", "image_pixels"):
            setattr(self, name, np.zeros(self.num_classes, dtype=np.int64))

    def add(self, label: np.ndarray, source: str) -> None:
        """Count one label map."""
        counts = np.bincount(label.ravel(), minlength=256)
        present = counts[:self.num_classes] > 0
        self.pixels += counts[:self.num_classes]
        self.images += present
        self.image_pixels += present * label.size
        self.ignored += int(counts[self.ignore_label]) if self.ignore_label < 256 else 0
        self.num_images += 1
        self.sizes[label.shape] = self.sizes.get(label.shape, 0) + 1
        for value in np.flatnonzero(counts):
            if value >= self.num_classes and value != self.ignore_label:
                self.stray.setdefault(int(value), {})[source] = int(counts[value])


def list_labels(list_path: PathLike) -> Iterator[Tuple[str, np.ndarray]]:
    """``(label path, label)`` of every pair of a list file."""
    for entry in read_list(list_path):
        yield entry.label, read_label(entry.label)


def mindrecord_labels(first_shard: PathLike) -> Iterator[Tuple[str, np.ndarray]]:
    """``(file_name, label)`` of every record of a MindRecord shard set, decoded as training decodes them."""
    from mindspore.mindrecord import FileReader

    try:
        reader = FileReader(str(first_shard), columns=["file_name", "label"])
    except (RuntimeError, OSError, ValueError) as exc:
        raise DataError(f"MindRecord {first_shard} cannot be opened ({str(exc).strip().splitlines()[-1]})") from None
    try:
        for row in reader.get_next():
            label = cv2.imdecode(np.frombuffer(bytes(row["label"]), np.uint8), cv2.IMREAD_UNCHANGED)
            yield str(row["file_name"]), label
    finally:
        reader.close()


def collect_stats(labels: Iterable[Tuple[str, np.ndarray]], num_classes: int, ignore_label: int = 255) -> ClassStats:
    stats = ClassStats(num_classes, ignore_label)
    for source, label in labels:
        stats.add(label, source)
    if stats.num_images == 0:
        raise DataError("the data set holds no labels to count")
    return stats


def class_weights(stats: ClassStats, method: str) -> List[float]:
    """Weights of ``method`` (one of :data:`BALANCINGS`) from ``stats``; see the module docstring."""
    if method not in BALANCINGS:
        raise DataError(f"class weighting {method!r} is not one of {', '.join(BALANCINGS)}")
    present = stats.pixels > 0
    if not present.any():
        raise DataError("no labelled pixel of any class: cannot derive class weights")
    weights = np.ones(stats.num_classes, dtype=np.float64)
    if method == "inverse_frequency":
        freq = stats.pixels[present] / stats.pixels.sum()
        raw = 1.0 / freq
    else:
        freq = stats.pixels[present] / stats.image_pixels[present]
        raw = np.median(freq) / freq
    weights[present] = raw / raw.mean()
    return [float(w) for w in weights]


def stats_report(stats: ClassStats, class_names: Sequence[str], max_files: int = 20) -> dict:
    """The JSON of ``tools/analyze_dataset.py``: per-class counts, stray values with files, sizes, weights."""
    labelled = int(stats.pixels.sum())
    classes = [{"index": c, "name": class_names[c] if c < len(class_names) else f"class_{c}",
                "pixels": int(stats.pixels[c]), "share": stats.pixels[c] / labelled if labelled else 0.0,
                "images": int(stats.images[c])} for c in range(stats.num_classes)]
    stray = {str(v): {"pixels": sum(files.values()), "files": dict(sorted(files.items())[:max_files]),
                      "num_files": len(files)} for v, files in sorted(stats.stray.items())}
    sizes = [{"height": h, "width": w, "images": n} for (h, w), n in sorted(stats.sizes.items(), key=lambda kv: -kv[1])]
    return {
        "num_images": stats.num_images, "num_classes": stats.num_classes, "labelled_pixels": labelled,
        "ignored_pixels": stats.ignored, "classes": classes, "values_outside_classes": stray, "sizes": sizes,
        "absent_classes": [c["name"] for c in classes if not c["pixels"]],
        "suggested_class_weights": {m: class_weights(stats, m) for m in BALANCINGS} if labelled else {},
    }
