"""Every tool turns a config error into exit status 2 and a one-paragraph message, never a traceback."""
from __future__ import annotations

import pytest

from conftest import REPO, run_tool

CONFIG_TOOLS = ["train", "eval", "predict", "export", "inspect_model"]


@pytest.mark.parametrize("tool", CONFIG_TOOLS)
def test_help_works(tool):
    result = run_tool(tool, ["--help"], timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--config" in result.stdout and "--set" in result.stdout


@pytest.mark.parametrize("tool", CONFIG_TOOLS)
def test_misspelt_key_exits_2_with_suggestion(tool, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optimizer:\n  weight_decay_filtr: all\n", encoding="utf-8")
    extra = {"eval": ["--checkpoint", "x.ckpt"], "predict": ["--checkpoint", "x.ckpt", "--input", "x.jpg",
                                                              "--out-dir", str(tmp_path / "o")],
             "export": ["--checkpoint", "x.ckpt", "--format", "MINDIR", "--out", str(tmp_path / "m")]}
    result = run_tool(tool, ["--config", bad, *extra.get(tool, [])], timeout=120)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()
    assert message[0].startswith("error: ")
    text = " ".join(message)
    assert str(bad) in text and "did you mean weight_decay_filter?" in text


def test_wrong_type_override_exits_2():
    result = run_tool("train", ["--config", REPO / "configs" / "demo.yaml", "--set", "train.epochs=three"],
                      timeout=120)
    assert result.returncode == 2
    assert "'train.epochs': expected int, got 'three' (str)" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_readme_config_reference_is_current():
    result = run_tool("config_reference", ["--check", REPO / "README.md"], timeout=60)
    assert result.returncode == 0, result.stderr


def test_missing_initial_weights_are_named_before_any_work(tmp_path):
    result = run_tool("train", ["--config", REPO / "configs" / "demo.yaml", "--work-dir", tmp_path / "w",
                                "--set", "model.pretrained_backbone=missing/resnet101.ckpt"], timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "'model.pretrained_backbone' is missing/resnet101.ckpt, which does not exist" in result.stderr


# --set value -> what the message must say: each once let a run start (a default 58 M-parameter network, a NaN
# learning rate blamed on another key, a 1-pixel network input).
CONFIG_GAPS = {
    "model=null": "--set model=null: section 'model' is null",
    "schedule.base_lr=.nan": "--set schedule.base_lr=.nan: 'schedule.base_lr' is nan; it must be a finite number",
    "schedule.base_lr=.inf": "--set schedule.base_lr=.inf: 'schedule.base_lr' is inf; it must be a finite number",
    "eval.crop_size=1": "'eval.scales' [1.0] with 'eval.crop_size' 1 gives a 1 px network input",
    "eval.scales=[0.001]": "'eval.scales' [0.001] with 'eval.crop_size' 161 gives a 1 px network input",
    "data.train.crop_size=8": "'data.train.crop_size' is 8, smaller than the output stride 16",
}

# Runs tools/train.py as __main__ once per case in one interpreter (one MindSpore import for all of them): the
# tool's own ``sys.exit(run_tool(main))``, so the status is the one a shell would see.
_DRIVER = """
import contextlib, io, json, runpy, sys
tool, config, work, cases = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
results = []
for override in cases:
    sys.argv = [tool, "--config", config, "--work-dir", work, "--set", override]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            runpy.run_path(tool, run_name="__main__")
            status = 0
        except SystemExit as exc:
            status = exc.code
    results.append({"override": override, "status": status, "stderr": err.getvalue()})
print(json.dumps(results))
"""


def test_audited_config_gaps_exit_2_naming_the_key(tmp_path):
    import json
    import subprocess
    import sys

    work = tmp_path / "work"
    done = subprocess.run([sys.executable, "-c", _DRIVER, str(REPO / "tools" / "train.py"),
                           str(REPO / "configs" / "demo.yaml"), str(work), json.dumps(list(CONFIG_GAPS))],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert [r["override"] for r in results] == list(CONFIG_GAPS)
    for result in results:
        message = " ".join(result["stderr"].split())
        assert result["status"] == 2, result
        assert message.startswith("error: ") and "Traceback" not in message, result
        assert CONFIG_GAPS[result["override"]] in message, result
    assert not work.exists()


def test_a_null_section_exits_2_from_a_launched_tool(tmp_path):
    result = run_tool("train", ["--config", REPO / "configs" / "demo.yaml", "--work-dir", tmp_path / "w",
                                "--set", "model=null"], timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: --set model=null: section 'model' is null")


def test_float16_without_loss_scaling_is_warned_once_at_training_start(tmp_path):
    """The run stops at its missing training data, after the start-of-training log."""
    work = tmp_path / "w"
    result = run_tool("train", ["--config", REPO / "configs" / "demo.yaml", "--work-dir", work, "--set",
                                "train.amp_level=O2", "loss_scale.type=none", "data.train.mindrecord=null"],
                      timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "data.train.mindrecord is not set" in result.stderr
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line and "'train.amp_level'" in line]
    assert len(warnings) == 1, result.stderr
    assert "--set train.amp_level=O2, --set loss_scale.type=none: 'train.amp_level' is O2" in warnings[0]
    assert "'loss_scale.type' is none" in warnings[0]
    assert "amp_level: O2" in (work / "config.yaml").read_text(encoding="utf-8")
