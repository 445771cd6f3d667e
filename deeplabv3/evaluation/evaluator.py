"""Evaluation over a list of images: sharded across ranks, one confusion matrix summed over all of them.

Every rank predicts its own shard (``shard_indices``: no image twice, none dropped, any list length) and the
matrices are summed with one collective at the end, so no rank waits on another for longer than its own shard
takes, and the figures equal those of a single process over the whole list.

Images are read by ``eval.num_workers`` threads ahead of the network (decoding releases the GIL), so reading
overlaps inference.
"""
from __future__ import annotations

import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
from mindspore import nn

from ..config import Config, ConfigError, to_dict
from ..data.io import DataError, read_image, read_label
from ..data.lists import read_pairs, shard_indices
from ..progress import track
from ..distributed import init_distributed
from ..runtime import get_logger, setup_runtime
from ..visualization import full_palette, save_image, save_mask, side_by_side
from ..workdir import ensure_writable_dir, ensure_writable_file
from .metrics import ConfusionMatrix
from .predictor import Predictor, Runner
from .report import format_results, per_class_rows, to_percent, write_results
from .runners import build_runner

PathLike = Union[str, os.PathLike]
ReduceFn = Callable[[np.ndarray], np.ndarray]
Sample = Tuple[int, np.ndarray, np.ndarray]  # list index, BGR image, label


def read_sample(image_path: str, label_path: str, num_classes: int, ignore_label: int) -> Tuple[np.ndarray,
                                                                                               np.ndarray]:
    """An image and its label, checked to be the same size."""
    image = read_image(image_path)
    label = read_label(label_path, num_classes, ignore_label)
    if image.shape[:2] != label.shape:
        raise DataError(f"{label_path}: label is {label.shape[1]}x{label.shape[0]} but its image {image_path} is "
                        f"{image.shape[1]}x{image.shape[0]}; evaluation compares them pixel by pixel, so they must "
                        f"be the same size")
    return image, label


def eval_pairs(cfg: Config) -> List[Tuple[str, str]]:
    """The ``(image, label)`` paths of ``data.eval.list``."""
    if cfg.data.eval.list is None:
        raise ConfigError("'data.eval.list' is not set; give the evaluation list file, e.g. --set "
                          "data.eval.list=data/voc_val.txt")
    return read_pairs(cfg.data.eval.list, cfg.data.eval.data_root)


def _load_batches(pairs: Sequence[Tuple[str, str]], batches: Sequence[List[int]], cfg: Config,
                  ahead: int = 2) -> Iterator[List[Sample]]:
    """Yield batches of samples, reading up to ``ahead`` batches in advance on worker threads."""
    args = (cfg.model.num_classes, cfg.data.ignore_label)
    if cfg.eval.num_workers < 1:
        for batch in batches:
            yield [(i, *read_sample(*pairs[i], *args)) for i in batch]
        return
    with ThreadPoolExecutor(max_workers=cfg.eval.num_workers) as pool:
        pending: Deque[Tuple[List[int], List[Future]]] = deque()
        upcoming = iter(batches)

        def submit() -> None:
            batch = next(upcoming, None)
            if batch is not None:
                pending.append((batch, [pool.submit(read_sample, *pairs[i], *args) for i in batch]))

        for _ in range(ahead):
            submit()
        while pending:
            batch, futures = pending.popleft()
            submit()
            yield [(i, *f.result()) for i, f in zip(batch, futures)]


def _show(show_dir: Path, image_path: str, image: np.ndarray, pred: np.ndarray, label: np.ndarray,
          class_names: Sequence[str], palette: np.ndarray) -> None:
    """``<stem>.png`` palette prediction and ``<stem>_compare.jpg`` image | prediction | ground truth."""
    stem = Path(image_path).stem
    save_mask(show_dir / f"{stem}.png", pred, palette)
    save_image(show_dir / f"{stem}_compare.jpg", side_by_side(image, pred, label, class_names, palette=palette))


def _reduce(matrix: ConfusionMatrix, num_images: int, reduce_fn: Optional[ReduceFn]) -> Tuple[ConfusionMatrix, int]:
    """Sum the matrix and the image count over ranks in one collective (every rank must call it)."""
    if reduce_fn is None:
        return matrix, num_images
    local = np.concatenate([matrix.matrix.ravel(), [num_images]]).astype(np.int64)
    total = np.asarray(reduce_fn(local))
    if total.shape != local.shape:
        raise RuntimeError(f"reduce_fn returned shape {total.shape}, expected {local.shape}")
    total = np.rint(total).astype(np.int64) if total.dtype.kind == "f" else total.astype(np.int64)
    n = matrix.num_classes
    return ConfusionMatrix(n, matrix.ignore_label, total[:-1].reshape(n, n)), int(total[-1])


def evaluate(net: Union[nn.Cell, Runner], cfg: Config, rank: int = 0, world_size: int = 1,
             reduce_fn: Optional[ReduceFn] = None, show_dir: Optional[PathLike] = None,
             progress: bool = True, predictor: Optional[Predictor] = None) -> Dict[str, Any]:
    """Evaluate ``net`` on ``cfg.data.eval.list``; this rank's shard, summed across ranks with ``reduce_fn``.

    ``reduce_fn(np.ndarray) -> np.ndarray`` is an all-reduce sum (``None``: a single process); every rank must
    call :func:`evaluate`. Returns figures in percent (``aAcc``, ``mIoU``, ``mAcc``, ``fwIoU``, ``per_class``),
    the confusion matrix, ``num_images``, the effective ``settings`` and this rank's ``timing``. ``show_dir``
    receives each image's palette prediction and a comparison picture. ``settings.output_stride`` records the
    stride ``net`` runs at (:func:`~deeplabv3.models.output_stride_of`). ``net`` is left in inference mode; it may
    also be a runner over exported files (:class:`~deeplabv3.evaluation.runners.OnnxRunner`). ``predictor`` (a
    :class:`Predictor` of ``net`` kept by the caller) lets repeated evaluations, such as the periodic ones of a
    training, run the graphs the first one compiled instead of compiling new ones.
    """
    logger = get_logger()
    pairs = eval_pairs(cfg)
    indices = shard_indices(len(pairs), rank, world_size)
    bs = cfg.eval.batch_size
    batches = [indices[i:i + bs] for i in range(0, len(indices), bs)]
    if predictor is None:
        predictor = Predictor(net, cfg)
    else:
        predictor.reuse()
    matrix = ConfusionMatrix(cfg.model.num_classes, cfg.data.ignore_label)
    show = Path(show_dir) if show_dir is not None else None
    class_names, palette = cfg.class_names, full_palette(cfg.data.palette)
    logger.info("evaluating %d of %d images on rank %d/%d (scales %s, flip %s, batch %d)", len(indices), len(pairs),
                rank, world_size, predictor.scales, predictor.flip, bs)

    def predictions() -> Iterator[Tuple[Sample, np.ndarray]]:
        for batch in _load_batches(pairs, batches, cfg):
            preds = predictor.predict_batch([image for _, image, _ in batch])
            yield from zip(batch, preds)

    start = time.perf_counter()
    stream = predictions()
    if progress and rank == 0:
        stream = track(stream, total=len(indices), desc="eval", unit="img")
    for (index, image, label), pred in stream:
        matrix.update(pred, label)
        if show is not None:
            _show(show, pairs[index][0], image, pred, label, class_names, palette)
    seconds = time.perf_counter() - start

    total, num_images = _reduce(matrix, len(indices), reduce_fn)
    return _results(total, num_images, cfg, predictor, world_size, seconds, len(indices))


def _results(matrix: ConfusionMatrix, num_images: int, cfg: Config, predictor: Predictor, world_size: int,
             seconds: float, local_images: int) -> Dict[str, Any]:
    summary = matrix.summary()
    timer = predictor.timer.seconds
    return {
        "aAcc": to_percent(summary["aAcc"]),
        "mIoU": to_percent(summary["mIoU"]),
        "mAcc": to_percent(summary["mAcc"]),
        "fwIoU": to_percent(summary["fwIoU"]),
        "per_class": per_class_rows(cfg.class_names, summary["IoU"], summary["Acc"]),
        "num_images": num_images,
        "num_pixels": matrix.total,
        "confusion_matrix": matrix.matrix.tolist(),
        "settings": {**predictor.settings(), "output_stride": predictor.runner.output_stride,
                     "list": str(Path(cfg.data.eval.list).resolve()), "ignore_label": cfg.data.ignore_label,
                     "world_size": world_size},
        "timing": {"seconds": seconds, "images": local_images,
                   "images_per_second": local_images / seconds if seconds > 0 else None,
                   "preprocess_s": timer["pre"], "network_s": timer["net"], "postprocess_s": timer["post"],
                   "host_fraction": predictor.timer.host_fraction()},
    }


# ------------------------------------------------------------------------------------------- tools/eval.py


def run_evaluation(cfg: Config, checkpoint: Optional[PathLike], out: Optional[PathLike] = None,
                   show_dir: Optional[PathLike] = None, verbose: bool = False, backend: str = "mindspore",
                   models: Sequence[PathLike] = (), threads: Optional[int] = None) -> Optional[Dict[str, Any]]:
    """``tools/eval.py``: every rank evaluates its shard; rank 0 prints the table and writes the results JSON.

    Works as one process or under any launch :func:`~deeplabv3.distributed.init_distributed` recognises. The
    network is the checkpoint's (``backend="mindspore"``) or exported ONNX files run by onnxruntime with
    ``threads`` threads (``backend="onnxruntime"``, one file per input size). Returns the results on rank 0,
    ``None`` elsewhere.
    """
    from ..engine.trainer import refuse_run_file

    ctx = init_distributed(cfg)
    eval_pairs(cfg)  # a wrong list fails now, not after the network is built
    out = Path(out) if out is not None else Path(cfg.runtime.work_dir) / "eval_results.json"
    if ctx.is_main:  # an unwritable output fails now, not after the evaluation
        refuse_run_file(out, "--out")
        ensure_writable_file(out, "--out")
        if show_dir is not None:
            ensure_writable_dir(show_dir, "--show-dir")
        ensure_writable_dir(cfg.runtime.work_dir, "work dir")  # for eval.log, a name no training writes
    logger = setup_runtime(cfg, ctx.rank, ctx.world_size, verbose, log_name="eval.log")
    net = build_runner(cfg, backend, checkpoint, models, threads)
    reduce_fn = ctx.allreduce_sum if ctx.world_size > 1 else None
    results = evaluate(net, cfg, ctx.rank, ctx.world_size, reduce_fn, show_dir)
    if ctx.is_main:
        if backend != "mindspore":
            results["model"] = [str(Path(m).resolve()) for m in models]
        write_results(out, results, checkpoint, to_dict(cfg))
        print(format_results(results), flush=True)
        t = results["timing"]
        logger.info("%.1f s, %.2f images/s on rank 0 (%.1f%% of the network-side time in pre/post-processing); "
                    "results: %s", t["seconds"], t["images_per_second"] or 0.0, 100 * t["host_fraction"], out)
    ctx.finalize()
    return results if ctx.is_main else None
