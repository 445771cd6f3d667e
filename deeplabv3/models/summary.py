"""What a configured network contains: parameter counts per module and the feature-map size of every stage.

The sizes are measured by running the backbone on an input of the requested size, not derived from formulas, so
they show exactly what the padding and output-stride settings do (e.g. 513 -> 33 at output stride 16).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import mindspore as ms
import numpy as np
from mindspore import nn

from ..config import Config, replace
from ..runtime import setup_runtime
from .factory import build_model


@dataclass(frozen=True)
class StageInfo:
    name: str
    blocks: int
    stride: int
    dilations: Tuple[int, ...]
    channels: int
    size: Tuple[int, int]
    params: int


@dataclass(frozen=True)
class ModelSummary:
    name: str
    input_size: Tuple[int, int]
    output_stride: int
    num_params: int
    num_tensors: int
    num_trainable: int
    modules: Dict[str, int]
    stem_params: int
    stages: List[StageInfo]

    def format(self) -> str:
        """A plain-text report for the terminal."""
        lines = [f"{self.name}: {self.num_params:,} parameters in {self.num_tensors} tensors "
                 f"({self.num_trainable:,} trainable; the rest are BatchNorm running statistics)",
                 "", "parameters per module:"]
        lines += [f"  {name:<12} {count:>14,}" for name, count in self.modules.items()]
        h, w = self.input_size
        lines += ["", f"backbone stages for a {h}x{w} input (output stride {self.output_stride}):",
                  f"  {'stage':<12} {'blocks':>6} {'stride':>6} {'dilations':<16} {'channels':>8} "
                  f"{'feature map':>12} {'parameters':>14}",
                  f"  {'stem':<12} {'':>6} {'':>6} {'':<16} {'':>8} {'':>12} {self.stem_params:>14,}"]
        for s in self.stages:
            dil = ",".join(str(d) for d in s.dilations) if len(set(s.dilations)) > 1 else f"{s.dilations[0]} (all)"
            lines.append(f"  {s.name:<12} {s.blocks:>6} {s.stride:>6} {dil:<16} {s.channels:>8} "
                         f"{s.size[0]:>5} x {s.size[1]:<4} {s.params:>14,}")
        return "\n".join(lines)


def stage_sizes(net: nn.Cell, input_size: Tuple[int, int]) -> List[Tuple[int, int]]:
    """Spatial size of every backbone stage's output for one zero image of ``input_size`` (inference mode)."""
    backbone = net.backbone
    was_training = backbone.training
    backbone.set_train(False)
    try:
        outputs = backbone.stage_features(ms.Tensor(np.zeros((1, 3, *input_size), np.float32)))
    finally:
        backbone.set_train(was_training)
    return [(int(o.shape[2]), int(o.shape[3])) for o in outputs]


def summarize(net: nn.Cell, input_size: Tuple[int, int], name: str = "network") -> ModelSummary:
    """Parameter counts of ``net`` (a DeepLab network from :func:`build_model`) and its measured stage sizes."""
    params = list(net.get_parameters())
    modules: Dict[str, int] = OrderedDict()
    for p in params:
        top = p.name.split(".", 1)[0]
        modules[top] = modules.get(top, 0) + int(np.prod(p.shape))
    stages = [StageInfo(stage.name, stage.blocks, stage.stride, stage.dilations, stage.channels, size, stage.params)
              for stage, size in zip(net.backbone.stages(), stage_sizes(net, input_size))]
    return ModelSummary(
        name=name, input_size=tuple(input_size), output_stride=net.output_stride,
        num_params=sum(int(np.prod(p.shape)) for p in params), num_tensors=len(params),
        num_trainable=sum(int(np.prod(p.shape)) for p in params if p.requires_grad),
        modules=dict(modules), stem_params=modules["backbone"] - sum(s.params for s in stages), stages=stages)


def inspect_config(cfg: Config, input_size: Optional[Tuple[int, int]] = None, verbose: bool = False) -> str:
    """Build the configured network and describe it (``tools/inspect_model.py``).

    Runs eagerly (PyNative): a single forward does not repay a graph compilation. The default input is the
    evaluation crop size, square.
    """
    setup_runtime(replace(cfg, **{"runtime.mode": "pynative"}), verbose=verbose, log_name=None)
    size = tuple(input_size) if input_size is not None else (cfg.eval.crop_size, cfg.eval.crop_size)
    net = build_model(cfg)
    model = cfg.model
    details = [model.backbone] + ([f"layers {model.layers}"] if model.layers is not None else [])
    details += [f"base_channels {model.base_channels}"] if model.base_channels != 64 else []
    details.append(f"{model.num_classes} classes")
    return summarize(net, size, f"{model.name} ({', '.join(details)})").format()
