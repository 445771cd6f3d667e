"""Shared pieces of the export tests: tiny configs, realistic weights, training-style checkpoints."""
from __future__ import annotations

from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import nn

import deeplabv3  # noqa: F401  (sets the oneDNN ISA before any kernel runs)
from conftest import TINY_MODEL
from deeplabv3.config import Config, load_config
from deeplabv3.models import build_model
from models_helpers import randomize

TINY = (*TINY_MODEL, "model.num_classes=5")
SIZE = (65, 97)


def tiny_config(name: str = "deeplabv3", output_stride: int = 16, *overrides: str) -> Config:
    return load_config(None, [*TINY, f"model.name={name}", f"model.output_stride={output_stride}", *overrides])


def tiny_net(cfg: Config, seed: int = 0) -> nn.Cell:
    """The configured network with every parameter drawn from ``seed`` (:func:`models_helpers.randomize`).

    Random BN statistics and affine parameters make every BN tensor matter (fresh ones make BN an identity, so an
    export that dropped them would still match), and seeded weights make the outputs the same whatever ran before
    in the process (the initialisers draw from a process-wide generator).
    """
    net = build_model(cfg)
    randomize(net, seed)
    net.set_train(False)
    return net


def write_training_checkpoint(path: Path, net: nn.Cell) -> Path:
    """A checkpoint as training writes it: ``network.``-prefixed parameters, momentum slots and loop scalars."""
    entries = [{"name": f"network.{p.name}", "data": p} for p in net.get_parameters()]
    entries += [{"name": f"moments.{p.name}", "data": ms.Tensor(np.full(p.shape, 0.01, np.float32))}
                for p in net.get_parameters()]
    entries += [{"name": "learning_rate", "data": ms.Tensor(0.01, ms.float32)},
                {"name": "global_step", "data": ms.Tensor(100, ms.int32)}]
    ms.save_checkpoint(entries, str(path))
    return path

