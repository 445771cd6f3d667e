"""Running the networks: graph-mode training gradients on CPU and the inference wrapper."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn, ops

from deeplabv3.models import InferenceNet, build_model
from models_helpers import image, randomize, tiny_config

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("execution_mode", ["graph"], indirect=True)
@pytest.mark.parametrize("name", ["deeplabv3", "deeplabv3plus"])
def test_forward_and_backward_in_graph_mode(execution_mode, name):
    net = build_model(tiny_config(f"model.name={name}", "model.num_classes=5"))
    net.set_train(True)
    loss_fn = nn.CrossEntropyLoss(ignore_index=255)

    def forward(x, y):
        return loss_fn(net(x), y)

    step = ms.jit(ms.value_and_grad(forward, None, net.trainable_params()))
    x = image((2, 3, 49, 57))
    labels = np.random.default_rng(0).integers(0, 5, (2, 49, 57)).astype(np.int32)
    labels[:, :5] = 255
    loss, grads = step(x, ms.Tensor(labels))
    assert net(x).shape == (2, 5, 49, 57)
    assert np.isfinite(float(loss)) and float(loss) > 0
    assert len(grads) == len(net.trainable_params())
    dead = [p.name for p, g in zip(net.trainable_params(), grads)
            if not np.isfinite(g.asnumpy()).all() or float(ops.abs(g).sum()) == 0]
    assert dead == []


@pytest.mark.parametrize("execution_mode", ["graph"], indirect=True)
def test_inference_outputs_and_layouts(execution_mode):
    net = build_model(tiny_config("model.name=deeplabv3plus", "model.num_classes=4"))
    randomize(net, seed=5)
    x = image((2, 3, 41, 33), seed=1)
    nhwc = ms.Tensor(np.ascontiguousarray(x.asnumpy().transpose(0, 2, 3, 1)))
    logits = InferenceNet(net, "logits")(x).asnumpy()
    probs = InferenceNet(net, "probs")(x).asnumpy()
    probs_nhwc = InferenceNet(net, "probs", nhwc=True)(nhwc).asnumpy()
    labels = InferenceNet(net, "labels")(x).asnumpy()

    assert logits.shape == probs.shape == (2, 4, 41, 33)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert probs.min() >= 0
    np.testing.assert_allclose(probs_nhwc, probs, rtol=1e-5, atol=1e-6)
    assert labels.dtype == np.int32 and labels.shape == (2, 41, 33)
    np.testing.assert_array_equal(labels, logits.argmax(axis=1))
    assert len(np.unique(labels)) > 1
    assert [p.name for p in InferenceNet(net).get_parameters()] == [p.name for p in net.get_parameters()]


@pytest.mark.parametrize("execution_mode", ["graph"], indirect=True)
def test_inference_net_runs_in_inference_mode(execution_mode):
    """Dropout off and BN on running statistics: a batch gives each image the result it gets alone."""
    net = build_model(tiny_config("model.dropout=0.5"))
    randomize(net, seed=6)
    net.set_train(True)
    infer = InferenceNet(net, "logits")
    x = image((2, 3, 33, 33), seed=2)
    np.testing.assert_allclose(infer(x).asnumpy()[1:], infer(x[1:]).asnumpy(), rtol=1e-4, atol=1e-5)


def test_inference_net_rejects_unknown_output():
    with pytest.raises(ValueError, match="probs, logits, labels"):
        InferenceNet(build_model(tiny_config()), "softmax")


def _inspect(*args):
    return subprocess.run([sys.executable, str(REPO / "tools" / "inspect_model.py"), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_inspect_model_tool(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text("model:\n  name: deeplabv3plus\n  layers: [1, 1, 1, 1]\n  base_channels: 8\n"
                      "  aspp_channels: 16\n  low_level_channels: 8\n  output_stride: 8\n")
    result = _inspect("--config", str(config), "--set", "model.num_classes=3", "--input-size", "97", "65")
    assert result.returncode == 0, result.stderr
    net = build_model(tiny_config("model.name=deeplabv3plus", "model.num_classes=3"))
    params = list(net.get_parameters())
    out = result.stdout
    assert f"{sum(int(np.prod(p.shape)) for p in params):,} parameters in {len(params)} tensors" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:] if line.strip()}
    decoder = sum(int(np.prod(p.shape)) for p in params if p.name.startswith("decoder."))
    assert rows["decoder"] == ["decoder", f"{decoder:,}"]
    assert [rows[f"layer{i}"][6:9] for i in range(1, 5)] == [["25", "x", "17"]] + [["13", "x", "9"]] * 3
    assert rows["layer4"][2] == "8" and rows["layer4"][3] == "4"


def test_inspect_model_tool_reports_config_errors(tmp_path):
    result = _inspect("--config", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2
    assert result.stderr.startswith("error: config file not found") and "Traceback" not in result.stderr
    config = tmp_path / "bad.yaml"
    config.write_text("model:\n  layers: [1, 2]\n")
    result = _inspect("--config", str(config))
    assert result.returncode == 2 and "'model.layers' is [1, 2]" in result.stderr
    assert "Traceback" not in result.stderr
