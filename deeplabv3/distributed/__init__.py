"""Distributed jobs: which launcher started this process, how the ranks talk, and what they compute together.

Setup, in the order a process meets it:

* :mod:`~deeplabv3.distributed.launch` -- the launcher (msrun, mpirun, rank table, none) and the backend, from the
  environment;
* :mod:`~deeplabv3.distributed.rank_table` -- Ascend rank tables: build, validate, list a server's ranks;
* :mod:`~deeplabv3.distributed.ports` -- a free scheduler port, a busy one reported before anything starts;
* :mod:`~deeplabv3.distributed.cluster` -- MindSpore's cluster: ``init()``, msrun's rendezvous, the CPU bridge;
* :mod:`~deeplabv3.distributed.context` -- :func:`init_distributed` and the :class:`DistContext` it returns.

What the ranks compute together:

* :mod:`~deeplabv3.distributed.collectives` -- host sums, broadcasts, barriers (mpi4py or MindSpore);
* :mod:`~deeplabv3.distributed.gradients` -- the across-rank gradient mean of each training step;
* :mod:`~deeplabv3.distributed.buffers` -- the across-rank mean of the BatchNorm statistics before evaluating/saving.

``python -m deeplabv3.distributed`` answers the shell launchers' questions (ports, config values).

The package exports :func:`init_distributed`, :class:`DistContext`, :class:`DistributedError` and the launch
detection, each imported on first use: importing the package imports no module of it, and ``launch``, ``ports``
and ``rank_table`` need no MindSpore, so the shell launchers' questions are answered in a fraction of a second.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, List

_EXPORTS = {
    "DistributedError": "launch", "Launch": "launch", "detect_launch": "launch", "resolve_backend": "launch",
    "DistContext": "context", "init_distributed": "context",
}

if TYPE_CHECKING:
    from .context import DistContext, init_distributed
    from .launch import DistributedError, Launch, detect_launch, resolve_backend


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = sorted(_EXPORTS)
