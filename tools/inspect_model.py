"""Describe a configured network: parameters (total, per module, per stage) and each backbone stage's name, stride,
dilations, channels and feature-map size; or list the MindCV backbones ``model.backbone`` accepts.

Examples: python tools/inspect_model.py --config configs/deeplabv3_s8_r101_vocaug.yaml --input-size 513 513
          python tools/inspect_model.py --config configs/deeplabv3_s16_mobilenetv2_vocaug.yaml
          python tools/inspect_model.py --list-backbones
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from deeplabv3.cli import add_config_arguments, config_from_args, run_tool
from deeplabv3.config.backbones import FAMILIES, REFUSED
from deeplabv3.models.summary import inspect_config


def backbone_list() -> str:
    """The ``model.backbone`` values, one family per line, then the MindCV families not offered and why."""
    lines = ["MindCV backbones (model.backbone), output stride 16 or 8:"]
    lines += [f"  {family:<13} {', '.join(names)}" for family, names in FAMILIES.items()]
    lines += ["not offered:"] + [f"  {family:<13} {why}" for family, why in REFUSED.items()]
    lines.append("  (and every MindCV model without features_only support: transformers, densenet, ...)")
    return "\n".join(lines)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive size")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser, config_required=False)
    parser.add_argument("--list-backbones", action="store_true",
                        help="list the supported MindCV backbones by family, and the families refused, then exit")
    parser.add_argument("--input-size", nargs=2, type=positive_int, metavar=("H", "W"), default=None,
                        help="input height and width (default: eval.crop_size, square)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_backbones:
        print(backbone_list())
        return 0
    if args.config is None:
        parser.error("--config is required (or give --list-backbones)")
    print(inspect_config(config_from_args(args), args.input_size, verbose=args.verbose))
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
