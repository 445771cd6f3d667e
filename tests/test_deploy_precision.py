"""tools/export.py --precision fp16 / int8: written, checked against float32, evaluated with onnxruntime; an int8
file below the required agreement is not written."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from conftest import run_tool
from deploy_helpers import CROP, demo_setup

REQUIRED = {"fp16": 0.99, "int8": 0.9}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("deploy_precision")
    config_path, checkpoint, cfg, _ = demo_setup(root)
    return root, config_path, checkpoint, cfg.data.eval.list


def _export(demo, out, *extra):
    root, config_path, checkpoint, _ = demo
    return run_tool("export", ["--config", config_path, "--checkpoint", checkpoint, "--format", "ONNX",
                               "--input-size", CROP, CROP, "--out", out, *extra])


def _evaluate(demo, out, *backend):
    _, config_path, _, _ = demo
    result = run_tool("eval", ["--config", config_path, *backend, "--out", out, "--threads", "2"])
    assert result.returncode == 0, result.stderr
    assert "| aAcc" in result.stdout
    return np.asarray(json.loads(out.read_text())["confusion_matrix"])


@pytest.mark.parametrize("precision,method", [("fp16", "MinMax"), ("int8", "MinMax"), ("int8", "Percentile")])
def test_reduced_precision_is_written_verified_and_evaluated(demo, tmp_path, precision, method):
    _, _, checkpoint, calib_list = demo
    out = tmp_path / f"demo_{precision}.onnx"
    # a network with random weights has many near-ties between classes, so int8 is held to 90 % here (default 95 %)
    result = _export(demo, out, "--precision", precision, "--calib-list", calib_list, "--calib-method", method,
                     "--min-agreement", str(REQUIRED[precision]))
    assert result.returncode == 0, result.stderr
    assert f"{precision}: " in result.stdout and "get the float32 network's class" in result.stdout
    agreement = float(result.stdout.split(f"{precision}: ")[1].split("%")[0])
    assert agreement >= 100 * REQUIRED[precision]
    model = onnx.load(str(out))
    assert {p.key: p.value for p in model.metadata_props}["precision"] == precision
    ops = {node.op_type for node in model.graph.node}
    if precision == "int8":
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops and model.opset_import[0].version >= 13
    else:
        assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # float32 in and out
    assert list(tmp_path.iterdir()) == [out]  # no temporary or intermediate files left

    reference = _evaluate(demo, tmp_path / "ms.json", "--checkpoint", checkpoint)
    reduced = _evaluate(demo, tmp_path / "reduced.json", "--backend", "onnxruntime", "--model", out)
    assert reduced.sum() == reference.sum()
    assert np.abs(reduced - reference).sum() / 2 <= (1 - agreement / 100 + 0.02) * reference.sum()


def test_int8_with_entropy_calibration_is_written_and_verified(demo, tmp_path):
    """The Entropy method (KL-divergence ranges over activation histograms), on a few images to stay short."""
    _, _, _, calib_list = demo
    out = tmp_path / "demo_int8.onnx"
    result = _export(demo, out, "--precision", "int8", "--calib-list", calib_list, "--calib-method", "Entropy",
                     "--calib-images", "4", "--min-agreement", str(REQUIRED["int8"]))
    assert result.returncode == 0, result.stderr
    assert "Entropy calibration on 4 calibration image(s)" in result.stderr + result.stdout
    agreement = float(result.stdout.split("int8: ")[1].split("%")[0])
    assert agreement >= 100 * REQUIRED["int8"]
    model = onnx.load(str(out))
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in model.graph.node}
    assert list(tmp_path.iterdir()) == [out]


def test_int8_below_the_required_agreement_writes_nothing(demo, tmp_path):
    _, _, _, calib_list = demo
    out = tmp_path / "demo_int8.onnx"
    refused = _export(demo, out, "--precision", "int8", "--calib-list", calib_list, "--calib-images", "2",
                      "--min-agreement", "1.0")
    assert refused.returncode == 1, refused.stderr
    assert "nothing was written" in refused.stderr and "--force" in refused.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []
    forced = _export(demo, out, "--precision", "int8", "--calib-list", calib_list, "--calib-images", "2",
                     "--min-agreement", "1.0", "--force")
    assert forced.returncode == 0, forced.stderr
    assert out.is_file()


def test_precision_requests_that_cannot_be_met_exit_2(demo, tmp_path):
    no_calibration = _export(demo, tmp_path / "a.onnx", "--precision", "int8")
    assert no_calibration.returncode == 2 and "--calib-list" in no_calibration.stderr
    _, config_path, checkpoint, _ = demo
    mindir = run_tool("export", ["--config", config_path, "--checkpoint", checkpoint, "--format", "MINDIR",
                                 "--out", tmp_path / "b.mindir", "--precision", "fp16"])
    assert mindir.returncode == 2 and "--format ONNX" in mindir.stderr
    assert list(tmp_path.iterdir()) == []
