"""Training progress: periodic log lines, ``metrics.jsonl`` records and, on a terminal, a tqdm bar.

Every ``train.log_interval`` steps one line reports epoch/step, learning rate, the loss (this rank's last step, and
the mean over the interval and over every rank), the loss scale, step and data-wait times, throughput, ETA and the process's peak resident memory.
The same figures go to ``<work_dir>/metrics.jsonl`` as one JSON object per line (``"type": "train"``), next to the
evaluation records (``"type": "eval"``); ``tools/plot_log.py`` draws them.

The first step of a run also compiles the graph; it is reported on its own and kept out of the speed and ETA
figures.
"""
from __future__ import annotations

import json
import logging
import resource
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

import numpy as np

from ..fileio import write_text_atomic
from ..workdir import file_system_error
from ..visualization import METRICS
from ..progress import format_duration
from .train_step import StepStats


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (``VmHWM`` from /proc, else ``getrusage``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def truncate_metrics(path: Union[str, Path], after_step: int) -> None:
    """Drop records of steps after ``after_step`` (a resumed run repeats them), keeping everything else."""
    path = Path(path)
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
        if int(record.get("step", 0)) <= after_step:
            kept.append(line)
    write_text_atomic(path, "".join(f"{line}\n" for line in kept))


class TrainMonitor:
    """Collects per-step figures on every rank; rank 0 (``is_main``) logs and writes them."""

    def __init__(self, work_dir: Union[str, Path], logger: logging.Logger, is_main: bool, total_steps: int,
                 start_step: int, steps_per_epoch: int, images_per_step: int, log_interval: int,
                 allreduce_sum: Optional[Callable[[np.ndarray], np.ndarray]] = None) -> None:
        """``allreduce_sum`` (a multi-rank job's element-wise sum over ranks) makes the logged mean loss the mean
        over every rank; every rank then takes part in it at each log interval, as every rank logs."""
        self.logger = logger
        self.allreduce_sum = allreduce_sum
        self.is_main = is_main
        self.total_steps = total_steps
        self.steps_per_epoch = steps_per_epoch
        self.images_per_step = images_per_step
        self.log_interval = log_interval
        self.path = Path(work_dir) / METRICS
        self._start_step = start_step
        self._window: List[StepStats] = []
        self._step_times: List[float] = []
        self._data_times: List[float] = []
        self._speed_time = 0.0
        self._speed_steps = 0
        self._graphs = self._first_graphs = 0
        self._warned_recompile = False
        self._stack = ExitStack()
        self._bar: Any = None
        self._file: Any = None

    def __enter__(self) -> "TrainMonitor":
        if self.is_main:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self._stack.enter_context(self.path.open("a", encoding="utf-8"))
            if sys.stderr.isatty():
                from tqdm import tqdm
                from tqdm.contrib.logging import logging_redirect_tqdm

                self._bar = self._stack.enter_context(tqdm(total=self.total_steps, initial=self._start_step,
                                                           desc="train", unit="step", dynamic_ncols=True))
                self._stack.enter_context(logging_redirect_tqdm(loggers=[self.logger]))
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self._stack.close()
        except OSError as error:  # the last records could not be flushed (a full disk)
            if exc[0] is None:
                raise file_system_error(error, self.path) from None

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one JSON record to ``metrics.jsonl`` (rank 0)."""
        if self._file is not None:
            try:
                self._file.write(json.dumps(record) + "\n")
                self._file.flush()
            except OSError as exc:
                raise file_system_error(exc, self.path) from None

    def step(self, step: int, stats: StepStats, lr: float, step_time: float, data_time: float,
             skipped_steps: int, graphs: int = 0) -> None:
        """Record the step that brought the global step to ``step``; log at the interval.

        ``graphs`` is the number of graphs the step has compiled so far: it must stop growing after the first
        step, and a warning says so once if it does not (each new graph costs a compilation and memory).
        """
        if step == self._start_step + 1:
            self.logger.info("first step took %.1f s (graph compilation included)", step_time)
            self._first_graphs = graphs
        elif graphs > self._graphs and not self._warned_recompile:
            self._warned_recompile = True
            self.logger.warning("step %d compiled the train step again (%d graphs, %d after the first step); every "
                                "recompilation costs time and memory", step, graphs, self._first_graphs)
        self._graphs = graphs
        if step > self._start_step + 1:
            self._speed_time += step_time
            self._speed_steps += 1
        self._window.append(stats)
        self._step_times.append(step_time)
        self._data_times.append(data_time)
        if self._bar is not None:
            self._bar.update(1)
        if step % self.log_interval == 0 or step == self.total_steps:
            self._log(step, lr, skipped_steps)

    def _log(self, step: int, lr: float, skipped_steps: int) -> None:
        finite = [s.loss for s in self._window if s.finite]
        last = self._window[-1]
        total, count = float(sum(finite)), float(len(finite))
        if self.allreduce_sum is not None:
            total, count = self.allreduce_sum(np.array([total, count], dtype=np.float64))
        mean_loss = total / count if count else float("nan")
        step_time = sum(self._step_times) / len(self._step_times)
        data_time = sum(self._data_times) / len(self._data_times)
        per_step = self._speed_time / self._speed_steps if self._speed_steps else step_time
        eta = per_step * (self.total_steps - step)
        record: Dict[str, Any] = {
            "type": "train", "step": step, "epoch": step / self.steps_per_epoch, "lr": lr, "loss": last.loss,
            "loss_avg": mean_loss, "loss_scale": last.scale, "skipped_steps": skipped_steps,
            "step_time": step_time, "data_time": data_time, "images_per_sec": self.images_per_step / step_time,
            "eta_sec": eta, "peak_rss_mb": peak_rss_mb(), "graphs": self._graphs, "time": time.time(),
        }
        self._window.clear()
        self._step_times.clear()
        self._data_times.clear()
        if not self.is_main:
            return
        self.write(record)
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.3g}")
        epochs = self.total_steps / self.steps_per_epoch
        self.logger.info(
            "epoch %.2f/%.4g step %d/%d | lr %.4g | loss %.4f (avg %.4f) | scale %g%s | %.3f s/step (data %.3f s) "
            "%.1f img/s | ETA %s | peak RSS %.0f MiB", record["epoch"], epochs, step, self.total_steps, lr,
            last.loss, mean_loss, last.scale, f" | {skipped_steps} skipped" if skipped_steps else "", step_time,
            data_time, record["images_per_sec"], format_duration(eta), record["peak_rss_mb"])

    def evaluation(self, step: int, results: Mapping[str, Any], best: Optional[float], graphs: int = 0) -> None:
        """Log and record an evaluation's headline figures, the peak memory after it and ``graphs``, the graphs
        the periodic evaluation has compiled so far (constant after the first one when nothing recompiles)."""
        figures = {k: results[k] for k in ("mIoU", "mAcc", "aAcc", "fwIoU") if k in results}
        if self.is_main:
            self.write({"type": "eval", "step": step, **figures, "best_mIoU": best, "graphs": graphs,
                        "peak_rss_mb": peak_rss_mb(), "time": time.time()})
            shown = ", ".join(f"{k} {v:.2f}" for k, v in figures.items() if v is not None)
            self.logger.info("evaluation at step %d: %s (best mIoU %.2f)", step, shown, best if best is not None
                             else float("nan"))
