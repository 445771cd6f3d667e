"""One configuration of this project's network on MindSpore, in its own process (see ``common.py``).

Training runs the project's :class:`~deeplabv3.engine.train_step.TrainStep` (one fused graph: forward, loss,
backward, momentum update, one host read per step) with the project's loss and optimizer; inference runs the
network in inference mode through :class:`~deeplabv3.models.InferenceNet` returning logits, copied to the host.
Inputs are random: the time does not depend on the values.

Options (``Spec.options``), all of which leave the numerics unchanged:
  jit_level      graph compilation level (``ms.set_context(jit_config={"jit_level": ...})``: O0, O1, O2)
  compile_cache  a work directory: ``runtime.compile_cache`` caches compiled graphs under it between runs
  context        extra ``ms.set_context`` keywords (e.g. ``memory_optimize_level``, ``runtime_num_threads``)
  recompute      ``bn_relu``: BatchNorm and ReLU outputs are recomputed in the backward pass instead of kept
"""
from __future__ import annotations

import sys
import time

from common import emit, run_steps, worker_spec


def configure(spec):
    """The project config for ``spec``, with the runtime (device, mode, seeds, cache) set up."""
    from deeplabv3.config import load_config
    from deeplabv3.runtime import setup_runtime

    overrides = [f"model.backbone={spec.backbone}", f"model.output_stride={spec.output_stride}",
                 f"model.num_classes={spec.num_classes}", f"model.aspp_channels={spec.aspp_channels}"]
    if spec.layers:
        overrides.append(f"model.layers=[{','.join(map(str, spec.layers))}]")
    cache = spec.options.get("compile_cache")
    if cache:
        overrides += ["runtime.compile_cache=true", f"runtime.work_dir={cache}"]
    cfg = load_config(None, overrides)
    logger = setup_runtime(cfg, log_name=None)
    logger.setLevel("WARNING")
    import mindspore as ms

    jit_level = spec.options.get("jit_level")
    if jit_level:
        ms.set_context(jit_config={"jit_level": str(jit_level)})
    if spec.options.get("context"):
        ms.set_context(**spec.options["context"])
    return cfg, logger


def apply_recompute(net, what: str) -> int:
    """Mark the cells named by ``what`` for recomputation; returns how many were marked."""
    from mindspore import nn

    kinds = {"bn_relu": (nn.BatchNorm2d, nn.ReLU), "relu": (nn.ReLU,)}[what]
    count = 0
    for _, cell in net.cells_and_names():
        if isinstance(cell, kinds):
            cell.recompute()
            count += 1
    return count


def main() -> None:
    spec = worker_spec(sys.argv[1:])
    import numpy as np
    import deeplabv3  # noqa: F401  (oneDNN ISA pin and quiet logging before the first kernel)
    import mindspore as ms

    from deeplabv3.models import InferenceNet, build_model

    cfg, logger = configure(spec)
    rng = np.random.default_rng(0)
    images = ms.Tensor(rng.standard_normal((spec.batch, 3, spec.size, spec.size), dtype=np.float32))
    start = time.perf_counter()
    net = build_model(cfg)
    extra = {}
    if spec.mode == "train":
        from deeplabv3.engine.losses import build_loss
        from deeplabv3.engine.optim import build_optimizer
        from deeplabv3.engine.train_step import TrainStep

        labels_np = rng.integers(0, spec.num_classes, (spec.batch, spec.size, spec.size)).astype(np.int32)
        labels_np[:, :8] = 255  # some ignored pixels, as in real crops
        labels = ms.Tensor(labels_np)
        net.set_train(True)
        if spec.options.get("recompute"):
            extra["recomputed_cells"] = apply_recompute(net, str(spec.options["recompute"]))
        lr = np.full(1 + spec.warmup + spec.steps, 1e-3, np.float32)
        optimizer = build_optimizer(net.trainable_params(), cfg.optimizer, lr, logger)
        loss_fn = build_loss(cfg)
        train_step = TrainStep(net, loss_fn, optimizer, cfg.loss_scale)
        losses = []

        def step() -> None:
            losses.append(train_step([(images, labels)]).loss)
    else:
        infer = InferenceNet(net, output="logits")

        def step() -> None:
            infer(images).asnumpy()
    build_s = time.perf_counter() - start
    timing = run_steps(step, spec.steps, spec.warmup)
    if spec.mode == "train":
        # identical numerics <=> identical losses and final state (weights, BN statistics) across options
        extra["losses"] = losses
        extra["state_checksum"] = float(sum(np.abs(p.asnumpy()).astype(np.float64).sum()
                                            for p in net.get_parameters()))
    emit(spec, "mindspore", timing, build_s, version=ms.__version__, **extra)


if __name__ == "__main__":
    main()
