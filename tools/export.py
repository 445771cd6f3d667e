"""Export a trained network for deployment (MINDIR, ONNX) or as a weights-only checkpoint, and verify the file.

--precision fp16 / int8 (ONNX) converts the verified float32 file and writes the result only if its argmax
agrees with the float32 network on the calibration images (--min-agreement; exit status 1 otherwise).
The exported file is run on a sample input (MindSpore GraphCell for MINDIR, onnxruntime for ONNX, a strict reload
for CKPT) and compared with the network's own forward pass; it is written only if it matches within the tolerance
(exit status 1 otherwise). The network runs at eval.output_stride (default: model.output_stride).

Examples:
  python tools/export.py --config configs/deeplabv3_s8_r101_vocaug.yaml --checkpoint deeplabv3_s8.ckpt \\
      --format MINDIR --out deeplabv3_s8.mindir --input-size 513 513
  python tools/export.py --config configs/deeplabv3_s16_r101_vocaug.yaml --checkpoint deeplabv3_s16.ckpt \\
      --format ONNX --out deeplabv3_s16.onnx --input-size 513 513 --input-format NHWC --output labels
  python tools/export.py --config configs/deeplabv3_s16_r101_vocaug.yaml --checkpoint deeplabv3_s16.ckpt \
      --format ONNX --out deeplabv3_s16_int8.onnx --input-size 513 513 --precision int8 \
      --calib-list data/voc_train.txt --calib-images 64 --calib-method Percentile
  python tools/export.py --config configs/deeplabv3_s16_r101_vocaug.yaml --checkpoint train_step_30000.ckpt \\
      --format CKPT --out deeplabv3_s16_weights.ckpt
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from deeplabv3.cli import add_config_arguments, config_from_args, run_tool
from deeplabv3.export import (CALIBRATION_METHODS, DEFAULT_AGREEMENT, FORMATS, INPUT_FORMATS, OUTPUTS, PRECISIONS,
                              ExportOptions, VerificationError, run_export)

VERIFICATION_FAILED_EXIT = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.add_argument("--checkpoint", required=True, metavar="CKPT", help="network weights (.ckpt)")
    parser.add_argument("--format", required=True, metavar="|".join(FORMATS),
                        help="MINDIR (MindSpore, MindSpore Lite), ONNX (onnxruntime; needs the onnx extra) or "
                             "CKPT (weights only, no optimizer state)")
    parser.add_argument("--out", required=True, metavar="FILE", help="output file (the format's suffix is added "
                                                                     "when missing)")
    parser.add_argument("--input-size", nargs=2, type=int, metavar=("H", "W"), default=None,
                        help="fixed input height and width (required for ONNX; MINDIR default: eval.crop_size)")
    parser.add_argument("--batch-size", type=int, default=1, metavar="N", help="fixed batch size (default 1)")
    parser.add_argument("--output", choices=OUTPUTS, default="probs",
                        help="probs: softmax N x C x H x W; logits: N x C x H x W; labels: argmax N x H x W int32")
    parser.add_argument("--input-format", choices=INPUT_FORMATS, default="NCHW", type=str.upper,
                        help="layout of the image input (NHWC is transposed inside the graph)")
    parser.add_argument("--atol", type=float, default=1e-4,
                        help="largest accepted |difference| to the network's probs/logits (default 1e-4)")
    parser.add_argument("--min-agreement", type=float, default=None,
                        help="smallest accepted fraction of pixels with the network's class: for --output labels "
                             "(default 0.999), and for fp16 / int8 against the float32 network on the calibration "
                             "images (defaults " + ", ".join(f"{k} {v}" for k, v in DEFAULT_AGREEMENT.items()) + ")")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", type=str.lower,
                        help="ONNX only: fp16 (float16 weights and activations, float32 input/output) or int8 "
                             "(static QDQ quantization of the convolutions, per-channel weights)")
    parser.add_argument("--calib-list", metavar="LIST|DIR|IMG", default=None,
                        help="calibration images for int8 (and the fp16 check): a list file such as "
                             "data.eval.list, a folder or one image; prepared as evaluation prepares them")
    parser.add_argument("--calib-images", type=int, default=32, metavar="N",
                        help="how many images of --calib-list to use (default 32)")
    parser.add_argument("--calib-method", choices=CALIBRATION_METHODS, default="MinMax",
                        help="int8 activation range calibration (default MinMax)")
    parser.add_argument("--force", action="store_true",
                        help="write an fp16/int8 file even when it agrees less than --min-agreement with float32")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    options = ExportOptions(args.format, tuple(args.input_size) if args.input_size else None, args.batch_size,
                            args.output, args.input_format, args.atol, args.min_agreement, args.precision,
                            args.calib_list, args.calib_images, args.calib_method, args.force)
    try:
        result = run_export(config_from_args(args), args.checkpoint, args.out, options, args.verbose)
    except VerificationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return VERIFICATION_FAILED_EXIT
    print(f"{result.path} ({result.fmt}, {result.size_bytes / 1e6:.1f} MB): {result.verification.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
