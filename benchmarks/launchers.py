"""Training speed and memory of the demo network under every launcher, through the real tools and scripts.

One process on the global batch, then N ranks sharing it under ``mpirun`` (default CPU backend: mpi4py, split
step), ``mpirun`` with ``distributed.backend=mindspore`` (dynamic-cluster bridge, AllReduce inside the step graph)
and ``msrun``; optionally each with gradient accumulation. Every run trains ``--steps`` steps of
``configs/demo.yaml`` on a freshly written demo data set and is read back from its ``metrics.jsonl``: the median
logged step time after the first log interval, images/s, rank 0's peak RSS at the first and the last log line,
and the graphs the train step had compiled at the first and the last log line (equal when nothing recompiles).

    python benchmarks/launchers.py [--ranks 2] [--global-batch 8] [--steps 60] [--accum 1 2] [--repo DIR]

``--repo DIR`` runs another checkout's scripts and package (e.g. an older commit from ``git worktree add``) on the
same data, for before/after figures from one sitting.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
LAUNCHES = {
    "1 process": ("run_standalone.sh", []),
    "mpirun, mpi4py": ("run_mpirun.sh", ["distributed.backend=mpi4py"]),
    "mpirun, mindspore": ("run_mpirun.sh", ["distributed.backend=mindspore"]),
    "msrun": ("run_msrun.sh", []),
}


def prepare_data(root: Path, python: str) -> Path:
    """The demo data set, prepared and packed into a one-shard MindRecord; returns the shard."""
    tools = ROOT / "tools"
    subprocess.run([python, tools / "make_demo_data.py", "--out", root / "raw", "--num-train", "120", "--num-val", "8",
                    "--num-sbd", "40"], check=True, capture_output=True)
    subprocess.run([python, tools / "prepare_voc.py", "--voc-root", root / "raw/VOC2012", "--sbd-root",
                    root / "raw/benchmark_RELEASE/dataset", "--out", root / "prepared"], check=True, capture_output=True)
    subprocess.run([python, tools / "build_mindrecord.py", "--list", root / "prepared/vocaug_train.txt", "--out",
                    root / "train.mindrecord", "--num-shards", "1", "--num-classes", "21"], check=True,
                   capture_output=True)
    return root / "train.mindrecord0"


def run_one(repo: Path, python: str, name: str, ranks: int, shard: Path, work_dir: Path, global_batch: int,
            steps: int, accum: int) -> Dict[str, object]:
    """Train under one launcher; the figures read back from metrics.jsonl."""
    script, extra = LAUNCHES[name]
    world = 1 if name == "1 process" else ranks
    per_rank = global_batch // world // accum
    overrides = [f"data.train.mindrecord={shard}", f"data.train.batch_size={per_rank}", f"train.max_steps={steps}",
                 f"train.grad_accum_steps={accum}", "train.log_interval=5", "train.save_steps=0",
                 "train.eval_interval=0", "data.train.num_workers=1", *extra]
    cmd = [str(repo / "scripts" / script), *([] if world == 1 else [str(world)]), str(ROOT / "configs/demo.yaml"),
           "--work-dir", str(work_dir), "--set", *overrides]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "MS_", "RANK_"))}
    env.update(PYTHON=python, PYTHONPATH=str(repo))
    done = subprocess.run(["timeout", "-k", "10", "1800", *cmd], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return {"launch": name, "error": (done.stdout + done.stderr)[-800:]}
    records = [json.loads(line) for line in (work_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["type"] == "train"]
    times = [r["step_time"] for r in train[1:]] or [train[-1]["step_time"]]
    step = statistics.median(times)
    return {"launch": name, "ranks": world, "accum": accum, "s_per_step": step, "images_per_s": global_batch / step,
            "rss_first_mb": train[0]["peak_rss_mb"], "rss_last_mb": train[-1]["peak_rss_mb"],
            "graphs_first": train[0].get("graphs"), "graphs_last": train[-1].get("graphs")}


def table(rows: Sequence[Dict[str, object]]) -> str:
    lines = ["| launch | ranks | accum | s/step | img/s | peak RSS rank 0, first -> last log MB | graphs first -> last |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['launch']} | failed: {str(r['error']).splitlines()[-1][:80]} |||||")
            continue
        lines.append(f"| {r['launch']} | {r['ranks']} | {r['accum']} | {r['s_per_step']:.3f} | "
                     f"{r['images_per_s']:.1f} | {r['rss_first_mb']:.0f} -> {r['rss_last_mb']:.0f} | "
                     f"{r['graphs_first']} -> {r['graphs_last']} |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--global-batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--accum", type=int, nargs="+", default=[1])
    parser.add_argument("--launches", nargs="+", default=list(LAUNCHES), choices=list(LAUNCHES))
    parser.add_argument("--repo", type=Path, default=ROOT, help="checkout whose scripts and package run")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    python = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").is_dir() else sys.executable
    rows: List[Dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="deeplabv3_launchers_") as tmp:
        shard = prepare_data(Path(tmp) / "data", python)
        for accum in args.accum:
            for name in args.launches:
                row = run_one(args.repo.resolve(), python, name, args.ranks, shard,
                              Path(tmp) / f"run_{len(rows)}", args.global_batch, args.steps, accum)
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
