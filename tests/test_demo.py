"""The README's main job, scripts/demo.sh, end to end through the real tools at a reduced size."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

from conftest import REPO
from deeplabv3.visualization import PALETTE


def test_demo_script_runs_every_stage(tmp_path):
    root, work = tmp_path / "data", tmp_path / "work"
    env = {**os.environ, "DEMO_SKIP_SETUP": "1", "DEMO_PYTHON": sys.executable, "DEMO_ROOT": str(root),
           "DEMO_WORK_DIR": str(work), "DEMO_EPOCHS": "6", "DEMO_NUM_TRAIN": "64", "DEMO_NUM_VAL": "6",
           "DEMO_NUM_SBD": "24", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(["bash", str(REPO / "scripts" / "demo.sh"), "--set", "train.log_interval=5",
                             "train.eval_start=30", "train.eval_interval=30"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]

    # every stage left its product where the summary says
    assert f"work dir                 : {work}" in result.stdout
    # the summary names the checkpoint evaluation, prediction and export used (the last), and best.ckpt apart
    last = work / (work / "last_checkpoint").read_text().strip()
    assert f"evaluating {last} on" in result.stdout
    assert f"checkpoint (steps 5-7)   : {last}\n" in result.stdout
    assert f"best periodic-eval ckpt  : {work / 'best.ckpt'}\n" in result.stdout
    assert (root / "raw" / "VOC2012" / "SegmentationClass").is_dir()
    assert (root / "prepared" / "vocaug_train.txt").is_file()
    assert (root / "mindrecord" / "vocaug_train.mindrecord0").is_file()
    assert (work / "config.yaml").is_file() and (work / "metrics.jsonl").is_file()
    assert (work / "export" / "deeplabv3_demo.mindir").is_file()

    # training really learned: the logged loss fell
    losses = [r["loss_avg"] for r in map(json.loads, (work / "metrics.jsonl").read_text().splitlines())
              if r["type"] == "train"]
    assert len(losses) >= 6 and np.mean(losses[-2:]) < 0.7 * np.mean(losses[:2]), losses

    # evaluation: the per-class table, the summary line and results.json agree
    results = json.loads((work / "results.json").read_text())
    assert results["num_images"] == 6
    assert f"mIoU on the demo val set : {results['mIoU']:.2f}" in result.stdout
    assert "| class" in output and "| background" in output and "mIoU" in output

    # predictions: palette masks at the image size, overlays that show the palette colours of the classes found
    summary = json.loads((work / "predictions" / "summary.json").read_text())
    assert len(summary["images"]) == 4
    for item in summary["images"]:
        mask = Image.open(item["mask"])
        assert mask.mode == "P" and mask.size == (item["width"], item["height"])
        palette = np.array(mask.getpalette()[:3 * 21]).reshape(21, 3)
        assert (palette == np.asarray(PALETTE[:21])).all()
        labels = np.array(mask)
        overlay = np.array(Image.open(item["overlay"]).convert("RGB")).astype(int)
        assert overlay.shape[1] >= item["width"] and overlay.shape[0] >= item["height"]
        image = np.array(Image.open(item["image"]).convert("RGB")).astype(int)
        region = overlay[:item["height"], :item["width"]]
        for cls in np.unique(labels[labels > 0]):
            where = labels == cls
            # blended towards the class colour: closer to it than the raw image is
            colour = np.asarray(PALETTE[cls])
            assert np.abs(region[where] - colour).mean() < np.abs(image[where] - colour).mean()
