"""``tools/export.py`` end to end (one run per format, from a training checkpoint) and its error exits."""
from __future__ import annotations

import importlib.util
import sys

import mindspore as ms
import numpy as np
import onnxruntime as ort
import pytest
from mindspore import nn

from conftest import REPO, run_tool
from deeplabv3.cli import run_tool as run_in_process
from deeplabv3.export import ExportError, require_onnx, sample_input
from deeplabv3.models import InferenceNet, build_model, load_checkpoint, read_checkpoint
from export_helpers import SIZE, TINY, tiny_config, tiny_net, write_training_checkpoint


def _export_args(tmp_path, ckpt, fmt, out, *extra, overrides=()):
    return ["--config", REPO / "configs" / "deeplabv3plus_s16_r101_vocaug.yaml", "--checkpoint", ckpt,
            "--format", fmt, "--out", out, *extra,
            "--set", *TINY, "model.name=deeplabv3plus", *overrides, f"runtime.work_dir={tmp_path / 'work'}"]


def _loaded(cfg, ckpt, output_stride):
    net = build_model(cfg, output_stride=output_stride)
    load_checkpoint(net, ckpt, strict=True)
    net.set_train(False)
    return net


@pytest.fixture
def training_ckpt(tmp_path):
    return write_training_checkpoint(tmp_path / "train.ckpt", tiny_net(tiny_config("deeplabv3plus", 16), seed=5))


@pytest.mark.parametrize("execution_mode", ["graph"], indirect=True)
def test_onnx_from_a_training_checkpoint_at_eval_output_stride(tmp_path, training_ckpt, execution_mode):
    result = run_tool("export", _export_args(tmp_path, training_ckpt, "onnx", tmp_path / "out" / "model",
                                             "--input-size", *SIZE, overrides=["eval.output_stride=8"]))
    assert result.returncode == 0, result.stderr
    assert "max |difference|" in result.stdout
    path = tmp_path / "out" / "model.onnx"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 3, *SIZE]
    cfg = tiny_config("deeplabv3plus", 16)
    x = sample_input(cfg, 1, *SIZE, seed=21)
    expected = InferenceNet(_loaded(cfg, training_ckpt, 8), "probs")(ms.Tensor(x)).asnumpy()
    at_os16 = InferenceNet(_loaded(cfg, training_ckpt, 16), "probs")(ms.Tensor(x)).asnumpy()
    got = session.run(None, {"image": x})[0]
    assert np.abs(got - expected).max() <= 1e-4
    assert np.abs(got - at_os16).max() > 1e-3  # it really is the OS8 network


@pytest.mark.parametrize("execution_mode", ["graph"], indirect=True)
def test_mindir_nhwc_logits_at_the_default_size(tmp_path, training_ckpt, execution_mode):
    result = run_tool("export", _export_args(tmp_path, training_ckpt, "MINDIR", tmp_path / "net.mindir",
                                             "--input-format", "nhwc", "--output", "logits",
                                             overrides=["eval.crop_size=49"]))
    assert result.returncode == 0, result.stderr
    graph = nn.GraphCell(ms.load(str(tmp_path / "net.mindir")))
    cfg = tiny_config("deeplabv3plus", 16)
    x = sample_input(cfg, 1, 49, 49, seed=22)
    expected = InferenceNet(_loaded(cfg, training_ckpt, 16), "logits")(ms.Tensor(x)).asnumpy()
    got = graph(ms.Tensor(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))).asnumpy()
    assert got.shape == (1, 5, 49, 49)
    assert np.abs(got - expected).max() <= 1e-4


def test_weights_only_checkpoint_is_half_the_size_and_loads_strictly(tmp_path, training_ckpt):
    out = tmp_path / "weights.ckpt"
    result = run_tool("export", _export_args(tmp_path, training_ckpt, "CKPT", out))
    assert result.returncode == 0, result.stderr
    assert 0.4 < out.stat().st_size / training_ckpt.stat().st_size < 0.6
    entries = read_checkpoint(out)
    net = build_model(tiny_config("deeplabv3plus", 16))
    assert sorted(entries) == sorted(p.name for p in net.get_parameters())  # no optimizer state, no prefixes
    load_checkpoint(net, out, strict=True)
    source = read_checkpoint(training_ckpt)
    for p in net.get_parameters():
        np.testing.assert_array_equal(p.asnumpy(), source[f"network.{p.name}"])


@pytest.mark.parametrize("case", ["onnx_without_size", "unknown_format", "missing_checkpoint", "other_network"])
def test_unanswerable_requests_exit_2_without_traceback(case, tmp_path, training_ckpt):
    out = tmp_path / "never" / "model"
    args = {
        "onnx_without_size": _export_args(tmp_path, training_ckpt, "ONNX", out),
        "unknown_format": _export_args(tmp_path, training_ckpt, "TFLITE", out, "--input-size", *SIZE),
        "missing_checkpoint": _export_args(tmp_path, tmp_path / "absent.ckpt", "MINDIR", out),
        "other_network": _export_args(tmp_path, training_ckpt, "MINDIR", out, overrides=["model.name=deeplabv3"]),
    }[case]
    expected = {"onnx_without_size": "--input-size", "unknown_format": "MINDIR, ONNX, CKPT",
                "missing_checkpoint": "absent.ckpt", "other_network": "does not fit the network"}[case]
    result = run_tool("export", args, timeout=180)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error: ") or "\nerror: " in result.stderr
    assert expected in " ".join(result.stderr.split())
    assert not (tmp_path / "never").exists()


def _tool_main():
    spec = importlib.util.spec_from_file_location("export_tool", REPO / "tools" / "export.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.mark.parametrize("size,expected", [(["12", "97"], "smaller than output stride 16"),
                                           (["-1", "-1"], "not a fixed size")])
def test_impossible_input_sizes_are_refused(size, expected, tmp_path, training_ckpt, capsys):
    code = run_in_process(_tool_main(), [str(a) for a in _export_args(tmp_path, training_ckpt, "ONNX",
                                                                      tmp_path / "m", "--input-size", *size)])
    assert code == 2
    assert expected in " ".join(capsys.readouterr().err.split())


def test_missing_onnxruntime_is_a_clear_error(monkeypatch, tmp_path, training_ckpt, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what Python does when the package is absent
    with pytest.raises(ExportError, match="pip install"):
        require_onnx()
    code = run_in_process(_tool_main(), [str(a) for a in _export_args(tmp_path, training_ckpt, "ONNX",
                                                                      tmp_path / "m", "--input-size", *SIZE)])
    assert code == 2
    assert "onnxruntime" in capsys.readouterr().err
