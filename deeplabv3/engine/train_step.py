"""One optimizer step: forward, backward with loss scaling, gradient reduction, overflow check, update.

Execution
    The step is built from compiled cells (graph mode, or eager under ``runtime.mode: pynative``):

    * fused path -- one graph per step -- when gradients are not accumulated and the gradient reducer is an
      ``nn.Cell`` (e.g. ``ops.AllReduce`` followed by a division) or the identity;
    * split path otherwise: a forward/backward graph per micro-batch, gradients summed in a small graph, then the
      reducer called from Python (e.g. an mpi4py ``Allreduce`` on host buffers), then an update graph.

    Either way the step ends with a single host read of three numbers (loss, finite flag, scale used), returned as
    :class:`StepStats`. The step keeps no host-side counts: the loop's
    :class:`~deeplabv3.engine.loop_state.LoopState` counts skipped steps from these stats and stops after
    ``loss_scale.max_consecutive_nonfinite`` non-finite steps in a row; everything else (loss scale, its counter,
    the LR index) stays on the device.

Gradient reducer contract (distributed training)
    ``grad_reducer(grads: tuple[Tensor, ...]) -> tuple[Tensor, ...]`` receives the *summed, still loss-scaled*
    gradients of this rank (same order and shapes as ``TrainStep.weights``) and must return the across-rank
    **mean**, same order, shapes and dtypes. It is called exactly once per optimizer step on every rank.

Overflow flag across ranks
    The finite check runs on the reduced gradients. A sum or mean propagates any ``inf``/``NaN`` of any rank into
    every rank's result, so every rank computes the same flag and takes the same branch (update or skip) with no
    extra collective. A reducer must therefore keep non-finite values non-finite (plain float sums do); one that
    could not (e.g. clipping or integer compression) must not be plugged in.

Loss scaling (``loss_scale.type``)
    ``none``: scale 1; ``fixed``: a constant scale; ``dynamic``: divided by ``factor`` on every non-finite step and
    multiplied by it after ``window`` finite steps in a row. In every mode a non-finite step is skipped: parameters
    and momenta keep their values, while the optimizer's step counter still advances so the LR stays aligned with
    the global step.

Frozen BatchNorm (``train.freeze_bn``)
    :func:`freeze_batchnorm` makes every BatchNorm layer normalise with its running statistics and excludes its
    ``gamma``/``beta`` from training; call it before the optimizer is built.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import mindspore as ms
from mindspore import nn, ops

from ..config import LossScaleConfig

Grads = Tuple[ms.Tensor, ...]
GradReducer = Callable[[Grads], Grads]
Batch = Tuple[ms.Tensor, ms.Tensor]

_hyper_map = ops.HyperMap()


@dataclass(frozen=True)
class StepStats:
    """What one step reports to the host."""

    loss: float
    finite: bool
    scale: float


def freeze_batchnorm(net: nn.Cell) -> int:
    """Put every BatchNorm layer of ``net`` in inference behaviour for good; returns the number of layers.

    ``use_batch_statistics = False`` (unlike ``set_train(False)``) survives the ``set_train(True)`` that follows
    each periodic evaluation.
    """
    count = 0
    for _, cell in net.cells_and_names():
        if hasattr(cell, "use_batch_statistics") and hasattr(cell, "moving_mean"):
            cell.use_batch_statistics = False
            for param in (cell.gamma, cell.beta):
                param.requires_grad = False
            count += 1
    return count


class LossScaler(nn.Cell):
    """Loss-scale state on the device: the scale and the count of finite steps since it last changed."""

    def __init__(self, cfg: LossScaleConfig) -> None:
        super().__init__()
        self.dynamic = cfg.type == "dynamic"
        self.factor = float(cfg.factor)
        self.window = int(cfg.window)
        initial = 1.0 if cfg.type == "none" else float(cfg.scale)
        self.scale = ms.Parameter(ms.Tensor(initial, ms.float32), name="loss_scale", requires_grad=False)
        self.good_steps = ms.Parameter(ms.Tensor(0, ms.int32), name="loss_scale_good_steps", requires_grad=False)

    def construct(self, finite: ms.Tensor) -> ms.Tensor:
        """Adjust the scale after a step whose gradients were ``finite``."""
        if not self.dynamic:
            return finite
        good = self.good_steps + 1
        grow = ops.logical_and(finite, good >= self.window)
        grown = self.scale * self.factor
        grown = ops.select(ops.isfinite(grown), grown, self.scale)
        shrunk = ops.maximum(self.scale / self.factor, ops.ones_like(self.scale))
        new_scale = ops.select(finite, ops.select(grow, grown, self.scale), shrunk)
        new_good = ops.select(ops.logical_and(finite, ops.logical_not(grow)), good, ops.zeros_like(good))
        finite = ops.depend(finite, ops.assign(self.scale, new_scale))
        return ops.depend(finite, ops.assign(self.good_steps, new_good))


class _ForwardBackward(nn.Cell):
    """``(images, labels) -> (loss, grads of loss * scale)`` for the trainable weights."""

    def __init__(self, net: nn.Cell, loss_fn: nn.Cell, weights: ms.ParameterTuple, scaler: LossScaler) -> None:
        super().__init__(auto_prefix=False)
        self.net = net
        self.loss_fn = loss_fn
        self.weights = weights
        self.scaler = scaler
        self.grad_fn = ms.value_and_grad(self.scaled_loss, None, self.weights, has_aux=True)

    def scaled_loss(self, images: ms.Tensor, labels: ms.Tensor) -> Tuple[ms.Tensor, ms.Tensor]:
        loss = self.loss_fn(self.net(images), labels)
        return loss * self.scaler.scale.astype(loss.dtype), loss

    def construct(self, images: ms.Tensor, labels: ms.Tensor) -> Tuple[ms.Tensor, Grads]:
        (_, loss), grads = self.grad_fn(images, labels)
        return loss, grads


class _AddGrads(nn.Cell):
    """Element-wise sum of two gradient tuples (gradient accumulation)."""

    def construct(self, a: Grads, b: Grads) -> Grads:
        return _hyper_map(ops.add, a, b)


class _StatsGuard(nn.Cell):
    """Snapshot and conditional restore of the non-trained state the forward pass writes (BatchNorm statistics).

    A skipped step must leave the model as it was; without this, one non-finite forward would leave ``NaN``
    running statistics behind, invisible in training (which normalises with batch statistics) and fatal at
    evaluation.
    """

    def __init__(self, state: Sequence[ms.Parameter]) -> None:
        super().__init__(auto_prefix=False)
        self.state = ms.ParameterTuple(state)
        self.enabled = len(state) > 0

    def snapshot(self) -> Grads:
        if not self.enabled:
            return ()
        return _hyper_map(_copy, self.state)

    def restore_unless(self, finite: ms.Tensor, saved: Grads) -> ms.Tensor:
        if not self.enabled:
            return finite
        restored = _hyper_map(ops.partial(_keep_or_restore, finite), self.state, saved)
        return ops.depend(finite, restored)

    def construct(self) -> Grads:
        return self.snapshot()


def _copy(param: ms.Tensor) -> ms.Tensor:
    return ops.add(param, ops.zeros_like(param))


def _keep_or_restore(finite: ms.Tensor, param: ms.Parameter, saved: ms.Tensor) -> ms.Tensor:
    return ops.assign(param, ops.select(finite, param, saved))


class _Update(nn.Cell):
    """Unscale, check, update or skip; returns ``[loss, finite, scale used]`` as one float32 vector."""

    def __init__(self, optimizer: nn.Optimizer, scaler: LossScaler, guard: _StatsGuard, micro_batches: int) -> None:
        super().__init__(auto_prefix=False)
        self.optimizer = optimizer
        self.scaler = scaler
        self.guard = guard
        self.micro_batches = float(micro_batches)

    def construct(self, loss: ms.Tensor, grads: Grads, saved: Grads) -> ms.Tensor:
        scale = self.scaler.scale * 1.0
        inv = ops.reciprocal(scale * self.micro_batches)
        grads = _hyper_map(ops.partial(_scale_grad, inv), grads)
        finite = ms.amp.all_finite(grads)
        if finite:
            finite = ops.depend(finite, self.optimizer(grads))
        else:
            finite = ops.depend(finite, ops.assign_add(self.optimizer.global_step, ops.ones_like(
                self.optimizer.global_step)))
        finite = self.guard.restore_unless(finite, saved)
        finite = self.scaler(finite)
        return ops.stack([loss.astype(ms.float32), finite.astype(ms.float32), scale])


def _scale_grad(inv: ms.Tensor, grad: ms.Tensor) -> ms.Tensor:
    return grad * inv.astype(grad.dtype)


class _FusedStep(nn.Cell):
    """Forward, backward, in-graph reduction and update as one graph."""

    def __init__(self, forward_backward: _ForwardBackward, reducer: nn.Cell, update: _Update) -> None:
        super().__init__(auto_prefix=False)
        self.forward_backward = forward_backward
        self.reducer = reducer
        self.update = update

    def construct(self, images: ms.Tensor, labels: ms.Tensor) -> ms.Tensor:
        saved = self.update.guard.snapshot()
        loss, grads = self.forward_backward(images, labels)
        return self.update(loss, self.reducer(grads), saved)


class _Identity(nn.Cell):
    def construct(self, grads: Grads) -> Grads:
        return grads


class TrainStep:
    """Callable running one optimizer step over ``grad_accum_steps`` micro-batches.

    ``net`` must already be in training mode (``net.set_train(True)``) with any freezing applied; ``optimizer``
    must have been built over ``net.trainable_params()`` (the same list, the same order). ``before_forward(i)``, if
    given, runs on the host before the forward pass of micro-batch ``i`` (the trainer sets the dropout keys there).
    """

    def __init__(self, net: nn.Cell, loss_fn: nn.Cell, optimizer: nn.Optimizer, loss_scale: LossScaleConfig,
                 grad_accum_steps: int = 1, grad_reducer: Optional[GradReducer] = None,
                 before_forward: Optional[Callable[[int], None]] = None) -> None:
        if grad_accum_steps < 1:
            raise ValueError(f"grad_accum_steps must be >= 1, got {grad_accum_steps}")
        self.weights = optimizer.parameters
        self.scaler = LossScaler(loss_scale)
        self.grad_accum_steps = grad_accum_steps
        self.optimizer = optimizer
        self._forward_backward = _ForwardBackward(net, loss_fn, self.weights, self.scaler)
        trained = {p.name for p in self.weights}
        self._guard = _StatsGuard([p for p in net.get_parameters() if p.name not in trained])
        self._update = _Update(optimizer, self.scaler, self._guard, grad_accum_steps)
        self._reducer = grad_reducer
        self._fused: Optional[_FusedStep] = None
        if grad_accum_steps == 1 and (grad_reducer is None or isinstance(grad_reducer, nn.Cell)):
            reducer = grad_reducer if grad_reducer is not None else _Identity()
            self._fused = _FusedStep(self._forward_backward, reducer, self._update)
        self._add = _AddGrads()
        self._before_forward = before_forward

    @property
    def fused(self) -> bool:
        """Whether a step runs as a single graph."""
        return self._fused is not None

    def compiled_graphs(self) -> int:
        """How many graphs the step's cells have compiled so far (0 in PyNative mode).

        A healthy run compiles once per cell in its first step and never again: a count that grows with the steps
        means some input reaches a graph as a constant, and every step then pays a compilation and keeps its graph.
        """
        cells = (self._fused,) if self._fused is not None else (self._forward_backward, self._add, self._update,
                                                                 self._guard, self._reducer)
        return sum(len(cell.compile_cache) for cell in cells if isinstance(cell, nn.Cell))

    def _split(self, batches: Sequence[Batch]) -> ms.Tensor:
        # Tuples of tensors go into the graphs as ``ms.mutable``: graph mode takes a plain tuple argument as a
        # constant, which would compile (and keep) a new graph for every step's values.
        saved = self._guard()
        losses: List[ms.Tensor] = []
        grads: Optional[Grads] = None
        for i, (images, labels) in enumerate(batches):
            if self._before_forward is not None:
                self._before_forward(i)
            loss, micro = self._forward_backward(images, labels)
            losses.append(loss)
            grads = micro if grads is None else self._add(ms.mutable(grads), ms.mutable(micro))
        assert grads is not None
        if self._reducer is not None:
            grads = tuple(self._reducer(ms.mutable(grads)))
        loss = losses[0] if len(losses) == 1 else ops.stack(losses).mean()
        return self._update(loss, ms.mutable(grads), ms.mutable(saved) if saved else saved)

    def __call__(self, batches: Sequence[Batch]) -> StepStats:
        """Run one step on ``grad_accum_steps`` ``(images, labels)`` micro-batches; what it did, for the loop."""
        if len(batches) != self.grad_accum_steps:
            raise ValueError(f"a step takes {self.grad_accum_steps} micro-batches, got {len(batches)}")
        if self._fused is None:
            out = self._split(batches)
        else:
            if self._before_forward is not None:
                self._before_forward(0)
            out = self._fused(*batches[0])
        loss, finite, scale = (float(v) for v in out.asnumpy())
        return StepStats(loss=loss, finite=bool(finite), scale=scale)

    # ---- state carried by checkpoints -------------------------------------------------------------------

    def state_parameters(self) -> List[ms.Parameter]:
        """Device-side state of the step (loss scale and its counter) for checkpoints."""
        return [self.scaler.scale, self.scaler.good_steps]


AMP_LEVELS = ("O0", "O1", "O2", "O3")


def apply_amp(net: nn.Cell, amp_level: str) -> nn.Cell:
    """Cast ``net`` for mixed precision (``O0`` leaves it float32). The loss is always computed in float32.

    ``amp_level`` is a resolved ``train.amp_level``: loading turns the config's ``auto`` into one of
    :data:`AMP_LEVELS`, and MindSpore's own, different ``auto`` level must never be reached by accident.
    """
    if amp_level not in AMP_LEVELS:
        raise ValueError(f"amp level {amp_level!r} is not one of {AMP_LEVELS}; load the config to resolve 'auto'")
    if amp_level == "O0":
        return net
    return ms.amp.auto_mixed_precision(net, amp_level)


__all__ = ["TrainStep", "StepStats", "LossScaler", "freeze_batchnorm", "apply_amp", "GradReducer"]
