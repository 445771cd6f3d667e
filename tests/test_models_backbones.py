"""MindCV backbones: one member of each family at output stride 16 and 8, the supported-name list, and strict
loading of the classification checkpoints MindCV publishes."""
from __future__ import annotations

import json

import mindspore as ms
import numpy as np
import pytest
from mindcv.models import create_model, list_models
from mindspore import nn

from conftest import run_tool
from deeplabv3.config import load_config
from deeplabv3.config.backbones import FAMILIES, REFUSED
from deeplabv3.models import CheckpointError, build_model, load_checkpoint, save_weights
from deeplabv3.models.resnet import RESNET_ARCHS
from engine_helpers import run_overrides, write_training_set
from models_helpers import image, params_of, randomize, write_ckpt

SMALL_HEADS = ["model.name=deeplabv3plus", "model.num_classes=3", "model.aspp_channels=8",
               "model.low_level_channels=8", "model.aspp_rates=[1,2]", "model.dropout=0.0"]
# one small member per family -> the largest block dilation at OS16 and OS8: ResNets carry the multi-grid
# (1, 2, 4) on layer4 (resnet18's layer4 has 2 blocks); the others follow timm's rule, under which repvgg_a0's
# one-block last stage keeps dilation 1 at OS16
MEMBERS = {"resnet18": {16: 4, 8: 8}, "resnext50_32x4d": {16: 8, 8: 16}, "mobilenet_v2_100": {16: 2, 8: 4},
           "mobilenet_v3_small_100": {16: 2, 8: 4}, "efficientnet_b0": {16: 2, 8: 4},
           "convnext_tiny": {16: 2, 8: 4}, "repvgg_a0": {16: 1, 8: 2}}
SIZE = 64


def _config(backbone: str, *extra: str):
    return load_config(None, [f"model.backbone={backbone}", *SMALL_HEADS, *extra])


def test_supported_names_are_mindcv_models_and_refused_families_are_not_listed():
    registered = set(list_models())
    listed = [name for names in FAMILIES.values() for name in names]
    assert sorted(set(listed) - registered) == []
    assert len(listed) == len(set(listed))
    assert not [name for name in listed if name.startswith(tuple(REFUSED))]
    for name in ("resnet18", "resnext50_32x4d"):  # the table the small ResNets are built from
        block, depths, groups, _ = RESNET_ARCHS[name]
        reference = create_model(name)
        assert [len(getattr(reference, f"layer{i}")) for i in range(1, 5)] == list(depths)
        assert type(reference.layer1[0]) is block and reference.groups == groups


@pytest.mark.parametrize("execution_mode", ["pynative"], indirect=True)
@pytest.mark.parametrize("backbone", MEMBERS)
def test_family_reaches_both_output_strides(execution_mode, backbone):
    """Strides measured from output sizes and names unchanged by the output stride; a compiled (graph-mode)
    training step at output stride 8, where most convolutions are dilated."""
    shapes = {}
    x = image((1, 3, SIZE, SIZE))
    for output_stride in (16, 8):
        net = build_model(_config(backbone), output_stride=output_stride)
        shapes[output_stride] = {p.name: tuple(p.shape) for p in net.get_parameters()}
        net.set_train(False)
        low, high = net.backbone(x)
        assert (SIZE // low.shape[2], SIZE // low.shape[3]) == (4, 4)
        assert (SIZE // high.shape[2], SIZE // high.shape[3]) == (output_stride, output_stride)
        assert high.shape[1] == net.backbone.out_channels and low.shape[1] == net.backbone.low_level_channels
        stages = net.backbone.stages()
        assert stages[-1].stride == output_stride
        assert max(d for s in stages for d in s.dilations) == MEMBERS[backbone][output_stride]
    assert shapes[16] == shapes[8]
    assert all(name.startswith(("backbone.net.", "aspp.", "decoder.")) for name in shapes[16])

    net.set_train(True)
    labels = ms.Tensor(np.random.default_rng(0).integers(0, 3, (1, SIZE, SIZE)).astype(np.int32))
    loss, grads = _train_step(net)(x, labels)
    assert np.isfinite(float(loss))
    grads = {p.name: g.asnumpy() for p, g in zip(net.trainable_params(), grads)}
    assert all(np.isfinite(g).all() for g in grads.values())
    first = next(name for name in grads if name.startswith("backbone."))  # the stem: the whole path is connected
    assert np.abs(grads[first]).sum() > 0, first


def _train_step(net: nn.Cell):
    loss_fn = nn.CrossEntropyLoss()

    def forward(x, y):
        return loss_fn(net(x), y)

    return ms.jit(ms.value_and_grad(forward, None, net.trainable_params()))


def _classification_features(model: nn.Cell, stage: str, x: ms.Tensor) -> ms.Tensor:
    """The classification model's output after its cell ``features_<k>`` (flattened name), run cell by cell."""
    container, index = stage.rsplit("_", 1)
    for cell in list(getattr(model, container).cell_list)[:int(index) + 1]:
        x = cell(x)
    return x


@pytest.fixture(scope="module", params=["mobilenet_v2_100", "convnext_tiny"])
def classification_file(request, tmp_path_factory):
    """A randomised MindCV classification model and its checkpoint, saved as MindCV publishes them."""
    model = create_model(request.param)
    randomize(model, seed=4)
    path = tmp_path_factory.mktemp("imagenet") / f"{request.param}.ckpt"
    ms.save_checkpoint(model, str(path))
    return request.param, model, path


@pytest.mark.parametrize("execution_mode", ["pynative"], indirect=True)
@pytest.mark.parametrize("output_stride", [16, 8])
def test_classification_checkpoint_loads_strictly_and_gives_its_features(classification_file, execution_mode,
                                                                         output_stride):
    """Every stage equals the classification model's feature at that point; dilated stages (timm's rule) equal it
    on every ``classification stride / output stride``-th pixel, the dense extraction dilation promises."""
    name, model, path = classification_file
    net = build_model(_config(name), output_stride=output_stride)
    report = load_checkpoint(net, path)
    backbone_names = [p.name for p in net.get_parameters() if p.name.startswith("backbone.")]
    assert report.source_format == "imagenet" and sorted(report.loaded) == sorted(backbone_names)
    head = ("classifier.", "norm.", "features.20.", "features.21.")  # ConvNeXt's final norm; MobileNet's 1x1 head
    assert report.unused and all(n.startswith(head) for n in report.unused)
    model.set_train(False)
    net.set_train(False)
    x = image((1, 3, SIZE, SIZE), seed=3)
    dilated = 0
    for stage, output in zip(net.backbone.stages(), net.backbone.stage_features(x)):
        expected = _classification_features(model, stage.name, x).asnumpy()
        step = output.shape[2] // expected.shape[2]
        dilated += step > 1
        np.testing.assert_allclose(output.asnumpy()[:, :, ::step, ::step], expected, rtol=1e-4, atol=1e-4,
                                   err_msg=stage.name)
    assert dilated >= 1


def test_classification_checkpoint_with_a_tensor_removed_names_it(classification_file, tmp_path):
    name, model, _ = classification_file
    entries = params_of(model)
    removed = sorted(n for n in entries if not n.startswith(("classifier.", "norm.")))[5]
    del entries[removed]
    net = build_model(_config(name))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(net, write_ckpt(tmp_path / "cut.ckpt", entries))
    flattened = removed.replace("features.", "features_").replace("feature.", "feature_")
    assert "1 network tensors are missing" in str(info.value) and f"backbone.net.{flattened}" in str(info.value)


def test_checkpoint_of_another_backbone_names_the_mismatches(tmp_path):
    other = create_model("mobilenet_v3_small_100")
    path = tmp_path / "v3.ckpt"
    ms.save_checkpoint(other, str(path))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(build_model(_config("mobilenet_v2_100")), path)
    message = str(info.value)
    assert "differ in shape" in message and "backbone.net.features_0.weight" in message
    assert "ImageNet checkpoint of another backbone" in message and "model.backbone" in message


@pytest.mark.parametrize("backbone, expected", [("swin_tiny", "not a supported MindCV backbone"),
                                                ("resnest50", "average pooling")])
def test_unsupported_backbone_is_a_config_error_listing_the_names(tmp_path, backbone, expected):
    config = tmp_path / "c.yaml"
    config.write_text("{}\n")
    result = run_tool("inspect_model", ["--config", config, "--set", f"model.backbone={backbone}"], timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert expected in result.stderr and "mobilenet_v2_100" in result.stderr and "convnext_tiny" in result.stderr


def test_mobilenet_v2_deeplabv3_training_lowers_the_loss(tmp_path):
    mindrecord = write_training_set(tmp_path / "data", num_images=8, size=64)
    work = tmp_path / "work"
    config = tmp_path / "empty.yaml"
    config.write_text("{}\n")
    overrides = run_overrides(mindrecord, work, 30, ["model.backbone=mobilenet_v2_100", "model.layers=null",
                                                     "model.base_channels=64", "model.aspp_channels=32",
                                                     "data.train.crop_size=65", "schedule.base_lr=0.01",
                                                     "model.dropout=0.0"])
    result = run_tool("train", ["--config", config, "--set", *overrides], timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if r["type"] == "train"]
    assert len(losses) == 30 and np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses


def test_inspect_model_lists_backbones_and_describes_a_mobilenet_config(repo):
    listed = run_tool("inspect_model", ["--list-backbones"], timeout=120)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:] if line.startswith("  ")}
    assert all(name in rows[family] for family, names in FAMILIES.items() for name in names)
    assert "resnest" in rows and "hrnet" in rows

    result = run_tool("inspect_model", ["--config", repo / "configs" / "deeplabv3_s16_mobilenetv2_vocaug.yaml",
                                        "--set", "model.output_stride=8", "--input-size", "65", "65"], timeout=300)
    assert result.returncode == 0, result.stderr
    stages = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.startswith("  features_")}
    # name: blocks, stride, dilation, "(all)", channels, feature map
    assert stages["features_5"][1:6] == ["1", "4", "1", "(all)", "24"]
    assert stages["features_9"][1:6] == ["1", "8", "1", "(all)", "64"]  # was strided: keeps the previous dilation
    assert stages["features_10"][1:6] == ["1", "8", "2", "(all)", "64"]
    assert stages["features_16"][1:6] == ["1", "8", "2", "(all)", "160"]  # the next strided block: previous (2)
    assert stages["features_17"][1:6] == ["1", "8", "4", "(all)", "160"]
    assert stages["features_19"][1:7] == ["1", "8", "4", "(all)", "320", "9"]


@pytest.mark.parametrize("backbone, fmt, extra", [("mobilenet_v2_100", "ONNX", ()), ("efficientnet_b0", "ONNX", ()),
                                                   ("mobilenet_v3_small_100", "MINDIR", ()),
                                                   ("mobilenet_v3_small_100", "ONNX", ()),
                                                   ("convnext_tiny", "ONNX", ("model.output_stride=8",))])
def test_export_per_family(tmp_path, backbone, fmt, extra):
    """MINDIR and ONNX work for every family (MobileNetV3's hard activations and ConvNeXt's dilated 2x2
    downsampling through their ONNX stand-ins), verified against the network with random weights."""
    overrides = [f"model.backbone={backbone}", "model.num_classes=3", "model.aspp_channels=8", "model.aspp_rates=[1,2]",
                 *extra]
    net = build_model(load_config(None, overrides))
    randomize(net)
    checkpoint = save_weights(net, tmp_path / "w.ckpt")
    config = tmp_path / "c.yaml"
    config.write_text("{}\n")
    out = tmp_path / f"net.{fmt.lower()}"
    result = run_tool("export", ["--config", config, "--set", *overrides, "--checkpoint", checkpoint, "--format", fmt,
                                 "--out", out, "--input-size", "64", "64"], timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert out.is_file() and "max |difference|" in result.stdout
