"""Soak: a long demo training with periodic evaluation; memory must stay flat and nothing may recompile.

Runs the real tools as the demo does (demo data -> prepare_voc -> build_mindrecord -> tools/train.py with
configs/demo.yaml), ``--steps`` steps with an evaluation every ``--eval-interval`` steps, then reads the run's
``metrics.jsonl``: the peak RSS recorded after the first evaluation and at the end (they must differ by less than
5 %), the train step's compiled graphs at every log line and the evaluation's graphs at every evaluation (both
must stay at their first value). Prints one ``RESULT {json}`` line and a Markdown table, and writes the JSON to
``--json``.

Example: python benchmarks/soak.py                       (2,000 steps, evaluation every 200; ~10-20 min on CPU)
         python benchmarks/soak.py --steps 400 --eval-interval 100 --root /tmp/soak
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MAX_GROWTH = 0.05


def _tool(name: str, *args: Any) -> None:
    cmd = [sys.executable, str(ROOT / "tools" / f"{name}.py"), *map(str, args)]
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def prepare_data(root: Path, num_train: int, num_val: int, num_sbd: int) -> Dict[str, Path]:
    """The demo data set in its real formats, as scripts/demo.sh builds it (skipped when ``root`` holds it)."""
    mindrecord = root / "mindrecord" / "vocaug_train.mindrecord"
    val_list = root / "prepared" / "voc_val.txt"
    if not Path(f"{mindrecord}0").exists():
        _tool("make_demo_data", "--out", root / "raw", "--num-train", num_train, "--num-val", num_val,
              "--num-sbd", num_sbd)
        _tool("prepare_voc", "--voc-root", root / "raw" / "VOC2012", "--sbd-root",
              root / "raw" / "benchmark_RELEASE" / "dataset", "--out", root / "prepared")
        _tool("build_mindrecord", "--list", root / "prepared" / "vocaug_train.txt", "--out", mindrecord,
              "--num-shards", 1, "--shuffle", "--num-classes", 21, "--overwrite")
    return {"mindrecord": Path(f"{mindrecord}0"), "val_list": val_list}


def train(work_dir: Path, data: Dict[str, Path], steps: int, eval_interval: int) -> float:
    """Run the training; returns its wall time."""
    overrides = [f"data.train.mindrecord={data['mindrecord']}", f"data.eval.list={data['val_list']}",
                 f"runtime.work_dir={work_dir}", f"train.max_steps={steps}", f"train.eval_interval={eval_interval}",
                 f"train.eval_start={eval_interval}", "train.log_interval=50", f"train.save_steps={eval_interval}"]
    start = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "tools" / "train.py"), "--config", str(ROOT / "configs" / "demo.yaml"),
                    "--set", *overrides], cwd=ROOT, check=True, stderr=subprocess.DEVNULL,
                   env={**os.environ, "ONEDNN_MAX_CPU_ISA": os.environ.get("ONEDNN_MAX_CPU_ISA", "AVX2")})
    return time.perf_counter() - start


def summarise(records: Sequence[Dict[str, Any]], seconds: float) -> Dict[str, Any]:
    """The soak's figures from a run's metrics records."""
    evals = [r for r in records if r["type"] == "eval"]
    trains = [r for r in records if r["type"] == "train"]
    if not evals:
        raise SystemExit("the run recorded no evaluation; lower --eval-interval")
    after_first_eval = evals[0]["peak_rss_mb"]
    at_end = max(r["peak_rss_mb"] for r in records if "peak_rss_mb" in r)
    return {
        "steps": trains[-1]["step"], "evaluations": len(evals), "seconds": round(seconds, 1),
        "step_time_s": trains[-1]["step_time"],
        "peak_rss_after_first_eval_mb": round(after_first_eval, 1), "peak_rss_at_end_mb": round(at_end, 1),
        "growth": round(at_end / after_first_eval - 1.0, 4),
        "train_graphs": sorted({r["graphs"] for r in trains}), "eval_graphs": [r["graphs"] for r in evals],
        "mIoU": [round(r["mIoU"], 2) for r in evals],
    }


def table(result: Dict[str, Any]) -> str:
    rows = [("steps, evaluations", f"{result['steps']}, {result['evaluations']}"),
            ("wall time", f"{result['seconds']:.0f} s ({result['step_time_s']:.3f} s/step at the end)"),
            ("peak RSS after the first evaluation", f"{result['peak_rss_after_first_eval_mb']:.0f} MiB"),
            ("peak RSS at the end", f"{result['peak_rss_at_end_mb']:.0f} MiB ({100 * result['growth']:+.2f} %)"),
            ("train-step graphs at every log line", ", ".join(map(str, result["train_graphs"]))),
            ("evaluation graphs after each evaluation", ", ".join(map(str, result["eval_graphs"]))),
            ("mIoU at each evaluation", ", ".join(map(str, result["mIoU"])))]
    return "\n".join(["| figure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--eval-interval", type=int, default=200)
    parser.add_argument("--num-train", type=int, default=240, help="demo training images")
    parser.add_argument("--num-val", type=int, default=60, help="demo validation images")
    parser.add_argument("--num-sbd", type=int, default=160, help="demo SBD images")
    parser.add_argument("--root", type=Path, default=None, help="data and work dir (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "soak.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        root = args.root or Path(tmp)
        data = prepare_data(root / "data", args.num_train, args.num_val, args.num_sbd)
        work_dir = root / f"work_{args.steps}"
        seconds = train(work_dir, data, args.steps, args.eval_interval)
        lines = (work_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        result = summarise([json.loads(line) for line in lines], seconds)
    result["peak_rss_children_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0, 1)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print("RESULT " + json.dumps(result))
    print(table(result))
    steady = len(result["train_graphs"]) == 1 and len(set(result["eval_graphs"])) == 1
    return 0 if abs(result["growth"]) < MAX_GROWTH and steady else 1


if __name__ == "__main__":
    sys.exit(main())
