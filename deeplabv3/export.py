"""Deployable files from a trained network: MINDIR, ONNX or a weights-only checkpoint, each verified.

* **MINDIR** holds the inference graph (:class:`~deeplabv3.models.InferenceNet`: probabilities, logits or labels,
  optionally taking NHWC input) at a fixed input size; it loads with ``mindspore.load`` + ``nn.GraphCell`` or
  MindSpore Lite.
* **ONNX** holds the same graph with the resize cells replaced by their interpolation-matrix form
  (:mod:`deeplabv3.export_resize`), since MindSpore cannot write its resize operators to ONNX. The matrices are
  built for one input size, so ONNX export needs ``input_size``. Global pooling is a mean over H and W and the
  image-pooling branch is spread back by a broadcast, both exportable as they are.
* **CKPT** holds the network's parameters only (no optimizer state): about half a training checkpoint.

Nothing reaches the requested path unverified: the file is written under a temporary name, run on a sample input
(``GraphCell`` for MINDIR, onnxruntime for ONNX, a strict reload for CKPT) and compared with the network's own
forward pass; only a file within tolerance is renamed into place. The sample is a random image normalised like
real input, so the comparison sees realistic value ranges.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, Optional, Tuple, Union

import mindspore as ms
import numpy as np
from mindspore import nn

from .config import Config
from .errors import UserError
from .evaluation.predictor import effective_output_stride, load_eval_network
from .export_resize import matrix_resizes
from .fileio import temp_name
from .models import InferenceNet, build_model, load_checkpoint, save_weights
from .models.deeplab import OUTPUTS
from .runtime import get_logger, setup_runtime

PathLike = Union[str, os.PathLike]
SUFFIXES: Dict[str, str] = {"MINDIR": ".mindir", "ONNX": ".onnx", "CKPT": ".ckpt"}
FORMATS = tuple(SUFFIXES)
INPUT_FORMATS = ("NCHW", "NHWC")
ONNX_INPUT_NAME = "image"
SAMPLE_SEED = 0


class ExportError(UserError, ValueError):
    """An export request that cannot be honoured (format, size, missing package); the message says what to do."""


class VerificationError(RuntimeError):
    """The exported file's output differs from the network's beyond the tolerance; nothing was written."""


@dataclass(frozen=True)
class ExportOptions:
    """What to export. ``input_size`` is (H, W); ``None`` means ``eval.crop_size`` (MINDIR only)."""

    fmt: str
    input_size: Optional[Tuple[int, int]] = None
    batch_size: int = 1
    output: str = "probs"
    input_format: str = "NCHW"
    atol: float = 1e-4
    min_agreement: float = 0.999


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

    @property
    def within_rounding_noise(self) -> bool:
        """The difference is of the size rounding alone causes in this network (within a factor of 10)."""
        if self.rounding_noise is None:
            return False
        error = 1.0 - self.agreement if self.agreement is not None else self.max_abs_diff
        return error <= 10 * self.rounding_noise

    def summary(self) -> str:
        if self.agreement is not None:
            text = (f"{self.output}: {100 * self.agreement:.4f}% of pixels agree with the network "
                    f"(required {100 * self.tolerance:.4f}%)")
            noise = None if self.rounding_noise is None else f"{100 * self.rounding_noise:.4f}% of its labels"
        else:
            text = f"{self.output}: max |difference| {self.max_abs_diff:.3g} (tolerance {self.tolerance:.3g})"
            noise = None if self.rounding_noise is None else f"its output by {self.rounding_noise:.3g}"
        if noise is not None:
            text += f"; one float32 rounding step on the input changes {noise}"
        return text


@dataclass(frozen=True)
class ExportResult:
    path: Path
    fmt: str
    input_shape: Optional[Tuple[int, ...]]
    output_stride: int
    verification: Verification
    size_bytes: int
    seconds: float


# ------------------------------------------------------------------------------------------ request checks


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


def _check_options(options: ExportOptions) -> None:
    if options.output not in OUTPUTS:
        raise ExportError(f"output {options.output!r} is not one of {', '.join(OUTPUTS)}")
    if options.input_format not in INPUT_FORMATS:
        raise ExportError(f"input format {options.input_format!r} is not one of {', '.join(INPUT_FORMATS)}")
    if options.batch_size < 1:
        raise ExportError(f"batch size {options.batch_size} must be at least 1")
    if options.atol < 0 or not 0.0 <= options.min_agreement <= 1.0:
        raise ExportError(f"tolerances must be atol >= 0 and 0 <= min_agreement <= 1, got atol={options.atol}, "
                          f"min_agreement={options.min_agreement}")


def output_path(out: PathLike, fmt: str) -> Path:
    """``out`` with the format's suffix appended when it has another one (MindSpore would append it anyway)."""
    out = Path(out)
    suffix = SUFFIXES[fmt]
    return out if out.suffix.lower() == suffix else out.with_name(out.name + suffix)


# -------------------------------------------------------------------------------------- running the files


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


def run_onnx(path: PathLike, x: np.ndarray) -> np.ndarray:
    """Run an ONNX file with onnxruntime on the CPU."""
    require_onnx()
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
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


# ------------------------------------------------------------------------------------------------- export


def _graph_input(x: np.ndarray, input_format: str) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if input_format == "NHWC" else x


def _write_graph(net: nn.Cell, staged: Path, options: ExportOptions, input_shape: Tuple[int, ...]) -> None:
    """``mindspore.export`` of the inference graph; ONNX with the matrix resizes swapped in for the duration."""
    dummy = ms.Tensor(np.zeros(input_shape, np.float32))
    nhwc = options.input_format == "NHWC"
    if options.fmt == "ONNX":
        with matrix_resizes(net):
            ms.export(InferenceNet(net, options.output, nhwc), dummy, file_name=str(staged), file_format="ONNX")
    else:
        ms.export(InferenceNet(net, options.output, nhwc), dummy, file_name=str(staged), file_format="MINDIR")


def _describe_onnx(path: Path, cfg: Config, options: ExportOptions) -> None:
    """Name the ONNX input ``image`` and the output after what it holds, and record the preprocessing contract.

    MindSpore names them after its internal nodes (``x``, ``8-Default/...``); deployment code reads these names
    and the metadata (``session.get_modelmeta().custom_metadata_map``).
    """
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    renames = {graph.input[0].name: ONNX_INPUT_NAME, graph.output[0].name: options.output}
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = renames.get(name, name)
        for i, name in enumerate(node.output):
            node.output[i] = renames.get(name, name)
    for value in (*graph.input, *graph.output, *graph.value_info):
        value.name = renames.get(value.name, value.name)
    metadata = {
        "input_layout": options.input_format, "channel_order": "BGR",
        "mean": ",".join(map(str, cfg.data.mean)), "std": ",".join(map(str, cfg.data.std)),
        "output": options.output, "class_names": ",".join(cfg.class_names),
    }
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@contextlib.contextmanager
def _staging(path: Path) -> Iterator[Path]:
    """A temporary sibling of ``path`` with the same suffix (MindSpore appends its suffix to names without it).

    Whatever is still there when the block ends (an unverified or failed file) is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = temp_name(path).with_name(temp_name(path).name + path.suffix)
    try:
        yield staged
    finally:
        if staged.exists():
            staged.unlink()


def _make_regular(path: Path) -> None:
    """MindSpore writes its files read-only for the owner (0400); deployment files are ordinary files (0644)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    os.chmod(path, mode | stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)


def _publish(staged: Path, path: Path, verification: Verification, what: str) -> None:
    """Move a verified file into place atomically; a failed verification raises and leaves ``path`` untouched."""
    if verification.passed:
        os.replace(staged, path)
        return
    message = f"{what} does not match the network: {verification.summary()}; nothing was written to {path}."
    if verification.within_rounding_noise:
        flag = "--min-agreement" if verification.agreement is not None else "--atol"
        message += (f" The difference is of the size float32 rounding causes in this network (its kernels sum in "
                    f"another order), not an export error: a looser {flag} accepts the file")
    raise VerificationError(message)


def export_graph(net: nn.Cell, cfg: Config, out: PathLike, options: ExportOptions) -> ExportResult:
    """Export ``net`` (a network from ``build_model``, weights loaded) as MINDIR or ONNX, verify the file and move
    it to ``out``.

    Raises :class:`VerificationError` (and writes nothing) when the file's output differs from the network's
    beyond ``options.atol`` (``options.min_agreement`` of pixels for labels).
    """
    options = dataclasses.replace(options, fmt=normalize_format(options.fmt))
    if options.fmt not in RUNNERS:
        raise ExportError(f"{options.fmt} is not a graph format; export_graph writes {' or '.join(RUNNERS)} "
                          f"(weights-only checkpoints come from export_weights)")
    _check_options(options)
    if options.fmt == "ONNX":
        require_onnx()
    height, width = resolve_input_size(cfg, options, net.output_stride)
    logger = get_logger()
    if options.input_size is None:
        logger.info("no input size given: exporting at eval.crop_size, %dx%d", height, width)
    start = time.perf_counter()
    net.set_train(False)
    sample = sample_input(cfg, options.batch_size, height, width)
    logits_net = InferenceNet(net, "logits")
    reference = logits_net(ms.Tensor(sample)).asnumpy()
    noise = measure_rounding_noise(logits_net, sample, reference, options.output)
    graph_sample = _graph_input(sample, options.input_format)
    path = output_path(out, options.fmt)
    logger.info("exporting %s %s (%s input %s) to %s", options.fmt, options.output, options.input_format,
                "x".join(map(str, graph_sample.shape)), path)
    with _staging(path) as staged:
        _write_graph(net, staged, options, graph_sample.shape)
        _make_regular(staged)
        if options.fmt == "ONNX":
            _describe_onnx(staged, cfg, options)
        verification = compare(options.output, RUNNERS[options.fmt](staged, graph_sample), reference,
                               options.atol, options.min_agreement, noise)
        logger.info("verified with %s: %s", "onnxruntime" if options.fmt == "ONNX" else "mindspore.load + GraphCell",
                    verification.summary())
        _publish(staged, path, verification, f"the exported {options.fmt} file")
    return ExportResult(path, options.fmt, tuple(graph_sample.shape), net.output_stride, verification,
                        path.stat().st_size, time.perf_counter() - start)


def export_weights(net: nn.Cell, cfg: Config, out: PathLike) -> ExportResult:
    """Write ``net``'s parameters only, then reload them strictly into a fresh network to prove they fit.

    The check compares every reloaded tensor with the original; a missing, extra or differing tensor fails.
    """
    start = time.perf_counter()
    path = output_path(out, "CKPT")
    with _staging(path) as staged:
        save_weights(net, staged)
        _make_regular(staged)
        fresh = build_model(cfg, output_stride=net.output_stride)
        load_checkpoint(fresh, staged, strict=True)
        original = {p.name: p.asnumpy() for p in net.get_parameters()}
        reloaded = {p.name: p.asnumpy() for p in fresh.get_parameters()}
        diff = float("inf")
        if original.keys() == reloaded.keys():
            diff = max(float(np.max(np.abs(original[n] - reloaded[n]), initial=0.0)) for n in original)
        verification = Verification("weights", diff == 0.0, max_abs_diff=diff, tolerance=0.0)
        get_logger().info("verified by a strict reload: %d tensors, %s", len(reloaded), verification.summary())
        _publish(staged, path, verification, "the reloaded weights file")
    return ExportResult(path, "CKPT", None, net.output_stride, verification, path.stat().st_size,
                        time.perf_counter() - start)


def run_export(cfg: Config, checkpoint: PathLike, out: PathLike, options: ExportOptions,
               verbose: bool = False) -> ExportResult:
    """``tools/export.py``: build the configured network, load ``checkpoint`` strictly, export and verify.

    The network runs at ``eval.output_stride`` (else ``model.output_stride``), as in evaluation. Every request
    check runs before the network is built, so a bad request fails in a second.
    """
    options = dataclasses.replace(options, fmt=normalize_format(options.fmt))
    _check_options(options)
    if options.fmt == "ONNX":
        require_onnx()
    if options.fmt != "CKPT":
        resolve_input_size(cfg, options, effective_output_stride(cfg))
    logger = setup_runtime(cfg, verbose=verbose, log_name="export.log")
    net, _ = load_eval_network(cfg, checkpoint)
    if options.fmt == "CKPT":
        result = export_weights(net, cfg, out)
        source_size = Path(checkpoint).stat().st_size
        logger.info("weights-only checkpoint: %s, %.1f MB (%.0f%% of %s)", result.path, result.size_bytes / 1e6,
                    100 * result.size_bytes / source_size, checkpoint)
    else:
        result = export_graph(net, cfg, out, options)
        logger.info("%s written: %s, %.1f MB, input %s, output stride %d, %.1f s", result.fmt, result.path,
                    result.size_bytes / 1e6, "x".join(map(str, result.input_shape)), result.output_stride,
                    result.seconds)
    return result
