"""Checkpoints: round trips, every naming variant, and the errors that strict loading must raise."""
from __future__ import annotations

import logging
import re

import numpy as np
import pytest

from deeplabv3.models import (CheckpointError, build_model, load_checkpoint, read_checkpoint, save_checkpoint_atomic,
                              save_weights)
from models_helpers import image, params_of, randomize, tiny_config, write_ckpt

MODELZOO_FROM_OURS = (  # the inverse of the published ModelZoo -> MindCV renames, written out independently
    (r"^backbone\.net\.", "resnet."),
    (r"\.down_sample\.", ".downsample."),
    (r"^aspp\.aspp_convs\.([0-3])\._aspp_conv\.", lambda m: f"aspp.aspp{int(m[1]) + 1}.aspp_conv."),
    (r"^aspp\.aspp_convs\.4\.conv\.", "aspp.aspp_pooling.conv."),
    (r"^conv\.", "aspp.conv2."),
)


def _rename(params, table, prefix=""):
    out = {}
    for name, value in params.items():
        for pattern, replacement in table:
            name = re.sub(pattern, replacement, name)
        out[prefix + name] = value
    return out


@pytest.fixture
def trained(tmp_path):
    """A tiny DeepLabV3 with random weights and statistics, saved with ``save_weights``."""
    net = build_model(tiny_config())
    params = randomize(net, seed=1)
    path = save_weights(net, tmp_path / "weights.ckpt")
    return net, params, path


def _assert_params(net, expected, names=None):
    actual = params_of(net)
    for name in names if names is not None else expected:
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)


@pytest.mark.parametrize("execution_mode", ["pynative"], indirect=True)
def test_save_then_load_gives_identical_outputs(trained, execution_mode):
    net, params, path = trained
    assert sorted(p.name for p in path.parent.iterdir()) == ["weights.ckpt"]
    fresh = build_model(tiny_config())
    report = load_checkpoint(fresh, path)
    assert report.source_format == "deeplab" and len(report.loaded) == len(params)
    assert not (report.missing or report.unexpected or report.skipped_head or report.ignored)
    _assert_params(fresh, params)
    net.set_train(False)
    fresh.set_train(False)
    x = image()
    np.testing.assert_array_equal(fresh(x).asnumpy(), net(x).asnumpy())


def test_atomic_save_keeps_the_old_file_when_saving_fails(tmp_path):
    path = write_ckpt(tmp_path / "w.ckpt", {"a.weight": np.ones(3, np.float32)})
    before = path.read_bytes()
    with pytest.raises(TypeError):
        save_checkpoint_atomic(object(), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.ckpt"]


def test_training_checkpoint_with_network_prefix_and_optimizer_state_loads(trained, tmp_path):
    _, params, _ = trained
    entries = {f"network.{n}": v for n, v in params.items()}
    entries.update({f"moments.{n}": np.zeros_like(v) for n, v in params.items() if "moving" not in n})
    scalars = {"learning_rate": 0.01, "global_step": 7, "momentum": 0.9, "scale_sense": 1024.0, "updates": 7}
    entries.update({k: np.array(v, np.float32) for k, v in scalars.items()})
    path = write_ckpt(tmp_path / "train.ckpt", entries)
    net = build_model(tiny_config())
    report = load_checkpoint(net, path)
    _assert_params(net, params)
    assert len(report.ignored) == len(entries) - len(params)
    assert set(scalars) <= set(report.ignored)


def test_engine_checkpoint_with_appended_entries_loads(trained, tmp_path):
    """What a trainer writes: the training cell's parameters plus ``append_dict`` counters."""
    net, params, _ = trained
    path = save_checkpoint_atomic(net, tmp_path / "step_10.ckpt", append_dict={"epoch_num": 2, "step_num": 10,
                                                                               "run": "stage1"})
    raw = read_checkpoint(path)
    assert int(raw["step_num"]) == 10 and raw["run"] == "stage1"
    assert isinstance(raw["conv.weight"], np.ndarray)
    fresh = build_model(tiny_config())
    report = load_checkpoint(fresh, path)
    assert sorted(report.ignored) == ["epoch_num", "run", "step_num"]
    _assert_params(fresh, params)


def test_modelzoo_names_load_into_the_right_places(trained, tmp_path):
    _, params, _ = trained
    path = write_ckpt(tmp_path / "modelzoo.ckpt", _rename(params, MODELZOO_FROM_OURS, prefix="network."))
    net = build_model(tiny_config())
    report = load_checkpoint(net, path)
    assert report.source_format == "modelzoo" and len(report.loaded) == len(params)
    _assert_params(net, params)


@pytest.mark.parametrize("shortcut", ["down_sample", "down_sample_layer"])
def test_bare_imagenet_names_fill_the_backbone_only(trained, tmp_path, shortcut):
    _, params, _ = trained
    backbone = {n[len("backbone.net."):].replace(".down_sample.", f".{shortcut}."): v
                for n, v in params.items() if n.startswith("backbone.net.")}
    backbone.update({"classifier.weight": np.ones((10, 256), np.float32), "classifier.bias": np.ones(10, np.float32)})
    path = write_ckpt(tmp_path / "resnet.ckpt", backbone)
    net = build_model(tiny_config())
    head_before = {n: v for n, v in params_of(net).items() if not n.startswith("backbone.")}
    report = load_checkpoint(net, path)
    assert report.source_format == "imagenet"
    assert sorted(report.unused) == ["classifier.bias", "classifier.weight"]
    assert not report.missing and not report.unexpected
    _assert_params(net, params, [n for n in params if n.startswith("backbone.")])
    _assert_params(net, head_before)


def _error(net, path, **kwargs) -> str:
    before = params_of(net)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(net, path, **kwargs)
    _assert_params(net, before)  # a failed load changes nothing
    return str(info.value)


def test_missing_tensor_is_an_error_naming_it(trained, tmp_path):
    _, params, _ = trained
    entries = {n: v for n, v in params.items() if n not in ("aspp.bn1.gamma", "backbone.net.layer2.0.conv2.weight")}
    message = _error(build_model(tiny_config()), write_ckpt(tmp_path / "m.ckpt", entries))
    assert "2 network tensors are missing" in message
    assert "backbone.net.layer2.0.conv2.weight" in message and "aspp.bn1.gamma" in message
    assert "model.name" in message  # says what to check


def test_unknown_tensors_are_errors_unless_not_strict(trained, tmp_path):
    _, params, _ = trained
    extra = {**params, "decoder.conv1.weight": np.ones((8, 32, 1, 1), np.float32)}
    path = write_ckpt(tmp_path / "extra.ckpt", extra)
    message = _error(build_model(tiny_config()), path)
    assert "1 of its tensors are unknown to the network (decoder.conv1.weight)" in message
    net = build_model(tiny_config())
    report = load_checkpoint(net, path, strict=False)
    assert report.unexpected == ["decoder.conv1.weight"]
    _assert_params(net, params)


def test_checkpoint_of_unrelated_tensors_is_an_error_even_when_not_strict(tmp_path):
    path = write_ckpt(tmp_path / "other.ckpt", {"encoder.block.weight": np.ones((4, 4), np.float32),
                                                "encoder.block.bias": np.ones(4, np.float32)})
    message = _error(build_model(tiny_config()), path, strict=False)
    assert "none of the 2 tensors" in message and "encoder.block.weight" in message


def test_shape_mismatch_is_an_error_even_when_not_strict(trained, tmp_path):
    _, params, _ = trained
    wrong = {**params, "aspp.conv1.weight": np.ones((16, 32, 1, 1), np.float32)}
    message = _error(build_model(tiny_config()), write_ckpt(tmp_path / "s.ckpt", wrong), strict=False)
    assert "aspp.conv1.weight: checkpoint (16, 32, 1, 1) vs network (16, 80, 1, 1)" in message


@pytest.mark.parametrize("name, head", [("deeplabv3", ["conv.bias", "conv.weight"]),
                                        ("deeplabv3plus", ["decoder.last_conv.6.weight"])])
def test_other_class_count_loads_only_with_head_skipping(tmp_path, caplog, name, head):
    source = build_model(tiny_config(f"model.name={name}"))
    params = randomize(source, seed=2)
    path = save_weights(source, tmp_path / "c21.ckpt")
    message = _error(build_model(tiny_config(f"model.name={name}", "model.num_classes=5")), path)
    assert "21 classes in the checkpoint, 5 in the network" in message
    assert "model.ignore_head_mismatch=true" in message and head[-1] in message

    net = build_model(tiny_config(f"model.name={name}", "model.num_classes=5"))
    logging.getLogger("deeplabv3").addHandler(caplog.handler)
    try:
        report = load_checkpoint(net, path, ignore_head_mismatch=True)
    finally:
        logging.getLogger("deeplabv3").removeHandler(caplog.handler)
    assert sorted(report.skipped_head) == head
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "deeplabv3"]
    assert len(warnings) == 1 and all(h in warnings[0] for h in head)
    _assert_params(net, params, [n for n in params if n not in head])


@pytest.mark.parametrize("execution_mode", ["pynative"], indirect=True)
def test_other_output_stride_loads_the_same_checkpoint(trained, execution_mode):
    net, params, path = trained
    os8 = build_model(tiny_config(), output_stride=8)
    load_checkpoint(os8, path)
    _assert_params(os8, params)
    net.set_train(False)
    os8.set_train(False)
    x = image((1, 3, 65, 65))
    assert os8(x).shape == net(x).shape
    assert not np.allclose(os8(x).asnumpy(), net(x).asnumpy())


@pytest.mark.parametrize("content, expected", [(None, "checkpoint not found"), (b"not a checkpoint" * 8, "corrupt")])
def test_unreadable_files_are_errors_naming_them(tmp_path, content, expected):
    path = tmp_path / "bad.ckpt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=expected) as info:
        read_checkpoint(path)
    assert str(path) in str(info.value)


def test_two_entries_for_one_parameter_are_an_error(trained, tmp_path):
    _, params, _ = trained
    path = write_ckpt(tmp_path / "dup.ckpt", {**params, "network.conv.bias": params["conv.bias"] + 1})
    message = _error(build_model(tiny_config()), path)
    assert "'conv.bias' and 'network.conv.bias' both mean 'conv.bias'" in message
