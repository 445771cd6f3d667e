"""A generated 3-class data set of one's own, through the README's commands: prepare, build, train, evaluate."""
from __future__ import annotations

import json

import numpy as np
from PIL import Image

from conftest import REPO, TINY_MODEL, run_tool
from deeplabv3.data import synthetic

CONFIG = REPO / "configs" / "custom_example.yaml"


def test_custom_data_trains_end_to_end_with_its_names_and_colours(tmp_path):
    images, masks = synthetic.write_custom(tmp_path / "my_data", num_images=40, size=(64, 80))
    prepared = tmp_path / "data" / "my_data"
    done = run_tool("prepare_dataset", ["--config", CONFIG, "--images", images, "--masks", masks,  # kind: custom
                                        "--val-fraction", 0.2, "--out", prepared])
    assert done.returncode == 0, done.stderr
    built = run_tool("build_mindrecord", ["--list", prepared / "train.txt", "--out", prepared / "train.mindrecord",
                                          "--shuffle"])
    assert built.returncode == 0, built.stderr
    assert json.loads((prepared / "train.mindrecord.json").read_text())["num_classes"] == 3  # from dataset.json

    work = tmp_path / "work"
    paths = [f"data.train.mindrecord={prepared / 'train.mindrecord0'}", f"data.eval.list={prepared / 'val.txt'}",
             f"runtime.work_dir={work}"]
    small = [*TINY_MODEL, "data.train.batch_size=4", "data.train.crop_size=65", "data.train.num_workers=1",
             "train.epochs=8", "train.log_interval=1", "train.eval_interval=0", "train.save_steps=0",
             "schedule.base_lr=0.02", "eval.crop_size=81"]
    trained = run_tool("train", ["--config", CONFIG, "--set", *paths, *small], timeout=900)
    assert trained.returncode == 0, trained.stderr[-3000:]
    losses = [r["loss"] for r in map(json.loads, (work / "metrics.jsonl").read_text().splitlines())
              if r["type"] == "train"]
    assert len(losses) == 64 and np.mean(losses[-8:]) < 0.7 * np.mean(losses[:8]), losses

    shown = tmp_path / "show"
    evaluated = run_tool("eval", ["--config", CONFIG, "--checkpoint", work / "checkpoints" / "step_00000064.ckpt",
                                  "--show-dir", shown, "--set", *paths, *small], timeout=600)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    for name in ("background", "disc", "box"):
        assert name in evaluated.stdout
    prediction = Image.open(next(shown.glob("*.png")))
    palette = np.asarray(prediction.getpalette()[:9]).reshape(3, 3)
    assert palette.tolist() == [[0, 0, 0], [220, 40, 40], [40, 90, 230]]
