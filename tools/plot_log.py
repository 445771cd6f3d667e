"""Plot the loss, learning-rate and mIoU curves of a training run from its metrics.jsonl.

Example: python tools/plot_log.py work_dirs/s16 --out work_dirs/s16/curves.png
Needs matplotlib (pip install 'deeplabv3[plot]').
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from deeplabv3.cli import run_tool
from deeplabv3.visualization import plot_training_curves


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", metavar="WORK_DIR_OR_JSONL", help="training work directory or its metrics.jsonl")
    parser.add_argument("--out", required=True, metavar="PNG", help="image to write")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    print(plot_training_curves(args.source, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
