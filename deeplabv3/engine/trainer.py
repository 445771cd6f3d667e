"""The training loop: set-up, steps, logging, checkpoints, periodic evaluation, resume and clean interruption.

Work directory (``runtime.work_dir``, written by rank 0)::

    config.yaml        the effective config (after _base_ files and --set overrides)
    train.log          the log
    metrics.jsonl      one JSON record per logged step and per evaluation
    checkpoints/       step_<step>.ckpt, the newest train.keep_checkpoint_max kept
    last_checkpoint    the relative path of the newest complete checkpoint (what --resume continues from)
    best.ckpt          weights at the best periodic evaluation (mIoU)
    .lock              held (``fcntl.flock``) for the whole run: a second run in the directory stops, naming it

Evaluation and prediction may write into a running training's work dir (``eval.log``, ``eval_results.json``,
masks), never over the files above (:func:`refuse_run_file`).

Steps and epochs
    A step is one optimizer update over ``train.grad_accum_steps`` batches. The data stream runs on across epoch
    boundaries; an epoch is ``batches per epoch // grad_accum_steps`` steps, the unit of the LR schedule, and the
    run lasts ``train.max_steps`` or ``train.epochs`` of them.

Exact resume
    A checkpoint holds the weights, the optimizer's moments and step counter (hence the LR), the loss-scale state,
    the loop counters and where the data stream continues. With ``train.deterministic_data`` a run stopped at step
    k and resumed to step n ends with the same parameters as an uninterrupted n-step run, bit for bit, dropout
    included: its masks are a function of (``runtime.seed``, micro-batch, rank) (:mod:`deeplabv3.models.dropout`).

Interruption
    SIGINT or SIGTERM lets the current step finish, saves a checkpoint and returns; ``tools/train.py`` then exits
    with 128 + the signal number (130, 143). A second signal more than a few seconds later stops at once (one
    Ctrl-C often arrives twice: from the terminal to the whole process group, and forwarded by the launcher).
    Across ranks the stop is agreed on with one small all-reduce after every step: a signal to any rank stops every
    rank at the same step, within one step, and rank 0 saves once before any rank exits.
"""
from __future__ import annotations

import math
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, List, Optional, Tuple

import mindspore as ms
import numpy as np
from mindspore import nn

from ..config import Config, check_training, config_warnings, dump_yaml, key_error, save_config
from ..data.pipeline import build_train_dataset, check_batch_labels, labels_checked, steps_per_epoch
from ..evaluation.predictor import Predictor
from ..models import build_model
from ..models.checkpoint import CheckpointError, load_checkpoint, load_params, read_checkpoint
from ..models.dropout import DropoutKeys
from ..runtime import setup_runtime
from ..workdir import TRAIN_LOCK, FileSystemError, hold
from .checkpointing import (BEST, POINTER, checkpoint_dir, latest_checkpoint, periodic_checkpoints,
                            remove_stale_temp_files, restore_parameters, save_best, save_training_checkpoint)
from ..distributed import DistributedError, init_distributed
from ..distributed.buffers import average_across_ranks
from .loop_state import LoopState
from .auxiliary import with_auxiliary_head
from .losses import build_loss
from .monitor import METRICS, TrainMonitor, truncate_metrics
from .optim import build_optimizer, state_names
from .schedules import build_lr_schedule, describe, run_length
from .train_step import TrainStep, apply_amp, freeze_batchnorm

LATEST = "latest"
EVAL_METRIC = "mIoU"
CONFIG_NAME = "config.yaml"
LOG_NAME = "train.log"
RUN_FILES = (CONFIG_NAME, LOG_NAME, METRICS, POINTER, BEST, TRAIN_LOCK)


@dataclass
class TrainResult:
    """How a run ended."""

    work_dir: Path
    step: int
    total_steps: int
    checkpoint: Optional[Path]
    best_metric: Optional[float]
    interrupted_by: Optional[int] = None
    launcher: str = "single"

    @property
    def exit_status(self) -> int:
        """0, or 128 + the stop signal. msrun workers exit 0 after a clean stop: msrun takes any other status for a
        crash and SIGKILLs the other workers before they leave the cluster, which leaves its scheduler waiting for
        them; ``scripts/run_msrun.sh`` reports the signal instead."""
        if self.interrupted_by is None or self.launcher == "msrun":
            return 0
        return 128 + self.interrupted_by


class StopSignals:
    """SIGINT/SIGTERM set a flag the loop polls; a second signal after :attr:`REPEAT_AFTER` seconds raises
    ``KeyboardInterrupt`` at once (an earlier one is the same interruption delivered twice)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)
    REPEAT_AFTER = 3.0

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._received = 0.0
        self._previous: List[Any] = []

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            if time.monotonic() - self._received > self.REPEAT_AFTER:
                raise KeyboardInterrupt
            return
        self.signum, self._received = signum, time.monotonic()

    def __enter__(self) -> "StopSignals":
        self._previous = [signal.signal(s, self._handle) for s in self.SIGNALS]
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, previous in zip(self.SIGNALS, self._previous):
            signal.signal(sig, previous)


def _initial_weights(net: nn.Cell, cfg: Config, logger: Any) -> None:
    model = cfg.model
    if model.init_checkpoint:
        load_checkpoint(net, model.init_checkpoint, strict=True, ignore_head_mismatch=model.ignore_head_mismatch)
    elif model.pretrained_backbone:
        load_checkpoint(net, model.pretrained_backbone, strict=True)
    else:
        logger.warning("training from random initialisation (no model.pretrained_backbone or model.init_checkpoint)")


def refuse_run_file(path: Path, flag: str) -> None:
    """Stop another tool's output (``flag`` names its option) from replacing a file of a training's work dir."""
    path = Path(path).resolve()
    for work_dir in (path.parent, path.parent.parent):
        if not (work_dir / TRAIN_LOCK).is_file():
            continue
        if (path.parent == work_dir and path.name in RUN_FILES) or path.parent == checkpoint_dir(work_dir):
            raise FileSystemError(f"{flag} {path} is a file of the training run in {work_dir}; writing it would "
                                  f"corrupt that run: choose another name")


def resolve_resume(resume: Optional[str], work_dir: Path) -> Optional[Path]:
    """``None``: a fresh run; :data:`LATEST`: the work dir's newest checkpoint; otherwise the given file."""
    if resume is None:
        return None
    if resume == LATEST:
        found = latest_checkpoint(work_dir)
        if found is None:
            raise CheckpointError(f"--resume: no checkpoint in {work_dir} (no last_checkpoint file, nothing in "
                                  f"checkpoints/); start without --resume or pass --resume CKPT")
        return found
    path = Path(resume)
    if not path.is_file():
        raise CheckpointError(f"--resume {resume}: no such checkpoint file")
    return path


class Trainer:
    """One process's part of a (possibly distributed) training run; see the module docstring.

    Everything a step needs is built once, here: the network (``net``, whose parameters are the ones loaded and
    saved), the network the step and periodic evaluation run (``train_net``: ``net`` with ``train.amp_level``
    applied, the same parameter objects behind casts), the optimizer and the step. Loading weights into ``net``
    therefore works before or after any of it; :meth:`run` loads them (initial weights or a resumed checkpoint)
    just before the loop.
    """

    def __init__(self, cfg: Config, ctx: Any, logger: Any) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.logger = logger
        self.work_dir = Path(cfg.runtime.work_dir)
        self.batches_per_epoch = steps_per_epoch(cfg, ctx.world_size)
        self.labels_checked = labels_checked(cfg)
        self.accum = cfg.train.grad_accum_steps
        self.steps_per_epoch = self.batches_per_epoch // self.accum
        if self.steps_per_epoch < 1:
            raise key_error(cfg, ("train.grad_accum_steps", "data.train.batch_size"),
                            f"'train.grad_accum_steps' ({self.accum}) exceeds the {self.batches_per_epoch} batches of "
                            f"an epoch; lower it or data.train.batch_size")
        self.total_steps = run_length(cfg, self.steps_per_epoch)
        self.lr = build_lr_schedule(cfg.schedule, self.steps_per_epoch, self.total_steps)
        self.state = LoopState()
        self.net: nn.Cell = build_model(cfg)
        if cfg.train.freeze_bn:
            logger.info("freeze_bn: %d BatchNorm layers use their running statistics and are not trained",
                        freeze_batchnorm(self.net))
        self.net.set_train(True)
        training_net, loss_fn, auxiliary = with_auxiliary_head(self.net, build_loss(cfg), cfg)
        self.train_net: nn.Cell = apply_amp(training_net, cfg.train.amp_level)
        optimizer = build_optimizer(training_net.trainable_params(), cfg.optimizer, self.lr, logger)
        reducer = getattr(ctx, "grad_reducer", None)
        if ctx.world_size > 1 and reducer is None:
            raise RuntimeError(f"the distributed context has {ctx.world_size} ranks but no grad_reducer")
        keys = DropoutKeys(self.net, cfg.runtime.seed, ctx.rank)
        self.step_fn = TrainStep(self.train_net, loss_fn, optimizer, cfg.loss_scale, self.accum, reducer,
                                 lambda i: keys(self.state.step * self.accum + i))
        wanted = set(state_names(optimizer))
        self.predictor: Optional[Predictor] = None  # the periodic evaluation's, built at the first one
        self.checkpoint_params: List[ms.Parameter] = [
            *self.net.get_parameters(), *auxiliary, *(p for p in optimizer.get_parameters() if p.name in wanted),
            *self.step_fn.state_parameters()]
        trained = {p.name for p in self.net.trainable_params()}
        self.statistics = [p for p in self.net.get_parameters() if p.name not in trained]
        self._statistics_synced_at = -1

    # ------------------------------------------------------------------------------------------------ set-up

    def _resume(self, path: Path) -> None:
        entries = read_checkpoint(path)
        self.state = LoopState.from_entries(entries, str(path))
        report = load_params(self.net, entries, strict=True, source=str(path), log_summary=False)
        net_names = {p.name for p in self.net.get_parameters()}
        training_state = [p for p in self.checkpoint_params if p.name not in net_names]
        restore_parameters(training_state, entries, str(path))
        if self.state.data_batch >= self.batches_per_epoch:
            self.logger.warning("the checkpoint's data position (batch %d of epoch %d) is past this configuration's "
                                "%d batches per epoch (batch size or rank count changed): continuing at the start "
                                "of epoch %d, so the data order is not the uninterrupted run's",
                                self.state.data_batch, self.state.data_epoch, self.batches_per_epoch,
                                self.state.data_epoch + 1)
            self.state.data_epoch, self.state.data_batch = self.state.data_epoch + 1, 0
        if self.state.step > self.total_steps:
            raise CheckpointError(f"{path} is at step {self.state.step}, beyond this run's {self.total_steps} steps; "
                                  f"raise train.max_steps / train.epochs to continue it")
        used = {*report.loaded, *(p.name for p in training_state), *self.state.entries()}
        unused = sorted(name for name in entries if name not in used)
        self.logger.info("resumed from %s at step %d (epoch %d, batch %d of the data stream): restored %d network "
                         "tensors, %d optimizer and loss-scale tensors (momenta, LR step, scale) and the loop "
                         "state (%s)%s", path, self.state.step, self.state.data_epoch, self.state.data_batch,
                         len(report.loaded), len(training_state), ", ".join(asdict(self.state)),
                         f"; not used: {', '.join(unused)}" if unused else "")

    def _batches(self) -> Iterator[Tuple[ms.Tensor, ms.Tensor]]:
        cfg, ctx = self.cfg, self.ctx
        dataset = build_train_dataset(cfg, ctx.rank, ctx.world_size, epoch_offset=self.state.data_epoch,
                                      skip_batches=self.state.data_batch)
        # The iterator counts the skipped epochs too, and a resumed pipeline needs a finite epoch count.
        epochs = math.ceil(self.total_steps * self.accum / self.batches_per_epoch)
        iterator = dataset.create_tuple_iterator(num_epochs=epochs)

        def stream() -> Iterator[Tuple[ms.Tensor, ms.Tensor]]:
            for _ in range(epochs - self.state.data_epoch):  # each pass over the iterator is one epoch
                for images, labels in iterator:
                    if not self.labels_checked:
                        check_batch_labels(labels.asnumpy(), cfg.model.num_classes, cfg.data.ignore_label,
                                           cfg.data.train.mindrecord)
                    yield images, labels

        return stream()

    # --------------------------------------------------------------------------------------------- the loop

    def run(self, resume: Optional[Path] = None) -> TrainResult:
        cfg, ctx, logger = self.cfg, self.ctx, self.logger
        if resume is None:
            _initial_weights(self.net, cfg, logger)
        else:
            self._resume(resume)
        if ctx.is_main:
            truncate_metrics(self.work_dir / METRICS, self.state.step)
        logger.info("schedule '%s': %s; %d batch(es) of %d per step on %d rank(s), %s", cfg.schedule.name,
                    describe(self.lr, self.steps_per_epoch), self.accum, cfg.data.train.batch_size, ctx.world_size,
                    "one graph per step" if self.step_fn.fused else "split step (host-side reduction/accumulation)")
        images_per_step = cfg.data.train.batch_size * self.accum * ctx.world_size
        monitor = TrainMonitor(self.work_dir, logger, ctx.is_main, self.total_steps, self.state.step,
                               self.steps_per_epoch, images_per_step, cfg.train.log_interval,
                               ctx.allreduce_sum if ctx.world_size > 1 else None)
        saved_at = self.state.step if resume is not None else -1
        checkpoint = resume
        with monitor, StopSignals() as stop:
            batches = self._batches()
            while self.state.step < self.total_steps:
                signum = self._agreed_stop(stop)
                if signum:
                    logger.warning("interrupted by %s: stopping at step %d", signal.Signals(signum).name,
                                   self.state.step)
                    if saved_at != self.state.step:
                        checkpoint = self._save()
                    if ctx.world_size > 1:
                        ctx.barrier()  # no rank exits (which makes launchers stop the job) before rank 0 has saved
                    if ctx.is_main:
                        logger.info("checkpoint %s saved; continue with --resume", checkpoint)
                    return self._result(checkpoint, signum)
                self._train_step(batches, monitor)
                step = self.state.step
                if self._eval_due(step):  # before saving, so the checkpoint knows the best metric
                    self._evaluate(monitor)
                if cfg.train.save_steps and step % cfg.train.save_steps == 0:
                    checkpoint, saved_at = self._save(), step
            if saved_at != self.state.step:
                checkpoint = self._save()
        logger.info("training finished at step %d; last checkpoint %s", self.state.step, checkpoint)
        return self._result(checkpoint, None)

    def _train_step(self, batches: Iterator[Tuple[ms.Tensor, ms.Tensor]], monitor: TrainMonitor) -> None:
        state = self.state
        if state.step >= len(self.lr):
            raise RuntimeError(f"step {state.step} is past the end of the {len(self.lr)}-step LR schedule")
        start = time.perf_counter()
        micro = [next(batches) for _ in range(self.accum)]
        fetched = time.perf_counter()
        stats = self.step_fn(micro)
        end = time.perf_counter()
        lr = float(self.lr[state.step])
        state.advance(stats, self.accum, self.batches_per_epoch, self.cfg.loss_scale.max_consecutive_nonfinite)
        if not stats.finite:
            self.logger.warning("step %d: non-finite gradients (loss %s, scale %g); update skipped", state.step,
                                stats.loss, stats.scale)
        monitor.step(state.step, stats, lr, end - start, fetched - start, state.skipped_steps,
                     self.step_fn.compiled_graphs())

    def _agreed_stop(self, stop: StopSignals) -> int:
        """The signal some rank received (the lowest rank's), the same on every rank; 0 if none did."""
        if self.ctx.world_size == 1:
            return stop.signum or 0
        received = np.zeros(self.ctx.world_size, np.int64)
        received[self.ctx.rank] = stop.signum or 0
        received = self.ctx.allreduce_sum(received)
        return int(received[np.flatnonzero(received)[0]]) if received.any() else 0

    def _eval_due(self, step: int) -> bool:
        train = self.cfg.train
        if train.eval_interval <= 0 or step < train.eval_start:
            return False
        return step % train.eval_interval == 0 or step == self.total_steps

    def _evaluate(self, monitor: TrainMonitor) -> None:
        from ..evaluation.evaluator import evaluate

        ctx, state = self.ctx, self.state
        self._sync_statistics()
        reduce_fn = ctx.allreduce_sum if ctx.world_size > 1 else None
        if self.predictor is None:  # built once: every periodic evaluation runs the graphs of the first
            self.predictor = Predictor(self.train_net, self.cfg)
        results = evaluate(self.train_net, self.cfg, ctx.rank, ctx.world_size, reduce_fn, progress=False,
                           predictor=self.predictor)
        self.train_net.set_train(True)
        value = results.get(EVAL_METRIC)
        if value is not None and value > state.best_metric:
            state.best_metric, state.best_step = float(value), state.step
            if ctx.is_main:
                save_best(self.work_dir, list(self.net.get_parameters()), state.step, EVAL_METRIC, value)
                self.logger.info("new best %s %.2f at step %d: %s", EVAL_METRIC, value, state.step,
                                 self.work_dir / "best.ckpt")
        monitor.evaluation(state.step, results, state.best_metric if state.best_step >= 0 else None,
                           self.predictor.compiled_graphs())

    def _sync_statistics(self) -> None:
        """Every rank's BatchNorm statistics become their across-rank mean (see :mod:`deeplabv3.distributed.buffers`),
        so what is evaluated and saved is one model."""
        if self._statistics_synced_at != self.state.step:
            average_across_ranks(self.ctx, self.statistics)
            self._statistics_synced_at = self.state.step

    def _save(self) -> Optional[Path]:
        self._sync_statistics()
        if not self.ctx.is_main:
            return None
        path = save_training_checkpoint(self.work_dir, self.checkpoint_params, self.state,
                                        self.cfg.train.keep_checkpoint_max)
        self.logger.info("saved %s", path)
        return path

    def _result(self, checkpoint: Optional[Path], signum: Optional[int]) -> TrainResult:
        best = self.state.best_metric if self.state.best_step >= 0 else None
        return TrainResult(self.work_dir, self.state.step, self.total_steps, checkpoint, best, signum)


def train(cfg: Config, resume: Optional[str] = None, verbose: bool = False) -> TrainResult:
    """Train as ``cfg`` says (``tools/train.py``). ``resume``: ``None``, :data:`LATEST` or a checkpoint path."""
    check_training(cfg)
    ctx = init_distributed(cfg)
    work_dir = Path(cfg.runtime.work_dir)
    if ctx.is_main and work_dir.exists():
        hold(work_dir)  # a run still in it is named before its files are looked at
    resume_path = resolve_resume(resume, work_dir)
    if resume_path is None and periodic_checkpoints(work_dir):
        raise CheckpointError(f"{work_dir} holds checkpoints of an earlier run; continue it with --resume, or train "
                              f"into another --work-dir (or delete {checkpoint_dir(work_dir)})")
    if ctx.is_main:
        hold(work_dir)
    logger = setup_runtime(cfg, ctx.rank, ctx.world_size, verbose, log_name=LOG_NAME)
    if ctx.is_main:
        save_config(cfg, work_dir / CONFIG_NAME)
        logger.info("effective config (saved to %s):\n%s", work_dir / CONFIG_NAME, dump_yaml(cfg).rstrip())
        for warning in config_warnings(cfg):
            logger.warning(warning)
        for path in remove_stale_temp_files(work_dir):
            logger.info("removed %s, left by an interrupted writer", path)
    trainer = Trainer(cfg, ctx, logger)  # a user error is logged to train.log too, by cli.run_tool
    result = trainer.run(resume_path)
    if ctx.world_size > 1 and not ctx.check_replicas(trainer.net.trainable_params()):
        raise DistributedError("the ranks ended with different weights (see the error above), so the job failed: "
                               "the checkpoints hold rank 0's copy only")
    ctx.finalize()  # every rank waits for the others, then communication ends (a failing rank never gets here)
    result.launcher = ctx.launcher
    return result


__all__ = ["train", "Trainer", "TrainResult", "LATEST", "resolve_resume", "refuse_run_file", "StopSignals"]
