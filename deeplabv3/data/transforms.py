"""The training augmentation of the published recipe, in NumPy/OpenCV.

Order (the reference's): decode BGR; random rescale ``s ~ U(min_scale, max_scale)`` (image bicubic, label
nearest); normalise with the BGR mean/std; pad bottom/right up to the crop size (image 0 after normalisation,
label ignore); random ``crop_h x crop_w`` window; horizontal flip with ``flip_prob``; HWC -> CHW.

With ``base_size`` (``[long, short]``, mmseg's ``RandomResize(scale=base_size, ratio_range=(min_scale,
max_scale), keep_ratio=True)``, the Cityscapes and ADE20K recipes) the drawn ratio ``r`` scales the *base* size,
and the image is resized by the largest factor that fits it into ``(long * r, short * r)``, whatever its own size.

:func:`train_transform` computes exactly that, but normalises only the cropped window and pads afterwards: every
output pixel is the same arithmetic on the same input pixel, while a 2x-rescaled 500x375 photo costs a third of
the work. Random draws happen in the reference's order (scale, crop row, crop column, flip) from the generator
passed in, so the caller decides whether a sample's augmentation is reproducible.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple, Union

import cv2
import numpy as np

from ..config import Config
from ..config.schema import crop_hw
from .io import decode_image, decode_label_bytes


@dataclass(frozen=True)
class TrainTransformParams:
    """Everything the training augmentation needs, taken from ``data`` / ``data.train`` of the config."""
    crop_size: Union[int, Tuple[int, int]] = 513  # one size (square) or (height, width)
    min_scale: float = 0.5
    max_scale: float = 2.0
    flip_prob: float = 0.5
    mean: Tuple[float, float, float] = (103.53, 116.28, 123.675)
    std: Tuple[float, float, float] = (57.375, 57.120, 58.395)
    ignore_label: int = 255
    base_size: Optional[Tuple[int, int]] = None  # (long, short): random resize relative to it

    @classmethod
    def from_config(cls, cfg: Config) -> "TrainTransformParams":
        train = cfg.data.train
        base = tuple(train.base_size) if train.base_size is not None else None
        return cls(crop_hw(train.crop_size), train.min_scale, train.max_scale, train.flip_prob, tuple(cfg.data.mean),
                   tuple(cfg.data.std), cfg.data.ignore_label, base)


def base_scale(shape: Tuple[int, int], base_size: Tuple[int, int], ratio: float) -> float:
    """The keep-ratio factor fitting an image of ``shape`` (h, w) into ``base_size * ratio`` (mmcv's rescale)."""
    long_target, short_target = max(base_size) * ratio, min(base_size) * ratio
    return min(long_target / max(shape), short_target / min(shape))


def random_scale(image: np.ndarray, label: np.ndarray, scale: float) -> Tuple[np.ndarray, np.ndarray]:
    """Resize both to ``int(size * scale)``: the image bicubic, the label nearest (labels are not averaged)."""
    h, w = label.shape
    new_h, new_w = max(1, int(h * scale)), max(1, int(w * scale))
    image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_CUBIC)
    label = cv2.resize(label, (new_w, new_h), interpolation=cv2.INTER_NEAREST)
    return image, label


def train_transform(image: np.ndarray, label: np.ndarray, params: TrainTransformParams,
                    rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """One training sample: ``H x W x 3`` uint8 BGR + ``H x W`` labels -> ``3 x ch x cw`` float32, ``ch x cw``
    int32."""
    crop_h, crop_w = crop_hw(params.crop_size)
    scale = rng.uniform(params.min_scale, params.max_scale)
    if params.base_size is not None:
        scale = base_scale(label.shape, params.base_size, scale)
    image, label = random_scale(image, label, scale)
    h, w = label.shape
    top = int(rng.integers(0, max(h, crop_h) - crop_h + 1))
    left = int(rng.integers(0, max(w, crop_w) - crop_w + 1))
    flip = rng.random() < params.flip_prob

    window = image[top:top + crop_h, left:left + crop_w]
    win_h, win_w = window.shape[:2]
    out_image = np.zeros((crop_h, crop_w, 3), dtype=np.float32)
    mean = np.asarray(params.mean, dtype=np.float32)
    std = np.asarray(params.std, dtype=np.float32)
    np.divide(np.subtract(window, mean, dtype=np.float32), std, out=out_image[:win_h, :win_w])
    out_label = np.full((crop_h, crop_w), params.ignore_label, dtype=np.int32)
    out_label[:win_h, :win_w] = label[top:top + crop_h, left:left + crop_w]

    chw = out_image.transpose(2, 0, 1)
    if flip:
        return np.ascontiguousarray(chw[:, :, ::-1]), np.ascontiguousarray(out_label[:, ::-1])
    return np.ascontiguousarray(chw), out_label


def train_transform_bytes(image_bytes: bytes, label_bytes: bytes, params: TrainTransformParams,
                          rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """:func:`train_transform` on encoded bytes as stored in the MindRecord (already validated when built)."""
    image = decode_image(image_bytes, "MindRecord image")
    label = decode_label_bytes(label_bytes, "MindRecord label", validate=False)
    return train_transform(image, label, params, rng)
