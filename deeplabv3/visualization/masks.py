"""Pictures of label maps: VOC-palette PNGs, overlays on the photo, and a legend of the classes present.

Masks are saved as palette (mode ``"P"``) PNGs: the pixel values stay the class indices, so the same file can be
read back as a label map, while every viewer shows the VOC colours. The colour table is VOC's standard one
(:func:`deeplabv3.data.io.voc_palette`, bit-interleaved; index 255, the ignore label, is a light cream), unless the
config gives the classes' own colours (``data.palette``, :func:`full_palette`): every function takes ``palette``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Union

import cv2
import numpy as np
from PIL import Image

from ..data.io import voc_palette
from ..fileio import atomic_path

PathLike = Union[str, os.PathLike]
PALETTE = voc_palette(256)  # RGB
PALETTE_BGR = np.ascontiguousarray(PALETTE[:, ::-1])
JPEG_QUALITY = 95


def full_palette(colours: Optional[Sequence[Sequence[int]]] = None) -> np.ndarray:
    """256 x 3 RGB: ``colours`` for the first classes (``data.palette``), VOC's table for every other index."""
    if colours is None:
        return PALETTE
    palette = PALETTE.copy()
    palette[:len(colours)] = np.asarray(colours, dtype=np.uint8).reshape(-1, 3)
    return palette


def colorize(mask: np.ndarray, palette: Optional[np.ndarray] = None) -> Image.Image:
    """A label map as a mode ``"P"`` image carrying the palette (VOC's by default; values must be below 256)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a label map must be 2-D, got shape {mask.shape}")
    if mask.size and (mask.min() < 0 or mask.max() > 255):
        raise ValueError(f"label values must be in [0, 255] for a palette PNG, got {mask.min()}..{mask.max()}")
    image = Image.fromarray(mask.astype(np.uint8))
    # turns the grey image into mode "P", values unchanged
    image.putpalette((PALETTE if palette is None else palette).reshape(-1).tolist())
    return image


def save_mask(path: PathLike, mask: np.ndarray, palette: Optional[np.ndarray] = None) -> Path:
    """Write ``mask`` as a palette PNG, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        colorize(mask, palette).save(tmp, format="PNG")
    return path


def _bgr(palette: Optional[np.ndarray]) -> np.ndarray:
    return PALETTE_BGR if palette is None else np.ascontiguousarray(palette[:, ::-1])


def color_mask(mask: np.ndarray, palette: Optional[np.ndarray] = None) -> np.ndarray:
    """``H x W x 3`` uint8 BGR colours of a label map."""
    return _bgr(palette)[np.asarray(mask, dtype=np.uint8)]


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5,
            palette: Optional[np.ndarray] = None) -> np.ndarray:
    """Alpha-blend the mask's colours over a BGR image: ``(1 - alpha) * image + alpha * colours``."""
    if image.shape[:2] != mask.shape[:2]:
        raise ValueError(f"image {image.shape[:2]} and mask {mask.shape[:2]} differ in size")
    return cv2.addWeighted(image, 1.0 - alpha, color_mask(mask, palette), alpha, 0.0)


def present_classes(mask: np.ndarray, num_classes: int) -> list:
    """Class indices that occur in ``mask`` (ignore values and other out-of-range values excluded)."""
    values = np.unique(mask)
    return [int(v) for v in values if v < num_classes]


def legend(class_ids: Sequence[int], class_names: Sequence[str], width: int, row_height: int = 20,
           palette: Optional[np.ndarray] = None) -> np.ndarray:
    """A BGR strip ``width`` pixels wide listing colour swatch + name for each class, wrapped into rows."""
    font, scale, thickness = cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1
    pad, swatch = 4, row_height - 8
    entries = []
    for cid in class_ids:
        name = class_names[cid] if cid < len(class_names) else f"class_{cid}"
        (text_w, _), _ = cv2.getTextSize(name, font, scale, thickness)
        entries.append((cid, name, swatch + pad + text_w + 3 * pad))
    rows, x = [[]], 0
    for entry in entries:
        if x + entry[2] > width and rows[-1]:
            rows.append([])
            x = 0
        rows[-1].append(entry)
        x += entry[2]
    strip = np.full((row_height * len(rows), width, 3), 255, dtype=np.uint8)
    bgr = _bgr(palette)
    for r, row in enumerate(rows):
        x, top = pad, r * row_height
        for cid, name, entry_w in row:
            colour = tuple(int(c) for c in bgr[cid])
            cv2.rectangle(strip, (x, top + 4), (x + swatch, top + 4 + swatch), colour, thickness=-1)
            cv2.rectangle(strip, (x, top + 4), (x + swatch, top + 4 + swatch), (0, 0, 0), thickness=1)
            cv2.putText(strip, name, (x + swatch + pad, top + row_height - 6), font, scale, (0, 0, 0), thickness,
                        cv2.LINE_AA)
            x += entry_w
    return strip


def side_by_side(image: np.ndarray, prediction: np.ndarray, label: Optional[np.ndarray],
                 class_names: Sequence[str], alpha: float = 0.5, palette: Optional[np.ndarray] = None) -> np.ndarray:
    """``image | prediction overlay [| ground-truth overlay]`` with a legend of the classes in either map."""
    panels = [image, overlay(image, prediction, alpha, palette)]
    classes = set(present_classes(prediction, len(class_names)))
    if label is not None:
        panels.append(overlay(image, label, alpha, palette))
        classes |= set(present_classes(label, len(class_names)))
    gap = np.full((image.shape[0], 4, 3), 255, dtype=np.uint8)
    row = [panels[0]]
    for panel in panels[1:]:
        row += [gap, panel]
    top = np.concatenate(row, axis=1)
    return np.concatenate([top, legend(sorted(classes), class_names, top.shape[1], palette=palette)], axis=0)


def save_image(path: PathLike, image: np.ndarray) -> Path:
    """Write a BGR image (format from the extension), atomically."""
    path = Path(path)
    suffix = path.suffix.lower() or ".png"
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if suffix in (".jpg", ".jpeg") else []
    ok, data = cv2.imencode(suffix, image, params)
    if not ok:
        raise ValueError(f"{path}: OpenCV cannot encode an image with extension {path.suffix!r}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.tobytes())
    return path
