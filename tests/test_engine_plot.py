"""metrics.jsonl reading (resumed runs, cut lines), its truncation on resume, and tools/plot_log.py."""
from __future__ import annotations

import importlib.util
import json

import pytest

from conftest import run_tool
from deeplabv3.engine.monitor import truncate_metrics
from deeplabv3.visualization import read_metrics

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def write_metrics(path, steps, loss_offset=0.0, evals=()):
    with path.open("a", encoding="utf-8") as fh:
        for step in steps:
            fh.write(json.dumps({"type": "train", "step": step, "loss": 3.0 - 0.1 * step + loss_offset,
                                 "loss_avg": 3.0 - 0.1 * step, "lr": 0.01 * step}) + "\n")
        for step, miou in evals:
            fh.write(json.dumps({"type": "eval", "step": step, "mIoU": miou}) + "\n")


def test_resumed_runs_replace_repeated_steps_and_cut_lines_are_skipped(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    write_metrics(metrics, [1, 2, 3, 4], evals=[(2, 10.0)])
    with metrics.open("a") as fh:
        fh.write('{"type": "train", "st')  # killed mid-line
    truncate_metrics(metrics, after_step=2)  # resumed from the step-2 checkpoint
    write_metrics(metrics, [3, 4, 5], loss_offset=1.0, evals=[(4, 20.0)])
    curves = read_metrics(tmp_path)
    assert curves.steps == [1, 2, 3, 4, 5]
    assert curves.loss[2:] == pytest.approx([3.7, 3.6, 3.5])
    assert curves.lr == pytest.approx([0.01, 0.02, 0.03, 0.04, 0.05])
    assert (curves.eval_steps, curves.miou) == ([2, 4], [10.0, 20.0])


@pytest.mark.skipif(HAS_MATPLOTLIB, reason="checks the message shown when matplotlib is missing")
def test_plot_log_without_matplotlib_says_how_to_install_it(tmp_path):
    write_metrics(tmp_path / "metrics.jsonl", [1, 2])
    result = run_tool("plot_log", [tmp_path, "--out", tmp_path / "curves.png"], timeout=60)
    assert result.returncode == 2 and "pip install 'deeplabv3[plot]'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="needs the optional matplotlib (the 'plot' extra)")
def test_plot_log_writes_a_png(tmp_path):
    write_metrics(tmp_path / "metrics.jsonl", [1, 2, 3], evals=[(3, 5.0)])
    out = tmp_path / "curves.png"
    result = run_tool("plot_log", [tmp_path / "metrics.jsonl", "--out", out], timeout=120)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_log_names_a_missing_source(tmp_path):
    result = run_tool("plot_log", [tmp_path / "nowhere", "--out", tmp_path / "x.png"], timeout=60)
    assert result.returncode == 2 and "no such metrics file" in result.stderr


def test_plot_log_writes_into_the_work_dir_by_default(tmp_path):
    """``tools/plot_log.py work_dirs/<run>``, as the README writes it."""
    write_metrics(tmp_path / "metrics.jsonl", [1, 2, 3])
    result = run_tool("plot_log", [tmp_path], timeout=120)
    if HAS_MATPLOTLIB:
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:  # the tool got as far as drawing
        assert result.returncode == 2 and "pip install 'deeplabv3[plot]'" in result.stderr, result.stderr
