"""What every data set kind's preparation shares: pairing images with masks, converting the masks, the lists.

A preparation writes, under ``out``: ``labels/<split>/<relative name>.png`` (single-channel index PNGs, 255 =
ignore), one list file ``<split>.txt`` per split (``<image path> <label path>``, absolute paths; the images are
used where they are, since the MindRecord stores their encoded bytes as they are) and ``dataset.json`` (kind,
class count and names, the lists), from which ``tools/build_mindrecord.py`` takes the class count it checks.

Every pair is checked before any list is written: a mask value outside the classes, a colour outside the palette,
an image and mask of different sizes, an image without a mask or a mask without an image. All problems are
reported at once (file names included), and nothing is listed until the whole set converts. Labels newer than
their mask are kept, so re-running after an interruption only does the remaining work -- unless the conversion
settings recorded in ``dataset.json`` changed (another ``data.label_map``, say): then every mask is converted again.
"""
from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ..fileio import write_json_atomic, write_text_atomic
from ..progress import track
from ..runtime import get_logger
from .io import DataError, PathLike
from .labels import save_index_png

DATASET_INFO = "dataset.json"
MAX_SHOWN = 20


@dataclass(frozen=True)
class Pair:
    """One image, its source mask and the index PNG to write for it."""
    image: Path
    mask: Path
    label: Path


@dataclass
class PrepareResult:
    """Counts of one preparation run and where its lists are."""
    out: Path
    converted: int = 0
    up_to_date: int = 0
    lists: Dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _strip(name: str, suffix: str) -> Optional[str]:
    return name[: len(name) - len(suffix)] if name.endswith(suffix) else None


def _index(root: Path, suffixes: Sequence[str], recursive: bool) -> Dict[str, Path]:
    """``{relative path without suffix: file}`` of the files under ``root`` ending in one of ``suffixes``."""
    found: Dict[str, Path] = {}
    files = root.rglob("*") if recursive else root.iterdir()
    for path in sorted(files):
        if not path.is_file():
            continue
        relative = path.relative_to(root).as_posix()
        key = next((k for k in (_strip(relative, s) for s in suffixes) if k), None)
        if key is not None:
            found.setdefault(key, path)
    return found


def match_pairs(images: PathLike, masks: PathLike, image_suffixes: Sequence[str], mask_suffix: str,
                recursive: bool = False) -> List[Tuple[str, Path, Path]]:
    """``[(key, image, mask)]`` matched by the name without its suffix; any unmatched file on either side is an
    error naming it and the file it lacks."""
    images, masks = Path(images), Path(masks)
    for folder, what in ((images, "image"), (masks, "mask")):
        if not folder.is_dir():
            raise DataError(f"{what} folder {folder} does not exist")
    by_image = _index(images, image_suffixes, recursive)
    by_mask = _index(masks, [mask_suffix], recursive)
    if not by_image:
        raise DataError(f"{images}: no images ending in {', '.join(image_suffixes)}; set --image-suffix")
    problems = [f"image {by_image[k]} has no mask (expected {masks / (k + mask_suffix)})"
                for k in by_image if k not in by_mask]
    problems += [f"mask {by_mask[k]} has no image (expected {images / (k + image_suffixes[0])})"
                 for k in by_mask if k not in by_image]
    if problems:
        raise DataError(_listing(f"{len(problems)} unmatched file(s) between {images} and {masks} (matched by name "
                                 f"without the suffix, image {'/'.join(image_suffixes)}, mask {mask_suffix})",
                                 problems))
    return [(k, by_image[k], by_mask[k]) for k in sorted(by_image)]


def _listing(headline: str, problems: Sequence[str]) -> str:
    shown = "\n  ".join(problems[:MAX_SHOWN])
    more = f"\n  ... and {len(problems) - MAX_SHOWN} more" if len(problems) > MAX_SHOWN else ""
    return f"{headline}:\n  {shown}{more}"


def _image_size(path: Path) -> Tuple[int, int]:
    """``(width, height)`` from the file header, without decoding the pixels."""
    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the image ({exc})") from None


def _convert(pair: Pair, read_mask: Callable[[Path], np.ndarray], reuse: bool) -> bool:
    """Convert one pair unless ``reuse`` and its label is up to date; returns whether it converted."""
    if reuse and pair.label.is_file() and pair.label.stat().st_mtime >= pair.mask.stat().st_mtime:
        return False
    label = read_mask(pair.mask)
    width, height = _image_size(pair.image)
    if label.shape != (height, width):
        raise DataError(f"{pair.mask}: mask is {label.shape[1]}x{label.shape[0]} (WxH) but its image {pair.image} "
                        f"is {width}x{height}")
    save_index_png(label, pair.label)
    return True


def write_prepared(out: PathLike, kind: str, splits: Dict[str, List[Pair]], read_mask: Callable[[Path], np.ndarray],
                   class_names: Sequence[str], settings: Optional[dict] = None,
                   workers: Optional[int] = None) -> PrepareResult:
    """Convert every pair of every split, then write the list files and ``dataset.json``.

    ``settings`` (JSON-able) describe the conversion; labels of an earlier run with other settings are redone.
    """
    start = time.perf_counter()
    out = Path(out).resolve()
    result = PrepareResult(out)
    pairs = [p for split in splits.values() for p in split]
    if not pairs:
        raise DataError(f"no pairs to prepare for {kind}")
    settings = json.loads(json.dumps(settings or {}))  # as it reads back (string keys)
    previous = dataset_info(out / DATASET_INFO)
    reuse = previous is not None and previous.get("kind") == kind and previous.get("settings", {}) == settings

    def convert(pair: Pair) -> Tuple[Optional[bool], Optional[str]]:
        try:
            return _convert(pair, read_mask, reuse), None
        except DataError as exc:
            return None, str(exc)

    problems = []
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        for converted, problem in track(pool.map(convert, pairs), len(pairs), f"converting {kind} masks", "mask"):
            if problem is not None:
                problems.append(problem)
            elif converted:
                result.converted += 1
            else:
                result.up_to_date += 1
    if problems:
        raise DataError(_listing(f"{len(problems)} of {len(pairs)} masks cannot be used; fix them (no list was "
                                 f"written)", problems))
    for name, split in splits.items():
        write_text_atomic(out / f"{name}.txt", "".join(f"{p.image} {p.label}\n" for p in split))
        result.lists[name] = len(split)
    write_json_atomic(out / DATASET_INFO, {"kind": kind, "num_classes": len(class_names),
                                           "class_names": list(class_names), "settings": settings,
                                           "lists": {n: str(out / f"{n}.txt") for n in splits}})
    result.seconds = time.perf_counter() - start
    get_logger().info("%s: %d mask(s) converted, %d already up to date; lists in %s: %s", kind, result.converted,
                      result.up_to_date, out, ", ".join(f"{k}.txt {v}" for k, v in result.lists.items()))
    return result


def dataset_info(list_path: PathLike) -> Optional[dict]:
    """The ``dataset.json`` next to a prepared list file, if there is one."""
    path = Path(list_path).resolve().parent / DATASET_INFO
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable ({exc}); prepare the data set again") from None
