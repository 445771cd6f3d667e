"""Checkpoint files: a kill at any moment leaves only complete checkpoints visible; rotation; the pointer."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import mindspore as ms

from conftest import REPO
from deeplabv3.engine.checkpointing import (latest_checkpoint, periodic_checkpoints, remove_stale_temp_files,
                                            restore_parameters, save_training_checkpoint)
from deeplabv3.engine.loop_state import LoopState, NonFiniteLossError
from deeplabv3.engine.train_step import StepStats
from deeplabv3.models.checkpoint import CheckpointError, read_checkpoint

# Saves ~48 MB checkpoints back to back (tens of ms each); every tensor holds the step number the file claims.
WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    import deeplabv3
    import mindspore as ms
    from deeplabv3.engine.checkpointing import save_training_checkpoint
    from deeplabv3.engine.loop_state import LoopState

    params = [ms.Parameter(ms.Tensor(np.zeros((1024, 1024), np.float32)), name=f"layer{i}.weight")
              for i in range(12)]
    step = 0
    while True:
        step += 1
        for p in params:
            p.set_data(ms.Tensor(np.full(p.shape, step, np.float32)))
        print(f"saving {step}", flush=True)
        save_training_checkpoint(sys.argv[1], params, LoopState(step=step), keep_max=2)
""")


def _check_complete(path):
    entries = read_checkpoint(path)
    state = LoopState.from_entries(entries, str(path))
    for i in range(12):
        assert entries[f"layer{i}.weight"].shape == (1024, 1024)
        assert np.all(entries[f"layer{i}.weight"] == state.step), path
    return state.step


def test_sigkill_while_saving_never_exposes_a_partial_checkpoint(tmp_path):
    leftovers = 0
    last_step = 0
    for attempt in range(3):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE,
                                text=True)
        try:
            for _ in range(2 + attempt):  # let some saves complete, then kill shortly into the next one
                assert proc.stdout.readline().startswith("saving"), "the checkpoint writer died"
            time.sleep(0.004 * attempt)
        finally:
            proc.kill()
            proc.wait(timeout=60)
            proc.stdout.close()
        leftovers += sum(".tmp-" in p.name for p in (tmp_path / "checkpoints").iterdir())
        latest = latest_checkpoint(tmp_path)
        assert latest is not None
        last_step = _check_complete(latest)
        found = periodic_checkpoints(tmp_path)
        # The pointer is written after its file and old files are pruned after the pointer, so a kill in between
        # leaves one complete file newer than the pointer, or one more than keep_max.
        assert latest in found[-2:] and len(found) <= 3
        for path in found:
            _check_complete(path)
        remove_stale_temp_files(tmp_path)
        assert not [p for p in (tmp_path / "checkpoints").iterdir() if ".tmp-" in p.name]
    assert last_step >= 1
    assert leftovers > 0, "no kill landed inside a save; the test did not exercise an interrupted write"


def test_rotation_keeps_the_newest_and_the_pointer_follows(tmp_path):
    params = [ms.Parameter(ms.Tensor(np.ones((2, 2), np.float32)), name="a.weight")]
    for step in (5, 10, 15, 20):
        save_training_checkpoint(tmp_path, params, LoopState(step=step, best_metric=3.5), keep_max=2)
    assert [p.name for p in periodic_checkpoints(tmp_path)] == ["step_00000015.ckpt", "step_00000020.ckpt"]
    assert (tmp_path / "last_checkpoint").read_text().strip() == "checkpoints/step_00000020.ckpt"
    state = LoopState.from_entries(read_checkpoint(latest_checkpoint(tmp_path)), "x")
    assert state.step == 20 and state.best_metric == 3.5


def test_weights_only_file_is_refused_for_resume_with_the_fix(tmp_path):
    path = tmp_path / "weights.ckpt"
    ms.save_checkpoint([ms.Parameter(ms.Tensor(np.ones(2, np.float32)), name="a.weight")], str(path))
    with pytest.raises(CheckpointError, match="model.init_checkpoint"):
        LoopState.from_entries(read_checkpoint(path), str(path))
    with pytest.raises(CheckpointError, match="moments.a.weight"):
        restore_parameters([ms.Parameter(ms.Tensor(np.ones(2, np.float32)), name="moments.a.weight")],
                           read_checkpoint(path), str(path))


def test_rotation_leaves_checkpoints_ahead_of_a_resumed_run(tmp_path):
    params = [ms.Parameter(ms.Tensor(np.ones((2, 2), np.float32)), name="a.weight")]
    for step in (10, 20, 30):
        save_training_checkpoint(tmp_path, params, LoopState(step=step), keep_max=2)
    save_training_checkpoint(tmp_path, params, LoopState(step=15), keep_max=2)  # resumed from step 10
    assert [p.name for p in periodic_checkpoints(tmp_path)] == ["step_00000015.ckpt", "step_00000020.ckpt",
                                                                "step_00000030.ckpt"]
    assert latest_checkpoint(tmp_path).name == "step_00000015.ckpt"


def test_the_loop_state_counts_steps_data_position_and_skipped_steps():
    state = LoopState(data_batch=8)
    finite, nonfinite = StepStats(loss=1.0, finite=True, scale=1.0), StepStats(loss=float("nan"), finite=False,
                                                                               scale=1024.0)
    for stats in (finite, nonfinite, nonfinite, finite, nonfinite):
        state.advance(stats, batches=2, batches_per_epoch=10, max_consecutive_nonfinite=0)  # 0: never stop
    assert (state.step, state.data_epoch, state.data_batch) == (5, 1, 8)
    assert (state.skipped_steps, state.nonfinite_run) == (3, 1)
    state.advance(nonfinite, 2, 10, max_consecutive_nonfinite=3)
    with pytest.raises(NonFiniteLossError, match=r"3 consecutive steps .*\(last loss nan, loss scale 1024\)"):
        state.advance(nonfinite, 2, 10, max_consecutive_nonfinite=3)
