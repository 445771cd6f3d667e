"""Shared pieces of the deployment tests: the demo network with seeded weights, its config, a VOC-format set."""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import mindspore as ms
import numpy as np
import yaml

from conftest import REPO
from deeplabv3.config import Config, load_config
from deeplabv3.models import build_model
from eval_helpers import write_voc_set
from models_helpers import randomize

DEMO_CONFIG = REPO / "configs" / "demo.yaml"
SIZES = [(97, 130), (121, 80), (101, 101), (70, 150)]
CROP = 97  # network inputs 97 (scale 1.0) and 73 (scale 0.75)


def demo_setup(root: Path, seed: int = 5) -> Tuple[Path, Path, Config, List[np.ndarray]]:
    """The demo network (configs/demo.yaml) with seeded random weights (centred BN means, a classifier without
    bias, so the argmax follows the image rather than one class everywhere) as a checkpoint, a config file pointing at a
    small VOC-format val set, the loaded config and the labels written."""
    list_path, labels = write_voc_set(root / "voc", SIZES, num_classes=6)
    config = {"_base_": [str(DEMO_CONFIG)], "data": {"eval": {"list": str(list_path)}},
              "eval": {"crop_size": CROP, "batch_size": 2, "num_workers": 0},
              "runtime": {"work_dir": str(root / "work")}}
    config_path = root / "demo_small.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    cfg = load_config(config_path)
    net = build_model(cfg)
    randomize(net, seed)
    for param in net.get_parameters():  # centred BN statistics and no classifier bias: several classes win
        if param.name.endswith("moving_mean") or param.name == "conv.bias":
            param.set_data(ms.Tensor(np.zeros(param.shape, np.float32)))
    checkpoint = root / "demo.ckpt"
    ms.save_checkpoint(net, str(checkpoint))
    return config_path, checkpoint, cfg, labels
