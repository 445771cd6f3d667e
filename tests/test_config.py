"""Config loading: inheritance, overrides, validation messages, round trip, shipped configs."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deeplabv3.config import (Config, ConfigError, check_training, config_warnings, key_error, load_config, replace,
                              save_config, schema_reference)

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "configs").glob("*.yaml"))


def write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_inheritance_child_wins_and_bases_merge_in_order(tmp_path):
    write(tmp_path / "base" / "a.yaml", {"model": {"num_classes": 5, "output_stride": 8}, "train": {"epochs": 7}})
    write(tmp_path / "base" / "b.yaml", {"_base_": ["a.yaml"], "model": {"num_classes": 6}})
    write(tmp_path / "other.yaml", {"train": {"epochs": 9, "log_interval": 3}})
    child = write(tmp_path / "child.yaml", {"_base_": ["base/b.yaml", "other.yaml"], "train": {"log_interval": 4}})
    cfg = load_config(child)
    assert cfg.model.num_classes == 6          # b overrides a
    assert cfg.model.output_stride == 8        # a, untouched by b (recursive merge)
    assert cfg.train.epochs == 9               # the later base wins over the earlier one
    assert cfg.train.log_interval == 4         # the child wins over every base


def test_override_order_and_yaml_values(tmp_path):
    cfg_file = write(tmp_path / "c.yaml", {"model": {"output_stride": 16}, "eval": {"scales": [1.0]}})
    cfg = load_config(cfg_file, ["model.output_stride=8", "eval.scales=[0.5,1.0]", "eval.flip=true",
                                 "train.epochs=3", "train.epochs=4"])
    assert cfg.model.output_stride == 8
    assert cfg.eval.scales == [0.5, 1.0]
    assert cfg.eval.flip is True
    assert cfg.train.epochs == 4               # the later override wins


def test_list_override_replaces_whole_list(tmp_path):
    cfg = load_config(None, ["model.aspp_rates=[1,12,24,36]", "data.class_names=[bg,fg]", "model.num_classes=2"])
    assert cfg.model.aspp_rates == [1, 12, 24, 36]
    assert cfg.data.class_names == ["bg", "fg"]
    assert cfg.class_names == ("bg", "fg")


@pytest.mark.parametrize("value", ["null", "None", "~", ""])
def test_null_values_are_none_not_strings(value):
    cfg = load_config(None, ["model.pretrained_backbone=x.ckpt", f"model.pretrained_backbone={value}"])
    assert cfg.model.pretrained_backbone is None


def test_misspelt_key_names_file_and_suggests(tmp_path):
    bad = write(tmp_path / "bad.yaml", {"optimizer": {"weight_decay_filtr": "all"}})
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    msg = str(err.value)
    assert str(bad) in msg
    assert "optimizer.weight_decay_filtr" in msg
    assert "did you mean weight_decay_filter?" in msg


def test_misspelt_key_in_base_names_the_base_file(tmp_path):
    base = write(tmp_path / "base.yaml", {"model": {"num_clases": 3}})
    child = write(tmp_path / "child.yaml", {"_base_": "base.yaml", "train": {"epochs": 1}})
    with pytest.raises(ConfigError, match="did you mean num_classes") as err:
        load_config(child)
    assert str(base) in str(err.value)


def test_unknown_section_and_override_key():
    with pytest.raises(ConfigError, match=r"unknown key 'trian' \(did you mean train\?\)"):
        load_config(None, ["trian.epochs=3"])
    with pytest.raises(ConfigError, match=r"--set eval.scale=\[1.0\].*did you mean scales\?"):
        load_config(None, ["eval.scale=[1.0]"])


@pytest.mark.parametrize("override, expected", [
    ("train.epochs=abc", "'train.epochs': expected int, got 'abc' (str)"),
    ("train.epochs=2.5", "'train.epochs': expected int, got 2.5 (float)"),
    ("eval.flip=1", "'eval.flip': expected bool, got 1 (int)"),
    ("eval.scales=1.0", "'eval.scales': expected list of float, got 1.0 (float)"),
    ("eval.scales=[1.0,x]", "'eval.scales[1]': expected float, got 'x' (str)"),
    ("model.pretrained_backbone=[1]", "'model.pretrained_backbone': expected str or null, got [1] (list)"),
])
def test_wrong_types_name_key_value_and_expected_type(override, expected):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert expected in str(err.value)


def test_choices_and_consistency_rules():
    with pytest.raises(ConfigError, match="'model.output_stride' is 32; choose one of: 8, 16"):
        load_config(None, ["model.output_stride=32"])
    with pytest.raises(ConfigError, match="'model.dropout' is 1.5"):
        load_config(None, ["model.dropout=1.5"])
    with pytest.raises(ConfigError, match="data.class_names' has 2 names but model.num_classes is 21"):
        load_config(None, ["data.class_names=[a,b]"])


@pytest.mark.parametrize("override, key", [
    ("model.layers=[1,1]", "model.layers"),
    ("model.layers=[1,0,1,1]", "model.layers"),
    ("model.multi_grid=[0]", "model.multi_grid"),
    ("model.aspp_rates=[1,-6]", "model.aspp_rates"),
    ("model.base_channels=0", "model.base_channels"),
])
def test_invalid_model_keys_are_config_errors(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [override])


@pytest.mark.parametrize("override, key", [("schedule.min_lr=0.5", "schedule.min_lr"),
                                            ("schedule.milestones=[5,2]", "schedule.milestones"),
                                            ("schedule.base_lr=0", "schedule.base_lr")])
def test_invalid_schedule_settings_name_the_key(override, key):
    name = "step" if "milestones" in override else "cosine"
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(overrides=["train.epochs=10", f"schedule.name={name}", override])


def test_tiles_with_gaps_are_refused():
    with pytest.raises(ConfigError, match="eval.tile_stride"):
        load_config(None, ["eval.crop_size=49", "eval.slide=true", "eval.tile_size=20", "eval.tile_stride=21"])


@pytest.mark.parametrize("override", ["model=null", "data.train=~", "loss_scale="])
def test_a_null_section_is_refused_naming_it(override, tmp_path):
    section = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"--set {override}: section '{section}' is null"):
        load_config(None, [override])
    child = tmp_path / "child.yaml"
    child.write_text(f"_base_: base.yaml\n{section.replace('.', ':' + chr(10) + '  ')}:\n", encoding="utf-8")
    write(tmp_path / "base.yaml", {"model": {"num_classes": 5}})
    for overrides in ([], [f"{section}.batch_size=2" if section == "data.train" else f"{section}.scale=2"]):
        with pytest.raises(ConfigError, match=f"section '{section}' is null") as err:
            load_config(child, overrides)
        assert str(child) in str(err.value)
    with pytest.raises(ConfigError, match=rf"^--set {override}: section '{section}' is null"):
        load_config(None, [override, f"{section}.x=1"])  # not started afresh by a later key


def test_a_mapping_override_merges_into_its_section(tmp_path):
    cfg_file = write(tmp_path / "c.yaml", {"model": {"num_classes": 5, "output_stride": 8}})
    assert load_config(cfg_file, ["model={}"]) == load_config(cfg_file)
    cfg = load_config(cfg_file, ["model={num_classes: 3, dropout: 0.5}"])
    assert (cfg.model.num_classes, cfg.model.output_stride, cfg.model.dropout) == (3, 8, 0.5)
    with pytest.raises(ConfigError, match=r"^--set model=\{dropout: 2\}: 'model.dropout' is 2.0"):
        load_config(cfg_file, ["model={dropout: 2}"])


@pytest.mark.parametrize("override, key, value", [
    ("schedule.base_lr=.nan", "schedule.base_lr", "nan"), ("schedule.base_lr=.inf", "schedule.base_lr", "inf"),
    ("schedule.min_lr=-.inf", "schedule.min_lr", "-inf"), ("loss_scale.scale=.inf", "loss_scale.scale", "inf"),
    ("eval.scales=[1.0,.nan]", "eval.scales[1]", "nan"), ("model.dropout=.nan", "model.dropout", "nan"),
])
def test_non_finite_floats_are_refused_naming_their_key(override, key, value):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert str(err.value) == f"--set {override}: '{key}' is {value}; it must be a finite number"


@pytest.mark.parametrize("overrides, named", [
    (["eval.crop_size=1"], "'eval.crop_size' 1 gives a 1 px network input"),
    (["eval.scales=[0.001]"], "'eval.scales' [0.001] with 'eval.crop_size' 513 gives a 1 px network input"),
    (["eval.crop_size=33", "eval.scales=[0.25,1.0]"], "gives a 9 px network input at scale 0.25"),
    (["eval.crop_size=13", "eval.output_stride=16", "model.output_stride=8"], "output stride 16 (eval.output_stride)"),
    (["eval.slide=true", "eval.slide_max_size=64", "eval.tile_size=12", "eval.tile_stride=8"],
     "'eval.tile_size' is 12, smaller than the output stride 16"),
    (["data.train.crop_size=15"], "'data.train.crop_size' is 15, smaller than the output stride 16"),
    (["data.train.crop_size=7", "model.output_stride=8"], "'data.train.crop_size' is 7, smaller than the output "
                                                          "stride 8"),
])
def test_network_inputs_smaller_than_the_output_stride_are_refused(overrides, named):
    with pytest.raises(ConfigError, match="less than one cell") as err:
        load_config(None, overrides)
    assert named in str(err.value) and str(err.value).startswith("--set ")


def test_inputs_as_small_as_the_output_stride_are_accepted():
    assert load_config(None, ["eval.crop_size=16", "data.train.crop_size=16"]).eval.crop_size == 16
    # 0.094 is the smallest scale the message offers for crop 161 at OS16: int(160 * 0.094) + 1 == 16
    assert load_config(None, ["eval.crop_size=161", "eval.scales=[0.094]"]).eval.scales == [0.094]
    with pytest.raises(ConfigError, match="use scales of at least 0.094"):
        load_config(None, ["eval.crop_size=161", "eval.scales=[0.093]"])
    # OS8 evaluation of a 9 px input: fine at the evaluation stride, slide tiles only for inputs above the limit
    assert load_config(None, ["eval.crop_size=9", "eval.output_stride=8"]).eval.output_stride == 8
    load_config(None, ["eval.slide=true", "eval.slide_max_size=600", "eval.tile_size=8", "eval.tile_stride=8"])


def test_training_rules(tmp_path):
    weights = tmp_path / "stage1.ckpt"
    weights.write_bytes(b"")
    both = load_config(overrides=[f"model.init_checkpoint={weights}", "model.pretrained_backbone=resnet101.ckpt"])
    with pytest.raises(ConfigError, match="set only one"):
        check_training(both)
    check_training(load_config(overrides=[f"model.init_checkpoint={weights}"]))
    missing = load_config(overrides=["model.init_checkpoint=nowhere/x.ckpt"])
    with pytest.raises(ConfigError, match=r"^--set model.init_checkpoint=nowhere/x.ckpt: 'model.init_checkpoint' is "
                                          r"nowhere/x.ckpt, which does not exist"):
        check_training(missing)
    with pytest.raises(ConfigError, match="'train.eval_interval' is set but 'data.eval.list' is not"):
        check_training(load_config(overrides=["train.eval_interval=10"]))
    # Periodic evaluation runs at the training stride, whatever eval.output_stride says.
    os8_eval = load_config(overrides=["train.eval_interval=10", "data.eval.list=val.txt", "eval.crop_size=9",
                                      "eval.output_stride=8"])
    with pytest.raises(ConfigError, match=r"output stride 16 \(model.output_stride\)"):
        check_training(os8_eval)


def test_a_loaded_config_names_its_origins_in_later_errors(tmp_path):
    cfg_file = write(tmp_path / "c.yaml", {"train": {"grad_accum_steps": 4}})
    cfg = replace(load_config(cfg_file, ["data.train.batch_size=2"]), **{"eval.flip": True})
    assert str(key_error(cfg, "train.grad_accum_steps", "x")) == f"{cfg_file}: x"
    assert str(key_error(cfg, ("train.grad_accum_steps", "data.train.batch_size"), "x")) == \
        f"--set data.train.batch_size=2, {cfg_file}: x"
    assert str(key_error(cfg, "eval.flip", "x")) == "replace(): x"
    assert str(key_error(cfg, "model.name", "x")) == "config: x"


def test_ints_are_accepted_for_floats():
    cfg = load_config(None, ["schedule.base_lr=1", "eval.scales=[1, 2]"])
    assert cfg.schedule.base_lr == 1.0 and isinstance(cfg.schedule.base_lr, float)
    assert cfg.eval.scales == [1.0, 2.0]


def test_bad_yaml_missing_file_and_base_cycle(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [1, 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    write(tmp_path / "a.yaml", {"_base_": ["b.yaml"]})
    write(tmp_path / "b.yaml", {"_base_": ["a.yaml"]})
    with pytest.raises(ConfigError, match="circular _base_ inheritance"):
        load_config(tmp_path / "a.yaml")
    with pytest.raises(ConfigError, match="must look like KEY=VALUE"):
        load_config(None, ["train.epochs"])


def test_effective_config_round_trip(tmp_path):
    cfg = load_config(REPO / "configs" / "deeplabv3_s8_r101_vocaug.yaml",
                      ["eval.scales=[0.5,0.75,1.0,1.25,1.75]", "eval.flip=true", "model.pretrained_backbone=null"])
    path = save_config(cfg, tmp_path / "work" / "config.yaml")
    again = load_config(path)
    assert again == cfg
    assert isinstance(again, Config)


def test_replace_validates():
    cfg = load_config(None)
    assert replace(cfg, **{"eval.flip": True}).eval.flip is True
    with pytest.raises(ConfigError):
        replace(cfg, **{"eval.flipp": True})


def test_schema_reference_documents_every_key():
    rows = schema_reference()
    keys = [row[0] for row in rows]
    assert "optimizer.weight_decay_filter" in keys and "data.train.crop_size" in keys
    assert len(keys) == len(set(keys))
    assert all(row[3] for row in rows), [row[0] for row in rows if not row[3]]


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_config_validates(path):
    cfg = load_config(path)
    assert cfg.model.num_classes >= 2


def test_published_recipe_values():
    s16 = load_config(REPO / "configs" / "deeplabv3_s16_r101_vocaug.yaml")
    s8 = load_config(REPO / "configs" / "deeplabv3_s8_r101_vocaug.yaml")
    assert (s16.model.output_stride, s16.data.train.batch_size, s16.train.epochs, s16.schedule.base_lr,
            s16.loss_scale.scale) == (16, 32, 300, 0.08, 3072.0)
    assert (s8.model.output_stride, s8.data.train.batch_size, s8.train.epochs, s8.schedule.base_lr,
            s8.loss_scale.scale) == (8, 16, 500, 0.02, 2048.0)
    for cfg in (s16, s8):
        assert cfg.model.aspp_rates == [1, 6, 12, 18]
        assert cfg.data.mean == [103.53, 116.28, 123.675] and cfg.data.std == [57.375, 57.120, 58.395]
        assert (cfg.optimizer.momentum, cfg.optimizer.weight_decay) == (0.9, 1e-4)


def test_exponent_without_dot_is_a_float(tmp_path):
    cfg_file = write(tmp_path / "c.yaml", {})
    cfg_file.write_text("schedule:\n  min_lr: 1e-7\n", encoding="utf-8")
    assert load_config(cfg_file).schedule.min_lr == 1e-7
    assert load_config(None, ["schedule.min_lr=2E-6"]).schedule.min_lr == 2e-6


@pytest.mark.parametrize("device, level", [("CPU", "O0"), ("GPU", "O2"), ("Ascend", "O2")])
def test_amp_level_auto_follows_the_device_and_is_saved_resolved(device, level, tmp_path):
    recipe = load_config(REPO / "configs" / "deeplabv3_s16_r101_vocaug.yaml", [f"runtime.device_target={device}"])
    assert recipe.train.amp_level == level
    saved = save_config(recipe, tmp_path / "config.yaml")
    assert yaml.safe_load(saved.read_text(encoding="utf-8"))["train"]["amp_level"] == level
    assert load_config(saved) == recipe
    assert load_config(None, [f"runtime.device_target={device}", "train.amp_level=auto"]).train.amp_level == level


def test_an_explicit_amp_level_wins_over_the_device(tmp_path):
    for device in ("CPU", "GPU", "Ascend"):
        for level in ("O0", "O1", "O2", "O3"):
            cfg = load_config(None, [f"runtime.device_target={device}", f"train.amp_level={level}"])
            assert cfg.train.amp_level == level
    cfg_file = write(tmp_path / "c.yaml", {"train": {"amp_level": "O0"}})
    assert load_config(cfg_file, ["runtime.device_target=Ascend"]).train.amp_level == "O0"
    with pytest.raises(ConfigError, match="'train.amp_level' is 'O4'; choose one of: auto, O0, O1, O2, O3"):
        load_config(None, ["train.amp_level=O4"])


def test_float16_without_loss_scaling_is_a_warning_naming_both_keys():
    [message] = config_warnings(load_config(None, ["runtime.device_target=GPU"]))  # auto: O2; loss scale: none
    assert message.startswith("--set runtime.device_target=GPU: 'train.amp_level' is O2 (auto picks O2")
    assert "'train.amp_level' is O2" in message and "'loss_scale.type' is none" in message
    [explicit] = config_warnings(load_config(None, ["train.amp_level=O3", "loss_scale.type=none"]))
    assert explicit.startswith("--set train.amp_level=O3, --set loss_scale.type=none: 'train.amp_level' is O3")
    assert config_warnings(load_config(None)) == []  # CPU: O0
    assert config_warnings(load_config(None, ["train.amp_level=O1"])) == []  # O1 keeps float32 where it matters
    assert config_warnings(load_config(None, ["runtime.device_target=GPU", "loss_scale.type=dynamic"])) == []
    for path in SHIPPED:  # the recipes scale the loss
        assert config_warnings(load_config(path, ["runtime.device_target=Ascend"])) == [], path
