"""Cost of the seeded dropout against MindSpore's own, forward + backward, at the recipe's ASPP output shape.

    python benchmarks/dropout.py [--shape 32 256 33 33] [--iters 5]

The recipe trains OS16 on 513 x 513 crops, 32 per device: the ASPP output that dropout sees is 32 x 256 x 33 x 33.
Each variant is compiled first (graph mode), then timed over ``--iters`` calls; the figure is the median.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import List, Optional, Sequence

import numpy as np

import deeplabv3  # noqa: F401  (ONEDNN_MAX_CPU_ISA and quiet logging before MindSpore runs)


def time_cell(cell, x, iters: int) -> float:
    import mindspore as ms

    cell.set_train(True)
    grad = ms.jit(ms.grad(cell))
    grad(x).asnumpy()  # compile
    times: List[float] = []
    for _ in range(iters):
        start = time.perf_counter()
        grad(x).asnumpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=4, default=[32, 256, 33, 33])
    parser.add_argument("--iters", type=int, default=5)
    args = parser.parse_args(argv)
    import mindspore as ms
    from mindspore import nn

    from deeplabv3.models.dropout import SeededDropout

    ms.set_context(mode=ms.GRAPH_MODE)
    x = ms.Tensor(np.random.default_rng(0).normal(size=args.shape).astype(np.float32))
    seeded = SeededDropout(0.7)
    seeded.set_key(12345)
    figures = {"nn.Dropout": time_cell(nn.Dropout(p=0.7), x, args.iters), "SeededDropout": time_cell(seeded, x,
                                                                                                    args.iters)}
    print(f"shape {'x'.join(map(str, args.shape))}, forward + backward, median of {args.iters}:")
    for name, seconds in figures.items():
        print(f"  {name:14s} {seconds * 1000:8.1f} ms")
    print(f"  difference     {(figures['SeededDropout'] - figures['nn.Dropout']) * 1000:8.1f} ms per step")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
