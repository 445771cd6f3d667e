"""Shared test fixtures: repository paths, tiny-network overrides, free ports, tool runner, execution modes."""
from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List, Sequence

import mindspore as ms
import pytest

import deeplabv3  # noqa: F401  (sets ONEDNN_MAX_CPU_ISA before any MindSpore kernel runs)

REPO = Path(__file__).resolve().parents[1]

# A DeepLabV3 with the real strides and names but ~50k parameters: compiles and trains in seconds on CPU.
TINY_MODEL = ["model.backbone=resnet50", "model.layers=[1,1,1,1]", "model.base_channels=8",
              "model.aspp_channels=16", "model.low_level_channels=8"]


@pytest.fixture
def repo() -> Path:
    return REPO


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_tool(tool: str, args: Sequence[str], timeout: float = 300, cwd: Path = REPO,
             env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``tools/<tool>.py`` in a fresh interpreter under a timeout; output captured as text."""
    cmd: List[str] = [sys.executable, str(REPO / "tools" / f"{tool}.py"), *map(str, args)]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


MODES = {"graph": ms.GRAPH_MODE, "pynative": ms.PYNATIVE_MODE}


@pytest.fixture
def execution_mode(request: pytest.FixtureRequest) -> Iterator[str]:
    """The MindSpore execution mode a test is parametrized with, set for the test and restored afterwards.

    One test: ``@pytest.mark.parametrize("execution_mode", ["graph", "pynative"], indirect=True)`` runs it in each
    mode named. A module whose tests all run compiled: ``pytestmark = [pytest.mark.usefixtures("execution_mode"),
    pytest.mark.parametrize("execution_mode", ["graph"], indirect=True)]``.
    """
    name = getattr(request, "param", None)
    if name not in MODES:
        pytest.fail(f"parametrize execution_mode (indirect=True) with one of {', '.join(MODES)}, not {name!r}")
    previous = ms.get_context("mode")
    ms.set_context(mode=MODES[name])
    yield name
    ms.set_context(mode=previous)


def pytest_sessionfinish(session, exitstatus) -> None:
    """Collect left-over MindSpore cells while the interpreter is intact (at exit their __del__ fails noisily)."""
    gc.collect()
