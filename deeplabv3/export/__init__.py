"""Deployable files from a trained network: MINDIR, ONNX or a weights-only checkpoint, each verified.

* **MINDIR** holds the inference graph (:class:`~deeplabv3.models.InferenceNet`: probabilities, logits or labels,
  optionally taking NHWC input) at a fixed input size; it loads with ``mindspore.load`` + ``nn.GraphCell`` or
  MindSpore Lite.
* **ONNX** holds the same graph with the resize cells replaced by their interpolation-matrix form
  (:mod:`deeplabv3.export.resize`), since MindSpore cannot write its resize operators to ONNX. The matrices are
  built for one input size, so ONNX export needs ``input_size``. Global pooling is a mean over H and W and the
  image-pooling branch is spread back by a broadcast, both exportable as they are.
* **CKPT** holds the network's parameters only (no optimizer state): about half a training checkpoint.

Nothing reaches the requested path unverified: the file is written under a temporary name, run on a sample input
(``GraphCell`` for MINDIR, onnxruntime for ONNX, a strict reload for CKPT) and compared with the network's own
forward pass; only a file within tolerance is renamed into place.

Modules: ``options`` (the request and its checks), ``verify`` (running files, comparing outputs), ``resize``
(the matrix form of the resize cells), ``precision`` (fp16 and int8 ONNX files from the float32 one, checked
against it) and ``exporter`` (writing, verifying and publishing each format).
"""
from .exporter import ExportResult, export_graph, export_weights, run_export
from .options import (CALIBRATION_METHODS, DEFAULT_AGREEMENT, FORMATS, INPUT_FORMATS, OUTPUTS, PRECISIONS, ExportError,
                      ExportOptions, require_onnx)
from .resize import matrix_resizes
from .verify import Verification, VerificationError, compare, sample_input

__all__ = [
    "CALIBRATION_METHODS", "DEFAULT_AGREEMENT", "FORMATS", "INPUT_FORMATS", "OUTPUTS", "PRECISIONS", "ExportError",
    "ExportOptions", "ExportResult", "Verification", "VerificationError", "compare", "export_graph", "export_weights", "matrix_resizes", "require_onnx", "run_export",
    "sample_input",
]
