"""ADE20K (the SceneParsing challenge release): 150 classes, 0 = "other objects" ignored (reduce_zero_label).

Input layout (``ADEChallengeData2016.zip``)::

    <root>/images/{training,validation}/ADE_{train,val}_<n>.jpg
    <root>/annotations/{training,validation}/ADE_{train,val}_<n>.png      (0 = other, 1..150 = classes)

Outputs: ``labels/{train,val}/<name>.png`` (0 -> 255, v -> v - 1) and ``train.txt`` / ``val.txt``.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Dict, List

from .io import DataError, PathLike
from .labels import LabelSpec, read_mask
from .prepare import Pair, PrepareResult, match_pairs, write_prepared

NAME = "ade20k"
CLASS_NAMES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path",
    "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge", "bookcase",
    "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm",
    "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light",
    "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver", "airplane",
    "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster",
    "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool",
    "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank",
    "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture",
    "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)
NUM_CLASSES = len(CLASS_NAMES)  # 150
SPLITS = {"train": "training", "val": "validation"}
LAYOUT = "images/{training,validation}/*.jpg and annotations/{training,validation}/*.png"
SPEC = LabelSpec(num_classes=NUM_CLASSES, reduce_zero_label=True)


def prepare(root: PathLike, out: PathLike) -> PrepareResult:
    """Convert both splits' annotations and write their lists."""
    root, out = Path(root), Path(out).resolve()
    if not (root / "images").is_dir() or not (root / "annotations").is_dir():
        nested = root / "ADEChallengeData2016"
        hint = f"; did you mean {nested}?" if nested.is_dir() else ""
        raise DataError(f"ADE20K root {root} has no images/ and annotations/ folders{hint} (expected {LAYOUT})")
    pairs: Dict[str, List[Pair]] = {}
    for split, folder in SPLITS.items():
        matched = match_pairs(root / "images" / folder, root / "annotations" / folder, [".jpg"], ".png")
        pairs[split] = [Pair(image, mask, out / "labels" / split / f"{key}.png") for key, image, mask in matched]
    return write_prepared(out, NAME, pairs, partial(read_mask, spec=SPEC), CLASS_NAMES)
