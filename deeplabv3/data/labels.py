"""Turning a data set's own mask encoding into training labels: class indices, 255 = ignore.

Masks come as index PNGs (the pixel is the class, possibly after a remapping), as RGB colour masks (the colour is
the class, through a palette) or as binary masks (0 / 255, thresholded at 128 so JPEG-compressed masks work too).
Then, in mmsegmentation's order:

1. ``reduce_zero_label`` (ADE20K's convention): 0 -> ignore, every other value v -> v - 1;
2. ``label_map`` (``{source value: class index or 255}``), applied to the original values at once, so a map may
   swap classes;
3. every value must be a class index in ``[0, num_classes)`` or the ignore label; anything else is an error that
   names the file, each stray value and its pixel count, and the fix (``data.label_map``).

A colour that is not in the palette is an error naming the file, the colour and the first pixel that has it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

import cv2
import numpy as np
from PIL import Image

from ..fileio import atomic_path
from .io import DataError, PathLike, open_label, read_bytes

MASK_FORMATS = ("index", "rgb", "binary")


@dataclass(frozen=True)
class LabelSpec:
    """How to read one data set's masks (see the module docstring)."""
    num_classes: int
    ignore_label: int = 255
    mask_format: str = "index"
    reduce_zero_label: bool = False
    label_map: Mapping[int, int] = field(default_factory=dict)
    palette: Optional[Sequence[Sequence[int]]] = None  # RGB colour of each class, for mask_format "rgb"

    def __post_init__(self) -> None:
        if self.mask_format not in MASK_FORMATS:
            raise DataError(f"mask format {self.mask_format!r} is not one of {', '.join(MASK_FORMATS)}")
        if self.mask_format == "rgb" and not self.palette:
            raise DataError("RGB colour masks need a palette: set data.palette to one [R, G, B] per class")


def remap(values: np.ndarray, spec: LabelSpec) -> np.ndarray:
    """``reduce_zero_label`` then ``label_map`` on an integer map (values 0..255); returns a uint8 map."""
    table = np.arange(256, dtype=np.int64)
    if spec.reduce_zero_label:
        table = np.where(table == 0, spec.ignore_label, table - 1)
        table[spec.ignore_label] = spec.ignore_label
    for source, target in spec.label_map.items():
        table[int(source)] = int(target)
    return table.astype(np.uint8)[values]


def check_classes(label: np.ndarray, source: str, spec: LabelSpec) -> None:
    """Raise :class:`DataError` naming every value outside the classes and the ignore label, with pixel counts."""
    counts = np.bincount(label.ravel(), minlength=256)
    bad = [v for v in np.flatnonzero(counts) if v >= spec.num_classes and v != spec.ignore_label]
    if bad:
        shown = ", ".join(f"{v} ({counts[v]} px)" for v in bad[:10]) + (", ..." if len(bad) > 10 else "")
        example = bad[0]
        raise DataError(f"{source}: mask value(s) {shown} are not classes [0, {spec.num_classes - 1}] nor the ignore "
                        f"label {spec.ignore_label}; map them in data.label_map (e.g. {{{example}: "
                        f"{spec.ignore_label}}} to ignore them) or fix model.num_classes")


def decode_palette(rgb: np.ndarray, source: str, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """``H x W x 3`` RGB colours -> class indices; a colour outside ``palette`` names its first pixel."""
    colours = np.asarray(palette, dtype=np.int64).reshape(-1, 3)
    codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    keys = (colours[:, 0] << 16) | (colours[:, 1] << 8) | colours[:, 2]
    order = np.argsort(keys)
    position = np.clip(np.searchsorted(keys[order], codes), 0, len(keys) - 1)
    found = keys[order][position] == codes
    if not found.all():
        y, x = (int(v) for v in np.argwhere(~found)[0])
        colour = tuple(int(c) for c in rgb[y, x])
        raise DataError(f"{source}: colour RGB{colour} at pixel (x={x}, y={y}) is not in the palette "
                        f"(data.palette has {len(keys)} colours); add it to data.palette or fix the mask")
    return order[position].astype(np.uint8)


def read_mask(path: PathLike, spec: LabelSpec) -> np.ndarray:
    """Read a mask of ``spec.mask_format`` as ``H x W`` uint8 training labels (see the module docstring)."""
    source = str(path)
    mode, pixels = open_label(read_bytes(path), source)
    if spec.mask_format == "rgb":
        if pixels.ndim != 3:
            with Image.open(path) as img:
                pixels = np.asarray(img.convert("RGB"))
        values = decode_palette(np.ascontiguousarray(pixels[..., :3]), source, spec.palette or ())
    elif spec.mask_format == "binary":
        grey = pixels if pixels.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(pixels[..., :3]), cv2.COLOR_RGB2GRAY)
        values = (np.asarray(grey) >= 128).astype(np.uint8)
    else:
        if pixels.ndim != 2 or mode not in ("L", "P"):
            raise DataError(f"{source}: an index mask must be an 8-bit single-channel or palette PNG, got mode "
                            f"{mode!r}; for colour masks use --mask-format rgb with data.palette")
        values = np.asarray(pixels, dtype=np.uint8)
    label = remap(values, spec)
    check_classes(label, source, spec)
    return label


def save_index_png(label: np.ndarray, dst: PathLike) -> None:
    """Write a single-channel (mode L) index PNG atomically: what the MindRecord builder accepts."""
    with atomic_path(Path(dst)) as tmp:
        Image.fromarray(np.ascontiguousarray(label, dtype=np.uint8), mode="L").save(tmp, format="PNG")

