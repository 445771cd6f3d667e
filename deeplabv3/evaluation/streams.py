"""Video files and cameras through the prediction protocol: every frame segmented, overlaid, written to a video.

Frames are read with OpenCV's ``VideoCapture`` (a file, or a camera index such as ``0``), segmented in batches of
``eval.batch_size`` exactly as images are, and written with ``VideoWriter`` at the input's frame rate and size:
the legend of the classes present is drawn inside the frame (bottom rows), so every output frame has the input's
size. Only one batch of frames is held at a time. The video is written under a temporary name and renamed when
complete, so an interrupted run never leaves a complete-looking file. A camera runs until Ctrl-C, which ends the
recording and keeps what was recorded.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence, TypeVar, Union

import cv2
import numpy as np

from ..data.io import DataError
from ..progress import track
from ..runtime import get_logger
from ..visualization import legend, overlay, present_classes
from .predictor import Predictor

PathLike = Union[str, os.PathLike]
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
FOURCC = {".avi": "MJPG"}  # everything else: MPEG-4 part 2, which every OpenCV build writes
DEFAULT_FPS = 25.0


def is_stream(source: PathLike) -> bool:
    """A video file (by extension) or a camera index (an integer such as ``0``)."""
    text = str(source)
    return text.isdigit() or Path(text).suffix.lower() in VIDEO_EXTENSIONS


def open_capture(source: PathLike) -> cv2.VideoCapture:
    text = str(source)
    if not text.isdigit() and not Path(text).is_file():
        raise DataError(f"{text}: no such video file")
    capture = cv2.VideoCapture(int(text) if text.isdigit() else text)
    if not capture.isOpened():
        what = f"camera {text}" if text.isdigit() else f"{text}: OpenCV cannot open the video (codec or container)"
        raise DataError(f"{what} could not be opened; check the device or convert the file (e.g. to H.264 MP4)")
    return capture


T = TypeVar("T")


def chunked(items: Iterable[T], size: int) -> Iterator[List[T]]:
    """Lists of ``size`` consecutive items (the last one shorter), holding one list at a time."""
    batch: List[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def frames(capture: cv2.VideoCapture) -> Iterator[np.ndarray]:
    """BGR frames until the stream ends."""
    while True:
        ok, frame = capture.read()
        if not ok:
            return
        yield frame


def overlay_with_legend(frame: np.ndarray, mask: np.ndarray, class_names: Sequence[str],
                        palette: Optional[np.ndarray] = None) -> np.ndarray:
    """The mask's colours over the frame and the legend of its classes in the bottom rows, at the frame's size."""
    picture = overlay(frame, mask, palette=palette)
    strip = legend(present_classes(mask, len(class_names)), class_names, picture.shape[1], palette=palette)
    rows = min(strip.shape[0], picture.shape[0])
    picture[-rows:] = strip[-rows:]
    return picture


def _writer(path: Path, fps: float, size: tuple) -> cv2.VideoWriter:
    fourcc = cv2.VideoWriter_fourcc(*FOURCC.get(path.suffix.lower(), "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, size)
    if not writer.isOpened():
        raise DataError(f"{path}: OpenCV cannot write a {path.suffix or 'suffix-less'} video here; use .mp4 or "
                        f".avi in a writable directory")
    return writer


def check_video_output(out_video: PathLike) -> Path:
    """The output video's name and directory, checked before any network is built (exit 2 when unusable)."""
    out_video = Path(out_video)
    if out_video.suffix.lower() not in VIDEO_EXTENSIONS:
        raise DataError(f"--out-video {out_video}: give a video file name such as out.mp4 or out.avi")
    if out_video.is_dir():
        raise DataError(f"--out-video {out_video} is a directory; give a file name such as {out_video / 'out.mp4'}")
    parent = next((p for p in (out_video.parent, *out_video.parent.parents) if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise DataError(f"--out-video {out_video}: {parent} is not a writable directory; choose another path")
    return out_video


def predict_video(predictor: Predictor, source: PathLike, out_video: PathLike, class_names: Sequence[str],
                  progress: bool = True, palette: Optional[np.ndarray] = None) -> dict:
    """Segment every frame of ``source`` into ``out_video``; returns frame count, size, fps of input and output."""
    out_video = check_video_output(out_video)
    out_video.parent.mkdir(parents=True, exist_ok=True)
    capture = open_capture(source)
    fps = capture.get(cv2.CAP_PROP_FPS) or DEFAULT_FPS
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    staged = out_video.with_name(f".{out_video.stem}.tmp-{os.getpid()}{out_video.suffix}")
    writer: Optional[cv2.VideoWriter] = None
    count, size, start = 0, None, time.perf_counter()
    try:
        def labelled() -> Iterator[np.ndarray]:
            for batch in chunked(frames(capture), predictor.batch_size):
                for frame, mask in zip(batch, predictor.predict_batch(batch)):
                    yield overlay_with_legend(frame, mask, class_names, palette)

        stream = labelled()
        try:
            for picture in (track(stream, total=total, desc="video", unit="frame") if progress else stream):
                if writer is None:
                    size = (picture.shape[1], picture.shape[0])
                    writer = _writer(staged, fps, size)
                writer.write(picture)
                count += 1
        except KeyboardInterrupt:
            if not str(source).isdigit():
                raise
            get_logger().info("camera recording stopped (Ctrl-C)")
        if writer is None:
            raise DataError(f"{source}: the video holds no frames OpenCV can decode")
        writer.release()
        writer = None
        os.replace(staged, out_video)
    finally:
        capture.release()
        if writer is not None:
            writer.release()
        staged.unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    summary = {"input": str(source), "video": str(out_video), "frames": count, "width": size[0], "height": size[1],
               "input_fps": fps, "frames_per_second": count / seconds if seconds > 0 else None}
    get_logger().info("wrote %d frames (%dx%d) to %s", count, size[0], size[1], out_video)
    print(f"{count} frames, {summary['frames_per_second']:.2f} frames/s -> {out_video}", flush=True)
    return summary
