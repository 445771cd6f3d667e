"""The data set kinds ``tools/prepare_dataset.py`` knows, one module each, and what each needs.

Every kind turns its own download (or the user's folders) into index-PNG labels and list files; from there the
MindRecord build, training and evaluation are the same for all of them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

from ..config import Config
from . import ade20k, cityscapes, custom, voc
from .io import DataError


@dataclass(frozen=True)
class PrepareRequest:
    """What the user gave: the download's root (or their folders) and where the prepared set goes."""
    out: Path
    root: Optional[Path] = None
    sbd_root: Optional[Path] = None
    cfg: Optional[Config] = None
    source: Optional[custom.CustomSource] = None


@dataclass(frozen=True)
class DatasetKind:
    """One kind: its classes (None: from the config), the layout it expects and its preparation."""
    name: str
    layout: str
    class_names: Optional[Sequence[str]]
    prepare: Callable[[PrepareRequest], object]


def _need_root(request: PrepareRequest, kind: str) -> Path:
    if request.root is None:
        raise DataError(f"--root is required for --kind {kind} (the folder holding {KINDS[kind].layout})")
    return request.root


def _voc(request: PrepareRequest) -> object:
    return voc.prepare_voc(_need_root(request, "voc"), request.out, request.sbd_root)


def _cityscapes(request: PrepareRequest) -> object:
    return cityscapes.prepare(_need_root(request, "cityscapes"), request.out)


def _ade20k(request: PrepareRequest) -> object:
    return ade20k.prepare(_need_root(request, "ade20k"), request.out)


def _custom(request: PrepareRequest) -> object:
    if request.cfg is None:
        raise DataError("--kind custom needs --config: the classes (model.num_classes, data.class_names) and how the "
                        "masks are encoded (data.mask_format, data.palette, data.label_map) come from it")
    return custom.prepare(request.cfg, request.source or custom.CustomSource(), request.out)


KINDS: Dict[str, DatasetKind] = {
    "voc": DatasetKind("voc", voc.VOC_LAYOUT, None, _voc),
    "cityscapes": DatasetKind("cityscapes", cityscapes.LAYOUT, cityscapes.CLASS_NAMES, _cityscapes),
    "ade20k": DatasetKind("ade20k", ade20k.LAYOUT, ade20k.CLASS_NAMES, _ade20k),
    "custom": DatasetKind("custom", "a folder of images and a folder of masks, or list files", None, _custom),
}


def prepare_dataset(kind: str, request: PrepareRequest) -> object:
    """Prepare a data set of ``kind`` (a key of :data:`KINDS`)."""
    if kind not in KINDS:
        raise DataError(f"unknown data set kind {kind!r}; choose one of {', '.join(KINDS)}")
    return KINDS[kind].prepare(request)
