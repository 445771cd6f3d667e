"""tools/analyze_dataset.py on a prepared list and on its MindRecord: counts, stray values, sizes, weights."""
from __future__ import annotations

import json

import numpy as np
from PIL import Image

from conftest import run_tool
from data_helpers import write_png
from deeplabv3.data import synthetic
from deeplabv3.data.lists import read_pairs
from deeplabv3.data.mindrecord import build_mindrecord

CONFIG = ["model.num_classes=3", "data.class_names=[background,disc,box]", "data.mask_format=rgb",
          "data.palette=[[0,0,0],[220,40,40],[40,90,230]]"]


def test_analysis_of_list_and_mindrecord(tmp_path):
    images, masks = synthetic.write_custom(tmp_path / "mine", num_images=5)
    done = run_tool("prepare_dataset", ["--kind", "custom", "--images", images, "--masks", masks, "--out",
                                        tmp_path / "prep", "--set", *CONFIG])
    assert done.returncode == 0, done.stderr
    train = tmp_path / "prep" / "train.txt"
    shard = build_mindrecord(train, tmp_path / "train.mindrecord", num_classes=3).first_shard
    labels = [np.asarray(Image.open(lbl)) for _, lbl in read_pairs(train)]
    expected = np.bincount(np.concatenate([lbl.ravel() for lbl in labels]), minlength=3)[:3]

    for source in (["--mindrecord", shard, "--num-classes", 3], ["--list", train]):
        out = tmp_path / source[0].strip("-")
        result = run_tool("analyze_dataset", [*source, "--out", out])
        assert result.returncode == 0, result.stderr
        report = json.loads((out / "analysis.json").read_text())
        assert [c["pixels"] for c in report["classes"]] == expected.tolist()
        assert [c["images"] for c in report["classes"]] == [sum((lbl == c).any() for lbl in labels) for c in range(3)]
        assert report["sizes"] == [{"height": 96, "width": 112, "images": 5}]
        assert set(report["suggested_class_weights"]) == {"inverse_frequency", "median_frequency"}
        assert (out / "class_histogram.png").stat().st_size > 0
    assert [c["name"] for c in report["classes"]] == ["background", "disc", "box"]  # from dataset.json

    stray = np.array(Image.open(read_pairs(train)[0][1]))
    stray[:2, :3] = 9
    write_png(tmp_path / "prep" / "labels" / "train" / "sample_0000.png", stray, "L")
    result = run_tool("analyze_dataset", ["--list", train, "--out", tmp_path / "stray"])
    report = json.loads((tmp_path / "stray" / "analysis.json").read_text())
    assert report["values_outside_classes"]["9"]["pixels"] == 6
    assert list(report["values_outside_classes"]["9"]["files"]) == [str(tmp_path / "prep/labels/train/sample_0000.png")]
    assert "value 9 outside the classes: 6 px in 1 file(s)" in result.stdout
