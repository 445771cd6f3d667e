"""Labels outside the model's classes stop training before any work, with exit 2 and the fix in train.log."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_tool
from deeplabv3.data.mindrecord import build_mindrecord
from engine_helpers import run_overrides, write_training_set


@pytest.fixture(scope="module")
def record_21(tmp_path_factory) -> Path:
    return write_training_set(tmp_path_factory.mktemp("classes21"), num_images=8)


def _train(mindrecord: Path, work: Path, *extra: str):
    config = work.parent / "empty.yaml"
    config.write_text("{}\n", encoding="utf-8")
    return run_tool("train", ["--config", config, "--set", *run_overrides(mindrecord, work, 3, extra)], timeout=300)


def test_fine_tuning_with_fewer_classes_than_the_mindrecord_stops_with_the_fix(record_21, tmp_path):
    work = tmp_path / "work"
    result = _train(record_21, work, "model.num_classes=5", "model.ignore_head_mismatch=true")
    assert result.returncode == 2, result.stderr[-2000:]
    for text in (result.stderr, (work / "train.log").read_text()):
        assert "holds labels for 21 classes" in text and "model.num_classes is 5" in text
        assert "--num-classes 5" in text and "data.label_map" in text
    assert "GatherD" not in result.stderr and "Traceback" not in result.stderr


def test_unchecked_labels_beyond_the_classes_are_a_named_error(record_21, tmp_path):
    unchecked = build_mindrecord(record_21.parent / "train.txt", tmp_path / "unchecked.mindrecord")  # no num_classes
    work = tmp_path / "work"
    result = _train(Path(unchecked.first_shard), work, "model.num_classes=5")
    assert result.returncode == 2, result.stderr[-2000:]
    log = (work / "train.log").read_text()
    assert "built without --num-classes" in log
    for text in (result.stderr, log):
        assert "a training batch holds label value(s)" in text and "outside [0, 4]" in text
    assert "GatherD" not in result.stderr and "Traceback" not in result.stderr
