"""Turn predicted Cityscapes train-id masks (tools/predict.py output) into labelIds PNGs for the official server.

    python tools/predict.py --config configs/deeplabv3_r101_cityscapes_512x1024.yaml --checkpoint best.ckpt \\
        --input leftImg8bit/test/berlin --out-dir preds/berlin
    python tools/cityscapes_label_ids.py --pred-dir preds/berlin --out submit/berlin

Each <name>.png (values 0-18) becomes <name>.png holding the Cityscapes ids (7 = road, ..., 33 = bicycle), as
cityscapesscripts' evaluation reads them; predict's own files are left as they are. (tools/predict.py
--label-ids writes these files directly.)
"""
import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from deeplabv3.cli import run_tool
from deeplabv3.data.cityscapes import SPEC, save_label_ids
from deeplabv3.data.io import DataError
from deeplabv3.data.labels import read_mask


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pred-dir", required=True, help="folder of predicted train-id masks (*.png)")
    parser.add_argument("--out", required=True, help="output folder for the labelIds PNGs")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    masks = sorted(Path(args.pred_dir).glob("*.png"))
    if not masks:
        raise DataError(f"{args.pred_dir}: no predicted masks (*.png) to convert")
    for path in masks:
        save_label_ids(Path(args.out) / path.name, read_mask(path, SPEC))
    print(f"wrote {len(masks)} labelIds PNG(s) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
