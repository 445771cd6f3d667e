"""Backbones at 513x513, output stride 16: parameters, counted multiply-accumulates and forward time of DeepLabV3.

MACs are counted, not copied: every Conv2d and Dense of the network is hooked during one forward pass and
contributes ``output elements x (input channels / groups) x kernel area`` (BatchNorm, activations, pooling and the
final resize are left out, as the usual counters do); FLOPs are 2 x MACs. Forward time is the median of
``--steps`` compiled (graph mode) inference passes of one image after one untimed pass (compilation), on the
cores this process may use. Parameters are the trainable ones (BatchNorm running statistics excluded), as
PyTorch counts them.

    python benchmarks/backbones.py --steps 3 [--backbones mobilenet_v2_100 resnet50 resnet101]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Dict, List, Sequence

os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")

import mindspore as ms  # noqa: E402
import numpy as np  # noqa: E402
from mindspore import nn  # noqa: E402

from deeplabv3.config import load_config  # noqa: E402
from deeplabv3.models import build_model  # noqa: E402
from deeplabv3.models.dilation import record_shapes  # noqa: E402

DEFAULT = ["mobilenet_v2_100", "mobilenet_v3_large_100", "efficientnet_b0", "resnet18", "resnet50", "resnet101",
           "repvgg_a0", "convnext_tiny"]
#: VainF/DeepLabV3Plus-Pytorch's DeepLabV3 figures at 513x513 OS16 (its README: params, "FLOPs" that are MACs),
#: and the larger figures quoted elsewhere for the same networks.
VAINF = {"mobilenet_v2_100": ("5.1 M", "6.0 G", "13.4 G"), "resnet50": ("39.6 M", "51.4 G", "114 G"),
         "resnet101": ("58.6 M", "72.1 G", "160 G")}
SIZE = 513


def count_macs(net: nn.Cell, size: int) -> int:
    """Multiply-accumulates of every Conv2d and Dense of ``net`` for one ``size`` x ``size`` image."""
    cells = [(n, c) for n, c in net.cells_and_names() if isinstance(c, (nn.Conv2d, nn.Dense))]
    shapes = record_shapes(net, cells, (1, 3, size, size))
    macs = 0
    for name, cell in cells:
        _, out = shapes[name]
        if isinstance(cell, nn.Conv2d):
            kh, kw = cell.kernel_size
            macs += int(np.prod(out)) * (cell.in_channels // cell.group) * kh * kw
        else:
            macs += int(np.prod(out)) * cell.in_channels
    return macs


def forward_seconds(net: nn.Cell, size: int, steps: int) -> List[float]:
    """Compiled inference passes of one image: the first (compilation included), then ``steps`` timed ones."""
    ms.set_context(mode=ms.GRAPH_MODE)
    net.set_train(False)
    x = ms.Tensor(np.random.default_rng(0).normal(0, 1, (1, 3, size, size)).astype(np.float32))
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        net(x).asnumpy()
        times.append(time.perf_counter() - start)
    return times


def measure(backbone: str, steps: int) -> Dict[str, object]:
    net = build_model(load_config(None, [f"model.backbone={backbone}", "model.output_stride=16"]))
    params = sum(int(np.prod(p.shape)) for p in net.trainable_params())
    backbone_params = sum(int(np.prod(p.shape)) for p in net.trainable_params() if p.name.startswith("backbone."))
    macs = count_macs(net, SIZE)
    times = forward_seconds(net, SIZE, steps)
    return {"backbone": backbone, "params": params, "backbone_params": backbone_params, "macs": macs,
            "first": times[0], "median": statistics.median(times[1:])}


def table(rows: Sequence[Dict[str, object]]) -> str:
    lines = ["| backbone | params (backbone) | GMACs | GFLOPs (2 x MACs) | forward s/img | VainF params / "
             "GMACs (quoted GFLOPs) |", "|---|---|---|---|---|---|"]
    for r in rows:
        vainf = VAINF.get(str(r["backbone"]))
        ref = f"{vainf[0]} / {vainf[1]} ({vainf[2]})" if vainf else ""
        lines.append(f"| {r['backbone']} | {r['params'] / 1e6:.2f} M ({r['backbone_params'] / 1e6:.2f} M) | "
                     f"{r['macs'] / 1e9:.1f} | {2 * r['macs'] / 1e9:.1f} | {r['median']:.2f} | {ref} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+", default=DEFAULT)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for backbone in args.backbones:
        rows.append(measure(backbone, args.steps))
        print(rows[-1], flush=True)
    print(f"DeepLabV3, {SIZE}x{SIZE}, output stride 16, batch 1, {len(os.sched_getaffinity(0))} cores, "
          f"load {os.getloadavg()[0]:.1f} at the end")
    print(table(rows))


if __name__ == "__main__":
    main()
