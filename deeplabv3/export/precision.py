"""Reduced-precision ONNX files (float16, int8) from a verified float32 one, and their check against it.

* **fp16**: weights and activations in float16 with float32 input and output (``keep_io_types``), so callers feed
  and read the same arrays as for float32. The converter is onnxconverter-common's ``float16`` module, which
  onnxruntime ships as ``onnxruntime.transformers.float16``.
* **int8**: static quantization with ``onnxruntime.quantization`` in QDQ form, per-channel int8 weights and uint8
  activations, convolutions only (the matrix-product resizes and the softmax stay float). Activation ranges are
  calibrated on real images prepared exactly as the evaluation prepares them (long side resized to the input,
  normalised, zero-padded). MindSpore writes opset 11, where the QDQ quantizer emits a ``DequantizeLinear`` with
  an ``axis`` attribute that opset 11 does not have, so the graph is converted to opset 13 first; then
  onnxruntime's quantization pre-processing folds each BatchNorm into its convolution (MindSpore exports them as
  separate nodes), so every quantized convolution can run as one integer kernel.

The result is compared with the float32 file on the calibration images: the share of valid (not padding) pixels
whose argmax class is the same. Below the threshold the file is refused, like any other failed verification.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..config import Config
from ..data.io import read_image
from ..evaluation.inference import collect_inputs
from ..evaluation.predictor import normalized_batch, resize_long_side
from .options import ExportError, ExportOptions

PathLike = Union[str, os.PathLike]
QUANTIZED_OPS = ["Conv"]
QDQ_MIN_OPSET = 13
Batch = Tuple[np.ndarray, List[Tuple[int, int]]]  # graph input, valid (h, w) of each row


def calibration_batches(cfg: Config, options: ExportOptions, height: int, width: int,
                        fallback: np.ndarray) -> List[Batch]:
    """The calibration images of ``options.calib_list`` (the first ``calib_images``) as graph inputs.

    Each image is resized so its long side fits the exported size, normalised and zero-padded, as evaluation
    does at that input size. Without a list (fp16 only), ``fallback`` -- the export's sample input -- is used.
    """
    if options.calib_list is None:
        return [(fallback, [(height, width)] * fallback.shape[0])]
    paths = collect_inputs(options.calib_list)[:options.calib_images]
    mean = np.asarray(cfg.data.mean, np.float32)
    std = np.asarray(cfg.data.std, np.float32)
    batches = []
    for start in range(0, len(paths), options.batch_size):
        crops = [resize_long_side(read_image(p), min(height, width)) for p in paths[start:start + options.batch_size]]
        batch = normalized_batch(crops, options.batch_size, height, width, mean, std)
        if options.input_format == "NHWC":
            batch = np.ascontiguousarray(batch.transpose(0, 2, 3, 1))
        batches.append((batch, [c.shape[:2] for c in crops]))
    return batches


def _labels(output: np.ndarray, kind: str) -> np.ndarray:
    return output if kind == "labels" else output.argmax(axis=1)


def argmax_agreement(reference: PathLike, candidate: PathLike, batches: Sequence[Batch], kind: str) -> float:
    """Share of valid pixels on which ``candidate`` picks the same class as ``reference`` (both ONNX files)."""
    from .verify import onnx_session

    ref, cand = onnx_session(reference), onnx_session(candidate)
    name = ref.get_inputs()[0].name
    same = total = 0
    for batch, valid in batches:
        a = _labels(ref.run(None, {name: batch})[0], kind)
        b = _labels(cand.run(None, {name: batch})[0], kind)
        for i, (h, w) in enumerate(valid):
            same += int(np.count_nonzero(a[i, :h, :w] == b[i, :h, :w]))
            total += h * w
    return same / total


def to_fp16(source: Path, target: Path) -> None:
    """float16 weights and activations, float32 input and output."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    onnx.save(model, str(target))


class _Reader:
    """``onnxruntime.quantization.CalibrationDataReader``: the calibration batches, one feed at a time."""

    def __init__(self, input_name: str, batches: Sequence[Batch]) -> None:
        self._feeds: Iterator[Dict[str, np.ndarray]] = iter([{input_name: b} for b, _ in batches])

    def get_next(self) -> Optional[Dict[str, np.ndarray]]:
        return next(self._feeds, None)


def to_int8(source: Path, target: Path, batches: Sequence[Batch], method: str) -> None:
    """Static QDQ quantization: per-channel int8 convolution weights, uint8 activations calibrated on ``batches``."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load(str(source))
    if model.opset_import[0].version < QDQ_MIN_OPSET:
        model = version_converter.convert_version(model, QDQ_MIN_OPSET)
    upgraded = target.with_name(target.name + ".opset13.onnx")
    prepared = target.with_name(target.name + ".prepared.onnx")
    try:
        onnx.save(model, str(upgraded))
        quant_pre_process(str(upgraded), str(prepared), skip_symbolic_shape=True)  # BN folding; sympy not needed
        quantize_static(str(prepared), str(target), _Reader(model.graph.input[0].name, batches),
                        quant_format=QuantFormat.QDQ, op_types_to_quantize=QUANTIZED_OPS, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, method))
    finally:
        upgraded.unlink(missing_ok=True)
        prepared.unlink(missing_ok=True)


def convert(source: Path, target: Path, options: ExportOptions, batches: Sequence[Batch]) -> None:
    """Write the ``options.precision`` form of the float32 ONNX file ``source`` to ``target``, metadata kept."""
    import onnx

    if options.precision == "fp16":
        to_fp16(source, target)
    elif options.precision == "int8":
        to_int8(source, target, batches, options.calib_method)
    else:
        raise ExportError(f"precision {options.precision!r} has no converter")
    metadata = {p.key: p.value for p in onnx.load(str(source)).metadata_props}
    metadata["precision"] = options.precision
    if options.precision == "int8":
        metadata["calibration"] = f"{options.calib_method}, {sum(len(v) for _, v in batches)} images"
    model = onnx.load(str(target))
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(target))
