"""Learning-rate schedules as one float32 value per optimizer step.

The whole run's schedule is computed up front and handed to the optimizer as a tensor indexed by its step
counter, so the LR costs nothing on the device and the value logged for step ``i`` is exactly ``lr[i]``. The array
always covers every step of the run (``train.max_steps``, else ``train.epochs`` x steps per epoch), whatever step a
resumed run starts from; stepping past its end is an error the trainer reports before MindSpore would.

Every schedule starts with the same linear warmup, ``base_lr * warmup_start_factor`` at step 0 rising to
``base_lr`` at step ``W = round(warmup_epochs * steps_per_epoch)``, and then continues over the remaining
``T = total - W`` steps with ``t = step - W``:

=========  ==========================================================================================
cosine     ``min_lr + (base_lr - min_lr) * (1 + cos(pi * t / T)) / 2`` (reaches min_lr as training ends)
poly       ``min_lr + (base_lr - min_lr) * (1 - t / T) ** power``
step       ``base_lr * gamma ** k``, k = number of ``milestones`` (epochs from the start) already passed
exp        ``base_lr * gamma ** (t / steps_per_epoch)`` (gamma per epoch, applied smoothly per step)
constant   ``base_lr``
reference  the published recipe: ``min_lr + (base_lr - min_lr) * (1 + cos(pi * e / P)) / 2`` with
           ``e = t / steps_per_epoch`` epochs and period ``P = cosine_period_epochs`` (40,000 epochs, so the LR
           stays within 1.4e-4 of base_lr for 300 epochs), ``min_lr`` once ``e >= P``
=========  ==========================================================================================
"""
from __future__ import annotations

from typing import Callable, Dict

import numpy as np

from ..config import Config, ConfigError, ScheduleConfig, key_error

# Each decay maps (t = steps since warmup, T = steps after warmup, absolute steps, steps per epoch, config) to LRs.
_Decay = Callable[[np.ndarray, int, np.ndarray, int, ScheduleConfig], np.ndarray]


def run_length(cfg: Config, steps_per_epoch: int) -> int:
    """Optimizer steps of the whole run: ``train.max_steps`` when set, else ``epochs * steps_per_epoch``."""
    if steps_per_epoch < 1:
        raise key_error(cfg, ("data.train.batch_size", "train.grad_accum_steps"),
                        f"the training set yields {steps_per_epoch} optimizer steps per epoch; it needs at least "
                        f"data.train.batch_size x train.grad_accum_steps x world size images")
    if cfg.train.max_steps is not None:
        return cfg.train.max_steps
    return cfg.train.epochs * steps_per_epoch


def warmup_steps(sched: ScheduleConfig, steps_per_epoch: int, total: int) -> int:
    """Number of warmup steps, clipped to the run."""
    return min(int(round(sched.warmup_epochs * steps_per_epoch)), total)


def _cosine(t: np.ndarray, span: int, steps: np.ndarray, spe: int, s: ScheduleConfig) -> np.ndarray:
    return s.min_lr + (s.base_lr - s.min_lr) * 0.5 * (1.0 + np.cos(np.pi * t / max(span, 1)))


def _poly(t: np.ndarray, span: int, steps: np.ndarray, spe: int, s: ScheduleConfig) -> np.ndarray:
    return s.min_lr + (s.base_lr - s.min_lr) * (1.0 - t / max(span, 1)) ** s.power


def _step(t: np.ndarray, span: int, steps: np.ndarray, spe: int, s: ScheduleConfig) -> np.ndarray:
    epoch = steps / spe
    passed = np.zeros_like(epoch)
    for milestone in s.milestones:
        passed += epoch >= milestone
    return s.base_lr * s.gamma ** passed


def _exp(t: np.ndarray, span: int, steps: np.ndarray, spe: int, s: ScheduleConfig) -> np.ndarray:
    return s.base_lr * s.gamma ** (t / spe)


def _constant(t: np.ndarray, span: int, steps: np.ndarray, spe: int, s: ScheduleConfig) -> np.ndarray:
    return np.full_like(t, s.base_lr)


def _reference(t: np.ndarray, span: int, steps: np.ndarray, spe: int, s: ScheduleConfig) -> np.ndarray:
    epochs = t / spe
    period = s.cosine_period_epochs
    lr = s.min_lr + (s.base_lr - s.min_lr) * 0.5 * (1.0 + np.cos(np.pi * np.minimum(epochs, period) / period))
    return np.where(epochs >= period, s.min_lr, lr)


_DECAYS: Dict[str, _Decay] = {
    "cosine": _cosine, "poly": _poly, "step": _step, "exp": _exp, "constant": _constant, "reference": _reference,
}


def build_lr_schedule(sched: ScheduleConfig, steps_per_epoch: int, total_steps: int) -> np.ndarray:
    """The learning rate of every optimizer step ``0 .. total_steps - 1`` as float32 (see the module doc)."""
    if total_steps < 1 or steps_per_epoch < 1:
        raise ConfigError(f"a schedule needs at least one step (got {total_steps} steps, "
                          f"{steps_per_epoch} per epoch)")
    steps = np.arange(total_steps, dtype=np.float64)
    n_warm = warmup_steps(sched, steps_per_epoch, total_steps)
    lr = _DECAYS[sched.name](steps - n_warm, total_steps - n_warm, steps, steps_per_epoch, sched)
    if n_warm > 0:
        start = sched.base_lr * sched.warmup_start_factor
        ramp = start + (sched.base_lr - start) * steps[:n_warm] / n_warm
        lr[:n_warm] = ramp
    out = lr.astype(np.float32)
    if not np.all(np.isfinite(out)) or np.any(out < 0):
        raise ConfigError(f"schedule '{sched.name}' gives invalid learning rates (min {np.nanmin(out)}); check "
                          f"schedule.power / schedule.gamma")
    return out


def describe(lr: np.ndarray, steps_per_epoch: int) -> str:
    """A one-line summary for the start-of-training log."""
    peak = int(np.argmax(lr))
    return (f"{len(lr)} steps ({len(lr) / steps_per_epoch:.4g} epochs of {steps_per_epoch}), lr[0]={lr[0]:.4g}, "
            f"peak {lr[peak]:.4g} at step {peak}, last {lr[-1]:.4g}")


__all__ = ["build_lr_schedule", "run_length", "warmup_steps", "describe"]
