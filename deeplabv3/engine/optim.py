"""The SGD-momentum optimizer with weight-decay and LR-multiplier parameter groups.

Groups are chosen by parameter *name*, never by comparing parameters: ``Parameter == Parameter`` is element-wise
in MindSpore, so ``p in some_list`` silently misbehaves. With ``weight_decay_filter: weights`` only convolution
and dense kernels (names ending in ``.weight``) decay; BatchNorm ``gamma``/``beta`` and biases do not, as in the
published recipe.

The learning rate is the per-step array from :mod:`deeplabv3.engine.schedules`, given to ``nn.Momentum`` as a
tensor it indexes with its own ``global_step``. That index must never pass the end of the array (MindSpore then
fails with an obscure ``Gather`` index error); the trainer checks its step against the array's length first.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import mindspore as ms
import numpy as np
from mindspore import nn

from ..config import ConfigError, OptimizerConfig


@dataclass(frozen=True)
class GroupKey:
    """What distinguishes one parameter group from another."""

    decay: bool
    lr_mult: float

    def describe(self) -> str:
        return f"{'decay' if self.decay else 'no decay'}, lr x{self.lr_mult:g}"


def is_decayed(name: str, opt: OptimizerConfig) -> bool:
    """Whether weight decay applies to the parameter called ``name``."""
    if opt.weight_decay_filter == "all":
        return True
    return name.rsplit(".", 1)[-1] == "weight"


def lr_multiplier(name: str, opt: OptimizerConfig) -> float:
    """Product of the backbone and bias LR multipliers that apply to ``name``."""
    mult = 1.0
    if name.startswith("backbone."):
        mult *= opt.backbone_lr_mult
    if name.rsplit(".", 1)[-1] == "bias":
        mult *= opt.bias_lr_mult
    return mult


def group_parameters(params: Sequence[ms.Parameter],
                     opt: OptimizerConfig) -> "OrderedDict[GroupKey, List[ms.Parameter]]":
    """Trainable parameters split into groups by decay and LR multiplier, in first-seen order."""
    groups: "OrderedDict[GroupKey, List[ms.Parameter]]" = OrderedDict()
    for param in params:
        key = GroupKey(is_decayed(param.name, opt), lr_multiplier(param.name, opt))
        groups.setdefault(key, []).append(param)
    return groups


def build_optimizer(params: Sequence[ms.Parameter], opt: OptimizerConfig, lr: np.ndarray,
                    logger: logging.Logger) -> nn.Momentum:
    """``nn.Momentum`` over ``params`` (the trainable ones) with one group per (decay, LR multiplier)."""
    if not params:
        raise ConfigError("the network has no trainable parameters (is everything frozen?)")
    base = ms.Tensor(np.asarray(lr, np.float32))
    groups = group_parameters(params, opt)
    group_params: List[Dict[str, object]] = []
    for key, members in groups.items():
        entry: Dict[str, object] = {"params": members, "weight_decay": opt.weight_decay if key.decay else 0.0}
        if key.lr_mult != 1.0:
            entry["lr"] = ms.Tensor(np.asarray(lr, np.float32) * np.float32(key.lr_mult))
        group_params.append(entry)
    counts = ", ".join(f"{len(members)} tensors {key.describe()}" for key, members in groups.items())
    logger.info("optimizer: momentum %g%s, weight decay %g (%s); %s", opt.momentum,
                " nesterov" if opt.nesterov else "", opt.weight_decay, opt.weight_decay_filter, counts)
    return nn.Momentum(group_params, learning_rate=base, momentum=opt.momentum, use_nesterov=opt.nesterov)


def state_names(optimizer: nn.Optimizer) -> Tuple[str, ...]:
    """Names of the optimizer state a checkpoint must carry for an exact resume (step counter and moments).

    The LR arrays are left out on purpose: they are rebuilt from the config, which may extend the run.
    """
    return tuple(p.name for p in optimizer.get_parameters()
                 if p.name == "global_step" or p.name.startswith("moments."))
