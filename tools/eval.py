"""Evaluate a checkpoint on a list of images: per-class IoU/Acc table, aAcc/mIoU/mAcc and a results JSON.

Runs as one process or under a distributed launch (msrun, mpirun): every rank evaluates its share of the list
and the confusion matrices are summed. Inference follows the config's ``eval`` section (scales, flip, output
stride, sliding window).

Example: python tools/eval.py --config configs/deeplabv3_s8_r101_vocaug.yaml --checkpoint deeplabv3_s8.ckpt \\
             --set eval.scales=[0.5,0.75,1.0,1.25,1.75] eval.flip=true --out results.json
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from deeplabv3.interrupts import take_sigint

take_sigint()  # before MindSpore is imported: see deeplabv3.interrupts

from deeplabv3.cli import add_config_arguments, config_from_args, run_tool
from deeplabv3.evaluation.evaluator import run_evaluation
from deeplabv3.evaluation.runners import add_backend_arguments, check_backend_arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    add_backend_arguments(parser)
    parser.add_argument("--out", metavar="JSON", default=None,
                        help="results file (default: <runtime.work_dir>/eval_results.json)")
    parser.add_argument("--show-dir", metavar="DIR", default=None,
                        help="write each image's palette prediction and an image | prediction | ground truth view")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_backend_arguments(parser, args)
    run_evaluation(config_from_args(args), args.checkpoint, args.out, args.show_dir, args.verbose, args.backend,
                   args.model, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
