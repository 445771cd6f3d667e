"""Fixtures of the engine tests: a tiny MindRecord training set, the config of a seconds-long run, a run signalled
at a given log line."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import List, Sequence, Tuple

import cv2
import numpy as np

from conftest import REPO, TINY_MODEL
from deeplabv3.data.demo import render_scene
from deeplabv3.data.mindrecord import build_mindrecord


def write_training_set(root: Path, num_images: int = 16, size: int = 48, seed: int = 0) -> Path:
    """``num_images`` synthetic scenes as JPEG + index PNG, a list file and a one-shard MindRecord; returns
    the shard path."""
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(num_images):
        image, label = render_scene(rng, size, size)
        image_path, label_path = root / "img" / f"{i:03d}.jpg", root / "lbl" / f"{i:03d}.png"
        image_path.parent.mkdir(parents=True, exist_ok=True)
        label_path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(image_path), image)
        cv2.imwrite(str(label_path), label)
        lines.append(f"img/{i:03d}.jpg lbl/{i:03d}.png\n")
    list_path = root / "train.txt"
    list_path.write_text("".join(lines), encoding="utf-8")
    summary = build_mindrecord(list_path, root / "train.mindrecord", num_shards=1, num_classes=21)
    return Path(summary.first_shard)


def run_overrides(mindrecord: Path, work_dir: Path, steps: int, extra: Sequence[str] = ()) -> List[str]:
    """``--set`` values of a tiny, deterministic run of ``steps`` steps."""
    return [*TINY_MODEL, f"data.train.mindrecord={mindrecord}", "data.train.batch_size=4", "data.train.crop_size=33",
            "data.train.num_workers=1", "train.deterministic_data=true", f"train.max_steps={steps}",
            "train.log_interval=1", "train.save_steps=0", "schedule.name=constant", "schedule.base_lr=0.02",
            "schedule.warmup_epochs=0", f"runtime.work_dir={work_dir}", *extra]


def tiny_net(num_classes: int = 4, batchnorm: bool = True):
    """A two-layer segmentation net named like DeepLab (``backbone.*`` with BatchNorm, a biased ``conv`` head)."""
    import mindspore as ms
    from mindspore import nn

    class Backbone(nn.Cell):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, pad_mode="same", weight_init="he_uniform")
            self.bn1 = nn.BatchNorm2d(8) if batchnorm else nn.Identity()
            self.relu = nn.ReLU()

        def construct(self, x: ms.Tensor) -> ms.Tensor:
            return self.relu(self.bn1(self.conv1(x)))

    class Net(nn.Cell):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = Backbone()
            self.conv = nn.Conv2d(8, num_classes, 1, has_bias=True, weight_init="he_uniform")

        def construct(self, x: ms.Tensor) -> ms.Tensor:
            return self.conv(self.backbone(x))

    ms.set_seed(0)
    return Net()


def random_batch(n: int = 4, size: int = 8, num_classes: int = 4, seed: int = 0):
    """Images and labels (a few pixels ignored) as MindSpore tensors."""
    import mindspore as ms

    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n, 3, size, size)).astype(np.float32)
    labels = rng.integers(0, num_classes, (n, size, size)).astype(np.int32)
    labels[:, 0, :2] = 255
    return ms.Tensor(images), ms.Tensor(labels)


def snapshot(params) -> dict:
    """Name -> copy of the value, for before/after comparisons."""
    return {p.name: p.asnumpy().copy() for p in params}


def signal_when(cmd: Sequence[str], text: str, signum: int, seconds: float = 240) -> Tuple[int, str]:
    """Run ``cmd`` (its stderr piped), send ``signum`` once a stderr line contains ``text`` (or after ``seconds``);
    returns its exit status and the stderr that followed."""
    proc = subprocess.Popen(list(cmd), cwd=REPO, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + seconds
        for line in proc.stderr:
            if text in line or time.monotonic() > deadline:
                break
        proc.send_signal(signum)
        rest = proc.stderr.read()
        return proc.wait(timeout=120), rest
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
