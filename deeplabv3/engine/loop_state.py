"""The training loop's host-side state, owned by the loop alone, and how a training checkpoint stores it.

The train step reports what one step did (:class:`~deeplabv3.engine.train_step.StepStats`); :meth:`LoopState.advance`
turns that into the run's counts -- the step, where the data stream continues, the skipped (non-finite) steps and
the current run of them, which ends training after ``loss_scale.max_consecutive_nonfinite`` in a row. A checkpoint
carries these values as dot-less entries (:meth:`LoopState.entries`), so a resumed loop continues with the same
counts; device-side state (the loss scale, the optimizer) travels as parameters.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Mapping

import numpy as np

from ..errors import UserError
from ..models.checkpoint import CheckpointError
from .train_step import StepStats

FORMAT = "deeplabv3-train-v1"


class NonFiniteLossError(UserError, RuntimeError):
    """Too many consecutive steps produced non-finite gradients: training diverged (LR, data or loss scale)."""


@dataclass
class LoopState:
    """Host-side loop state carried by a checkpoint (device state travels as parameters)."""

    step: int = 0
    data_epoch: int = 0
    data_batch: int = 0
    skipped_steps: int = 0
    nonfinite_run: int = 0
    best_metric: float = -1.0
    best_step: int = -1

    def advance(self, stats: StepStats, batches: int, batches_per_epoch: int, max_consecutive_nonfinite: int) -> None:
        """Count one step that consumed ``batches`` batches; raise once the non-finite run reaches the limit.

        ``max_consecutive_nonfinite`` is ``loss_scale.max_consecutive_nonfinite`` (0: never stop).
        """
        self.step += 1
        self.data_epoch, self.data_batch = divmod(self.data_epoch * batches_per_epoch + self.data_batch + batches,
                                                  batches_per_epoch)
        if stats.finite:
            self.nonfinite_run = 0
            return
        self.skipped_steps += 1
        self.nonfinite_run += 1
        if 0 < max_consecutive_nonfinite <= self.nonfinite_run:
            raise NonFiniteLossError(
                f"{self.nonfinite_run} consecutive steps produced non-finite gradients (last loss {stats.loss}, "
                f"loss scale {stats.scale:g}); training diverged. Lower schedule.base_lr, use "
                f"loss_scale.type=dynamic, or check the data; loss_scale.max_consecutive_nonfinite=0 "
                f"disables this stop")

    def entries(self) -> Dict[str, Any]:
        """The checkpoint entries of this state (the format marker included)."""
        return {"format": FORMAT, **asdict(self)}

    @classmethod
    def from_entries(cls, entries: Mapping[str, Any], source: str) -> "LoopState":
        fmt = entries.get("format")
        if fmt != FORMAT:
            raise CheckpointError(f"{source} is not a training checkpoint of this project (format {fmt!r}, "
                                  f"expected {FORMAT!r}); to start from its weights use model.init_checkpoint "
                                  f"instead of --resume")
        values = {}
        for name, default in asdict(cls()).items():
            raw = entries.get(name)
            values[name] = type(default)(np.asarray(raw).item()) if raw is not None else default
        return cls(**values)
