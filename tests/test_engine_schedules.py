"""LR schedules against their closed forms and against MindCV's own scheduler for the published recipe."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from deeplabv3.config import load_config
from deeplabv3.engine.schedules import build_lr_schedule, run_length

SPE = 10  # steps per epoch in the small cases


def schedule(*overrides, steps_per_epoch=SPE, epochs=10):
    cfg = load_config(overrides=[f"train.epochs={epochs}", *overrides])
    return cfg, build_lr_schedule(cfg.schedule, steps_per_epoch, run_length(cfg, steps_per_epoch))


def test_warmup_is_linear_from_start_factor_to_peak():
    _, lr = schedule("schedule.name=constant", "schedule.base_lr=0.1", "schedule.warmup_epochs=2",
                     "schedule.warmup_start_factor=0.25")
    assert len(lr) == 100
    expected = 0.1 * (0.25 + 0.75 * np.arange(20) / 20)
    np.testing.assert_allclose(lr[:20], expected, rtol=1e-6)
    np.testing.assert_allclose(lr[20:], 0.1, rtol=1e-6)


def test_cosine_and_poly_closed_forms():
    common = ("schedule.base_lr=0.1", "schedule.min_lr=0.001", "schedule.warmup_epochs=1")
    _, cos = schedule("schedule.name=cosine", *common)
    t = np.arange(90)
    np.testing.assert_allclose(cos[10:], 0.001 + 0.099 * 0.5 * (1 + np.cos(np.pi * t / 90)), rtol=1e-6)
    assert cos[10] == pytest.approx(0.1) and cos[-1] > 0.001
    _, poly = schedule("schedule.name=poly", "schedule.power=0.9", *common)
    np.testing.assert_allclose(poly[10:], 0.001 + 0.099 * (1 - t / 90) ** 0.9, rtol=1e-6)


def test_step_and_exp():
    _, step = schedule("schedule.name=step", "schedule.base_lr=0.1", "schedule.warmup_epochs=0",
                       "schedule.milestones=[3,7]", "schedule.gamma=0.1")
    np.testing.assert_allclose(step[[0, 29, 30, 69, 70, 99]], [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)
    _, exp = schedule("schedule.name=exp", "schedule.base_lr=0.1", "schedule.warmup_epochs=1", "schedule.gamma=0.5")
    np.testing.assert_allclose(exp[[10, 20, 35]], [0.1, 0.05, 0.1 * 0.5 ** 2.5], rtol=1e-6)


def test_max_steps_sets_the_length():
    cfg, lr = schedule("schedule.name=cosine", "train.max_steps=37")
    assert len(lr) == 37 == run_length(cfg, SPE)


def test_reference_recipe_s16():
    """300 epochs of 10582 // (32 * 8) = 41 steps, 3-epoch warmup from 0, 40000-epoch cosine period."""
    spe = 10582 // (32 * 8)
    _, lr = schedule("schedule.name=reference", "schedule.base_lr=0.08", "schedule.min_lr=1.0e-7",
                     "schedule.warmup_epochs=3", "schedule.warmup_start_factor=0.0", steps_per_epoch=spe,
                     epochs=300)
    assert len(lr) == 300 * spe
    warm = 3 * spe
    assert lr[0] == 0.0
    assert lr[warm] == pytest.approx(0.08, rel=1e-7)
    assert lr[warm - 1] == pytest.approx(0.08 * (warm - 1) / warm, rel=1e-6)
    # Closed form of the last step: 297 epochs (minus one step) into the 40000-epoch cosine.
    e = (300 * spe - 1 - warm) / spe
    assert lr[-1] == pytest.approx(1e-7 + (0.08 - 1e-7) * 0.5 * (1 + math.cos(math.pi * e / 40000)), rel=1e-6)
    assert abs(lr[-1] / 0.08 - 1) < 2e-4  # 1.36e-4: "effectively constant"
    assert np.all(np.diff(lr[warm:]) <= 0)


def test_reference_matches_mindcv_scheduler():
    """MindCV's create_scheduler with the published example's arguments (in a subprocess: importing mindcv
    leaves cells alive until interpreter shutdown, which then prints Cell.__del__ errors)."""
    code = ("import json, deeplabv3; from mindcv.scheduler import create_scheduler; print(json.dumps(create_scheduler("
            "41, scheduler='cosine_decay', lr=0.08, min_lr=1e-7, warmup_epochs=3, warmup_factor=0.0, "
            "decay_epochs=40000, num_epochs=300)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    theirs = np.asarray(json.loads(out.stdout.strip().splitlines()[-1]), np.float32)
    _, lr = schedule("schedule.name=reference", "schedule.base_lr=0.08", "schedule.min_lr=1.0e-7",
                     "schedule.warmup_epochs=3", steps_per_epoch=41, epochs=300)
    np.testing.assert_allclose(lr, theirs, rtol=1e-6, atol=1e-9)
