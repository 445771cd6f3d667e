"""Look at a data set before training: per-class pixel and image counts, label values outside the classes (with
their files), image sizes and suggested class weights; writes analysis.json and class_histogram.png.

    python tools/analyze_dataset.py --list data/my_data/train.txt --config configs/custom_example.yaml --out an/
    python tools/analyze_dataset.py --mindrecord data/mindrecord/cityscapes_train.mindrecord0 --num-classes 19 \\
        --out analysis/cityscapes

The classes come from --config (model.num_classes, data.class_names, data.ignore_label), else --num-classes, else
the dataset.json next to the list. Needs matplotlib for the chart (pip install 'deeplabv3[plot]').
"""
import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from deeplabv3.cli import run_tool
from deeplabv3.config import load_config
from deeplabv3.data.io import DataError
from deeplabv3.data.prepare import dataset_info
from deeplabv3.data.statistics import collect_stats, list_labels, mindrecord_labels, stats_report
from deeplabv3.fileio import write_json_atomic
from deeplabv3.progress import track
from deeplabv3.visualization.histogram import plot_class_histogram


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--list", help="list file of '<image> <label>' lines (index-PNG labels)")
    source.add_argument("--mindrecord", help="first shard of a training MindRecord")
    parser.add_argument("--config", help="config naming the classes")
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override config keys")
    parser.add_argument("--num-classes", type=int, help="class count without a config")
    parser.add_argument("--out", required=True, help="output folder for analysis.json and class_histogram.png")
    return parser


def _classes(args: argparse.Namespace):
    """(num_classes, class names, ignore label) from the config, --num-classes or dataset.json."""
    if args.config or args.overrides:
        cfg = load_config(args.config, args.overrides)
        return cfg.model.num_classes, list(cfg.class_names), cfg.data.ignore_label
    info = dataset_info(args.list) if args.list and args.num_classes is None else None
    if info:
        return info["num_classes"], info["class_names"], 255
    if args.num_classes is None:
        raise DataError("give the classes: --config, --num-classes N, or a list written by tools/prepare_dataset.py")
    return args.num_classes, [f"class_{i}" for i in range(args.num_classes)], 255


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    num_classes, names, ignore = _classes(args)
    labels = list_labels(args.list) if args.list else mindrecord_labels(args.mindrecord)
    stats = collect_stats(track(labels, None, "counting labels", "label"), num_classes, ignore)
    report = stats_report(stats, names)
    out = Path(args.out)
    write_json_atomic(out / "analysis.json", report)
    plot_class_histogram(report, out / "class_histogram.png")
    for c in report["classes"]:
        print(f"{c['index']:>3} {c['name']:<20} {100 * c['share']:6.2f}% of pixels  in {c['images']} image(s)")
    for value, info in report["values_outside_classes"].items():
        print(f"value {value} outside the classes: {info['pixels']} px in {info['num_files']} file(s), e.g. "
              f"{next(iter(info['files']))}")
    print(f"wrote {out / 'analysis.json'} and {out / 'class_histogram.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
