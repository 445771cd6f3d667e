"""Evaluation throughput and the share of time spent outside the network.

For each inference setting (single scale; the published multi-scale + flip), VOC-sized images are written as
JPEG/PNG, then read, predicted and counted into a confusion matrix one at a time, timing every stage: reading,
pre-processing (resize, normalise, pad), the network (forward + softmax + mirrored pass, including the copy
back), post-processing (crop, resize to the original size, sum, argmax) and the metric update. Graph compilation
happens in a warm-up image per setting and is reported separately. Weights are random unless --checkpoint is
given: the time does not depend on them.

Example: python benchmarks/eval.py --images 3            (ResNet-101, OS16, 500x375 and 375x500 images)
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from deeplabv3.cli import add_config_arguments, config_from_args, run_tool
from deeplabv3.config import Config, replace
from deeplabv3.data.io import read_image, read_label
from deeplabv3.evaluation.metrics import ConfusionMatrix
from deeplabv3.evaluation.predictor import Predictor, effective_output_stride, load_eval_network
from deeplabv3.models import build_model
from deeplabv3.runtime import setup_runtime

SETTINGS = {"single scale": {"eval.scales": [1.0], "eval.flip": False},
            "MS + flip": {"eval.scales": [0.5, 0.75, 1.0, 1.25, 1.75], "eval.flip": True}}
SIZES = [(375, 500), (500, 375), (333, 500)]


def write_images(root: Path, count: int, num_classes: int) -> List[Tuple[Path, Path]]:
    """``count`` smooth random JPEGs of VOC sizes with random label PNGs."""
    rng = np.random.default_rng(0)
    pairs = []
    for i in range(count):
        h, w = SIZES[i % len(SIZES)]
        image = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3)).astype(np.uint8), (9, 9), 3)
        label = cv2.resize(rng.integers(0, num_classes, (h // 25, w // 25)).astype(np.uint8), (w, h),
                           interpolation=cv2.INTER_NEAREST)
        pairs.append((root / f"{i}.jpg", root / f"{i}.png"))
        cv2.imwrite(str(pairs[-1][0]), image)
        cv2.imwrite(str(pairs[-1][1]), label)
    return pairs


def measure(net, cfg: Config, pairs: Sequence[Tuple[Path, Path]]) -> Dict[str, float]:
    predictor = Predictor(net, cfg)
    start = time.perf_counter()
    predictor.predict(read_image(pairs[0][0]))  # compiles the network for every input size of the setting
    warmup = time.perf_counter() - start
    predictor.timer.reset()
    matrix = ConfusionMatrix(cfg.model.num_classes)
    read_s = metric_s = 0.0
    start = time.perf_counter()
    for image_path, label_path in pairs:
        t0 = time.perf_counter()
        image, label = read_image(image_path), read_label(label_path)
        t1 = time.perf_counter()
        pred = predictor.predict(image)
        t2 = time.perf_counter()
        matrix.update(pred, label)
        read_s += t1 - t0
        metric_s += time.perf_counter() - t2
    wall = time.perf_counter() - start
    stages = predictor.timer.seconds
    return {"warmup_s": warmup, "wall_s": wall, "images_per_s": len(pairs) / wall, "read_s": read_s,
            "pre_s": stages["pre"], "net_s": stages["net"], "post_s": stages["post"], "metric_s": metric_s,
            "outside_net": 1.0 - stages["net"] / wall}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser, config_required=False)
    parser.add_argument("--checkpoint", default=None, help="weights to load (default: random)")
    parser.add_argument("--images", type=int, default=3, help="timed images per setting (after one warm-up)")
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    setup_runtime(cfg, verbose=args.verbose, log_name=None)
    if args.checkpoint:
        net, _ = load_eval_network(cfg, args.checkpoint)
    else:
        net = build_model(cfg, output_stride=effective_output_stride(cfg))
    print(f"{cfg.model.name} {cfg.model.backbone} OS{net.output_stride}, crop_size {cfg.eval.crop_size}, "
          f"batch {cfg.eval.batch_size}, {cfg.runtime.device_target} {cfg.runtime.mode}; {args.images} images "
          f"of {', '.join(f'{w}x{h}' for h, w in SIZES)}")
    header = ("setting", "img/s", "s/img", "compile+1st s", "read", "pre", "net", "post", "metric", "outside net")
    print(" | ".join(header))
    with tempfile.TemporaryDirectory() as tmp:
        pairs = write_images(Path(tmp), args.images, cfg.model.num_classes)
        for name, changes in SETTINGS.items():
            r = measure(net, replace(cfg, **changes), pairs)
            print(" | ".join([name, f"{r['images_per_s']:.3f}", f"{1 / r['images_per_s']:.2f}", f"{r['warmup_s']:.1f}",
                              *(f"{r[k]:.3f}" for k in ("read_s", "pre_s", "net_s", "post_s", "metric_s")),
                              f"{100 * r['outside_net']:.2f}%"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
