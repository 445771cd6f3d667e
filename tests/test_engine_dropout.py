"""Dropout on (the published recipe's 0.7): same-seed reruns and resumed runs are bit-identical to the original.

Every run goes through tools/train.py in its own process; the checkpoints at the last step are compared tensor by
tensor (weights, BatchNorm statistics, optimizer moments, loop state).
"""
from __future__ import annotations

import random
import signal
import sys
from pathlib import Path
from typing import List

import numpy as np
import pytest

from conftest import REPO, run_tool
from engine_helpers import run_overrides, signal_when, write_training_set

STEPS = 8
DROPOUT = ["model.dropout=0.7", "train.save_steps=1", "train.keep_checkpoint_max=100"]


@pytest.fixture(scope="module")
def mindrecord(tmp_path_factory) -> Path:
    return write_training_set(tmp_path_factory.mktemp("dropout_data"))


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dropout_cfg") / "empty.yaml"
    path.write_text("{}\n", encoding="utf-8")
    return path


def train(config: Path, overrides: List[str], *extra: str) -> None:
    result = run_tool("train", ["--config", config, *extra, "--set", *overrides], timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def assert_same_checkpoints(a: Path, b: Path) -> None:
    from deeplabv3.models.checkpoint import read_checkpoint

    first, second = read_checkpoint(a), read_checkpoint(b)
    assert first.keys() == second.keys()
    for name in first:
        np.testing.assert_array_equal(np.asarray(first[name]), np.asarray(second[name]), err_msg=name)


def final(work_dir: Path) -> Path:
    return work_dir / "checkpoints" / f"step_{STEPS:08d}.ckpt"


@pytest.fixture(scope="module")
def straight(mindrecord, config, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("dropout_runs") / "straight"
    train(config, run_overrides(mindrecord, work, STEPS, DROPOUT))
    return work


def test_same_seed_reruns_are_identical(straight, mindrecord, config, tmp_path):
    train(config, run_overrides(mindrecord, tmp_path / "again", STEPS, DROPOUT))
    assert_same_checkpoints(final(straight), final(tmp_path / "again"))


def test_resume_from_step_k_is_identical(straight, mindrecord, config, tmp_path):
    train(config, run_overrides(mindrecord, tmp_path / "resumed", STEPS, DROPOUT), "--resume",
          str(straight / "checkpoints" / "step_00000003.ckpt"))
    assert_same_checkpoints(final(straight), final(tmp_path / "resumed"))


def test_resume_with_accumulation_is_identical(mindrecord, config, tmp_path):
    """Two micro-batches per step: each draws its own masks, and the resumed run continues their sequence."""
    accumulate = [*DROPOUT, "train.grad_accum_steps=2", "data.train.batch_size=2"]
    train(config, run_overrides(mindrecord, tmp_path / "straight", STEPS, accumulate))
    train(config, run_overrides(mindrecord, tmp_path / "resumed", STEPS, accumulate), "--resume",
          str(tmp_path / "straight" / "checkpoints" / "step_00000005.ckpt"))
    assert_same_checkpoints(final(tmp_path / "straight"), final(tmp_path / "resumed"))


def test_sigkill_at_a_random_step_then_resume_is_identical(straight, mindrecord, config, tmp_path):
    work = tmp_path / "killed"
    overrides = run_overrides(mindrecord, work, STEPS, DROPOUT)
    kill_after = random.Random().randint(2, STEPS - 2)
    cmd = [sys.executable, str(REPO / "tools" / "train.py"), "--config", str(config), "--set", *overrides]
    assert signal_when(cmd, f"step {kill_after}/{STEPS}", signal.SIGKILL)[0] == -signal.SIGKILL
    assert not final(work).exists(), f"the run finished before the kill after step {kill_after}"
    train(config, overrides, "--resume")
    assert_same_checkpoints(final(straight), final(work))
