"""Prepare a data set for training: index-PNG labels (255 = ignore), list files and dataset.json.

    python tools/prepare_dataset.py --kind cityscapes --root data/cityscapes --out data/cityscapes_prepared
    python tools/prepare_dataset.py --kind ade20k --root data/ADEChallengeData2016 --out data/ade20k_prepared
    python tools/prepare_dataset.py --kind voc --root VOCdevkit/VOC2012 --sbd-root benchmark_RELEASE/dataset \\
        --out data/voc
    python tools/prepare_dataset.py --kind custom --config my_data.yaml --images photos --masks masks \\
        --val-fraction 0.2 --out data/mine

Then build the training MindRecord from <out>/train.txt with tools/build_mindrecord.py (it takes the class count
from <out>/dataset.json) and evaluate on <out>/val.txt.
"""
import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from deeplabv3.cli import run_tool
from deeplabv3.config import load_config
from deeplabv3.data.custom import IMAGE_SUFFIXES, CustomSource
from deeplabv3.data.datasets import KINDS, PrepareRequest, prepare_dataset
from deeplabv3.data.io import DataError


def _path(value: Optional[str]) -> Optional[Path]:
    return Path(value) if value else None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=list(KINDS), help="data set kind (default: data.dataset of --config)")
    parser.add_argument("--out", required=True, help="output folder for labels/, the list files and dataset.json")
    parser.add_argument("--root", help="the download's root (voc: the VOC2012 folder; cityscapes: the folder with "
                                       "leftImg8bit/ and gtFine/; ade20k: ADEChallengeData2016)")
    parser.add_argument("--sbd-root", help="voc: SBD's dataset folder; adds vocaug_train.txt")
    custom = parser.add_argument_group("custom data (--kind custom)")
    custom.add_argument("--config", help="YAML config naming the classes and the mask encoding (data.*)")
    custom.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override config keys, e.g. --set data.mask_format=binary")
    custom.add_argument("--images", help="folder of training images")
    custom.add_argument("--masks", help="folder of their masks")
    custom.add_argument("--val-images", help="folder of validation images (else --val-fraction or --val-list)")
    custom.add_argument("--val-masks", help="folder of validation masks")
    custom.add_argument("--train-list", help="list file of '<image> <mask>' lines instead of --images/--masks")
    custom.add_argument("--val-list", help="list file of validation '<image> <mask>' lines")
    custom.add_argument("--image-suffix", dest="image_suffixes", nargs="+", default=list(IMAGE_SUFFIXES),
                        help=f"image name endings (default {' '.join(IMAGE_SUFFIXES)})")
    custom.add_argument("--mask-suffix", default=".png", help="mask name ending, e.g. _mask.png (default .png)")
    custom.add_argument("--val-fraction", type=float, default=0.0,
                        help="split this share of the pairs off as val.txt (one folder only)")
    custom.add_argument("--seed", type=int, default=0, help="seed of --val-fraction (default 0)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = load_config(args.config, args.overrides) if args.config or args.overrides else None
    source = CustomSource(_path(args.images), _path(args.masks), _path(args.val_images), _path(args.val_masks),
                          _path(args.train_list), _path(args.val_list), tuple(args.image_suffixes), args.mask_suffix,
                          args.val_fraction, args.seed)
    kind = args.kind or (cfg.data.dataset if cfg is not None else None)
    if kind is None:
        raise DataError(f"give --kind ({', '.join(KINDS)}) or a --config whose data.dataset names it")
    request = PrepareRequest(Path(args.out), _path(args.root), _path(args.sbd_root), cfg, source)
    prepare_dataset(kind, request)
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
