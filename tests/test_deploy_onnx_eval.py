"""Exported ONNX files through the evaluation protocol: the same confusion matrix as the MindSpore network,
tools/eval.py and tools/predict.py with --backend onnxruntime, and the size check."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from conftest import run_tool
from deeplabv3.config import load_config
from deeplabv3.evaluation.evaluator import evaluate
from deeplabv3.evaluation.predictor import load_eval_network
from deeplabv3.evaluation.runners import ModelFileError, OnnxRunner
from deeplabv3.export import ExportOptions, export_graph
from deploy_helpers import CROP, SIZES, demo_setup

pytestmark = [pytest.mark.usefixtures("execution_mode"),
              pytest.mark.parametrize("execution_mode", ["graph"], indirect=True)]
MULTI_SCALE_FLIP = ["eval.scales=[0.75,1.0]", "eval.flip=true"]
INPUTS = {1.0: CROP, 0.75: int((CROP - 1) * 0.75) + 1}
SLIDING = ["eval.slide=true", "eval.slide_max_size=80", f"eval.tile_size={INPUTS[0.75]}", "eval.tile_stride=40"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The demo network, its checkpoint and FP32 ONNX files at both protocol sizes."""
    root = tmp_path_factory.mktemp("deploy_eval")
    config_path, checkpoint, cfg, labels = demo_setup(root)
    net, _ = load_eval_network(cfg, checkpoint)
    models = {size: export_graph(net, cfg, root / f"demo_{size}.onnx", ExportOptions("ONNX", (size, size))).path
              for size in INPUTS.values()}
    return root, config_path, checkpoint, net, models


@pytest.mark.parametrize("overrides", [[], MULTI_SCALE_FLIP, SLIDING],
                         ids=["single_scale", "multi_scale_flip", "sliding_window"])
def test_onnxruntime_gives_the_mindspore_confusion_matrix(exported, overrides):
    _, config_path, _, net, models = exported
    cfg = load_config(config_path, overrides)
    ours = evaluate(net, cfg, progress=False)
    runner = OnnxRunner(list(models.values()), cfg.eval.flip, threads=2)
    theirs = evaluate(runner, cfg, progress=False)
    a, b = np.asarray(ours["confusion_matrix"]), np.asarray(theirs["confusion_matrix"])
    assert a.sum() == b.sum() > 0
    assert np.count_nonzero(a.sum(axis=0)) >= 2  # the network predicts several classes, not one everywhere
    assert np.abs(a - b).sum() / 2 <= 0.001 * a.sum()  # at most 0.1 % of the pixels move to another cell
    assert theirs["settings"]["backend"] == "onnxruntime" and theirs["settings"]["output_stride"] == 16


def test_a_size_without_a_file_is_refused_before_any_image(exported):
    _, config_path, _, _, models = exported
    cfg = load_config(config_path, MULTI_SCALE_FLIP)
    with pytest.raises(ModelFileError, match=rf"no model file is exported for {INPUTS[0.75]}x{INPUTS[0.75]}"):
        evaluate(OnnxRunner([models[CROP]], True), cfg, progress=False)


def test_eval_and_predict_tools_with_onnxruntime(exported, tmp_path):
    root, config_path, checkpoint, _, models = exported
    common = ["--config", config_path, "--set", *MULTI_SCALE_FLIP]
    ort_args = ["--backend", "onnxruntime", "--model", *models.values(), "--threads", "2"]
    outs = {}
    for name, backend in (("ms", ["--checkpoint", checkpoint]), ("ort", ort_args)):
        outs[name] = tmp_path / f"{name}.json"
        result = run_tool("eval", [*common, *backend, "--out", outs[name]])
        assert result.returncode == 0, result.stderr
        assert "| class" in result.stdout and "| aAcc" in result.stdout
    ms_results, ort_results = (json.loads(outs[n].read_text()) for n in ("ms", "ort"))
    assert ort_results["model"] == [str(p.resolve()) for p in models.values()]
    assert ort_results["checkpoint"] is None
    a, b = np.asarray(ms_results["confusion_matrix"]), np.asarray(ort_results["confusion_matrix"])
    assert np.abs(a - b).sum() / 2 <= 0.001 * a.sum()

    images = root / "voc" / "JPEGImages"
    result = run_tool("predict", [*common, *ort_args, "--input", images, "--out-dir", tmp_path / "pred", "--overlay"])
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "pred" / "summary.json").read_text())
    assert len(summary["images"]) == len(SIZES)
    for record, (h, w) in zip(summary["images"], SIZES):
        with Image.open(record["mask"]) as mask:
            assert mask.mode == "P" and mask.size == (w, h)
        assert Image.open(record["overlay"]).size[0] == w

    wrong = run_tool("eval", [*common, "--backend", "onnxruntime", "--model", models[CROP]])
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert f"no model file is exported for {INPUTS[0.75]}x{INPUTS[0.75]}" in wrong.stderr
    neither = run_tool("eval", common)
    assert neither.returncode == 2 and "--checkpoint" in neither.stderr


def test_files_of_another_batch_size_layout_and_output_give_the_same_matrix(exported):
    root, config_path, _, net, _ = exported
    cfg = load_config(config_path)  # eval.batch_size 2: the file's batch of 3 is padded, its NHWC input fed
    options = ExportOptions("ONNX", (CROP, CROP), batch_size=3, output="logits", input_format="NHWC", atol=1e-3)
    nhwc = export_graph(net, cfg, root / "nhwc_b3_logits.onnx", options).path
    ours = np.asarray(evaluate(net, cfg, progress=False)["confusion_matrix"])
    theirs = np.asarray(evaluate(OnnxRunner([nhwc], False), cfg, progress=False)["confusion_matrix"])
    assert np.abs(ours - theirs).sum() / 2 <= 0.001 * ours.sum()
