"""Shared pieces of the model tests: tiny configs, the published parameter table, weight randomisation."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Mapping, Tuple

import mindspore as ms
import numpy as np

import deeplabv3  # noqa: F401  (sets the oneDNN ISA before any kernel runs)
from conftest import TINY_MODEL
from deeplabv3.config import Config, load_config

BN = ("gamma", "beta", "moving_mean", "moving_variance")
Shapes = Dict[str, Tuple[int, ...]]


def tiny_config(*overrides: str) -> Config:
    """A network with the real strides and dilations but one block per stage and narrow layers."""
    return load_config(None, [*TINY_MODEL, *overrides])


def _bn(prefix: str, channels: int) -> Shapes:
    return {f"{prefix}.{name}": (channels,) for name in BN}


def published_names(num_classes: int = 21, plus: bool = False) -> Shapes:
    """Name -> shape of the published MindCV DeepLabV3(+) ResNet-101 checkpoints, written out from their form."""
    shapes: Shapes = {"backbone.net.conv1.weight": (64, 3, 7, 7), **_bn("backbone.net.bn1", 64)}
    in_channels = 64
    for stage, blocks in enumerate((3, 4, 23, 3), start=1):
        width = 64 * 2 ** (stage - 1)
        for i in range(blocks):
            p = f"backbone.net.layer{stage}.{i}"
            shapes[f"{p}.conv1.weight"] = (width, in_channels, 1, 1)
            shapes[f"{p}.conv2.weight"] = (width, width, 3, 3)
            shapes[f"{p}.conv3.weight"] = (4 * width, width, 1, 1)
            for j, channels in ((1, width), (2, width), (3, 4 * width)):
                shapes.update(_bn(f"{p}.bn{j}", channels))
            if i == 0:
                shapes[f"{p}.down_sample.0.weight"] = (4 * width, in_channels, 1, 1)
                shapes.update(_bn(f"{p}.down_sample.1", 4 * width))
            in_channels = 4 * width
    for i, k in enumerate((1, 3, 3, 3)):
        shapes[f"aspp.aspp_convs.{i}._aspp_conv.0.weight"] = (256, 2048, k, k)
        shapes.update(_bn(f"aspp.aspp_convs.{i}._aspp_conv.1", 256))
    shapes["aspp.aspp_convs.4.conv.0.weight"] = (256, 2048, 1, 1)
    shapes.update(_bn("aspp.aspp_convs.4.conv.1", 256))
    shapes["aspp.conv1.weight"] = (256, 1280, 1, 1)
    shapes.update(_bn("aspp.bn1", 256))
    if plus:
        shapes["decoder.conv1.weight"] = (48, 256, 1, 1)
        shapes.update(_bn("decoder.bn1", 48))
        shapes["decoder.last_conv.0.weight"] = (256, 304, 3, 3)
        shapes.update(_bn("decoder.last_conv.1", 256))
        shapes["decoder.last_conv.3.weight"] = (256, 256, 3, 3)
        shapes.update(_bn("decoder.last_conv.4", 256))
        shapes["decoder.last_conv.6.weight"] = (num_classes, 256, 1, 1)
    else:
        shapes["conv.weight"] = (num_classes, 256, 1, 1)
        shapes["conv.bias"] = (num_classes,)
    return shapes


def shapes_of(net) -> Shapes:
    return {p.name: tuple(p.shape) for p in net.get_parameters()}


def params_of(net) -> Dict[str, np.ndarray]:
    return {p.name: p.asnumpy().copy() for p in net.get_parameters()}


def randomize(net, seed: int = 0) -> Dict[str, np.ndarray]:
    """Give every parameter (BN statistics included) distinct random values; returns them by name.

    Freshly initialised BN statistics are 0/1 in every network, so a load that skipped them would go unnoticed.
    """
    rng = np.random.default_rng(seed)
    for p in net.get_parameters():
        shape = tuple(p.shape)
        if p.name.endswith(("moving_variance", "gamma")):
            value = rng.uniform(0.5, 1.5, shape)
        elif len(shape) == 4:
            value = rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[1:])), shape)
        else:
            value = rng.normal(0.0, 0.1, shape)
        p.set_data(ms.Tensor(value.astype(np.float32)))
    return params_of(net)


def write_ckpt(path: Path, entries: Mapping[str, np.ndarray]) -> Path:
    """A real MindSpore checkpoint holding ``entries`` under exactly these names."""
    ms.save_checkpoint([{"name": name, "data": ms.Tensor(value)} for name, value in entries.items()], str(path))
    return path


def image(shape=(2, 3, 65, 65), seed: int = 0) -> ms.Tensor:
    return ms.Tensor(np.random.default_rng(seed).normal(0, 1, shape).astype(np.float32))


