"""What an export request may ask for, checked before any network is built: format, input size and layout,
output, batch size and tolerances.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

from ..config import Config
from ..errors import UserError
from ..models.deeplab import OUTPUTS

PathLike = Union[str, os.PathLike]
SUFFIXES: Dict[str, str] = {"MINDIR": ".mindir", "ONNX": ".onnx", "CKPT": ".ckpt"}
FORMATS = tuple(SUFFIXES)
INPUT_FORMATS = ("NCHW", "NHWC")
PRECISIONS = ("fp32", "fp16", "int8")
CALIBRATION_METHODS = ("MinMax", "Entropy", "Percentile")
# Default --min-agreement: float32 labels must match the network; reduced precision must keep the float32 argmax.
DEFAULT_AGREEMENT = {"fp32": 0.999, "fp16": 0.99, "int8": 0.95}


class ExportError(UserError, ValueError):
    """An export request that cannot be honoured (format, size, missing package); the message says what to do."""


@dataclass(frozen=True)
class ExportOptions:
    """What to export. ``input_size`` is (H, W); ``None`` means ``eval.crop_size`` (MINDIR only).

    ``precision`` other than fp32 (ONNX only) converts the verified float32 file; int8 is calibrated on the first
    ``calib_images`` images of ``calib_list`` with ``calib_method``. ``min_agreement`` (default by precision,
    :data:`DEFAULT_AGREEMENT`) is the share of pixels whose class must match the float32 network; ``force``
    writes a file below it anyway.
    """

    fmt: str
    input_size: Optional[Tuple[int, int]] = None
    batch_size: int = 1
    output: str = "probs"
    input_format: str = "NCHW"
    atol: float = 1e-4
    min_agreement: Optional[float] = None
    precision: str = "fp32"
    calib_list: Optional[str] = None
    calib_images: int = 32
    calib_method: str = "MinMax"
    force: bool = False

    @property
    def required_agreement(self) -> float:
        return DEFAULT_AGREEMENT[self.precision] if self.min_agreement is None else self.min_agreement


def normalize_format(fmt: str) -> str:
    """``"onnx"`` -> ``"ONNX"``; an unknown format is an :class:`ExportError` listing the known ones."""
    upper = str(fmt).strip().upper()
    if upper not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)} (MINDIR for MindSpore "
                          f"and MindSpore Lite, ONNX for onnxruntime and other runtimes, CKPT for weights only)")
    return upper


def require_onnx() -> None:
    """Fail early, with the install command, when the ``onnx`` extra is missing."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise ExportError(f"ONNX export needs the onnx and onnxruntime packages ({exc}); install them with "
                          f"pip install 'deeplabv3[onnx]' (or pip install onnx onnxruntime)") from None


def resolve_input_size(cfg: Config, options: ExportOptions, output_stride: int) -> Tuple[int, int]:
    """The fixed (H, W) to export at, checked against what the format and the output stride allow."""
    if options.input_size is None:
        if options.fmt == "ONNX":
            raise ExportError("ONNX export needs a fixed input size: the resize is stored as interpolation matrices "
                              f"for one size. Give --input-size H W, e.g. --input-size {cfg.eval.crop_size} "
                              f"{cfg.eval.crop_size} (eval.crop_size), and pad or resize images to it")
        return cfg.eval.crop_size, cfg.eval.crop_size
    height, width = options.input_size
    if height < 1 or width < 1:
        raise ExportError(f"input size {height}x{width} is not a fixed size: {options.fmt} files are exported for "
                          f"one input size (MindSpore 2.10 cannot export this network with dynamic H/W); give "
                          f"positive sizes such as {cfg.eval.crop_size} {cfg.eval.crop_size}")
    if min(height, width) < output_stride:
        raise ExportError(f"input size {height}x{width} is smaller than output stride {output_stride} allows: the "
                          f"feature map would be less than one cell. Use at least {output_stride} px per side; "
                          f"sizes k*{output_stride}+1 (e.g. {32 * output_stride + 1}) align the feature grid with "
                          f"the image corners")
    return height, width


def check_options(options: ExportOptions) -> None:
    if options.output not in OUTPUTS:
        raise ExportError(f"output {options.output!r} is not one of {', '.join(OUTPUTS)}")
    if options.input_format not in INPUT_FORMATS:
        raise ExportError(f"input format {options.input_format!r} is not one of {', '.join(INPUT_FORMATS)}")
    if options.batch_size < 1:
        raise ExportError(f"batch size {options.batch_size} must be at least 1")
    if options.precision not in PRECISIONS:
        raise ExportError(f"precision {options.precision!r} is not one of {', '.join(PRECISIONS)}")
    if options.atol < 0 or not 0.0 <= options.required_agreement <= 1.0:
        raise ExportError(f"tolerances must be atol >= 0 and 0 <= min_agreement <= 1, got atol={options.atol}, "
                          f"min_agreement={options.min_agreement}")
    check_precision(options)


def check_precision(options: ExportOptions) -> None:
    """fp16 and int8 are ONNX conversions; int8 needs real calibration images."""
    if options.precision == "fp32":
        return
    if options.fmt != "ONNX":
        raise ExportError(f"--precision {options.precision} converts ONNX files; use --format ONNX (MINDIR and "
                          f"CKPT are written in float32)")
    if options.calib_method not in CALIBRATION_METHODS:
        raise ExportError(f"calibration method {options.calib_method!r} is not one of {', '.join(CALIBRATION_METHODS)}")
    if options.calib_images < 1:
        raise ExportError(f"--calib-images must be at least 1, got {options.calib_images}")
    if options.precision == "int8" and options.calib_list is None:
        raise ExportError("int8 export calibrates the activation ranges on real images: give --calib-list LIST (an "
                          "image list such as data.eval.list, a folder of images or one image) and --calib-images N")


def output_path(out: PathLike, fmt: str) -> Path:
    """``out`` with the format's suffix appended when it has another one (MindSpore would append it anyway)."""
    out = Path(out)
    suffix = SUFFIXES[fmt]
    return out if out.suffix.lower() == suffix else out.with_name(out.name + suffix)
