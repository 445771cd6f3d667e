"""Writing MINDIR, ONNX and weights-only files: staged under a temporary name, verified, then moved into place."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Tuple, Union

import mindspore as ms
import numpy as np
from mindspore import nn

from ..config import Config
from ..evaluation.predictor import effective_output_stride, load_eval_network
from ..fileio import temp_name
from ..models import InferenceNet, build_model, load_checkpoint, save_weights
from ..runtime import get_logger, setup_runtime
from .options import (DEFAULT_AGREEMENT, ExportError, ExportOptions, check_options,
                      normalize_format, output_path, require_onnx, resolve_input_size)
from .precision import argmax_agreement, calibration_batches, convert
from .resize import matrix_resizes
from .stand_ins import onnx_stand_in, swapped_cells
from .verify import RUNNERS, Verification, VerificationError, compare, measure_rounding_noise, sample_input

PathLike = Union[str, os.PathLike]
ONNX_INPUT_NAME = "image"


@dataclass(frozen=True)
class ExportResult:
    path: Path
    fmt: str
    input_shape: Optional[Tuple[int, ...]]
    output_stride: int
    verification: Verification
    size_bytes: int
    seconds: float


def _graph_input(x: np.ndarray, input_format: str) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if input_format == "NHWC" else x


def _write_graph(net: nn.Cell, staged: Path, options: ExportOptions, input_shape: Tuple[int, ...]) -> None:
    """``mindspore.export`` of the inference graph; ONNX with the matrix resizes and the exporter's other
    stand-ins (:mod:`~deeplabv3.export.stand_ins`) swapped in for the duration."""
    dummy = ms.Tensor(np.zeros(input_shape, np.float32))
    nhwc = options.input_format == "NHWC"
    if options.fmt == "ONNX":
        with matrix_resizes(net), swapped_cells(net, onnx_stand_in):
            ms.export(InferenceNet(net, options.output, nhwc), dummy, file_name=str(staged), file_format="ONNX")
    else:
        ms.export(InferenceNet(net, options.output, nhwc), dummy, file_name=str(staged), file_format="MINDIR")


def _describe_onnx(path: Path, cfg: Config, options: ExportOptions, output_stride: int) -> None:
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
        "output": options.output, "class_names": ",".join(cfg.class_names), "output_stride": str(output_stride),
        "precision": "fp32",
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


def _check(verification: Verification, path: Path, what: str) -> None:
    """Raise :class:`VerificationError` (naming ``path``, which stays untouched) unless ``verification`` passed."""
    if verification.passed:
        return
    message = f"{what} does not match the network: {verification.summary()}; nothing was written to {path}."
    if verification.within_rounding_noise:
        flag = "--min-agreement" if verification.agreement is not None else "--atol"
        message += (f" The difference is of the size float32 rounding causes in this network (its kernels sum in "
                    f"another order), not an export error: a looser {flag} accepts the file")
    if verification.output == "argmax":
        message += (" More calibration images (--calib-images), another --calib-method, or fp16 may keep more of "
                    "the float32 result; a lower --min-agreement or --force writes this file anyway")
    raise VerificationError(message)


def _publish(staged: Path, path: Path, verification: Verification, what: str) -> None:
    """Move a verified file into place atomically; a failed verification raises and leaves ``path`` untouched."""
    _check(verification, path, what)
    os.replace(staged, path)


def export_graph(net: nn.Cell, cfg: Config, out: PathLike, options: ExportOptions) -> ExportResult:
    """Export ``net`` (a network from ``build_model``, weights loaded) as MINDIR or ONNX, verify the file and move
    it to ``out``.

    Raises :class:`VerificationError` (and writes nothing) when the file's output differs from the network's
    beyond ``options.atol`` (``options.min_agreement`` of pixels for labels). With ``options.precision`` fp16 or
    int8, the verified float32 ONNX file is converted and the converted one is written if its argmax agrees with
    the float32 file on the calibration images (:mod:`~deeplabv3.export.precision`).
    """
    options = dataclasses.replace(options, fmt=normalize_format(options.fmt))
    if options.fmt not in RUNNERS:
        raise ExportError(f"{options.fmt} is not a graph format; export_graph writes {' or '.join(RUNNERS)} "
                          f"(weights-only checkpoints come from export_weights)")
    check_options(options)
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
            _describe_onnx(staged, cfg, options, net.output_stride)
        fp32_agreement = options.required_agreement if options.precision == "fp32" else DEFAULT_AGREEMENT["fp32"]
        verification = compare(options.output, RUNNERS[options.fmt](staged, graph_sample), reference,
                               options.atol, fp32_agreement, noise)
        logger.info("verified with %s: %s", "onnxruntime" if options.fmt == "ONNX" else "mindspore.load + GraphCell",
                    verification.summary())
        if options.precision == "fp32":
            _publish(staged, path, verification, f"the exported {options.fmt} file")
        else:
            _check(verification, path, "the float32 ONNX file")
            verification = _reduce_precision(staged, path, cfg, options, graph_sample)
    return ExportResult(path, options.fmt, tuple(graph_sample.shape), net.output_stride, verification,
                        path.stat().st_size, time.perf_counter() - start)


def _reduce_precision(fp32: Path, path: Path, cfg: Config, options: ExportOptions,
                      sample: np.ndarray) -> Verification:
    """Convert the verified float32 file to ``options.precision``, check its argmax against it, publish it."""
    logger = get_logger()
    batches = calibration_batches(cfg, options, sample.shape[-2 if options.input_format == "NCHW" else 1],
                                  sample.shape[-1 if options.input_format == "NCHW" else 2], sample)
    images = sum(len(valid) for _, valid in batches)
    source = f"{images} calibration image(s)" if options.calib_list else "the sample input"
    logger.info("converting to %s%s", options.precision,
                f" ({options.calib_method} calibration on {source})" if options.precision == "int8" else "")
    with _staging(path.with_name(f"{path.stem}.{options.precision}{path.suffix}")) as staged:
        convert(fp32, staged, options, batches)
        agreement = argmax_agreement(fp32, staged, batches, options.output)
        verification = Verification("argmax", agreement >= options.required_agreement or options.force,
                                    agreement=agreement, tolerance=options.required_agreement,
                                    reference=f"the float32 network on {source}")
        print(f"{options.precision}: {100 * agreement:.2f}% of the pixels of {source} get the float32 network's "
              f"class (required {100 * options.required_agreement:.2f}%)", flush=True)
        if agreement < options.required_agreement and options.force:
            logger.warning("writing the %s file below the required agreement (--force)", options.precision)
        _publish(staged, path, verification, f"the {options.precision} ONNX file")
    return verification


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
    check_options(options)
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
        logger.info("%s %s written: %s, %.1f MB, input %s, output stride %d, %.1f s", result.fmt, options.precision,
                    result.path, result.size_bytes / 1e6, "x".join(map(str, result.input_shape)),
                    result.output_stride, result.seconds)
    return result
