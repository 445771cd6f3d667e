"""Data preparation throughput per data set kind, and full-resolution Cityscapes sliding-window evaluation.

``--part prep``: generated trees in each kind's real layout and typical image size (VOC's demo scenes are 96-160
px; Cityscapes 1024x2048 PNGs; ADE20K 512x683 JPEGs; a custom set of 375x500 JPEGs with RGB palette masks) are
prepared as ``tools/prepare_dataset.py`` does; the figure is masks converted per second (wall clock, after the
tree is written).

``--part fullres``: one synthetic 1024x2048 image through the evaluation predictor at full resolution
(``eval.crop_size: 2048``) with the Cityscapes config's sliding window (769-px tiles, stride 513: 8 tiles),
DeepLabV3 ResNet-101 at OS16, random weights: the first image (graph compilation included), then the steady time
per image, and the process's peak RSS before and after.

Example: python benchmarks/data_prep.py --part prep
         python benchmarks/data_prep.py --part fullres
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from deeplabv3.cli import run_tool
from deeplabv3.config import load_config
from deeplabv3.data import ade20k, cityscapes, custom, synthetic, voc
from deeplabv3.data.demo import write_demo_dataset

ROOT = Path(__file__).resolve().parents[1]
CUSTOM = ["model.num_classes=3", "data.class_names=[background,disc,box]", "data.mask_format=rgb",
          "data.palette=[[0,0,0],[220,40,40],[40,90,230]]"]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _prep_jobs(tmp: Path) -> Dict[str, Callable[[], object]]:
    """Write each kind's tree; return the preparations to time."""
    write_demo_dataset(tmp / "voc", num_train=60, num_val=20, num_sbd=4)
    synthetic.write_cityscapes(tmp / "cs", per_city=3, size=(1024, 2048))
    synthetic.write_ade20k(tmp / "ade", num_train=24, num_val=6, size=(512, 683))
    images, masks = synthetic.write_custom(tmp / "mine", num_images=40, size=(375, 500))
    cfg = load_config(None, CUSTOM)
    return {
        "voc (demo scenes)": lambda: voc.prepare_voc(tmp / "voc" / "VOC2012", tmp / "out_voc"),
        "cityscapes 1024x2048": lambda: cityscapes.prepare(tmp / "cs", tmp / "out_cs"),
        "ade20k 512x683": lambda: ade20k.prepare(tmp / "ade", tmp / "out_ade"),
        "custom rgb 375x500": lambda: custom.prepare(cfg, custom.CustomSource(images, masks), tmp / "out_custom"),
    }


def bench_prep() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        jobs = _prep_jobs(Path(tmp))
        print("kind | masks | seconds | masks/s")
        for name, job in jobs.items():
            start = time.perf_counter()
            result = job()
            seconds = time.perf_counter() - start
            count = result.converted
            print(f"{name} | {count} | {seconds:.2f} | {count / seconds:.1f}", flush=True)


def bench_fullres() -> None:
    from deeplabv3.evaluation.predictor import Predictor
    from deeplabv3.models import build_model
    from deeplabv3.runtime import setup_runtime

    cfg = load_config(ROOT / "configs" / "deeplabv3_r101_cityscapes_512x1024.yaml",
                      ["model.output_stride=16", "model.aspp_rates=[1,6,12,18]", "model.multi_grid=[1,2,4]",
                       "model.pretrained_backbone=null"])
    setup_runtime(cfg, log_name=None)
    net = build_model(cfg, output_stride=16)
    net.set_train(False)
    predictor = Predictor(net, cfg)
    image = np.random.default_rng(0).integers(0, 256, (1024, 2048, 3), dtype=np.uint8)
    before = _peak_rss_mb()
    start = time.perf_counter()
    first = predictor.predict(image)
    first_s = time.perf_counter() - start
    predictor.timer.reset()
    start = time.perf_counter()
    predictor.predict(image)
    steady_s = time.perf_counter() - start
    stages = predictor.timer.seconds
    print(f"R101 OS16, 1024x2048, tiles {cfg.eval.tile_size} stride {cfg.eval.tile_stride}: first image (compile) "
          f"{first_s:.1f} s, steady {steady_s:.1f} s/image (net {stages['net']:.1f}, pre {stages['pre']:.2f}, post "
          f"{stages['post']:.2f}); peak RSS {before:.0f} MB after building the network, {_peak_rss_mb():.0f} MB "
          f"after two images; output {first.shape}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["prep", "fullres"], required=True)
    args = parser.parse_args(argv)
    bench_prep() if args.part == "prep" else bench_fullres()
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
