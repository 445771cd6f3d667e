"""Checkpoints: atomic saving, name normalisation and strict, reported loading.

MindSpore's ``load_param_into_net`` never fails on missing or unused names, so a checkpoint for another network
(or with a name prefix) "loads" and leaves random weights behind. Here every load is checked: a missing tensor,
an unexpected one or a shape mismatch is a :class:`CheckpointError` naming the first offenders, and what did load
is returned as a :class:`LoadReport`.

Checkpoints of the same network circulate under several names; they are normalised before matching:

* the published MindCV names (``backbone.net.*``, ``aspp.*``, ``conv.*``) are this project's own;
* older and training checkpoints prefix every name with ``network.`` (one or more times);
* training checkpoints also hold optimizer and loop state: slot variables (``moments.*`` ...) and dot-less
  scalars (``learning_rate``, ``global_step``, ``momentum``, ``scale_sense``, ``updates``, ``epoch_num`` ...).
  No network parameter name is dot-less, so every dot-less entry is treated as such state and ignored;
* the MindSpore ModelZoo DeepLabV3 names (``resnet.*``, ``aspp.aspp1.aspp_conv.*`` ...), renamed by
  :data:`MODELZOO_RENAMES`;
* ImageNet checkpoints of the backbone's MindCV classification model (``conv1.weight``, ModelZoo's
  ``layer1.0.down_sample_layer.0.weight``, ``features.3.conv.0.weight`` ...), which fill ``backbone.net.*`` only.
  The backbone names them (:meth:`~deeplabv3.models.mindcv_backbone.MindCVBackbone.from_classification`: an
  explicit rename such as ``features.3`` -> ``features_3`` for the models MindCV flattens); the classification
  head and the cells after the last stage are reported as unused, and every backbone tensor is required.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple, Union

import mindspore as ms
import numpy as np
from mindspore import nn

from ..errors import UserError
from ..fileio import atomic_path, file_mode
from ..runtime import get_logger

PathLike = Union[str, os.PathLike]
WRAPPER_PREFIX = "network."
OPTIMIZER_PREFIXES = ("moments.", "moment1.", "moment2.", "accum.")
AUXILIARY_PREFIX = "aux_head."  # the training-only auxiliary head (deeplabv3.engine.auxiliary)
BACKBONE_PREFIX = "backbone.net."
SHOWN = 5
Mismatch = Tuple[str, Tuple[int, ...], Tuple[int, ...]]  # name, checkpoint shape, network shape

#: ModelZoo DeepLabV3 -> this project, applied in order to every name (same shapes, same BGR input).
MODELZOO_RENAMES: Tuple[Tuple[str, str], ...] = (
    (r"^resnet\.", BACKBONE_PREFIX),
    (r"\.downsample\.", ".down_sample."),
    (r"^aspp\.aspp1\.aspp_conv\.", "aspp.aspp_convs.0._aspp_conv."),
    (r"^aspp\.aspp2\.aspp_conv\.", "aspp.aspp_convs.1._aspp_conv."),
    (r"^aspp\.aspp3\.aspp_conv\.", "aspp.aspp_convs.2._aspp_conv."),
    (r"^aspp\.aspp4\.aspp_conv\.", "aspp.aspp_convs.3._aspp_conv."),
    (r"^aspp\.aspp_pooling\.conv\.", "aspp.aspp_convs.4.conv."),
    (r"^aspp\.conv2\.", "conv."),
)
#: ModelZoo's ImageNet ResNet shortcut name -> MindCV's.
IMAGENET_RENAMES: Tuple[Tuple[str, str], ...] = ((r"\.down_sample_layer\.", ".down_sample."),)
_MODELZOO_MARK = re.compile(r"^resnet\.")


class CheckpointError(UserError, ValueError):
    """A checkpoint cannot be read or does not fit the network; the message lists the names and the fix."""


@dataclass
class LoadReport:
    """What a load did. ``source_format`` is ``deeplab``, ``modelzoo`` or ``imagenet``."""

    source: str
    source_format: str
    loaded: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    skipped_head: List[str] = field(default_factory=list)
    unused: List[str] = field(default_factory=list)
    ignored: List[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"loaded {len(self.loaded)} tensors from {self.source} ({self.source_format} names)"]
        for label, names in (("missing", self.missing), ("unexpected", self.unexpected),
                             ("head tensors skipped", self.skipped_head), ("unused classifier tensors", self.unused),
                             ("optimizer/state entries ignored", self.ignored)):
            if names:
                parts.append(f"{len(names)} {label}")
        return "; ".join(parts)


@dataclass
class NormalizedCheckpoint:
    """Checkpoint entries under this project's names, plus what was set aside and why."""

    params: Dict[str, Any]
    source_format: str
    ignored: List[str]
    unused: List[str]


# ------------------------------------------------------------------------------------------------- reading


def read_checkpoint(path: PathLike) -> Dict[str, Union[np.ndarray, str]]:
    """Every entry of a MindSpore ``.ckpt`` as NumPy arrays (string entries stay ``str``), names unchanged.

    Training checkpoints come back whole, optimizer state and loop counters included, for a resume to use.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory; give a .ckpt file in it, e.g. "
                              f"{path / 'best.ckpt'} or a file of {path / 'checkpoints'}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}; check the path (relative paths start from the "
                              f"current directory {Path.cwd()})")
    try:
        entries = ms.load_checkpoint(str(path))
    except (ValueError, RuntimeError, OSError) as exc:
        raise CheckpointError(f"{path} cannot be read as a MindSpore checkpoint ({exc}); the file is truncated, "
                              f"corrupt or of another format: re-download or re-save it") from None
    return {name: value if isinstance(value, str) else _to_numpy(value) for name, value in entries.items()}


def _to_numpy(value: Any) -> np.ndarray:
    return value.asnumpy() if hasattr(value, "asnumpy") else np.asarray(value)


def _strip_wrappers(name: str) -> str:
    while name.startswith(WRAPPER_PREFIX):
        name = name[len(WRAPPER_PREFIX):]
    return name


def _rename(name: str, table: Sequence[Tuple[str, str]]) -> str:
    for pattern, replacement in table:
        name = re.sub(pattern, replacement, name)
    return name


def _ambiguous(first: str, second: str, name: str) -> CheckpointError:
    return CheckpointError(f"checkpoint entries {first!r} and {second!r} both mean {name!r}; the file mixes two "
                           f"networks' names and cannot be loaded unambiguously")


class ClassificationNames(Protocol):
    """What a backbone tells the loader about its MindCV classification checkpoints."""

    def classification_roots(self) -> Tuple[str, ...]: ...

    def from_classification(self, name: str) -> Optional[str]: ...


def normalize_names(entries: Mapping[str, Any], backbone: Optional[ClassificationNames] = None
                    ) -> NormalizedCheckpoint:
    """Map checkpoint names of any known variant onto this project's parameter names (see the module doc).

    ``backbone`` (the network's) recognises and renames ImageNet classification checkpoints; without it such a
    file is taken for a DeepLab one (and then matches nothing).
    """
    ignored: List[str] = []
    kept: Dict[str, Tuple[str, Any]] = {}
    for original, value in entries.items():
        name = _strip_wrappers(original)
        if "." not in name or name.startswith(OPTIMIZER_PREFIXES):
            ignored.append(original)
        elif name in kept:
            raise _ambiguous(kept[name][0], original, name)
        else:
            kept[name] = (original, value)
    roots = backbone.classification_roots() if backbone is not None else ()
    if any(_MODELZOO_MARK.match(name) for name in kept):
        source_format, table = "modelzoo", MODELZOO_RENAMES
    elif any(name.split(".", 1)[0] in roots for name in kept):
        source_format, table = "imagenet", IMAGENET_RENAMES
    else:
        source_format, table = "deeplab", ()
    params: Dict[str, Any] = {}
    origin: Dict[str, str] = {}
    unused: List[str] = []
    for name, (original, value) in kept.items():
        if name.startswith(AUXILIARY_PREFIX):
            unused.append(original)
            continue
        new = _rename(name, table)
        if source_format == "imagenet":
            inside = backbone.from_classification(new)
            if inside is None:
                unused.append(original)
                continue
            new = "backbone." + inside
        if new in params:
            raise _ambiguous(origin[new], original, new)
        params[new], origin[new] = value, original
    return NormalizedCheckpoint(params, source_format, ignored, unused)


# ------------------------------------------------------------------------------------------------- loading


def _first(names: Sequence[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f", ... ({len(names) - SHOWN} more)" if len(names) > SHOWN else "")


def _shape(value: Any) -> Tuple[int, ...]:
    return tuple(int(d) for d in np.shape(value))


def _mismatch_error(source: str, source_format: str, missing: List[str], unexpected: List[str],
                    mismatched: List[Mismatch], head_only: bool) -> CheckpointError:
    problems = []
    if missing:
        problems.append(f"{len(missing)} network tensors are missing from it ({_first(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} of its tensors are unknown to the network ({_first(unexpected)})")
    if mismatched:
        shown = "; ".join(f"{n}: checkpoint {c} vs network {w}" for n, c, w in mismatched[:SHOWN])
        problems.append(f"{len(mismatched)} tensors differ in shape ({shown})")
    if head_only:
        ckpt_classes, net_classes = mismatched[0][1][0], mismatched[0][2][0]
        advice = (f"only the classifier differs ({ckpt_classes} classes in the checkpoint, {net_classes} in the "
                  f"network): set model.num_classes={ckpt_classes}, or model.ignore_head_mismatch=true to start "
                  f"the classifier afresh")
    elif source_format == "imagenet":
        advice = ("it is the ImageNet checkpoint of another backbone: make model.backbone (the MindCV model name), "
                  "model.layers and model.base_channels match the file")
    else:
        advice = ("the checkpoint was made for another network: make model.name, model.backbone, model.layers, "
                  "model.base_channels, model.aspp_rates and model.num_classes match it (an ImageNet backbone "
                  "checkpoint belongs in model.pretrained_backbone)")
    return CheckpointError(f"{source} does not fit the network: {'; '.join(problems)}. Fix: {advice}")


def load_params(net: nn.Cell, entries: Mapping[str, Any], strict: bool = True, ignore_head_mismatch: bool = False,
                source: str = "parameters", log_summary: bool = True) -> LoadReport:
    """Load named arrays (any known naming variant) into ``net``; see :func:`load_checkpoint`.

    ``entries`` may also be another network's parameters, ``{p.name: p for p in other.get_parameters()}``, e.g.
    to evaluate a network at another output stride. ``log_summary=False`` leaves the summary line to a caller
    that uses the rest of the entries (a resume restores the optimizer state this load ignores).
    """
    backbone = getattr(net, "backbone", None)
    normalized = normalize_names(entries, backbone if hasattr(backbone, "from_classification") else None)
    params = normalized.params
    net_params = {p.name: p for p in net.get_parameters()}
    required = [n for n in net_params if normalized.source_format != "imagenet" or n.startswith(BACKBONE_PREFIX)]
    missing = [n for n in required if n not in params]
    unexpected = [n for n in params if n not in net_params]
    common = [n for n in net_params if n in params]
    if not common:
        raise CheckpointError(f"none of the {len(params)} tensors of {source} matches a network parameter (first: "
                              f"{_first(list(params))}); it is not a checkpoint of this network or its backbone")
    mismatched = [(n, _shape(params[n]), tuple(net_params[n].shape)) for n in common
                  if _shape(params[n]) != tuple(net_params[n].shape)]
    head_prefixes = tuple(getattr(net, "head_prefixes", ()))
    head_mismatch = [m for m in mismatched if m[0].startswith(head_prefixes)] if head_prefixes else []
    skipped = [m[0] for m in head_mismatch] if ignore_head_mismatch else []
    errors = [m for m in mismatched if m[0] not in skipped]
    if errors or (strict and (missing or unexpected)):
        reported_missing, reported_unexpected = (missing, unexpected) if strict else ([], [])
        raise _mismatch_error(source, normalized.source_format, reported_missing, reported_unexpected, errors,
                              head_only=not reported_missing and not reported_unexpected and errors == head_mismatch)

    loaded = [n for n in common if n not in skipped]
    for name in loaded:
        param = net_params[name]
        param.set_data(ms.Tensor(np.asarray(_to_numpy(params[name])), dtype=param.dtype))
    report = LoadReport(source, normalized.source_format, loaded, missing, unexpected, skipped,
                        normalized.unused, normalized.ignored)
    logger = get_logger()
    if skipped:
        logger.warning("%s: classifier tensors not loaded (class count differs), left freshly initialised: %s",
                       source, ", ".join(f"{n} {c} -> {w}" for n, c, w in head_mismatch))
    auxiliary = [n for n in normalized.unused if _strip_wrappers(n).startswith(AUXILIARY_PREFIX)]
    if auxiliary:
        logger.info("%s: the %d tensors of the training-only auxiliary head (%s*) are not part of this network and "
                    "were left out", source, len(auxiliary), AUXILIARY_PREFIX)
    if missing or unexpected:
        logger.warning("%s: non-strict load; %d network tensors missing (%s), %d checkpoint tensors unused (%s)",
                       source, len(missing), _first(missing), len(unexpected), _first(unexpected))
    if log_summary:
        logger.info(report.summary())
    return report


def load_checkpoint(net: nn.Cell, path: PathLike, strict: bool = True,
                    ignore_head_mismatch: bool = False) -> LoadReport:
    """Load a ``.ckpt`` into ``net``, checking every name and shape.

    ``strict`` (default): any missing or unexpected tensor is an error (for an ImageNet backbone checkpoint only
    the backbone's tensors are required). A shape mismatch is always an error, except classifier tensors when
    ``ignore_head_mismatch`` is set: those are skipped with a warning naming them (fine-tuning to another number
    of classes). Optimizer state in the file is ignored. Nothing is loaded when an error is raised.
    """
    return load_params(net, read_checkpoint(path), strict, ignore_head_mismatch, source=str(path))


# -------------------------------------------------------------------------------------------------- saving


def save_checkpoint_atomic(obj: Union[nn.Cell, List[Dict[str, Any]]], path: PathLike,
                           append_dict: Optional[Dict[str, Any]] = None) -> Path:
    """``mindspore.save_checkpoint`` to ``path``, atomically: a crash never leaves a partial file there.

    MindSpore appends ``.ckpt`` to names that lack it, so the data is staged under a ``.ckpt`` name inside the
    temporary file's slot and then renamed.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        staged = tmp.with_name(tmp.name + ".ckpt")
        try:
            ms.save_checkpoint(obj, str(staged), append_dict=append_dict)
            os.chmod(staged, file_mode())  # MindSpore makes its files read-only for the owner alone
            os.replace(staged, tmp)
        finally:
            for leftover in (staged, staged.with_suffix(".tmp")):  # MindSpore writes <name>.tmp, then renames
                if leftover.exists():
                    leftover.unlink()
    return path


def save_weights(net: nn.Cell, path: PathLike) -> Path:
    """The network's parameters (BN running statistics included, no optimizer state), written atomically."""
    return save_checkpoint_atomic(net, path)
