"""Predict label maps for images of any size: VOC-palette PNG masks, optional overlays, a summary of classes.

--input is an image, a directory of images or a list file of image paths. Each mask has the size of its image
and is written as <out-dir>/<name>.png (class indices with the VOC colour table); --overlay adds
<name>_overlay.jpg with a legend. summary.json lists the classes found per image and overall.

Example: python tools/predict.py --config configs/deeplabv3_s16_r101_vocaug.yaml --checkpoint model.ckpt \\
             --input photos/ --out-dir predictions/ --overlay
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from deeplabv3.cli import add_config_arguments, config_from_args, run_tool
from deeplabv3.evaluation.inference import run_prediction
from deeplabv3.evaluation.runners import add_backend_arguments, check_backend_arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    add_backend_arguments(parser)
    parser.add_argument("--input", required=True, metavar="IMG|DIR|LIST", help="image, directory or list file")
    parser.add_argument("--out-dir", required=True, metavar="DIR", help="where masks and summary.json go")
    parser.add_argument("--overlay", action="store_true", help="also write overlays with a legend")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_backend_arguments(parser, args)
    run_prediction(config_from_args(args), args.checkpoint, args.input, args.out_dir, args.overlay, args.verbose,
                   args.backend, args.model, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
