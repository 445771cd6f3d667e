"""Inference at the original image resolution, following the protocol behind the published mIoU.

For every scale ``s`` of ``eval.scales`` an image is resized (bilinear) so its long side is
``L = int((eval.crop_size - 1) * s) + 1`` -- small images are upsampled -- normalised with the BGR mean/std,
zero-padded bottom/right to an ``L x L`` square and run through the network; the softmax probabilities (plus,
with ``eval.flip``, those of the mirrored square, mirrored back) are cropped to the image, resized bilinearly to
the original size and summed over scales. The label is the argmax of that sum.

Why it is organised this way:

* Every image of a scale has the same padded size, so images are batched (``eval.batch_size``). A short final
  batch is filled with blank inputs whose outputs are dropped: the batch size the user chose is kept, and graph
  mode does not compile the network again for a new shape.
* Softmax, the mirrored pass and the NHWC layout run inside the network (:class:`ProbabilityNet`), so the host
  only crops, resizes and adds float32 arrays with OpenCV.
* The network is behind a *runner*: a callable from the normalised N x 3 x S x S batch to N x S x S x C
  probabilities. A MindSpore network gets :class:`NetworkRunner`; an exported ONNX file gets
  :class:`~deeplabv3.evaluation.runners.OnnxRunner`, so both go through exactly this protocol.
* With ``eval.slide``, a scale whose ``L`` exceeds ``eval.slide_max_size`` is run as overlapping
  ``eval.tile_size`` tiles (``eval.tile_stride`` apart, averaged where they overlap), so large inputs fit in
  memory.
* Summing full-resolution probabilities needs ``H x W x num_classes`` floats. Above ``max_accumulator_bytes``
  (huge photographs) the classes are processed in groups with a running argmax, which bounds the memory.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Protocol, Sequence, Tuple, Union

import cv2
import numpy as np

import mindspore as ms
from mindspore import nn, ops

from ..config import Config, effective_output_stride, input_size
from ..models import LoadReport, build_model, load_checkpoint, output_stride_of

CV_MAX_CHANNELS = 512  # cv2.resize handles at most this many channels at once
DEFAULT_ACCUMULATOR_BYTES = 1 << 30


def load_eval_network(cfg: Config, checkpoint: Union[str, os.PathLike]) -> Tuple[nn.Cell, LoadReport]:
    """The configured network at the evaluation output stride, with ``checkpoint`` loaded strictly."""
    net = build_model(cfg, output_stride=effective_output_stride(cfg))
    report = load_checkpoint(net, checkpoint, strict=True)
    net.set_train(False)
    return net, report


def resize_long_side(image: np.ndarray, long_side: int) -> np.ndarray:
    """Bilinear resize so the longer side is ``long_side``; the short side is rounded down as in the reference."""
    h, w = image.shape[:2]
    if h > w:
        new_h, new_w = long_side, max(1, int(long_side * w / h))
    else:
        new_h, new_w = max(1, int(long_side * h / w)), long_side
    if (new_h, new_w) == (h, w):
        return image
    return cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)


def tile_starts(length: int, tile: int, stride: int) -> List[int]:
    """Start offsets of tiles covering ``[0, length)``; the last tile ends at the border."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


class ProbabilityNet(nn.Cell):
    """Logits network -> softmax probabilities in NHWC; with ``flip`` the mirrored input's are added.

    The mirrored pass mirrors the whole padded input (as the reference does) and runs in the same forward call as
    the original, as one batch of twice the size. ``auto_prefix=False`` keeps the wrapped network's parameter names
    (a training network evaluated in passing must still save under its own names).
    """

    def __init__(self, net: nn.Cell, flip: bool) -> None:
        super().__init__(auto_prefix=False)
        self.net = net
        self.flip = flip

    def construct(self, x):
        if self.flip:
            n = x.shape[0]
            probs = ops.softmax(self.net(ops.concat((x, ops.flip(x, (3,))), 0)), 1)
            probs = probs[:n] + ops.flip(probs[n:], (3,))
        else:
            probs = ops.softmax(self.net(x), 1)
        return ops.transpose(probs, (0, 2, 3, 1))


class Runner(Protocol):
    """What :class:`Predictor` runs: normalised N x 3 x S x S float32 -> N x S x S x C float32 probabilities.

    With flip, the runner adds the mirrored input's probabilities, mirrored back. ``output_stride`` is recorded
    in the results (``None`` when unknown); ``check_sizes`` fails early for input sizes the runner cannot take.
    """

    output_stride: Optional[int]
    backend: str

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...

    def check_sizes(self, sizes: Sequence[int]) -> None: ...


class NetworkRunner:
    """A MindSpore network as a :class:`Runner` (any input size; graph mode compiles once per shape)."""

    backend = "mindspore"

    def __init__(self, net: nn.Cell, flip: bool) -> None:
        net.set_train(False)
        self.net = ProbabilityNet(net, flip)
        self.net.set_train(False)
        self.output_stride = output_stride_of(net)

    compiled = 0  # graphs compiled by every instance in this process, see Predictor.compiled_graphs()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        graphs = len(self.net.compile_cache)
        probs = self.net(ms.Tensor(batch)).asnumpy()
        NetworkRunner.compiled += len(self.net.compile_cache) - graphs
        return probs

    def check_sizes(self, sizes: Sequence[int]) -> None:
        """A network takes every size."""


def normalized_batch(crops: Sequence[np.ndarray], batch_size: int, height: int, width: int, mean: np.ndarray,
                     std: np.ndarray) -> np.ndarray:
    """``batch_size x 3 x height x width`` float32: each BGR crop normalised, zero-padded bottom/right.

    Rows past ``len(crops)`` stay blank; zero padding after normalisation is the reference's.
    """
    batch = np.zeros((batch_size, 3, height, width), dtype=np.float32)
    for i, crop in enumerate(crops):
        h, w = crop.shape[:2]
        batch[i, :, :h, :w] = ((crop.astype(np.float32) - mean) / std).transpose(2, 0, 1)
    return batch


class StageTimer:
    """Wall time spent in pre-processing, the network and post-processing (to keep the host side cheap)."""

    STAGES = ("pre", "net", "post")

    def __init__(self) -> None:
        self.seconds: Dict[str, float] = {stage: 0.0 for stage in self.STAGES}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def reset(self) -> None:
        for stage in self.seconds:
            self.seconds[stage] = 0.0

    def host_fraction(self) -> float:
        """Share of the measured time spent outside the network."""
        total = sum(self.seconds.values())
        return (self.seconds["pre"] + self.seconds["post"]) / total if total else 0.0


class _Accumulator:
    """Sum of one image's per-scale probabilities at its original size, and the argmax of that sum."""

    def __init__(self, height: int, width: int, num_classes: int, max_bytes: int) -> None:
        self.size = (width, height)
        self.num_classes = num_classes
        per_class = height * width * 4
        self.group = max(1, min(num_classes, CV_MAX_CHANNELS, max_bytes // per_class))
        self.sum: Optional[np.ndarray] = None
        self.parts: List[np.ndarray] = []

    @property
    def grouped(self) -> bool:
        return self.group < self.num_classes

    def add(self, probs: np.ndarray) -> None:
        """Add ``h x w x C`` probabilities of the resized image (may be a view into a batch buffer)."""
        if self.grouped:
            self.parts.append(np.array(probs, dtype=np.float32, copy=True))
            return
        full = cv2.resize(probs, self.size, interpolation=cv2.INTER_LINEAR)
        if self.sum is None:
            self.sum = full
        else:
            self.sum += full

    def probabilities(self) -> np.ndarray:
        if self.grouped:
            raise RuntimeError(f"the summed probabilities of a {self.size[0]}x{self.size[1]} image exceed the "
                              f"accumulator budget; only labels are available")
        return self.sum

    def labels(self) -> np.ndarray:
        if not self.grouped:
            return self.sum.argmax(axis=2).astype(np.uint8 if self.num_classes <= 256 else np.int32)
        best = labels = None
        for start in range(0, self.num_classes, self.group):
            stop = min(start + self.group, self.num_classes)
            group_sum = None
            for part in self.parts:
                resized = cv2.resize(np.ascontiguousarray(part[..., start:stop]), self.size,
                                     interpolation=cv2.INTER_LINEAR).reshape(self.size[1], self.size[0], -1)
                group_sum = resized if group_sum is None else group_sum + resized
            group_best = group_sum.max(axis=2)
            group_arg = group_sum.argmax(axis=2).astype(np.int32) + start
            if best is None:
                best, labels = group_best, group_arg
            else:
                better = group_best > best  # strict: ties keep the lower class, as argmax does
                best = np.where(better, group_best, best)
                labels = np.where(better, group_arg, labels)
        return labels.astype(np.uint8 if self.num_classes <= 256 else np.int32)


class Predictor:
    """Multi-scale / flip / sliding-window inference at original resolution (see the module docstring).

    ``net`` maps normalised BGR NCHW float32 to logits at the input size (``build_model``'s contract); it is put
    in inference mode. It may also be a :class:`Runner` (an exported file); the input sizes the protocol needs
    are checked against it here, before any image is read. Only ``cfg.eval``, ``cfg.data.mean/std`` and
    ``cfg.model.num_classes`` are read.
    """

    def __init__(self, net: Union[nn.Cell, Runner], cfg: Config,
                 max_accumulator_bytes: int = DEFAULT_ACCUMULATOR_BYTES) -> None:
        ev = cfg.eval
        self.scales = [float(s) for s in ev.scales]
        self.flip = bool(ev.flip)
        self.crop_size = ev.crop_size
        self.batch_size = ev.batch_size
        self.slide = bool(ev.slide)
        self.slide_max_size = ev.slide_max_size
        self.tile_size = ev.tile_size
        self.tile_stride = ev.tile_stride
        self.num_classes = cfg.model.num_classes
        self.mean = np.asarray(cfg.data.mean, dtype=np.float32)
        self.std = np.asarray(cfg.data.std, dtype=np.float32)
        self.max_accumulator_bytes = max_accumulator_bytes
        self.runner: Runner = NetworkRunner(net, self.flip) if isinstance(net, nn.Cell) else net
        self.runner.check_sizes(self.input_sizes())
        self.timer = StageTimer()

    # ------------------------------------------------------------------------------------------- public API

    def reuse(self) -> None:
        """Start another pass over images: inference mode again (a training may have switched the network back
        to training in between) and fresh stage timings; the compiled graphs are kept."""
        if isinstance(self.runner, NetworkRunner):
            self.runner.net.set_train(False)
        self.timer.reset()

    @classmethod
    def compiled_graphs(cls) -> int:
        """Graphs every predictor of this process has compiled so far (one per input shape and predictor in graph
        mode, 0 in PyNative): a count that grows with repeated evaluations means they do not reuse a predictor."""
        return NetworkRunner.compiled

    def settings(self) -> Dict[str, object]:
        """The inference settings in effect (for results files)."""
        return {"backend": self.runner.backend, "scales": self.scales, "flip": self.flip, "crop_size": self.crop_size,
                "input_sizes": [input_size(self.crop_size, s) for s in self.scales], "batch_size": self.batch_size,
                "slide": self.slide, "slide_max_size": self.slide_max_size, "tile_size": self.tile_size,
                "tile_stride": self.tile_stride}

    def input_sizes(self) -> List[int]:
        """The square network input sizes the protocol runs at: one per scale, the tile size where it slides."""
        sizes = []
        for scale in self.scales:
            size = input_size(self.crop_size, scale)
            size = self.tile_size if self.slide and size > self.slide_max_size else size
            if size not in sizes:
                sizes.append(size)
        return sizes

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Label map (``H x W``) of one ``H x W x 3`` uint8 BGR image."""
        return self.predict_batch([image])[0]

    def predict_batch(self, images: Sequence[np.ndarray]) -> List[np.ndarray]:
        """Label maps of several images, each at its own original size."""
        accumulators = self._accumulate(images)
        with self.timer.stage("post"):
            return [acc.labels() for acc in accumulators]

    def probabilities(self, images: Sequence[np.ndarray]) -> List[np.ndarray]:
        """``H x W x num_classes`` float32 probabilities summed over scales (and the mirrored pass)."""
        return [acc.probabilities() for acc in self._accumulate(images)]

    # ------------------------------------------------------------------------------------------------ steps

    def _accumulate(self, images: Sequence[np.ndarray]) -> List[_Accumulator]:
        for image in images:
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"expected H x W x 3 uint8 BGR images, got shape {image.shape} {image.dtype}")
        accumulators = [_Accumulator(im.shape[0], im.shape[1], self.num_classes, self.max_accumulator_bytes)
                        for im in images]
        for scale in self.scales:
            size = input_size(self.crop_size, scale)
            with self.timer.stage("pre"):
                resized = [resize_long_side(im, size) for im in images]
            if self.slide and size > self.slide_max_size:
                for acc, im in zip(accumulators, resized):
                    probs = self._sliding_window(im)
                    with self.timer.stage("post"):
                        acc.add(probs)
            else:
                self._whole_images(resized, size, accumulators)
        return accumulators

    def _whole_images(self, resized: List[np.ndarray], size: int, accumulators: List[_Accumulator]) -> None:
        """Pad each resized image to ``size x size``, run in batches, add the cropped probabilities."""
        for start in range(0, len(resized), self.batch_size):
            chunk = resized[start:start + self.batch_size]
            probs = self._run(chunk, size)
            with self.timer.stage("post"):
                for i, im in enumerate(chunk):
                    accumulators[start + i].add(probs[i, :im.shape[0], :im.shape[1]])

    def _sliding_window(self, image: np.ndarray) -> np.ndarray:
        """Probabilities of a large resized image from overlapping tiles, averaged where they overlap."""
        h, w = image.shape[:2]
        tile = self.tile_size
        boxes = [(y, x) for y in tile_starts(h, tile, self.tile_stride) for x in tile_starts(w, tile, self.tile_stride)]
        total = np.zeros((h, w, self.num_classes), dtype=np.float32)
        count = np.zeros((h, w, 1), dtype=np.float32)
        for start in range(0, len(boxes), self.batch_size):
            chunk = boxes[start:start + self.batch_size]
            tiles = [image[y:y + tile, x:x + tile] for y, x in chunk]
            probs = self._run(tiles, tile)
            with self.timer.stage("post"):
                for i, ((y, x), t) in enumerate(zip(chunk, tiles)):
                    th, tw = t.shape[:2]
                    total[y:y + th, x:x + tw] += probs[i, :th, :tw]
                    count[y:y + th, x:x + tw] += 1.0
        with self.timer.stage("post"):
            total /= count
        return total

    def _run(self, crops: List[np.ndarray], size: int) -> np.ndarray:
        """Normalise ``crops`` into a zero-padded ``batch_size x 3 x size x size`` batch; NHWC probabilities.

        Rows past ``len(crops)`` stay blank (their outputs are ignored) so every call has the same shape.
        """
        with self.timer.stage("pre"):
            batch = normalized_batch(crops, self.batch_size, size, size, self.mean, self.std)
        with self.timer.stage("net"):
            return self.runner(batch)

