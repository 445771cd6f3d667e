"""Reading images and label maps, with errors that name the file and the fix.

Images are decoded by OpenCV as BGR (the order the published weights were trained on). EXIF orientation is
ignored on purpose: label PNGs carry no orientation tag, so rotating only the photo would misalign it with its
label.

Labels are single-channel maps of class indices, 255 = ignore. Two PNG kinds hold such indices:

* mode ``"L"`` (8-bit grey): what ``tools/prepare_voc.py`` writes and what the training MindRecord stores;
* mode ``"P"`` (palette): VOC's ``SegmentationClass`` files store the class index per pixel and a colour table
  for display. Reading the indices (not the colours) is correct, so :func:`read_label` accepts them.

A colour (RGB/RGBA) label is refused: its values are colours, not classes, and reading one channel of it is the
classic silent-garbage bug. The training pipeline decodes the stored PNG bytes with OpenCV, which expands a
palette to colours, so :func:`decode_label_bytes` (used by the MindRecord builder and the pipeline) accepts only
true single-channel PNGs; ``tools/prepare_voc.py`` converts palette PNGs to them.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Optional, Tuple, Union

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import UserError

PathLike = Union[str, os.PathLike]
CONVERT_HINT = "convert the labels to single-channel index PNGs with tools/prepare_voc.py"


class DataError(UserError, ValueError):
    """A data file or list is missing or malformed; the message names the file and what to do."""


def voc_palette(num_colors: int = 256) -> np.ndarray:
    """The PASCAL VOC colour table, ``num_colors x 3`` uint8 RGB (index 255 is the ignore colour)."""
    palette = np.zeros((num_colors, 3), dtype=np.uint8)
    for index in range(num_colors):
        value, r, g, b = index, 0, 0, 0
        for bit in range(8):
            r |= ((value >> 0) & 1) << (7 - bit)
            g |= ((value >> 1) & 1) << (7 - bit)
            b |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette[index] = (r, g, b)
    return palette


def read_bytes(path: PathLike) -> bytes:
    """The raw bytes of ``path``; a missing or unreadable file raises :class:`DataError`."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a file")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror})") from None


def decode_image(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes to ``H x W x 3`` uint8 BGR; ``source`` names the origin in errors."""
    buf = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(buf, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) if buf.size else None
    if image is None:  # OpenCV 4.11 also fails on truncated JPEG/PNG data rather than returning grey rows
        raise DataError(f"{source}: cannot decode the image (corrupt, truncated or not an image file, "
                        f"{len(data)} bytes)")
    return image


def read_image(path: PathLike) -> np.ndarray:
    """Read an image file as ``H x W x 3`` uint8 BGR (grey images are expanded to three channels)."""
    return decode_image(read_bytes(path), str(path))


def open_label(data: bytes, source: str) -> Tuple[str, np.ndarray]:
    """Fully decode a label with Pillow: its mode and pixels (palette PNGs give their indices)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.mode, np.asarray(img)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise DataError(f"{source}: cannot decode the label (corrupt, truncated or not an image: {exc})") from None


def _mode_error(source: str, mode: str, pixels: np.ndarray) -> DataError:
    """Explain why a label of this mode is not a map of class indices."""
    if pixels.ndim != 3:
        return DataError(f"{source}: label PNG has mode {mode!r} (e.g. 16-bit or 1-bit); labels must be 8-bit "
                         f"single-channel PNGs of class indices: {CONVERT_HINT}")
    colours = np.unique(pixels[..., :3].reshape(-1, 3), axis=0)
    palette = {tuple(c) for c in voc_palette().tolist()}
    if pixels.shape[-1] >= 3 and all(tuple(c) in palette for c in colours.tolist()):
        kind = "a colourised VOC mask (its pixels are palette colours, not class indices)"
    else:
        kind = "a multi-channel image, not a map of class indices"
    return DataError(f"{source}: label is {mode}, {kind}; labels must be single-channel PNGs holding class "
                     f"indices (255 = ignore): {CONVERT_HINT}")


def check_label_values(label: np.ndarray, source: str, num_classes: Optional[int], ignore_label: int = 255) -> None:
    """Raise :class:`DataError` unless every value is in ``[0, num_classes)`` or ``ignore_label``."""
    if num_classes is None:
        return
    values = np.unique(label)
    bad = values[(values >= num_classes) & (values != ignore_label)]
    if bad.size:
        shown = ", ".join(str(v) for v in bad[:10].tolist()) + (", ..." if bad.size > 10 else "")
        raise DataError(f"{source}: label values {shown} are outside [0, {num_classes - 1}] and not the ignore "
                        f"label {ignore_label}; check model.num_classes or the label file")


def read_label(path: PathLike, num_classes: Optional[int] = None, ignore_label: int = 255) -> np.ndarray:
    """Read a label PNG as ``H x W`` uint8 class indices.

    Accepts grey (``"L"``) and palette (``"P"``, the indices are read) PNGs; refuses colour and 16-bit labels.
    With ``num_classes`` every value must be a class index or ``ignore_label``.
    """
    source = str(path)
    mode, pixels = open_label(read_bytes(path), source)
    if mode not in ("L", "P"):
        raise _mode_error(source, mode, pixels)
    label = np.ascontiguousarray(pixels, dtype=np.uint8)
    check_label_values(label, source, num_classes, ignore_label)
    return label


def decode_label_bytes(data: bytes, source: str = "<bytes>", num_classes: Optional[int] = None,
                       ignore_label: int = 255, validate: bool = True) -> np.ndarray:
    """Decode an encoded single-channel label PNG the way the training pipeline does (OpenCV).

    ``validate=True`` (the MindRecord builder) first checks the PNG is a true single-channel (mode ``"L"``) PNG
    and the values; ``validate=False`` is the pipeline's hot path for bytes the builder already checked.
    """
    if validate:
        mode, pixels = open_label(data, source)
        if mode == "P":
            raise DataError(f"{source}: label is a palette PNG; the training data stores single-channel (mode L) "
                            f"index PNGs, because a palette PNG decodes to colours there: {CONVERT_HINT}")
        if mode != "L":
            raise _mode_error(source, mode, pixels)
    label = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if label is None or label.ndim != 2 or label.dtype != np.uint8:
        raise DataError(f"{source}: cannot decode the label as an 8-bit single-channel PNG: {CONVERT_HINT}")
    if validate:
        check_label_values(label, source, num_classes, ignore_label)
    return label
