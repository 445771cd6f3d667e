"""The rules a valid config obeys beyond types and choices, one function per section.

:func:`check` runs on every load (:func:`~deeplabv3.config.loading.from_dict`), so every tool refuses a bad value
before it does any work, with a message that names the file or ``--set`` that set it; the builders (network,
optimizer, LR schedule, loss scaler, predictor) take a validated config as it is. :func:`check_training` holds
the rules only a training run needs -- a second source of initial weights, a periodic evaluation without a list,
initial weights that do not exist -- and ``train`` runs it before any work. What needs more than the config (the
size of the data set, the network's parameters) is checked where that is known, with
:func:`~deeplabv3.config.origins.key_error` naming the key.

Two neighbours of the rules live here too: :func:`resolve` makes device-dependent defaults concrete before the
rules run (``train.amp_level: auto``), and :func:`config_warnings` lists settings that are legal but probably
unintended, which training logs once at its start.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path
from typing import Any, Callable, List, NoReturn, Sequence, Tuple

from .backbones import REFUSED, RESNET_FAMILIES, family_of, supported_text
from .origins import UNKNOWN, Keys, Origins, locate, origins_of
from .schema import Config, ConfigError, crop_hw, effective_output_stride, input_size


# train.amp_level 'auto': float16 where the device computes it fast (the published recipe trains at O2 on Ascend);
# on CPU float16 is slower than float32 (benchmarks/RESULTS.md).
AMP_BY_DEVICE = {"CPU": "O0", "GPU": "O2", "Ascend": "O2"}
FLOAT16_LEVELS = ("O2", "O3")


def resolve(cfg: Config) -> Config:
    """``cfg`` with ``train.amp_level: auto`` replaced by the level of ``runtime.device_target``."""
    if cfg.train.amp_level != "auto":
        return cfg
    train = dataclasses.replace(cfg.train, amp_level=AMP_BY_DEVICE[cfg.runtime.device_target])
    return dataclasses.replace(cfg, train=train)


class _Rules:
    """The failure helpers every rule uses: each error starts with where its keys were set."""

    def __init__(self, cfg: Config, origins: Origins) -> None:
        self.cfg = cfg
        self.origins = origins

    def value(self, key: str) -> Any:
        return functools.reduce(getattr, key.split("."), self.cfg)

    def fail(self, keys: Keys, message: str) -> NoReturn:
        raise ConfigError(f"{locate(keys, self.origins)}: {message}")

    def at_least(self, keys: Sequence[str], low: int) -> None:
        for key in keys:
            if self.value(key) < low:
                self.fail(key, f"'{key}' is {self.value(key)}; it must be at least {low}")

    def not_negative(self, keys: Sequence[str]) -> None:
        for key in keys:
            if self.value(key) < 0:
                self.fail(key, f"'{key}' is {self.value(key)}; it must not be negative")

    def inputs_cover_the_stride(self, stride: int, stride_key: str) -> None:
        """Every evaluation network input is at least ``stride`` pixels (else the feature map is under one cell)."""
        ev = self.cfg.eval
        for scale in ev.scales:
            size = input_size(ev.crop_size, scale)
            if ev.slide and size > ev.slide_max_size:  # runs as tiles of eval.tile_size
                if ev.tile_size < stride:
                    self.fail(("eval.tile_size", stride_key),
                              f"'eval.tile_size' is {ev.tile_size}, smaller than the output stride {stride} "
                              f"({stride_key}): a tile's feature map would be less than one cell; use tiles of at "
                              f"least {stride} px")
                continue
            if size < stride:
                low = math.ceil((stride - 1) / (ev.crop_size - 1) * 1000) / 1000 if ev.crop_size > 1 else None
                fix = (f"use scales of at least {low:g} or a larger eval.crop_size" if low is not None
                       else f"raise eval.crop_size to at least {stride}")
                self.fail(("eval.scales", "eval.crop_size", stride_key),
                          f"'eval.scales' {ev.scales} with 'eval.crop_size' {ev.crop_size} gives a {size} px network "
                          f"input at scale {scale:g} (int((crop_size - 1) * scale) + 1), smaller than the output "
                          f"stride {stride} ({stride_key}): the feature map would be less than one cell; {fix}")


def _model(r: _Rules) -> None:
    m = r.cfg.model
    if m.num_classes < 2:
        r.fail("model.num_classes", f"'model.num_classes' is {m.num_classes}; a segmentation needs at least 2 classes")
    if not 0.0 <= m.dropout < 1.0:
        r.fail("model.dropout", f"'model.dropout' is {m.dropout}; it is a drop probability in [0, 1)")
    try:
        family = family_of(m.backbone)
    except KeyError:
        refused = REFUSED.get(m.backbone.split("_")[0].rstrip("0123456789"))
        why = f" ({m.backbone.split('_')[0]} is not offered: {refused})" if refused else ""
        r.fail("model.backbone", f"'model.backbone' is {m.backbone!r}, not a supported MindCV backbone{why}; use one "
                                 f"of {supported_text()}")
    if family not in RESNET_FAMILIES:
        for key, default in (("model.layers", None), ("model.base_channels", 64)):
            if r.value(key) != default:
                r.fail((key, "model.backbone"), f"'{key}' applies to ResNet/ResNeXt backbones only, not to "
                                                f"{m.backbone}; remove it")
    if m.layers is not None and (len(m.layers) != 4 or min(m.layers) < 1):
        r.fail("model.layers", f"'model.layers' is {m.layers}; give 4 positive block counts (layer1..layer4), "
                               f"e.g. [3, 4, 23, 3], or null for the backbone's own")
    r.at_least(["model.base_channels", "model.aspp_channels", "model.low_level_channels"], 1)
    if not m.aspp_rates:
        r.fail("model.aspp_rates", "'model.aspp_rates' is empty; give at least one rate, e.g. [1, 6, 12, 18]")
    for key in ("model.aspp_rates", "model.multi_grid"):
        values = r.value(key)
        if not values or min(values) < 1:
            r.fail(key, f"'{key}' is {values}; give one or more positive integers")


def _data(r: _Rules) -> None:
    data, num_classes = r.cfg.data, r.cfg.model.num_classes
    if data.class_names is not None and len(data.class_names) != num_classes:
        r.fail(("data.class_names", "model.num_classes"),
               f"'data.class_names' has {len(data.class_names)} names but model.num_classes is {num_classes}")
    if len(data.mean) != 3 or len(data.std) != 3:
        r.fail(("data.mean", "data.std"), "'data.mean' and data.std need exactly 3 values (B, G, R)")
    train = data.train
    if not 0 < train.min_scale <= train.max_scale:
        r.fail(("data.train.min_scale", "data.train.max_scale"),
               f"'data.train.min_scale' ({train.min_scale}) must be > 0 and <= data.train.max_scale "
               f"({train.max_scale})")
    r.at_least(["data.train.batch_size"], 1)
    _crop(r)
    _labels(r)


def _crop(r: _Rules) -> None:
    train = r.cfg.data.train
    if isinstance(train.crop_size, list) and len(train.crop_size) != 2:
        r.fail("data.train.crop_size", f"'data.train.crop_size' is {train.crop_size}; give one size or [height, width]")
    if min(crop_hw(train.crop_size)) < 1:
        r.fail("data.train.crop_size", f"'data.train.crop_size' is {train.crop_size}; a crop must be at least 1 px "
                                       f"(a crop larger than the images is fine: they are padded)")
    stride = r.cfg.model.output_stride
    if min(crop_hw(train.crop_size)) < stride:
        r.fail(("data.train.crop_size", "model.output_stride"),
               f"'data.train.crop_size' is {train.crop_size}, smaller than the output stride {stride} "
               f"(model.output_stride): a crop's feature map would be less than one cell; use at least {stride} "
               f"(sizes k*{stride}+1, e.g. 513, align the feature grid)")
    if train.base_size is not None and (len(train.base_size) != 2 or min(train.base_size) < 1):
        r.fail("data.train.base_size", f"'data.train.base_size' is {train.base_size}; give [long side, short side], "
                                       f"e.g. [2048, 1024], or null")


def _labels(r: _Rules) -> None:
    data, num_classes = r.cfg.data, r.cfg.model.num_classes
    if data.palette is not None:
        if len(data.palette) != num_classes:
            r.fail(("data.palette", "model.num_classes"),
                   f"'data.palette' has {len(data.palette)} colours but model.num_classes is {num_classes}")
        bad = next((c for c in data.palette if len(c) != 3 or not all(0 <= v <= 255 for v in c)), None)
        if bad is not None:
            r.fail("data.palette", f"'data.palette' holds {bad}; each colour is [R, G, B] with values 0-255")
        if len({tuple(c) for c in data.palette}) != len(data.palette):
            r.fail("data.palette", "'data.palette' repeats a colour; RGB masks need one distinct colour per class")
    if data.mask_format == "rgb" and data.palette is None:
        r.fail(("data.mask_format", "data.palette"), "'data.mask_format' is rgb but 'data.palette' is not set; give "
                                                     "one [R, G, B] per class")
    for source, target in (data.label_map or {}).items():
        if not 0 <= source <= 255 or not (0 <= target < num_classes or target == data.ignore_label):
            r.fail(("data.label_map", "model.num_classes"),
                   f"'data.label_map' maps {source} -> {target}; sources are mask values 0-255 and targets class "
                   f"indices [0, {num_classes - 1}] or the ignore label {data.ignore_label}")


def _loss(r: _Rules) -> None:
    loss, num_classes = r.cfg.loss, r.cfg.model.num_classes
    weights = loss.class_weights
    if isinstance(weights, str) and weights not in ("inverse_frequency", "median_frequency"):
        r.fail("loss.class_weights", f"'loss.class_weights' is {weights!r}; give a list of {num_classes} weights, "
                                     f"inverse_frequency, median_frequency or null")
    if isinstance(weights, list) and (len(weights) != num_classes or min(weights) < 0 or max(weights) <= 0):
        r.fail(("loss.class_weights", "model.num_classes"),
               f"'loss.class_weights' is {weights}; give {num_classes} non-negative weights (model.num_classes), "
               f"not all zero")
    if not 0.0 < loss.ohem_thresh <= 1.0:
        r.fail("loss.ohem_thresh", f"'loss.ohem_thresh' is {loss.ohem_thresh}; it is a probability in (0, 1]")
    r.at_least(["loss.ohem_min_kept"], 1)
    r.not_negative(["loss.aux_weight"])


def _optimizer(r: _Rules) -> None:
    r.not_negative(["optimizer.momentum", "optimizer.weight_decay", "optimizer.backbone_lr_mult",
                    "optimizer.bias_lr_mult"])
    if r.cfg.optimizer.nesterov and r.cfg.optimizer.momentum == 0:
        r.fail(("optimizer.nesterov", "optimizer.momentum"), "'optimizer.nesterov' needs a positive optimizer.momentum")


def _schedule(r: _Rules) -> None:
    s = r.cfg.schedule
    if s.base_lr <= 0:
        r.fail("schedule.base_lr", f"'schedule.base_lr' is {s.base_lr}; it must be positive")
    if s.warmup_epochs < 0 or not 0.0 <= s.warmup_start_factor <= 1.0:
        r.fail(("schedule.warmup_epochs", "schedule.warmup_start_factor"),
               f"'schedule.warmup_epochs' ({s.warmup_epochs}) must be >= 0 and 'schedule.warmup_start_factor' "
               f"({s.warmup_start_factor}) in [0, 1]")
    if s.name in ("cosine", "poly", "reference") and not 0.0 <= s.min_lr <= s.base_lr:
        r.fail(("schedule.min_lr", "schedule.base_lr"),
               f"'schedule.min_lr' is {s.min_lr}; it must be in [0, schedule.base_lr={s.base_lr}]")
    if s.name == "reference" and s.cosine_period_epochs <= 0:
        r.fail("schedule.cosine_period_epochs",
               f"'schedule.cosine_period_epochs' is {s.cosine_period_epochs}; it must be positive")
    if s.name == "step" and list(s.milestones) != sorted(s.milestones):
        r.fail("schedule.milestones",
               f"'schedule.milestones' {s.milestones} must be increasing epochs, e.g. [100, 200]")


def _loss_scale(r: _Rules) -> None:
    ls = r.cfg.loss_scale
    if ls.type != "none" and ls.scale < 1:
        r.fail("loss_scale.scale", f"'loss_scale.scale' is {ls.scale}; it must be >= 1")
    if ls.type == "dynamic" and (ls.factor <= 1 or ls.window < 1):
        r.fail(("loss_scale.factor", "loss_scale.window"),
               f"dynamic loss scaling needs 'loss_scale.factor' > 1 and 'loss_scale.window' >= 1 "
               f"(got {ls.factor}, {ls.window})")


def _train(r: _Rules) -> None:
    r.at_least(["train.log_interval", "train.grad_accum_steps", "train.keep_checkpoint_max"], 1)
    max_steps = r.cfg.train.max_steps
    if max_steps is not None and max_steps < 1:
        r.fail("train.max_steps", f"'train.max_steps' is {max_steps}; use null for 'train for train.epochs'")
    r.not_negative(["train.save_steps", "train.eval_interval", "train.eval_start"])


def _eval(r: _Rules) -> None:
    ev = r.cfg.eval
    r.at_least(["eval.batch_size", "eval.crop_size", "eval.tile_size", "eval.tile_stride"], 1)
    if not ev.scales or any(s <= 0 for s in ev.scales):
        r.fail("eval.scales", f"'eval.scales' is {ev.scales}; give one or more positive scales, e.g. [1.0]")
    if ev.slide and ev.tile_stride > ev.tile_size:
        r.fail(("eval.tile_stride", "eval.tile_size"),
               f"'eval.tile_stride' ({ev.tile_stride}) is larger than 'eval.tile_size' ({ev.tile_size}): the tiles "
               f"would leave gaps; use a stride <= the tile size")
    stride_key = "eval.output_stride" if ev.output_stride is not None else "model.output_stride"
    r.inputs_cover_the_stride(effective_output_stride(r.cfg), stride_key)


SECTION_RULES: Tuple[Callable[[_Rules], None], ...] = (_model, _data, _loss, _optimizer, _schedule, _loss_scale,
                                                        _train, _eval)


def check(cfg: Config, origins: Origins) -> None:
    """Every section's rules; the first broken one raises :class:`ConfigError` naming its keys' origins."""
    rules = _Rules(cfg, origins)
    for section in SECTION_RULES:
        section(rules)


def check_training(cfg: Config) -> None:
    """The rules only a training run needs, for ``train`` to run before any work."""
    r = _Rules(cfg, origins_of(cfg))
    model = cfg.model
    if model.pretrained_backbone and model.init_checkpoint:
        r.fail(("model.pretrained_backbone", "model.init_checkpoint"),
               "both 'model.pretrained_backbone' and 'model.init_checkpoint' are set; the full checkpoint would "
               "overwrite the backbone: set only one")
    if cfg.train.eval_interval > 0:
        if cfg.data.eval.list is None:
            r.fail(("train.eval_interval", "data.eval.list"),
                   "'train.eval_interval' is set but 'data.eval.list' is not; give the evaluation list (e.g. --set "
                   "data.eval.list=data/voc_val.txt) or set train.eval_interval=0")
        r.inputs_cover_the_stride(model.output_stride, "model.output_stride")  # periodic evaluation's stride
    for key in ("model.init_checkpoint", "model.pretrained_backbone"):
        path = r.value(key)
        if path and not Path(path).is_file():
            r.fail(key, f"'{key}' is {path}, which does not exist (relative paths start from {Path.cwd()}); fix "
                        f"the path or set {key}=null")


def config_warnings(cfg: Config) -> List[str]:
    """Legal settings that are probably unintended, one message each (training logs them once at its start)."""
    messages = []
    level, scaling = cfg.train.amp_level, cfg.loss_scale.type
    if level in FLOAT16_LEVELS and scaling == "none":
        origins = origins_of(cfg)
        # A level nobody set is the default auto's choice for the device: name where the device was set.
        chosen_by = "train.amp_level" if locate("train.amp_level", origins) != UNKNOWN else "runtime.device_target"
        where = locate((chosen_by, "loss_scale.type"), origins)
        messages.append(f"{'' if where == UNKNOWN else where + ': '}'train.amp_level' is {level} (auto picks O2 on "
                        f"Ascend and GPU), so the network computes in float16, but 'loss_scale.type' is none: "
                        f"gradients below float16's range become zero. Set loss_scale.type=dynamic (or fixed with a "
                        f"loss_scale.scale), or train.amp_level=O0")
    return messages
