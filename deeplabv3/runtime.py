"""Process set-up shared by every tool: device, execution mode, seeds and the project's one log format.

Call :func:`setup_runtime` once, after the distributed launch is initialised (so the rank is known) and before the
first network is built. The oneDNN instruction-set pin and MindSpore's log level are already set when the package
is imported (see ``deeplabv3/__init__.py``), because they must precede the first kernel.
"""
from __future__ import annotations

import logging
import os
import random
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from .config import Config

LOGGER_NAME = "deeplabv3"
LOG_FORMAT = "%(asctime)s [rank %(rank)s] %(levelname)s %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


class _RankFilter(logging.Filter):
    """Stamps every record with the process's rank, so interleaved multi-process logs stay readable."""

    def __init__(self, rank: int) -> None:
        super().__init__()
        self.rank = rank

    def filter(self, record: logging.LogRecord) -> bool:
        record.rank = self.rank
        return True


class _LogFile(logging.FileHandler):
    """A log file that a full or read-only disk silences (said once on stderr) instead of a traceback per line:
    the console still gets every line, and the fault itself is reported by whatever write stops the run."""

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError):
            super().handleError(record)
            return
        if self.level < logging.CRITICAL + 1:
            print(f"warning: cannot write the log file {self.baseFilename} ({exc.strerror}); the console keeps "
                  f"logging", file=sys.stderr)
            self.setLevel(logging.CRITICAL + 1)


def log_to_files(level: int, message: str, exc_info: bool = False) -> None:
    """Record ``message`` in the project's log files only (the console has already shown it)."""
    logger = logging.getLogger(LOGGER_NAME)
    record = logger.makeRecord(logger.name, level, __file__, 0, message, (), sys.exc_info() if exc_info else None)
    for flt in logger.filters:
        flt.filter(record)
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def get_logger() -> logging.Logger:
    """The project logger; before :func:`configure_logging` it prints to stderr with rank 0."""
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.handlers:
        configure_logging()
    return logger


def configure_logging(rank: int = 0, level: str = "INFO", log_file: Optional[os.PathLike] = None,
                      console: bool = True, console_level: Optional[str] = None) -> logging.Logger:
    """(Re)configure the project logger: console on stderr and, optionally, a file, both in one format.

    ``console_level`` raises the console's threshold above ``level`` (the file keeps ``level``)."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    for flt in list(logger.filters):
        logger.removeFilter(flt)
    logger.addFilter(_RankFilter(rank))
    logger.setLevel(level)
    logger.propagate = False
    formatter = logging.Formatter(LOG_FORMAT, DATE_FORMAT)
    handlers = []
    if console:
        stream = logging.StreamHandler(sys.stderr)
        if console_level is not None:
            stream.setLevel(console_level)
        handlers.append(stream)
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(_LogFile(log_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    return logger


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy, MindSpore and the MindSpore data pipeline with the same value.

    Every rank must use the same seed: MindSpore does not broadcast initial weights, and ``MindDataset`` shards
    only partition the data correctly when every rank shuffles with the same seed.
    """
    import mindspore as ms
    import mindspore.dataset as ds

    random.seed(seed)
    np.random.seed(seed)
    ms.set_seed(seed)
    ds.config.set_seed(seed)


def _device_id(cfg: Config) -> Optional[int]:
    if cfg.runtime.device_id is not None:
        return cfg.runtime.device_id
    for name in ("DEVICE_ID", "OMPI_COMM_WORLD_LOCAL_RANK", "LOCAL_RANK"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return None


def set_device(cfg: Config) -> None:
    """Select device target and execution mode (graph compiles the network; pynative runs eagerly)."""
    import mindspore as ms
    from mindspore.communication import GlobalComm

    device_id = _device_id(cfg) if cfg.runtime.device_target != "CPU" else None
    if GlobalComm.INITED:
        pass  # deeplabv3.distributed bound the device before init(); MindSpore refuses set_device after it
    elif device_id is None:
        ms.set_device(cfg.runtime.device_target)
    else:
        ms.set_device(cfg.runtime.device_target, device_id)
    mode = ms.GRAPH_MODE if cfg.runtime.mode == "graph" else ms.PYNATIVE_MODE
    ms.set_context(mode=mode)
    if cfg.runtime.compile_cache:
        cache = Path(cfg.runtime.work_dir) / "compile_cache"
        cache.mkdir(parents=True, exist_ok=True)
        ms.set_context(enable_compile_cache=True, compile_cache_path=str(cache))


def setup_runtime(cfg: Config, rank: int = 0, world_size: int = 1, verbose: bool = False,
                  log_name: Optional[str] = "run.log") -> logging.Logger:
    """Device, mode, seeds and logging for one process of a (possibly distributed) job.

    ``verbose`` lowers the project's log level to DEBUG and MindSpore's own (``GLOG_v``) to warnings. Only rank 0
    writes the log file in ``runtime.work_dir``; every rank logs to its console, except that under ``mpirun``,
    where every rank shares one console, ranks other than 0 print only warnings and errors (unless ``verbose``).
    """
    if verbose:
        os.environ["GLOG_v"] = "1"
    elif "GLOG_v" not in os.environ or os.environ["GLOG_v"] == "3":
        os.environ["GLOG_v"] = str(cfg.runtime.ms_log_level)
    log_file = Path(cfg.runtime.work_dir) / log_name if (log_name and rank == 0) else None
    shared_console = "OMPI_COMM_WORLD_RANK" in os.environ or "PMI_RANK" in os.environ  # mpirun (OpenMPI, MPICH)
    quiet = rank != 0 and shared_console and not verbose
    logger = configure_logging(rank, "DEBUG" if verbose else cfg.runtime.log_level, log_file,
                               console_level="WARNING" if quiet else None)
    set_device(cfg)
    seed_everything(cfg.runtime.seed)
    logger.debug("runtime: device=%s mode=%s seed=%d rank=%d/%d ONEDNN_MAX_CPU_ISA=%s", cfg.runtime.device_target,
                 cfg.runtime.mode, cfg.runtime.seed, rank, world_size, os.environ.get("ONEDNN_MAX_CPU_ISA"))
    return logger
