"""Exported ONNX files as :class:`~deeplabv3.evaluation.predictor.Runner`\\ s, and the choice of backend.

An exported file has one fixed input size (its resizes are stored as matrices for that size), while the protocol
runs one size per scale (and the tile size when sliding). So the ONNX backend takes one file per size
(``--model s49.onnx s65.onnx``) and keeps one onnxruntime session per size, created once; a size the protocol
needs without a file is refused before any image is read, naming the sizes and the export command. Files
exported with any batch size, either layout, ``probs`` or ``logits`` output and any precision (float32 input and
output, as ``tools/export.py`` writes fp16 and int8 files) are accepted: batches are split or padded to the
file's batch size, logits go through a softmax, and the mirrored pass runs as a second batch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from ..config import Config
from ..errors import UserError

PathLike = Union[str, os.PathLike]
BACKENDS = ("mindspore", "onnxruntime")


class ModelFileError(UserError, ValueError):
    """An exported model that cannot run the requested protocol (size, output, layout); the message says why."""


def session_options(threads: Optional[int]):
    """onnxruntime options: ``threads`` intra-op threads (``None``/0: onnxruntime's default, one per core)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


@dataclass
class _Session:
    path: Path
    session: object
    input_name: str
    batch: int
    nhwc: bool
    output: str


def _open(path: Path, threads: Optional[int]) -> _Session:
    from ..export.options import require_onnx

    require_onnx()
    import onnxruntime as ort

    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file; write one with tools/export.py --format ONNX")
    try:
        session = ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for unreadable files
        raise ModelFileError(f"{path}: onnxruntime cannot load it ({str(exc).strip()[:300]})") from None
    meta = session.get_modelmeta().custom_metadata_map
    nhwc = meta.get("input_layout", "NCHW") == "NHWC"
    output = meta.get("output", session.get_outputs()[0].name)
    info = session.get_inputs()[0]
    shape = list(info.shape)
    if len(shape) != 4 or not all(isinstance(d, int) for d in shape) or info.type != "tensor(float)":
        raise ModelFileError(f"{path}: input {info.name} is {info.type} {shape}; expected a fixed-size float32 image "
                             f"batch as tools/export.py writes it")
    height, width = (shape[1], shape[2]) if nhwc else (shape[2], shape[3])
    if height != width:
        raise ModelFileError(f"{path}: exported for {height}x{width} input; the evaluation protocol pads images to "
                             f"squares, so export square sizes (--input-size S S)")
    if output not in ("probs", "logits"):
        raise ModelFileError(f"{path}: its output is {output!r}; the evaluation protocol sums probabilities over "
                             f"scales, so export with --output probs (or logits)")
    return _Session(path, session, info.name, int(shape[0]), nhwc, output)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


class OnnxRunner:
    """One onnxruntime session per input size; N x 3 x S x S batches in, N x S x S x C probabilities out."""

    backend = "onnxruntime"

    def __init__(self, paths: Sequence[PathLike], flip: bool, threads: Optional[int] = None) -> None:
        self.flip = flip
        self.sessions: Dict[int, _Session] = {}
        strides = set()
        for path in map(Path, paths):
            entry = _open(path, threads)
            size = int(entry.session.get_inputs()[0].shape[2 if not entry.nhwc else 1])
            if size in self.sessions:
                raise ModelFileError(f"{path} and {self.sessions[size].path} are both exported for {size}x{size}; "
                                     f"give one file per input size")
            self.sessions[size] = entry
            stride = entry.session.get_modelmeta().custom_metadata_map.get("output_stride")
            strides.add(int(stride) if stride else None)
        self.output_stride = strides.pop() if len(strides) == 1 else None
        self.paths = [str(s.path) for s in self.sessions.values()]

    def check_sizes(self, sizes: Sequence[int]) -> None:
        missing = [s for s in sizes if s not in self.sessions]
        if missing:
            have = ", ".join(f"{s}x{s} ({e.path})" for s, e in sorted(self.sessions.items()))
            raise ModelFileError(
                f"the evaluation settings need network inputs of {', '.join(f'{s}x{s}' for s in sizes)} but no "
                f"model file is exported for {', '.join(f'{s}x{s}' for s in missing)} (given: {have}). ONNX files "
                f"have one fixed input size: export one per size (tools/export.py --format ONNX --input-size S S) "
                f"and pass them all to --model, or change eval.scales / eval.crop_size to the exported sizes")

    def _run(self, entry: _Session, batch: np.ndarray) -> np.ndarray:
        """NCHW probabilities of ``batch``, run in chunks of the file's batch size (the last one padded)."""
        n = batch.shape[0]
        outputs: List[np.ndarray] = []
        for start in range(0, n, entry.batch):
            chunk = batch[start:start + entry.batch]
            if chunk.shape[0] < entry.batch:
                pad = np.zeros((entry.batch - chunk.shape[0], *chunk.shape[1:]), np.float32)
                chunk = np.concatenate([chunk, pad])
            if entry.nhwc:
                chunk = chunk.transpose(0, 2, 3, 1)
            (out,) = entry.session.run(None, {entry.input_name: np.ascontiguousarray(chunk)})
            outputs.append(out.astype(np.float32, copy=False))
        result = np.concatenate(outputs)[:n]
        return _softmax(result) if entry.output == "logits" else result

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        entry = self.sessions[batch.shape[2]]
        probs = self._run(entry, batch)
        if self.flip:
            probs = probs + self._run(entry, np.ascontiguousarray(batch[..., ::-1]))[..., ::-1]
        return np.ascontiguousarray(probs.transpose(0, 2, 3, 1))


def build_runner(cfg: Config, backend: str, checkpoint: Optional[PathLike] = None,
                 models: Sequence[PathLike] = (), threads: Optional[int] = None):
    """The network :class:`~deeplabv3.evaluation.predictor.Predictor` runs: a MindSpore network loaded from
    ``checkpoint`` or an :class:`OnnxRunner` over the ``models`` files."""
    if backend == "mindspore":
        from .predictor import load_eval_network  # MindSpore is loaded only for this backend

        if checkpoint is None:
            raise ModelFileError("the mindspore backend needs --checkpoint CKPT (or use --backend onnxruntime "
                                 "--model FILE.onnx)")
        return load_eval_network(cfg, checkpoint)[0]
    if backend == "onnxruntime":
        if not models:
            raise ModelFileError("the onnxruntime backend needs --model FILE.onnx [FILE.onnx ...] (one file per input "
                                 "size, written by tools/export.py --format ONNX)")
        return OnnxRunner(models, bool(cfg.eval.flip), threads)
    raise ModelFileError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def add_backend_arguments(parser) -> None:
    """``--checkpoint`` or ``--backend onnxruntime --model FILE.onnx ...`` and ``--threads``, for eval and predict."""
    parser.add_argument("--checkpoint", metavar="CKPT", default=None,
                        help="network weights (.ckpt) for the mindspore backend")
    parser.add_argument("--backend", choices=BACKENDS, default="mindspore",
                        help="mindspore: the configured network with --checkpoint; onnxruntime: exported ONNX "
                             "files (--model), fp32, fp16 or int8")
    parser.add_argument("--model", nargs="+", default=[], metavar="FILE.onnx",
                        help="exported ONNX file(s), one per network input size the settings need (one per scale; "
                             "the tile size when sliding)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="onnxruntime intra-op threads (default: one per core)")


def check_backend_arguments(parser, args) -> None:
    """The backend's own file must be given (argparse exits 2 with the usage otherwise)."""
    if args.backend == "mindspore" and (args.checkpoint is None or args.model):
        parser.error("the mindspore backend takes --checkpoint CKPT (--model is for --backend onnxruntime)")
    if args.backend == "onnxruntime" and (not args.model or args.checkpoint is not None):
        parser.error("--backend onnxruntime takes --model FILE.onnx [...] instead of --checkpoint")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
