"""Validate the pairs of a list file and write them as a sharded training MindRecord.

    python tools/build_mindrecord.py --list data/voc/vocaug_train.txt --out data/vocaug.mindrecord \\
        --num-shards 8 --shuffle --num-classes 21

Writes data/vocaug.mindrecord0 .. 7 (+ .db indexes) and data/vocaug.mindrecord.json; set
data.train.mindrecord to the first shard. Nothing appears under the final names until the build is complete.
"""
import argparse
import sys
from typing import Optional, Sequence

from deeplabv3.cli import run_tool
from deeplabv3.data.mindrecord import build_mindrecord
from deeplabv3.data.prepare import dataset_info


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", required=True, help="list file of '<image> <label>' lines")
    parser.add_argument("--data-root", help="folder relative list paths start from (default: the list's folder)")
    parser.add_argument("--out", required=True, help="output prefix; shards are <out>0, <out>1, ...")
    parser.add_argument("--num-shards", type=int, default=1, help="number of shard files (default 1)")
    parser.add_argument("--shuffle", action="store_true", help="shuffle the pairs before writing")
    parser.add_argument("--seed", type=int, default=0, help="seed of --shuffle (default 0)")
    parser.add_argument("--num-classes", type=int, help="check every label value is < this or the ignore label "
                                                        "(default: from the dataset.json next to the list, written "
                                                        "by tools/prepare_dataset.py)")
    parser.add_argument("--ignore-label", type=int, default=255, help="ignore label value (default 255)")
    parser.add_argument("--skip-bad", action="store_true", help="leave unusable pairs out (reported) instead of "
                                                                "stopping")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing shard set")
    parser.add_argument("--workers", type=int, help="validation threads (default: CPU count, at most 8)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    info = dataset_info(args.list) if args.num_classes is None else None
    num_classes = info["num_classes"] if info else args.num_classes
    summary = build_mindrecord(args.list, args.out, args.num_shards, data_root=args.data_root,
                               shuffle=args.shuffle, seed=args.seed, num_classes=num_classes,
                               ignore_label=args.ignore_label, skip_bad=args.skip_bad, overwrite=args.overwrite,
                               workers=args.workers)
    print(f"data.train.mindrecord={summary.first_shard}  ({summary.num_samples} samples"
          + (f", {len(summary.skipped)} bad pairs skipped)" if summary.skipped else ")"))
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
