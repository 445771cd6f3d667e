"""MINDIR and ONNX exports of DeepLabV3 / DeepLabV3+ at OS16 and OS8 reproduce the network at a non-square size.

Each exported file is run here the way a deployment runs it (``mindspore.load`` + ``GraphCell``, onnxruntime) on
an input other than the one the exporter verified with, and compared with the network's own forward pass.
"""
from __future__ import annotations

import mindspore as ms
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from mindspore import nn

from deeplabv3.export import ExportOptions, VerificationError, compare, export_graph, sample_input
from deeplabv3.models import InferenceNet
from deeplabv3.models.layers import Resize
from export_helpers import SIZE, tiny_config, tiny_net

ATOL = 1e-4
pytestmark = [pytest.mark.usefixtures("execution_mode"),
              pytest.mark.parametrize("execution_mode", ["graph"], indirect=True)]


def run_mindir(path, x):
    return nn.GraphCell(ms.load(str(path)))(ms.Tensor(x)).asnumpy()


def run_onnx(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("name,output_stride", [("deeplabv3", 16), ("deeplabv3", 8), ("deeplabv3plus", 16),
                                                ("deeplabv3plus", 8)])
def test_both_formats_match_the_network(name, output_stride, tmp_path):
    cfg = tiny_config(name, output_stride)
    net = tiny_net(cfg)
    x = sample_input(cfg, 2, *SIZE, seed=11)
    expected = InferenceNet(net, "probs")(ms.Tensor(x)).asnumpy()
    for fmt, run in (("ONNX", run_onnx), ("MINDIR", run_mindir)):
        result = export_graph(net, cfg, tmp_path / f"{name}_os{output_stride}", ExportOptions(fmt, SIZE, 2))
        assert result.path.suffix == f".{fmt.lower()}" and result.path.is_file()
        assert result.output_stride == output_stride
        assert result.input_shape == (2, 3, *SIZE)
        assert result.verification.passed and result.verification.max_abs_diff <= ATOL
        got = run(result.path, x)
        assert got.shape == (2, 5, *SIZE)
        assert np.abs(got - expected).max() <= ATOL, fmt
    # The export-only resize was swapped back out: the network itself is unchanged.
    assert isinstance(net.resize, Resize)


def test_onnx_graph_is_the_matrix_variant_with_named_io(tmp_path):
    cfg = tiny_config("deeplabv3plus", 16)
    result = export_graph(tiny_net(cfg), cfg, tmp_path / "plus", ExportOptions("ONNX", SIZE, output="logits"))
    model = onnx.load(str(result.path))
    op_types = {node.op_type for node in model.graph.node}
    assert "MatMul" in op_types and not op_types & {"Resize", "Upsample", "GlobalAveragePool"}
    assert [i.name for i in model.graph.input] == ["image"] and [o.name for o in model.graph.output] == ["logits"]
    metadata = {entry.key: entry.value for entry in model.metadata_props}
    assert metadata["channel_order"] == "BGR" and metadata["input_layout"] == "NCHW"
    assert [float(v) for v in metadata["mean"].split(",")] == cfg.data.mean
    assert metadata["class_names"].split(",") == list(cfg.class_names)


@pytest.mark.parametrize("fmt,run", [("ONNX", run_onnx), ("MINDIR", run_mindir)])
def test_nhwc_input_and_label_output(fmt, run, tmp_path):
    cfg = tiny_config("deeplabv3", 8)
    net = tiny_net(cfg, seed=3)
    x = sample_input(cfg, 1, *SIZE, seed=12)
    expected = InferenceNet(net, "labels")(ms.Tensor(x)).asnumpy()
    result = export_graph(net, cfg, tmp_path / "labels", ExportOptions(fmt, SIZE, output="labels",
                                                                       input_format="NHWC"))
    assert result.input_shape == (1, *SIZE, 3)
    assert result.verification.agreement >= 0.999
    got = run(result.path, np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    assert got.shape == (1, *SIZE) and np.issubdtype(got.dtype, np.integer)
    assert np.mean(got == expected) >= 0.999
    assert len(np.unique(expected)) > 1  # a constant map would agree trivially


def test_compare_flags_differences_beyond_tolerance():
    logits = np.random.default_rng(0).normal(size=(1, 4, 6, 5))
    assert compare("logits", logits + 5e-5, logits).passed
    off = compare("logits", logits + 2e-4, logits)
    assert not off.passed and off.max_abs_diff == pytest.approx(2e-4)
    labels = logits.argmax(axis=1)
    flipped = labels.copy()
    flipped[0, 0, :3] = (flipped[0, 0, :3] + 1) % 4
    result = compare("labels", flipped, logits, min_agreement=0.95)
    assert result.agreement == pytest.approx(27 / 30) and not result.passed
    assert not compare("probs", np.zeros((1, 4, 6, 4)), logits).passed  # wrong shape


def test_failed_verification_writes_nothing(tmp_path):
    # onnxruntime's convolutions round differently from MindSpore's, so a zero tolerance on logits cannot hold.
    cfg = tiny_config("deeplabv3", 16)
    out_dir = tmp_path / "out"
    with pytest.raises(VerificationError, match="nothing was written"):
        export_graph(tiny_net(cfg), cfg, out_dir / "net.onnx", ExportOptions("ONNX", SIZE, output="logits", atol=0.0))
    assert list(out_dir.iterdir()) == []
