"""Cityscapes (fine annotations): ``labelIds`` -> the 19 training classes, with the official id table.

Input layout (the official ``leftImg8bit_trainvaltest.zip`` + ``gtFine_trainvaltest.zip``)::

    <root>/leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    <root>/gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

Outputs: ``labels/{train,val}/<city>/<name>_labelTrainIds.png`` and ``train.txt`` / ``val.txt``. The table is
``cityscapesscripts/helpers/labels.py``: 34 ids (0-33) and the license plate (-1); the 19 with a train id become
0-18, every other id 255. :func:`to_label_ids` maps train ids back, for the official evaluation server.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from .io import DataError, PathLike
from .labels import LabelSpec, check_classes, read_mask, save_index_png
from .prepare import Pair, PrepareResult, match_pairs, write_prepared

NAME = "cityscapes"
SPLITS = ("train", "val")
IMAGE_SUFFIX, MASK_SUFFIX = "_leftImg8bit.png", "_gtFine_labelIds.png"
LAYOUT = "leftImg8bit/{train,val}/<city>/*_leftImg8bit.png and gtFine/{train,val}/<city>/*_gtFine_labelIds.png"
CLASS_NAMES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
               "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
               "bicycle")
# id -> train id of cityscapesscripts' table (ids 0-33 and -1); 255 = not trained on.
ID_TO_TRAIN_ID: Dict[int, int] = {
    -1: 255, 0: 255, 1: 255, 2: 255, 3: 255, 4: 255, 5: 255, 6: 255, 7: 0, 8: 1, 9: 255, 10: 255, 11: 2, 12: 3,
    13: 4, 14: 255, 15: 255, 16: 255, 17: 5, 18: 255, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13,
    27: 14, 28: 15, 29: 255, 30: 255, 31: 16, 32: 17, 33: 18,
}
SPEC = LabelSpec(num_classes=len(CLASS_NAMES))
RAW_IDS = LabelSpec(num_classes=256)  # read the ids as they are; the table checks them


def to_train_ids(label_ids: np.ndarray, source: str = "<labelIds>") -> np.ndarray:
    """Map a map of Cityscapes ids (any integer dtype, -1 allowed) to train ids; an unknown id is an error."""
    ids = np.asarray(label_ids).astype(np.int64)
    known = np.isin(ids, list(ID_TO_TRAIN_ID))
    if not known.all():
        values, counts = np.unique(ids[~known], return_counts=True)
        shown = ", ".join(f"{v} ({c} px)" for v, c in zip(values[:10].tolist(), counts[:10].tolist()))
        raise DataError(f"{source}: label id(s) {shown} are not Cityscapes ids (-1..33); give the "
                        f"*_gtFine_labelIds.png files, not *_color.png or *_instanceIds.png")
    table = np.full(35, 255, dtype=np.uint8)  # index id + 1, so -1 lands at 0
    for label_id, train_id in ID_TO_TRAIN_ID.items():
        table[label_id + 1] = train_id
    return table[ids + 1]


def to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """Train ids (0-18) -> Cityscapes ids for the evaluation server; anything else -> 0 (unlabeled)."""
    table = np.zeros(256, dtype=np.uint8)
    for label_id, train_id in ID_TO_TRAIN_ID.items():
        if train_id != 255 and label_id >= 0:
            table[train_id] = label_id
    return table[np.asarray(train_ids, dtype=np.uint8)]


def save_label_ids(path: PathLike, train_ids: np.ndarray) -> Path:
    """Write predicted train ids as a grey PNG of Cityscapes ids, the file the evaluation server reads."""
    save_index_png(to_label_ids(train_ids), path)
    return Path(path)


def read_label_ids(path: Path) -> np.ndarray:
    """A ``*_gtFine_labelIds.png`` as train ids."""
    label = to_train_ids(read_mask(path, RAW_IDS), str(path))
    check_classes(label, str(path), SPEC)
    return label


def prepare(root: PathLike, out: PathLike, splits: Optional[List[str]] = None) -> PrepareResult:
    """Convert the fine annotations of ``splits`` (default train and val) and write their lists."""
    root, out = Path(root), Path(out).resolve()
    if not (root / "leftImg8bit").is_dir() or not (root / "gtFine").is_dir():
        raise DataError(f"Cityscapes root {root} has no leftImg8bit/ and gtFine/ folders (expected {LAYOUT})")
    pairs: Dict[str, List[Pair]] = {}
    for split in splits or SPLITS:
        matched = match_pairs(root / "leftImg8bit" / split, root / "gtFine" / split, [IMAGE_SUFFIX], MASK_SUFFIX,
                              recursive=True)
        pairs[split] = [Pair(image, mask, out / "labels" / split / f"{key}_labelTrainIds.png")
                        for key, image, mask in matched]
    return write_prepared(out, NAME, pairs, read_label_ids, CLASS_NAMES)
