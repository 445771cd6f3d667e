"""One deployment runtime at batch 1, in its own process (see ``deploy.py``): MindSpore or onnxruntime.

``mindspore`` builds the configured network, loads the checkpoint and runs :class:`~deeplabv3.models.InferenceNet`
(softmax probabilities) in graph mode; ``onnxruntime`` runs an exported file with ``threads`` intra-op threads.
Both get the same normalised random 1 x 3 x S x S input (the time does not depend on the values); the first call
(graph compilation, session warm-up) is timed on its own. Prints one ``RESULT {json}`` line.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time

from common import RESULT_PREFIX, run_steps


def peak_rss_mb() -> float:
    """This process's own peak resident memory (``VmHWM``). ``ru_maxrss`` would report at least the parent's
    peak here: Linux keeps it across fork + exec, and the parent has MindSpore loaded."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024.0


def main() -> None:
    job = json.loads(sys.argv[1])
    os.sched_setaffinity(0, list(range(min(job["threads"], os.cpu_count() or 1))))
    import numpy as np

    x = np.random.default_rng(0).standard_normal((1, 3, job["size"], job["size"])).astype(np.float32)
    start = time.perf_counter()
    if job["runtime"] == "mindspore":
        import mindspore as ms

        from deeplabv3.config import load_config
        from deeplabv3.evaluation.predictor import load_eval_network
        from deeplabv3.models import InferenceNet
        from deeplabv3.runtime import setup_runtime

        cfg = load_config(job["config"], job["overrides"])
        setup_runtime(cfg, log_name=None).setLevel("WARNING")
        net = InferenceNet(load_eval_network(cfg, job["checkpoint"])[0], "probs")
        tensor = ms.Tensor(x)

        def step() -> None:
            net(tensor).asnumpy()
    else:
        from deeplabv3.evaluation.runners import session_options
        import onnxruntime as ort

        session = ort.InferenceSession(job["model"], session_options(job["threads"]),
                                       providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name

        def step() -> None:
            session.run(None, {name: x})
    build_s = time.perf_counter() - start
    timing = run_steps(step, job["steps"], job["warmup"])
    result = {**job, "build_s": build_s, "first_s": timing["first_s"], "step_times": timing["step_times"],
              "median_s": statistics.median(timing["step_times"]), "peak_rss_mb": peak_rss_mb()}
    print(RESULT_PREFIX + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
