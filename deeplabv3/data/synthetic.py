"""Small synthetic data sets in the real Cityscapes, ADE20K and "own data" layouts, for tests and benchmarks.

Like :mod:`deeplabv3.data.demo` for VOC, every file is generated from ``(seed, index)`` alone. Cityscapes and
ADE20K scenes are grids of cells, each one id with a colour of its own plus noise, and the first image of every
split holds every id of the format (Cityscapes 0-33, ADE20K 0-150), so a conversion test sees the whole table.
The custom set is three learnable classes (background, ``disc``, ``box``) in any of the three mask encodings.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

from .io import PathLike

CITYSCAPES_CITIES = {"train": ("aachen", "bochum"), "val": ("frankfurt",)}
CUSTOM_CLASSES = ("background", "disc", "box")
CUSTOM_PALETTE = ((0, 0, 0), (220, 40, 40), (40, 90, 230))


def _id_colour(value: int) -> np.ndarray:
    return np.random.default_rng([7, value]).integers(0, 256, 3).astype(np.float32)


def grid_scene(rng: np.random.Generator, height: int, width: int, ids: Sequence[int],
               cells: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """A BGR image and its id map: ``cells`` (rows, cols) blocks of ``ids`` (cycled), colour per id + noise."""
    rows, cols = cells
    label = np.zeros((height, width), dtype=np.int64)
    image = np.zeros((height, width, 3), dtype=np.float32)
    for n in range(rows * cols):
        r, c = divmod(n, cols)
        y0, y1 = r * height // rows, (r + 1) * height // rows
        x0, x1 = c * width // cols, (c + 1) * width // cols
        label[y0:y1, x0:x1] = ids[n % len(ids)]
        image[y0:y1, x0:x1] = _id_colour(int(ids[n % len(ids)]))
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), label


def _write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")


def _write_image(path: Path, image: np.ndarray) -> None:
    """A BGR image in the format of the extension (JPEG at quality 92)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 92]):
        raise RuntimeError(f"OpenCV could not write {path}")


def _ids(rng: np.random.Generator, first: bool, all_ids: Sequence[int], cells: int) -> List[int]:
    return list(all_ids) if first else rng.choice(all_ids, cells).tolist()


def write_cityscapes(root: PathLike, per_city: int = 2, size: Tuple[int, int] = (64, 128),
                     seed: int = 0) -> Dict[str, List[Path]]:
    """``leftImg8bit`` PNGs and ``gtFine`` labelIds PNGs under ``root``; returns the label files per split."""
    root = Path(root)
    written: Dict[str, List[Path]] = {}
    index = 0
    for split, cities in CITYSCAPES_CITIES.items():
        written[split] = []
        for city in cities:
            for frame in range(per_city):
                rng = np.random.default_rng([seed, index])
                ids = _ids(rng, not written[split], range(34), 36)
                image, label = grid_scene(rng, size[0], size[1], ids, (6, 6))
                stem = f"{city}_{index:06d}_{frame:06d}"
                _write_image(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", image)
                mask = root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png"
                _write_png(mask, label.astype(np.uint8))
                written[split].append(mask)
                index += 1
    return written


def write_ade20k(root: PathLike, num_train: int = 3, num_val: int = 2, size: Tuple[int, int] = (96, 128),
                 seed: int = 0) -> Dict[str, List[Path]]:
    """``ADEChallengeData2016``-layout images and annotations under ``root``; returns the annotations per split."""
    root = Path(root)
    written: Dict[str, List[Path]] = {}
    for split, folder, prefix, count in (("train", "training", "ADE_train", num_train),
                                         ("val", "validation", "ADE_val", num_val)):
        written[split] = []
        for n in range(1, count + 1):
            rng = np.random.default_rng([seed, n, len(split)])
            ids = _ids(rng, n == 1, range(151), 13 * 12)
            image, label = grid_scene(rng, size[0], size[1], ids, (12, 13))
            _write_image(root / "images" / folder / f"{prefix}_{n:08d}.jpg", image)
            mask = root / "annotations" / folder / f"{prefix}_{n:08d}.png"
            _write_png(mask, label.astype(np.uint8))
            written[split].append(mask)
    return written


def custom_scene(rng: np.random.Generator, height: int, width: int) -> Tuple[np.ndarray, np.ndarray]:
    """A BGR image with red discs and blue boxes on a textured grey background, and its 0/1/2 index map."""
    image = np.full((height, width, 3), rng.integers(90, 160), dtype=np.float32)
    image += cv2.resize(rng.normal(0, 20, (4, 4, 3)).astype(np.float32), (width, height))
    label = np.zeros((height, width), dtype=np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        cls = int(rng.integers(1, 3))
        r = int(rng.integers(min(height, width) // 8, min(height, width) // 4))
        cx, cy = int(rng.integers(r, width - r)), int(rng.integers(r, height - r))
        colour = tuple(float(c) for c in np.asarray(CUSTOM_PALETTE[cls][::-1]) + rng.normal(0, 15, 3))
        for target, value in ((image, colour), (label, cls)):
            if cls == 1:
                cv2.circle(target, (cx, cy), r, value, -1)
            else:
                cv2.rectangle(target, (cx - r, cy - r), (cx + r, cy + r), value, -1)
    image += rng.normal(0, 5, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), label


def encode_mask(label: np.ndarray, mask_format: str, palette: Sequence[Sequence[int]] = CUSTOM_PALETTE) -> np.ndarray:
    """The index map as a user's mask file would hold it: indices, RGB colours or binary 0/255 (class > 0)."""
    if mask_format == "rgb":
        return np.asarray(palette, dtype=np.uint8)[label]
    if mask_format == "binary":
        return np.where(label > 0, 255, 0).astype(np.uint8)
    return label


def write_custom(root: PathLike, num_images: int = 40, size: Tuple[int, int] = (96, 112), mask_format: str = "rgb",
                 mask_suffix: str = ".png", seed: int = 0) -> Tuple[Path, Path]:
    """``root/images/<name>.jpg`` and ``root/masks/<name><mask_suffix>``; returns the two folders."""
    root = Path(root)
    for n in range(num_images):
        image, label = custom_scene(np.random.default_rng([seed, n]), *size)
        _write_image(root / "images" / f"sample_{n:04d}.jpg", image)
        _write_png(root / "masks" / f"sample_{n:04d}{mask_suffix}", encode_mask(label, mask_format))
    return root / "images", root / "masks"
