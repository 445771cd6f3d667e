"""The networks' structure: published names and shapes, strides and dilations, stage sizes, config keys."""
from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn
from mindcv.models.resnet import Bottleneck as MindcvBottleneck
from mindcv.models.resnet import ResNet as MindcvResNet

from deeplabv3.config import load_config
from deeplabv3.models import InferenceNet, build_model, load_params, output_stride_of
from deeplabv3.models.summary import stage_sizes, summarize
from models_helpers import image, params_of, published_names, randomize, shapes_of, tiny_config

R101_TENSORS = 552
R101_VALUES = 58_149_077


@pytest.fixture(scope="module")
def r101():
    """Full-size DeepLabV3 R101 at both output strides (constructed only; no 513 forward)."""
    cfg = load_config(None)
    return {16: build_model(cfg), 8: build_model(cfg, output_stride=8)}


@pytest.mark.parametrize("output_stride", [16, 8])
def test_r101_names_and_shapes_are_the_published_ones(r101, output_stride):
    shapes = shapes_of(r101[output_stride])
    expected = published_names(21)
    assert sorted(set(expected) - set(shapes)) == []
    assert sorted(set(shapes) - set(expected)) == []
    assert {n: s for n, s in shapes.items() if expected[n] != s} == {}
    assert len(shapes) == R101_TENSORS
    assert sum(int(np.prod(s)) for s in shapes.values()) == R101_VALUES


@pytest.mark.parametrize("output_stride, layer3, layer4", [
    (16, [(2, 1)] + [(1, 1)] * 22, [(1, 2), (1, 4), (1, 8)]),
    (8, [(1, 2)] * 23, [(1, 4), (1, 8), (1, 16)]),
])
def test_r101_strides_and_dilations_sit_on_the_3x3(r101, output_stride, layer3, layer4):
    resnet = r101[output_stride].backbone.net
    for name, expected in (("layer3", layer3), ("layer4", layer4)):
        convs = [block.conv2 for block in getattr(resnet, name)]
        assert [(c.stride[0], c.dilation[0]) for c in convs] == expected, name
        assert [c.padding for c in convs] == [d for _, d in expected], name
        for block in getattr(resnet, name):
            assert block.conv1.stride == (1, 1) and block.conv3.stride == (1, 1)
    assert resnet.layer2[0].conv2.stride == (2, 2) and resnet.layer2[0].down_sample[0].stride == (2, 2)
    assert resnet.layer3[0].down_sample[0].stride == ((2, 2) if output_stride == 16 else (1, 1))
    assert resnet.layer4[0].down_sample[0].stride == (1, 1)
    assert resnet.max_pool.pad_mode == "SAME"
    aspp = r101[output_stride].aspp
    assert [b._aspp_conv[0].dilation[0] for b in list(aspp.aspp_convs)[:4]] == [1, 6, 12, 18]


def test_deeplabv3plus_names_and_shapes_are_the_published_ones():
    shapes = shapes_of(build_model(load_config(None, ["model.name=deeplabv3plus"])))
    assert shapes == published_names(21, plus=True)
    assert len(shapes) == 566


@pytest.mark.parametrize("execution_mode", ["pynative"], indirect=True)
@pytest.mark.parametrize("output_stride, expected", [(16, [129, 65, 33, 33]), (8, [129, 65, 65, 65])])
def test_stage_sizes_for_a_513_input(execution_mode, output_stride, expected):
    net = build_model(tiny_config(), output_stride=output_stride)
    assert stage_sizes(net, (513, 513)) == [(s, s) for s in expected]
    net.set_train(False)
    assert net(image((1, 3, 513, 513))).shape == (1, 21, 513, 513)


@pytest.mark.parametrize("name", ["deeplabv3", "deeplabv3plus"])
def test_networks_carry_their_output_stride_through_wrappers(name):
    cfg = tiny_config(f"model.name={name}")
    for output_stride in (16, 8):
        net = build_model(cfg, output_stride=output_stride)
        assert net.output_stride == net.backbone.output_stride == output_stride
        assert output_stride_of(InferenceNet(net)) == output_stride
        assert output_stride_of(ms.amp.auto_mixed_precision(net, "O2")) == output_stride  # wraps the network
    assert output_stride_of(nn.Conv2d(3, 3, 1)) is None


@pytest.mark.parametrize("execution_mode", ["pynative"], indirect=True)
def test_layers_and_base_channels_shape_a_small_network(execution_mode):
    net = build_model(tiny_config("model.layers=[1,2,1,2]", "model.aspp_rates=[1,3]", "model.num_classes=5"))
    summary = summarize(net, (64, 48))
    assert [s.blocks for s in summary.stages] == [1, 2, 1, 2]
    assert [s.channels for s in summary.stages] == [32, 64, 128, 256]
    assert [s.dilations for s in summary.stages][3] == (2, 4)
    assert [s.size for s in summary.stages] == [(16, 12), (8, 6), (4, 3), (4, 3)]
    assert summary.num_tensors == len(list(net.get_parameters()))
    assert sum(summary.modules.values()) == summary.num_params
    assert set(summary.modules) == {"backbone", "aspp", "conv"}
    shapes = shapes_of(net)
    assert shapes["backbone.net.conv1.weight"] == (8, 3, 7, 7)
    assert shapes["aspp.aspp_convs.1._aspp_conv.0.weight"] == (16, 256, 3, 3)
    assert shapes["aspp.conv1.weight"] == (16, 3 * 16, 1, 1)
    assert shapes["conv.weight"] == (5, 16, 1, 1)
    assert "aspp.aspp_convs.2.conv.0.weight" in shapes
    assert net.aspp.aspp_convs[1]._aspp_conv[0].dilation == (3, 3)


@pytest.mark.parametrize("execution_mode", ["pynative"], indirect=True)
def test_bn_momentum_and_eps_come_from_the_config(execution_mode):
    net = build_model(tiny_config("model.bn_momentum=0.75", "model.bn_eps=0.5"))
    net.set_train(True)
    bn = net.backbone.net.bn1
    x = image((2, 8, 5, 5))
    out = bn(x).asnumpy()
    batch = x.asnumpy()
    mean, var = batch.mean(axis=(0, 2, 3)), batch.var(axis=(0, 2, 3))
    np.testing.assert_allclose(bn.moving_mean.asnumpy(), 0.25 * mean, rtol=1e-4, atol=1e-6)
    normalised = (batch - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 0.5)
    np.testing.assert_allclose(out, normalised, rtol=1e-4, atol=1e-5)


def test_dropout_is_a_drop_probability():
    net = build_model(tiny_config("model.dropout=0.7"))
    net.set_train(True)
    out = net.aspp.dropout(image((4, 16, 32, 32)).abs() + 1).asnumpy()
    assert abs((out == 0).mean() - 0.7) < 0.02


@pytest.mark.parametrize("execution_mode", ["pynative"], indirect=True)
def test_backbone_computes_what_mindcv_resnet_computes(tmp_path, execution_mode):
    """A real MindCV ResNet checkpoint (bare ImageNet names) loads into the backbone, which then reproduces
    MindCV's stem, layer1, layer2 and (undilated at OS16) layer3 outputs exactly."""
    reference = MindcvResNet(MindcvBottleneck, [1, 1, 1, 1], num_classes=10)
    randomize(reference, seed=3)
    reference.set_train(False)
    net = build_model(tiny_config("model.base_channels=64"))
    report = load_params(net, params_of(reference), source="mindcv resnet")
    assert report.source_format == "imagenet"
    assert sorted(report.unused) == ["classifier.bias", "classifier.weight"]
    assert len(report.loaded) == len(list(reference.get_parameters())) - 2
    net.set_train(False)
    x = image((1, 3, 64, 45))  # even and odd sides: "same" pooling pads 0+1 and 1+1
    expected = reference.max_pool(reference.relu(reference.bn1(reference.conv1(x))))
    ours = net.backbone.net(x)
    for i, layer in enumerate((reference.layer1, reference.layer2, reference.layer3)):
        expected = layer(expected)
        np.testing.assert_allclose(ours[i].asnumpy(), expected.asnumpy(), rtol=1e-5, atol=1e-5)


def test_model_section_alone_builds_the_same_network():
    cfg = tiny_config("model.name=deeplabv3plus")
    assert shapes_of(build_model(cfg.model)) == shapes_of(build_model(cfg))
