"""Your own data: a folder of images and a folder of masks (or list files), any of three mask encodings.

Pairs are matched by name without the suffix (``photo_01.jpg`` <-> ``photo_01.png``, or ``--mask-suffix
_mask.png`` for ``photo_01_mask.png``), or read from list files of ``<image> <mask>`` lines (relative paths start
from the list's folder). Masks are read as ``data.mask_format`` says (index PNGs, RGB colours through
``data.palette``, binary 0/255), then ``data.reduce_zero_label`` and ``data.label_map`` apply
(:mod:`deeplabv3.data.labels`); the classes are ``model.num_classes`` with ``data.class_names``.

Splits: a second folder pair (``val_images`` / ``val_masks``), a validation list, or, from one folder, a seeded
random ``val_fraction`` of the pairs (sorted by name first, so the split does not depend on the file system).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..config import Config
from .io import DataError, PathLike
from .labels import LabelSpec, read_mask
from .lists import read_pairs
from .prepare import Pair, PrepareResult, match_pairs, write_prepared

NAME = "custom"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class CustomSource:
    """Where the user's pairs are (folders or lists) and how to split them."""
    images: Optional[Path] = None
    masks: Optional[Path] = None
    val_images: Optional[Path] = None
    val_masks: Optional[Path] = None
    train_list: Optional[Path] = None
    val_list: Optional[Path] = None
    image_suffixes: Sequence[str] = IMAGE_SUFFIXES
    mask_suffix: str = ".png"
    val_fraction: float = 0.0
    seed: int = 0


def label_spec(cfg: Config) -> LabelSpec:
    """The mask reading the config describes."""
    data = cfg.data
    return LabelSpec(cfg.model.num_classes, data.ignore_label, data.mask_format, data.reduce_zero_label,
                     dict(data.label_map or {}), data.palette)


def _from_folders(images: Path, masks: Path, source: CustomSource) -> List[Tuple[str, Path, Path]]:
    return match_pairs(images, masks, source.image_suffixes, source.mask_suffix)


def _from_list(path: Path) -> List[Tuple[str, Path, Path]]:
    return [(Path(image).stem, Path(image), Path(mask)) for image, mask in read_pairs(path)]


def _split(pairs: List[Tuple[str, Path, Path]], fraction: float, seed: int) -> Dict[str, List[Tuple[str, Path, Path]]]:
    if not 0.0 < fraction < 1.0:
        raise DataError(f"the validation fraction is {fraction}; give a value in (0, 1), e.g. 0.2, or a separate "
                        f"validation folder or list")
    n_val = max(1, int(round(len(pairs) * fraction)))
    if n_val >= len(pairs):
        raise DataError(f"{len(pairs)} pair(s) cannot be split with a validation fraction of {fraction}: no "
                        f"training pair would be left")
    chosen = set(np.random.default_rng(seed).permutation(len(pairs))[:n_val].tolist())
    return {"train": [p for i, p in enumerate(pairs) if i not in chosen],
            "val": [p for i, p in enumerate(pairs) if i in chosen]}


def collect(source: CustomSource) -> Dict[str, List[Tuple[str, Path, Path]]]:
    """``{split: [(name, image, mask)]}`` for ``train`` and, when given or split off, ``val``."""
    if source.train_list is not None:
        splits = {"train": _from_list(source.train_list)}
    elif source.images is not None and source.masks is not None:
        splits = {"train": _from_folders(source.images, source.masks, source)}
    else:
        raise DataError("give the training data: --images and --masks folders, or --train-list")
    if source.val_list is not None:
        splits["val"] = _from_list(source.val_list)
    elif source.val_images is not None and source.val_masks is not None:
        splits["val"] = _from_folders(source.val_images, source.val_masks, source)
    elif source.val_fraction:
        splits = _split(splits["train"], source.val_fraction, source.seed)
    return splits


def prepare(cfg: Config, source: CustomSource, out: PathLike) -> PrepareResult:
    """Convert the masks as ``cfg`` describes and write ``train.txt`` (and ``val.txt``)."""
    out = Path(out).resolve()
    pairs: Dict[str, List[Pair]] = {}
    for split, matched in collect(source).items():
        names = [name for name, _, _ in matched]
        if len(set(names)) != len(names):  # list files may repeat a stem in different folders
            names = [f"{i:06d}_{name}" for i, name in enumerate(names)]
        pairs[split] = [Pair(image, mask, out / "labels" / split / f"{name}.png")
                        for name, (_, image, mask) in zip(names, matched)]
    spec = label_spec(cfg)
    settings = {"mask_format": spec.mask_format, "reduce_zero_label": spec.reduce_zero_label,
                "label_map": {str(k): v for k, v in spec.label_map.items()}, "palette": spec.palette,
                "ignore_label": spec.ignore_label, "num_classes": spec.num_classes}
    return write_prepared(out, NAME, pairs, partial(read_mask, spec=spec), cfg.class_names, settings)
