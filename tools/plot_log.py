"""Plot the loss, learning-rate and mIoU curves of a training run from its metrics.jsonl.

Example: python tools/plot_log.py work_dirs/s16     (writes work_dirs/s16/curves.png)
Needs matplotlib (pip install 'deeplabv3[plot]').
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from deeplabv3.cli import run_tool
from deeplabv3.visualization import plot_training_curves


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", metavar="WORK_DIR_OR_JSONL", help="training work directory or its metrics.jsonl")
    parser.add_argument("--out", metavar="PNG", default=None,
                        help="image to write (default: curves.png in the work directory)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    source = Path(args.source)
    out = args.out if args.out is not None else (source if source.is_dir() else source.parent) / "curves.png"
    print(plot_training_curves(source, out))
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
