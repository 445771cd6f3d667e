"""Train DeepLabV3 / DeepLabV3+ as a YAML config describes, alone or under a distributed launch (msrun, mpirun).

The work directory (runtime.work_dir, or --work-dir) receives config.yaml, train.log, metrics.jsonl,
checkpoints/, a last_checkpoint pointer and, with periodic evaluation, best.ckpt. SIGINT/SIGTERM save a
checkpoint and stop (exit status 128 + signal number); --resume continues exactly where it stopped.

Example: python tools/train.py --config configs/deeplabv3_s16_r101_vocaug.yaml --work-dir work_dirs/s16 \\
             --set model.pretrained_backbone=resnet101-689c5e77.ckpt
         python tools/train.py --config configs/deeplabv3_s16_r101_vocaug.yaml --work-dir work_dirs/s16 --resume
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from deeplabv3.interrupts import take_sigint

take_sigint()  # before MindSpore is imported: see deeplabv3.interrupts

from deeplabv3.cli import add_config_arguments, config_from_args, run_tool
from deeplabv3.config import replace
from deeplabv3.engine.trainer import LATEST, train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.add_argument("--work-dir", metavar="DIR", default=None, help="output directory (sets runtime.work_dir)")
    parser.add_argument("--resume", nargs="?", const=LATEST, default=None, metavar="CKPT",
                        help="continue a run: from CKPT, or without it from the checkpoint <work dir>/last_checkpoint "
                             "names")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    if args.work_dir:
        cfg = replace(cfg, **{"runtime.work_dir": args.work_dir})
    result = train(cfg, args.resume, args.verbose)
    return result.exit_status


if __name__ == "__main__":
    sys.exit(run_tool(main))
