"""Label maps for arbitrary images (``tools/predict.py``): palette PNGs, optional overlays, a class summary.

Inputs are one image, a directory of images (not recursive, sorted by name) or a list file whose lines start with
an image path (``<image> [<label>]``, relative to the list's directory, as the evaluation lists are written).
Images of any size are accepted: inference follows the evaluation protocol (``eval.*``), and the output has the
size of the input. A video file or camera index goes to :mod:`~deeplabv3.evaluation.streams` instead.

Images are read one batch at a time, so a folder of any length runs in bounded memory. ``summary.json`` is the
completion marker: it is removed when a run starts and written last, listing every file written and every input
skipped, so a directory without it is a run that did not finish. An input that cannot be decoded is skipped with
a warning; the run goes on, names every skipped file at the end and exits with status 2.
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..config import Config, ConfigError
from ..data.cityscapes import CLASS_NAMES as CITYSCAPES_CLASSES, save_label_ids
from ..data.io import DataError, read_image
from ..progress import track
from ..fileio import write_json_atomic
from ..runtime import get_logger, setup_runtime
from ..visualization import full_palette, legend, overlay, present_classes, save_image, save_mask
from ..workdir import ensure_writable_dir
from .predictor import Predictor
from .runners import build_runner
from .streams import check_video_output, chunked, is_stream, open_capture, predict_video

PathLike = Union[str, os.PathLike]
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def collect_inputs(source: PathLike) -> List[Path]:
    """The image paths named by ``source``: an image file, a directory of images or a list file."""
    source = Path(source)
    if source.is_dir():
        images = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not images:
            raise DataError(f"{source}: the directory holds no images (extensions {', '.join(IMAGE_EXTENSIONS)})")
        return images
    if not source.is_file():
        raise DataError(f"{source}: no such image, directory or list file")
    if source.suffix.lower() in IMAGE_EXTENSIONS:
        return [source]
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise DataError(f"{source}: neither an image (extensions {', '.join(IMAGE_EXTENSIONS)}) nor a UTF-8 list "
                        f"file of image paths") from None
    images = [source.parent / line.split()[0] for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not images:
        raise DataError(f"{source}: the list file names no images; write one image path per line")
    return [Path(os.path.abspath(p)) for p in images]


def output_names(paths: Sequence[Path]) -> List[str]:
    """A distinct output stem per input: the file stem, suffixed ``_2``, ``_3`` ... when stems repeat."""
    seen: Counter = Counter()
    names = []
    for path in paths:
        seen[path.stem] += 1
        names.append(path.stem if seen[path.stem] == 1 else f"{path.stem}_{seen[path.stem]}")
    return names


def class_fractions(mask: np.ndarray, class_names: Sequence[str]) -> Dict[str, float]:
    """``{class name: share of the pixels}`` of the classes present, largest first."""
    counts = np.bincount(mask.ravel(), minlength=len(class_names))
    order = np.argsort(-counts, kind="stable")
    return {class_names[c]: float(counts[c] / mask.size) for c in order if counts[c] and c < len(class_names)}


def summarize(per_image: Sequence[Dict[str, Any]], class_names: Sequence[str]) -> Dict[str, Dict[str, float]]:
    """Per class: in how many images it was found and its share of all predicted pixels."""
    total_pixels = sum(r["height"] * r["width"] for r in per_image)
    overall: Dict[str, Dict[str, float]] = {}
    for name in class_names:
        found = [r for r in per_image if name in r["classes"]]
        if found:
            pixels = sum(r["classes"][name] * r["height"] * r["width"] for r in found)
            overall[name] = {"images": len(found), "fraction": pixels / total_pixels}
    return dict(sorted(overall.items(), key=lambda kv: -kv[1]["fraction"]))


def format_summary(per_image: Sequence[Dict[str, Any]], overall: Dict[str, Dict[str, float]]) -> str:
    lines = []
    for r in per_image:
        classes = ", ".join(f"{name} {100 * share:.1f}%" for name, share in r["classes"].items())
        lines.append(f"{Path(r['image']).name} ({r['width']}x{r['height']}): {classes}")
    lines.append(f"overall ({len(per_image)} images):")
    for name, stats in overall.items():
        lines.append(f"  {name}: {stats['images']} image(s), {100 * stats['fraction']:.1f}% of the pixels")
    return "\n".join(lines)


SUMMARY = "summary.json"


class SkippedInputs(DataError):
    """Some inputs could not be decoded; the others were predicted and summary.json lists both."""


def _readable(paths: Sequence[Path], skipped: List[Dict[str, str]]) -> Iterator[Tuple[int, np.ndarray]]:
    """``(index, image)`` of every decodable input; the others are logged and appended to ``skipped``."""
    for i, path in enumerate(paths):
        try:
            yield i, read_image(path)
        except DataError as exc:
            get_logger().warning("skipping %s", exc)
            skipped.append({"image": str(path), "error": str(exc)})


def predict_images(predictor: Predictor, paths: Sequence[Path], out_dir: PathLike, class_names: Sequence[str],
                   with_overlay: bool = False, progress: bool = True,
                   palette: Optional[np.ndarray] = None, label_ids: bool = False) -> Dict[str, Any]:
    """Write ``<stem>.png`` (and ``<stem>_overlay.jpg``) per image; returns the summary written to summary.json.

    The masks are palette PNGs of the class indices, or with ``label_ids`` (Cityscapes) grey PNGs of the official
    Cityscapes ids for the evaluation server; overlays and the summary always use the class indices.

    Undecodable inputs are skipped and listed under ``skipped``; the caller decides what that means.
    """
    out_dir = Path(out_dir)
    (out_dir / SUMMARY).unlink(missing_ok=True)  # the completion marker of an earlier run
    names = output_names(paths)
    per_image: List[Dict[str, Any]] = []
    skipped: List[Dict[str, str]] = []

    def predictions() -> Iterator[Tuple[int, np.ndarray, np.ndarray]]:
        for batch in chunked(_readable(paths, skipped), predictor.batch_size):
            preds = predictor.predict_batch([image for _, image in batch])
            for (i, image), pred in zip(batch, preds):
                yield i, image, pred

    stream = track(predictions(), total=len(paths), desc="predict", unit="img") if progress else predictions()
    for i, image, pred in stream:
        mask_path = (save_label_ids(out_dir / f"{names[i]}.png", pred) if label_ids
                     else save_mask(out_dir / f"{names[i]}.png", pred, palette))
        record = {"image": str(paths[i]), "mask": str(mask_path), "height": int(pred.shape[0]),
                  "width": int(pred.shape[1]), "classes": class_fractions(pred, class_names)}
        if with_overlay:
            picture = overlay(image, pred, palette=palette)
            strip = legend(present_classes(pred, len(class_names)), class_names, picture.shape[1], palette=palette)
            record["overlay"] = str(save_image(out_dir / f"{names[i]}_overlay.jpg",
                                               np.concatenate([picture, strip], axis=0)))
        per_image.append(record)
    written = [Path(r[key]).name for r in per_image for key in ("mask", "overlay") if key in r]
    summary = {"complete": True, "images": per_image, "overall": summarize(per_image, class_names),
               "files": written, "skipped": skipped}
    write_json_atomic(out_dir / SUMMARY, summary)
    return summary


def check_label_ids(cfg: Config, source: PathLike) -> None:
    """labelIds are Cityscapes ids of the 19 training classes, written for images: refuse anything else early."""
    if cfg.data.dataset != "cityscapes" or cfg.model.num_classes != len(CITYSCAPES_CLASSES):
        raise ConfigError(f"--label-ids writes Cityscapes labelIds, which need a {len(CITYSCAPES_CLASSES)}-class "
                          f"Cityscapes network; this config has data.dataset={cfg.data.dataset} and "
                          f"model.num_classes={cfg.model.num_classes}. Use a Cityscapes config (e.g. "
                          f"configs/deeplabv3_r101_cityscapes_512x1024.yaml) or drop --label-ids")
    if is_stream(source):
        raise DataError(f"{source} is a video or camera: --label-ids writes one labelIds PNG per image; give "
                        f"images (a file, folder or list) with --out-dir")


def run_prediction(cfg: Config, checkpoint: Optional[PathLike], source: PathLike, out_dir: Optional[PathLike],
                   with_overlay: bool = False, verbose: bool = False, backend: str = "mindspore",
                   models: Sequence[PathLike] = (), threads: Optional[int] = None,
                   out_video: Optional[PathLike] = None, label_ids: bool = False) -> Dict[str, Any]:
    """``tools/predict.py``: one process, masks for every input image, the class summary printed.

    The network is the checkpoint's or exported ONNX files (see :func:`~.runners.build_runner`). A video or
    camera ``source`` is written to ``out_video`` with every frame overlaid. ``label_ids`` writes the masks as
    Cityscapes labelIds (a 19-class Cityscapes config only). Raises :class:`SkippedInputs` (exit status 2) after
    writing everything else when some images could not be decoded.
    """
    if label_ids:
        check_label_ids(cfg, source)
    if is_stream(source):
        if out_video is None:
            raise DataError(f"{source} is a video or camera: give --out-video OUT.mp4 for the overlaid frames")
        check_video_output(out_video)
        open_capture(source).release()  # a missing or unreadable video fails now, not after the network is built
        setup_runtime(cfg, verbose=verbose, log_name=None)
        predictor = Predictor(build_runner(cfg, backend, checkpoint, models, threads), cfg)
        return predict_video(predictor, source, out_video, cfg.class_names, palette=full_palette(cfg.data.palette))
    if out_dir is None:
        raise DataError(f"{source}: images are written as masks: give --out-dir DIR (--out-video is for videos)")
    paths = collect_inputs(source)
    ensure_writable_dir(out_dir, "--out-dir")  # before the network is built and the images are read
    logger = setup_runtime(cfg, verbose=verbose, log_name=None)
    predictor = Predictor(build_runner(cfg, backend, checkpoint, models, threads), cfg)
    summary = predict_images(predictor, paths, out_dir, cfg.class_names, with_overlay,
                             palette=full_palette(cfg.data.palette), label_ids=label_ids)
    print(format_summary(summary["images"], summary["overall"]), flush=True)
    logger.info("wrote %d mask(s) and %s to %s", len(summary["images"]), SUMMARY, out_dir)
    if summary["skipped"]:
        listing = "\n".join(f"  {s['error']}" for s in summary["skipped"])
        raise SkippedInputs(f"{len(summary['skipped'])} of {len(paths)} input(s) could not be decoded and were "
                            f"skipped (the others are in {out_dir}, listed in {SUMMARY}):\n{listing}")
    return summary

