"""Deployment runtimes side by side: speed at batch 1, peak memory, file size and mIoU, one row per runtime.

For one config + checkpoint: the network is exported once to ONNX (float32, verified against MindSpore), then
converted to fp16 and int8 (calibrated on --calib-list, checked against float32: the "agree" column) with the
converters ``tools/export.py --precision`` uses, but without its --min-agreement refusal: every figure is reported. Rows: MindSpore FP32 (the checkpoint), onnxruntime FP32 / FP16 / INT8 and,
with --torch-python, PyTorch FP32 eager of the same architecture (``torch_worker.py``, its own random weights:
speed only). Each speed figure comes from a fresh process pinned to --threads cores; the rows alternate
(A, B, C, ..., A, B, C, ... --repeats times, medians reported), so a change of machine load hits every row alike.
The first call (compilation / session warm-up) is reported apart from the steady median.

With --list, each row's mIoU comes from the project's evaluation protocol on that list at --size, single scale
(``tools/eval.py --backend onnxruntime`` computes the same thing).

  python benchmarks/deploy.py --config configs/deeplabv3_s16_r101_vocaug.yaml --random-weights /tmp/r101.ckpt \\
      --calib-list demo_data/prepared/voc_val.txt --size 513 --json benchmarks/results/deploy_r101.json
  python benchmarks/deploy.py --config configs/demo.yaml --checkpoint work_dirs/demo/best.ckpt \\
      --list demo_data/prepared/voc_val.txt --size 161
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from common import (HERE, RESULT_PREFIX, ROOT, Spec, format_table, machine_info, run_worker, worker_env,
                    write_json)

PRECISIONS = ("fp32", "fp16", "int8")


RESIDUAL_GAMMA = 0.2


def random_checkpoint(cfg, path: Path) -> Path:
    """A checkpoint of the configured network with its seeded initial weights and each residual branch's last
    BatchNorm scaled by ``RESIDUAL_GAMMA``.

    With every BatchNorm an identity, the 33 residual additions of ResNet-101 grow the activations to logits of
    ~1e4 (std), where one float32 rounding step already moves the probabilities by 1e-2; trained ResNets keep
    those gammas small. Scaled, activations and logits stay in a trained network's range (logits ~0.1-0.3), so
    the export check and the int8 calibration mean what they mean for real weights.
    """
    import mindspore as ms

    from deeplabv3.models import build_model

    ms.set_seed(0)
    net = build_model(cfg)
    for param in net.get_parameters():
        if param.name.endswith("bn3.gamma"):
            param.set_data(ms.Tensor(np.full(param.shape, RESIDUAL_GAMMA, np.float32)))
    path.parent.mkdir(parents=True, exist_ok=True)
    ms.save_checkpoint(net, str(path))
    return path


def export_all(cfg, checkpoint: str, size: int, work: Path, calib_list: Optional[str], calib_images: int,
               calib_method: str) -> Dict[str, Dict[str, object]]:
    """The float32 ONNX file (verified) and its fp16 / int8 forms (checked against it): path, MB, agreement."""
    from deeplabv3.evaluation.predictor import load_eval_network
    from deeplabv3.export import ExportOptions, export_graph
    from deeplabv3.export.precision import argmax_agreement, calibration_batches, convert
    from deeplabv3.export.verify import sample_input

    net, _ = load_eval_network(cfg, checkpoint)
    base = ExportOptions("ONNX", (size, size), atol=1e-3)  # R101 float32 rounding reaches a few 1e-4 (docs/deploy.md)
    fp32 = export_graph(net, cfg, work / "model_fp32.onnx", base).path
    files = {"fp32": {"path": str(fp32), "mb": fp32.stat().st_size / 1e6, "agreement": 1.0}}
    for precision in PRECISIONS[1:]:
        options = ExportOptions("ONNX", (size, size), precision=precision, calib_list=calib_list,
                                calib_images=calib_images, calib_method=calib_method)
        batches = calibration_batches(cfg, options, size, size, sample_input(cfg, 1, size, size))
        target = work / f"model_{precision}.onnx"
        convert(fp32, target, options, batches)
        files[precision] = {"path": str(target), "mb": target.stat().st_size / 1e6,
                            "agreement": argmax_agreement(fp32, target, batches, "probs")}
        print(f"{precision}: {100 * files[precision]['agreement']:.2f}% argmax agreement with fp32", file=sys.stderr)
    return files


def run_job(python: str, job: Dict[str, object], timeout: float = 1800) -> Dict[str, object]:
    """One ``deploy_worker.py`` run in a fresh process; its figures plus the load average before it."""
    env = worker_env(Spec(mode="infer", threads=int(job["threads"])), "mindspore")
    load_before = os.getloadavg()[0]
    proc = subprocess.run([python, str(HERE / "deploy_worker.py"), json.dumps(job)], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
        raise RuntimeError(f"deploy worker failed on {job['runtime']} {job.get('model', '')}:\n{tail}")
    return {**json.loads(lines[-1][len(RESULT_PREFIX):]), "load_before": load_before}


def torch_spec(cfg, size: int, args: argparse.Namespace) -> Optional[Spec]:
    """The PyTorch worker's configuration of the same architecture, where it can build it."""
    model = cfg.model
    if model.name != "deeplabv3" or model.base_channels != 64:
        return None
    return Spec(mode="infer", backbone=model.backbone, output_stride=cfg.eval.output_stride or model.output_stride,
                size=size, batch=1, steps=args.steps, warmup=args.warmup, threads=args.threads,
                num_classes=model.num_classes, aspp_channels=model.aspp_channels,
                layers=list(model.layers) if model.layers else None)


def mean_iou(cfg, runner) -> float:
    from deeplabv3.evaluation.evaluator import evaluate

    return float(evaluate(runner, cfg, progress=False)["mIoU"])


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE")
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument("--checkpoint", help="trained weights")
    weights.add_argument("--random-weights", metavar="CKPT", help="write the network's seeded initial weights here")
    parser.add_argument("--list", default=None, help="image list for the mIoU column (omit: speed only)")
    parser.add_argument("--miou-images", type=int, default=None, help="only the first N images of --list")
    parser.add_argument("--calib-list", default=None, help="int8 calibration images (default: --list)")
    parser.add_argument("--calib-images", type=int, default=16)
    parser.add_argument("--calib-method", default="MinMax", choices=["MinMax", "Entropy", "Percentile"])
    parser.add_argument("--size", type=int, default=513, help="square input size (default 513)")
    parser.add_argument("--threads", type=int, default=2, help="cores per worker (default 2)")
    parser.add_argument("--steps", type=int, default=3, help="timed calls after the first (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls between the first and the timed ones")
    parser.add_argument("--repeats", type=int, default=1, help="alternated runs of every row (medians)")
    parser.add_argument("--work", default="/tmp/deploy_bench", help="where the exported files go")
    parser.add_argument("--torch-python", default=None, help="interpreter with torch + torchvision (PyTorch row)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    import deeplabv3  # noqa: F401  (oneDNN ISA before MindSpore)
    from deeplabv3.config import load_config
    from deeplabv3.evaluation.runners import OnnxRunner
    from deeplabv3.runtime import setup_runtime

    protocol = [f"eval.crop_size={args.size}", "eval.scales=[1.0]", "eval.flip=false", "eval.batch_size=1"]
    if args.list:
        protocol.append(f"data.eval.list={args.list}")
    overrides = [*args.overrides, *protocol]
    cfg = load_config(args.config, overrides)
    setup_runtime(cfg, log_name=None).setLevel("WARNING")
    checkpoint = args.checkpoint or str(random_checkpoint(cfg, Path(args.random_weights)))
    work = Path(args.work)
    files = export_all(cfg, checkpoint, args.size, work, args.calib_list or args.list, args.calib_images,
                       args.calib_method)

    common = {"threads": args.threads, "size": args.size, "steps": args.steps, "warmup": args.warmup}
    rows: List[Dict[str, object]] = [{"runtime": "mindspore", "precision": "fp32", "config": args.config,
                                      "overrides": overrides, "checkpoint": checkpoint, **common}]
    rows += [{"runtime": "onnxruntime", "precision": p, "model": files[p]["path"], **common} for p in PRECISIONS]
    spec = torch_spec(cfg, args.size, args)
    runs: Dict[int, List[Dict[str, object]]] = {i: [] for i in range(len(rows) + 1)}
    for _ in range(args.repeats):
        for i, job in enumerate(rows):
            runs[i].append(run_job(sys.executable, job))
            print(f"done: {job['runtime']} {job['precision']}", file=sys.stderr, flush=True)
        if args.torch_python and spec is not None:
            runs[len(rows)].append(run_worker(args.torch_python, "pytorch", spec))

    miou: Dict[int, Optional[float]] = {}
    if args.list:
        if args.miou_images:
            from deeplabv3.evaluation.evaluator import eval_pairs

            subset = work / "miou_list.txt"
            subset.write_text("".join(f"{i} {l}\n" for i, l in eval_pairs(cfg)[:args.miou_images]))
            cfg = load_config(args.config, [*overrides, f"data.eval.list={subset}", "data.eval.data_root=null"])
        from deeplabv3.evaluation.predictor import load_eval_network

        miou[0] = mean_iou(cfg, load_eval_network(cfg, checkpoint)[0])
        for i, precision in enumerate(PRECISIONS, start=1):
            miou[i] = mean_iou(cfg, OnnxRunner([files[precision]["path"]], False, args.threads))

    table, entries = [], []
    labels = [("MindSpore", "fp32")] + [("ONNX Runtime", p) for p in PRECISIONS] + [("PyTorch eager", "fp32")]
    for i, (name, precision) in enumerate(labels):
        if not runs[i]:
            continue
        steady = statistics.median(float(r["median_s"]) for r in runs[i])
        first = statistics.median(float(r["first_s"]) for r in runs[i])
        rss = statistics.median(float(r["peak_rss_mb"]) for r in runs[i])
        load = statistics.median(float(r["load_before"]) for r in runs[i])
        size_mb = files[precision]["mb"] if i and i <= len(PRECISIONS) else (
            Path(checkpoint).stat().st_size / 1e6 if i == 0 else None)
        agree = files[precision]["agreement"] if i and i <= len(PRECISIONS) else None
        value = miou.get(i)
        table.append([name, precision, f"{1000 * steady:.0f}", f"{1000 * first:.0f}", f"{rss:.0f}",
                      "-" if size_mb is None else f"{size_mb:.1f}", "-" if agree is None else f"{100 * agree:.2f}",
                      "-" if value is None else f"{value:.2f}", f"{load:.1f}"])
        entries.append({"runtime": name, "precision": precision, "steady_s": steady, "first_s": first,
                        "peak_rss_mb": rss, "file_mb": size_mb, "agreement": agree, "mIoU": value,
                        "load_before": load, "runs": runs[i]})
    print(format_table(["runtime", "precision", "ms/img", "first call ms", "peak RSS MB", "file MB",
                        "agree % (vs fp32)", "mIoU", "load"], table))
    write_json(args.json, {"machine": machine_info(), "args": vars(args), "entries": entries})
    return 0


if __name__ == "__main__":
    sys.exit(main())
