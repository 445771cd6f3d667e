"""Fixtures of the distributed tests: launches under a time limit, a tiny training set, checkpoints, rank pids."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import cv2
import numpy as np

from conftest import REPO, TINY_MODEL
from deeplabv3.data.demo import render_scene
from deeplabv3.data.mindrecord import build_mindrecord

SCRIPTS = REPO / "scripts"
NETWORK_PREFIXES = ("backbone.", "aspp.", "conv.")


def launch_env(extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The test's environment without any launcher variable of an enclosing job, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OMPI_", "PMIX_", "MS_", "RANK_", "DEVICE_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def limited(cmd: Sequence[str], seconds: int, signal: str = "TERM") -> List[str]:
    """``cmd`` under coreutils ``timeout`` (``signal`` first, SIGKILL 10 s later)."""
    return ["timeout", "-s", signal, "-k", "10", str(seconds), *map(str, cmd)]


def run_launch(cmd: Sequence[str], seconds: int, env: Optional[Mapping[str, str]] = None,
               signal: str = "TERM") -> subprocess.CompletedProcess:
    """Run a launcher command to completion under a time limit; stdout and stderr captured together."""
    return subprocess.run(limited(cmd, seconds, signal), cwd=REPO, env=launch_env(env), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=seconds + 30)


def write_scenes(root: Path, sizes: Sequence[int], seed: int = 0) -> List[str]:
    """Distinct square JPEG + index-PNG scenes, one per size, without ignore pixels; returns the list lines.

    Without 255s every crop has the same number of valid pixels, so the mean of per-rank mean losses is the mean
    loss of the whole global batch, which the single-process comparison relies on.
    """
    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True, exist_ok=True)
    (root / "lbl").mkdir(parents=True, exist_ok=True)
    lines = []
    for i, size in enumerate(sizes):
        image, label = render_scene(rng, size, size)
        label[label == 255] = 0
        cv2.imwrite(str(root / "img" / f"{i:03d}.jpg"), image)
        cv2.imwrite(str(root / "lbl" / f"{i:03d}.png"), label)
        lines.append(f"img/{i:03d}.jpg lbl/{i:03d}.png")
    return lines


def write_mindrecord(root: Path, name: str, lines: Sequence[str]) -> Path:
    """A one-shard MindRecord of ``lines`` (relative to ``root``), in that order."""
    list_path = root / f"{name}.txt"
    list_path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return Path(build_mindrecord(list_path, root / f"{name}.mindrecord", num_shards=1, num_classes=21).first_shard)


def shard_order(first_shard: Path, rank: int, world_size: int) -> List[str]:
    """File names in the order rank ``rank`` of ``world_size`` reads them (the training pipeline's sharding with
    ``data.train.shuffle: false``)."""
    import mindspore.dataset as ds

    dataset = ds.MindDataset(str(first_shard), columns_list=["file_name"], shuffle=False, num_shards=world_size,
                             shard_id=rank)
    return [str(row["file_name"]) for row in dataset.create_dict_iterator(output_numpy=True, num_epochs=1)]


def write_tiny_config(path: Path, mindrecord: Path, batch_size: int, steps: int) -> Path:
    """A seconds-long training config: tiny DeepLabV3, no dropout, frozen BN, no random rescale, fixed order."""
    model = ", ".join(f"{k.split('.', 1)[1]}: {v}" for k, v in (o.split("=", 1) for o in TINY_MODEL))
    path.write_text(f"""_base_: {REPO / 'configs' / '_base_' / 'default_runtime.yaml'}
model: {{{model}, dropout: 0.0}}
data:
  train: {{mindrecord: {mindrecord}, batch_size: {batch_size}, crop_size: 33, min_scale: 1.0, max_scale: 1.0,
          shuffle: false, num_workers: 1}}
train: {{freeze_bn: true, deterministic_data: true, max_steps: {steps}, log_interval: 1, save_steps: 0}}
schedule: {{name: constant, base_lr: 0.01, warmup_epochs: 0}}
distributed: {{timeout: 60}}
""", encoding="utf-8")
    return path


def network_params(checkpoint: Path) -> Dict[str, np.ndarray]:
    """The network's tensors in a training checkpoint (optimizer and loop state left out)."""
    import mindspore as ms

    return {name: value.asnumpy() for name, value in ms.load_checkpoint(str(checkpoint)).items()
            if name.startswith(NETWORK_PREFIXES)}


def max_abs_diff(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> float:
    assert a.keys() == b.keys()
    return max(float(np.abs(a[k].astype(np.float64) - b[k]).max()) for k in a)


def last_checkpoint(work_dir: Path) -> Path:
    return work_dir / (work_dir / "last_checkpoint").read_text(encoding="utf-8").strip()


def descendants(pid: int) -> List[int]:
    """Every process below ``pid`` (Linux /proc)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found.extend(children)
            queue.extend(children)
    return found


def find_rank_process(root_pid: int, variable: str, value: str, seconds: float = 30) -> int:
    """The pid of the launched process whose environment has ``variable=value``."""
    deadline = time.monotonic() + seconds
    wanted = f"{variable}={value}".encode()
    while time.monotonic() < deadline:
        for pid in descendants(root_pid):
            try:
                if wanted in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                    return pid
            except OSError:
                continue
        time.sleep(0.2)
    raise AssertionError(f"no process with {variable}={value} under pid {root_pid}")


def wait_for_text(path: Path, text: str, proc: subprocess.Popen, seconds: float) -> None:
    """Block until ``text`` appears in the file ``path`` (the output of ``proc``)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise AssertionError(f"the job ended (status {proc.returncode}) before printing {text!r}:\n"
                                 f"{path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.3)
    raise AssertionError(f"{text!r} did not appear within {seconds} s")
