"""Running exported files the way deployments do and comparing them with the network's own forward pass.

The sample is a random image normalised like real input, so the comparison sees realistic value ranges. The
expected probabilities and labels are derived from the network's logits in float64, so an exported graph's own
softmax/argmax is checked too; :func:`measure_rounding_noise` tells rounding differences from export errors.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Union

import mindspore as ms
import numpy as np
from mindspore import nn

from ..config import Config
from .options import require_onnx

PathLike = Union[str, os.PathLike]
SAMPLE_SEED = 0


class VerificationError(RuntimeError):
    """The exported file's output differs from the network's beyond the tolerance; nothing was written."""


@dataclass(frozen=True)
class Verification:
    """How the exported file's output compares with the network's on the sample input.

    ``max_abs_diff`` is set for ``probs`` and ``logits``; ``agreement`` (fraction of equal pixels) for ``labels``.
    For CKPT, ``max_abs_diff`` is the largest difference between the saved and the reloaded parameters.
    ``rounding_noise`` is how far the network's own output moves when its input changes by one float32 rounding
    step (for labels: the fraction of pixels that change); see :func:`measure_rounding_noise`.
    """

    output: str
    passed: bool
    max_abs_diff: Optional[float] = None
    agreement: Optional[float] = None
    tolerance: float = 0.0
    rounding_noise: Optional[float] = None
    reference: str = "the network"

    @property
    def within_rounding_noise(self) -> bool:
        """The difference is of the size rounding alone causes in this network (within a factor of 10)."""
        if self.rounding_noise is None:
            return False
        error = 1.0 - self.agreement if self.agreement is not None else self.max_abs_diff
        return error <= 10 * self.rounding_noise

    def summary(self) -> str:
        if self.agreement is not None:
            text = (f"{self.output}: {100 * self.agreement:.4f}% of pixels agree with {self.reference} "
                    f"(required {100 * self.tolerance:.4f}%)")
            noise = None if self.rounding_noise is None else f"{100 * self.rounding_noise:.4f}% of its labels"
        else:
            text = f"{self.output}: max |difference| {self.max_abs_diff:.3g} (tolerance {self.tolerance:.3g})"
            noise = None if self.rounding_noise is None else f"its output by {self.rounding_noise:.3g}"
        if noise is not None:
            text += f"; one float32 rounding step on the input changes {noise}"
        return text


def sample_input(cfg: Config, batch_size: int, height: int, width: int, seed: int = SAMPLE_SEED) -> np.ndarray:
    """N x 3 x H x W float32: random BGR pixels normalised with the config's mean and std, like real input."""
    pixels = np.random.default_rng(seed).integers(0, 256, (batch_size, height, width, 3)).astype(np.float32)
    mean = np.asarray(cfg.data.mean, np.float32)
    std = np.asarray(cfg.data.std, np.float32)
    return np.ascontiguousarray(((pixels - mean) / std).transpose(0, 3, 1, 2))


def run_mindir(path: PathLike, x: np.ndarray) -> np.ndarray:
    """Run a MINDIR file the way a MindSpore deployment does: ``mindspore.load`` + ``nn.GraphCell``."""
    graph = nn.GraphCell(ms.load(str(path)))
    return graph(ms.Tensor(x)).asnumpy()


def onnx_session(path: PathLike):
    """An onnxruntime CPU session of an ONNX file."""
    require_onnx()
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_onnx(path: PathLike, x: np.ndarray) -> np.ndarray:
    """Run an ONNX file with onnxruntime on the CPU."""
    session = onnx_session(path)
    return session.run(None, {session.get_inputs()[0].name: x})[0]


RUNNERS = {"MINDIR": run_mindir, "ONNX": run_onnx}


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def expected_output(output: str, logits: np.ndarray) -> np.ndarray:
    """What a graph exported with ``output`` must return for these NCHW logits (computed in float64)."""
    logits = logits.astype(np.float64)
    if output == "probs":
        return _softmax(logits)
    if output == "labels":
        return logits.argmax(axis=1)
    return logits


def compare(output: str, exported: np.ndarray, reference_logits: np.ndarray, atol: float = 1e-4,
            min_agreement: float = 0.999, rounding_noise: Optional[float] = None) -> Verification:
    """Check an exported ``output`` (NCHW probs/logits, NHW labels) against the network's NCHW logits.

    The expected probabilities and labels are derived from the logits here, in float64, so the exported graph's
    own softmax/argmax is checked too.
    """
    expected = expected_output(output, reference_logits)
    if exported.shape != expected.shape:
        return Verification(output, False, max_abs_diff=float("inf"), tolerance=atol)
    if output == "labels":
        agreement = float(np.mean(exported == expected))
        return Verification(output, agreement >= min_agreement, agreement=agreement, tolerance=min_agreement,
                            rounding_noise=rounding_noise)
    diff = float(np.max(np.abs(exported.astype(np.float64) - expected)))
    return Verification(output, diff <= atol, max_abs_diff=diff, tolerance=atol, rounding_noise=rounding_noise)


def measure_rounding_noise(logits_net: nn.Cell, sample: np.ndarray, reference_logits: np.ndarray,
                           output: str) -> float:
    """How far the network's ``output`` moves when every input value changes by one float32 rounding step.

    Other runtimes add up convolutions in another order than MindSpore's kernels, so their results differ by
    rounding, amplified by the network's depth; a difference of this order is not an export error. This puts a
    number on it, so a failed verification can tell the two apart (for labels: the fraction of changed pixels).
    """
    signs = np.random.default_rng(SAMPLE_SEED).choice([-1.0, 1.0], sample.shape)
    nudged = (sample * (1.0 + signs * 2.0 ** -23)).astype(np.float32)
    moved = compare(output, expected_output(output, logits_net(ms.Tensor(nudged)).asnumpy()), reference_logits)
    return 1.0 - moved.agreement if output == "labels" else moved.max_abs_diff
