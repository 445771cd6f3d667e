"""Predict label maps for images of any size: VOC-palette PNG masks, optional overlays, a summary of classes.

--input is an image, a directory of images or a list file of image paths. Each mask has the size of its image
and is written as <out-dir>/<name>.png (class indices with the VOC colour table); --overlay adds
<name>_overlay.jpg with a legend. summary.json, written last, lists the classes found per image and overall, the
files written and the inputs skipped (undecodable inputs are skipped with a warning; the exit status is then 2).

--input may also be a video file (clip.mp4) or a camera index (0) with --out-video out.mp4: every frame is
segmented and overlaid with a legend, at the input's size and frame rate; the frames/s are printed.

--label-ids (Cityscapes configs) writes each mask as the official Cityscapes labelIds instead (grey PNG, 7 = road,
..., 33 = bicycle), the files the Cityscapes evaluation server takes.

Examples:
  python tools/predict.py --config configs/deeplabv3_s16_r101_vocaug.yaml --checkpoint model.ckpt \\
      --input photos/ --out-dir predictions/ --overlay
  python tools/predict.py --config configs/deeplabv3_s16_r101_vocaug.yaml --backend onnxruntime \
      --model deeplabv3_s16_int8.onnx --input clip.mp4 --out-video clip_seg.mp4
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from deeplabv3.interrupts import take_sigint

take_sigint()  # before MindSpore is imported: see deeplabv3.interrupts

from deeplabv3.cli import add_config_arguments, config_from_args, run_tool
from deeplabv3.evaluation.inference import run_prediction
from deeplabv3.evaluation.runners import add_backend_arguments, check_backend_arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    add_backend_arguments(parser)
    parser.add_argument("--input", required=True, metavar="IMG|DIR|LIST|VIDEO|CAMERA",
                        help="image, directory, list file, video file or camera index (0)")
    parser.add_argument("--out-dir", metavar="DIR", default=None, help="where masks and summary.json go (images)")
    parser.add_argument("--out-video", metavar="VIDEO", default=None,
                        help="the overlaid video (.mp4 or .avi) for a video or camera --input")
    parser.add_argument("--overlay", action="store_true", help="also write overlays with a legend")
    parser.add_argument("--label-ids", action="store_true",
                        help="Cityscapes: write the masks as official labelIds PNGs (7 = road, ..., 33 = bicycle) "
                             "for the evaluation server instead of palette PNGs of the train ids")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_backend_arguments(parser, args)
    run_prediction(config_from_args(args), args.checkpoint, args.input, args.out_dir, args.overlay, args.verbose,
                   args.backend, args.model, args.threads, args.out_video, args.label_ids)
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
