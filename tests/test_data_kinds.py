"""Cityscapes, ADE20K and custom data: generated trees in the real layouts, prepared by tools/prepare_dataset.py."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import run_tool
from data_helpers import write_jpeg, write_png
from deeplabv3.config import ConfigError, load_config
from deeplabv3.data import synthetic
from deeplabv3.data.cityscapes import to_label_ids, to_train_ids
from deeplabv3.data.lists import read_pairs

# cityscapesscripts/helpers/labels.py: (id, trainId) of all 35 labels, 255 = not trained on.
OFFICIAL = [(0, 255), (1, 255), (2, 255), (3, 255), (4, 255), (5, 255), (6, 255), (7, 0), (8, 1), (9, 255), (10, 255),
            (11, 2), (12, 3), (13, 4), (14, 255), (15, 255), (16, 255), (17, 5), (18, 255), (19, 6), (20, 7), (21, 8),
            (22, 9), (23, 10), (24, 11), (25, 12), (26, 13), (27, 14), (28, 15), (29, 255), (30, 255), (31, 16),
            (32, 17), (33, 18), (-1, 255)]
CUSTOM_CONFIG = ["model.num_classes=3", "data.class_names=[background,disc,box]", "data.dataset=custom"]
PALETTE = "data.palette=[[0,0,0],[220,40,40],[40,90,230]]"


def prepare(*args) -> "subprocess.CompletedProcess":  # noqa: F821
    return run_tool("prepare_dataset", [str(a) for a in args])


def labels_of(out: Path, split: str):
    return [(Path(i), np.asarray(Image.open(lbl))) for i, lbl in read_pairs(out / f"{split}.txt")]


def test_cityscapes_table_maps_every_id_and_minus_one():
    ids = np.array([[i for i, _ in OFFICIAL]], dtype=np.int16)
    assert to_train_ids(ids).tolist() == [[t for _, t in OFFICIAL]]
    train_ids = np.arange(19, dtype=np.uint8)
    assert to_train_ids(to_label_ids(train_ids)).tolist() == train_ids.tolist()


def test_cityscapes_tree_converts_to_train_ids(tmp_path):
    masks = synthetic.write_cityscapes(tmp_path / "cs")
    done = prepare("--kind", "cityscapes", "--root", tmp_path / "cs", "--out", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    info = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert info["num_classes"] == 19 and info["class_names"][0] == "road"
    for split in ("train", "val"):
        pairs = labels_of(tmp_path / "out", split)
        assert len(pairs) == len(masks[split])
        for (image, label), mask in zip(pairs, sorted(masks[split])):
            assert image.name.replace("_leftImg8bit.png", "") == mask.name.replace("_gtFine_labelIds.png", "")
            source = np.asarray(Image.open(mask)).astype(np.int64)
            assert np.array_equal(label, np.vectorize(dict(OFFICIAL).get)(source))
        assert set(np.unique(pairs[0][1])) == set(range(19)) | {255}  # the first image holds every id


def test_cityscapes_unknown_id_is_named(tmp_path):
    masks = synthetic.write_cityscapes(tmp_path / "cs", per_city=1)
    write_png(masks["val"][0], np.full((64, 128), 40, np.uint8), "L")
    done = prepare("--kind", "cityscapes", "--root", tmp_path / "cs", "--out", tmp_path / "out")
    assert done.returncode == 2
    assert str(masks["val"][0]) in done.stderr and "40 (8192 px)" in done.stderr and "labelIds" in done.stderr
    assert not (tmp_path / "out" / "train.txt").exists()


def test_ade20k_reduce_zero_label(tmp_path):
    synthetic.write_ade20k(tmp_path / "ADEChallengeData2016")
    done = prepare("--kind", "ade20k", "--root", tmp_path / "ADEChallengeData2016", "--out", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    for split, folder in (("train", "training"), ("val", "validation")):
        pairs = labels_of(tmp_path / "out", split)
        for image, label in pairs:
            source = np.asarray(Image.open(tmp_path / "ADEChallengeData2016" / "annotations" / folder /
                                           f"{image.stem}.png")).astype(np.int64)
            assert np.array_equal(label, np.where(source == 0, 255, source - 1))
        assert set(np.unique(pairs[0][1])) == set(range(150)) | {255}


@pytest.mark.parametrize("mask_format", ["rgb", "binary", "index"])
def test_custom_mask_formats(tmp_path, mask_format):
    images, masks = synthetic.write_custom(tmp_path / "mine", num_images=6, mask_format=mask_format)
    overrides = [*CUSTOM_CONFIG, PALETTE, f"data.mask_format={mask_format}"]
    if mask_format == "binary":
        overrides[:2] = ["model.num_classes=2", "data.class_names=[background,object]"]
        overrides.remove(PALETTE)
    done = prepare("--kind", "custom", "--images", images, "--masks", masks, "--val-fraction", 0.34, "--out",
                   tmp_path / "out", "--set", *overrides)
    assert done.returncode == 0, done.stderr
    train, val = labels_of(tmp_path / "out", "train"), labels_of(tmp_path / "out", "val")
    assert (len(train), len(val)) == (4, 2)
    for image, label in train + val:
        _, expected = synthetic.custom_scene(np.random.default_rng([0, int(image.stem.split("_")[1])]), 96, 112)
        assert np.array_equal(label, expected if mask_format != "binary" else (expected > 0).astype(np.uint8))


def test_custom_label_map_and_reduce_zero_label(tmp_path):
    mask = np.array([[0, 255, 1, 2]] * 4, dtype=np.uint8)
    write_jpeg(tmp_path / "im" / "a.jpg", np.zeros((4, 4, 3), np.uint8))
    write_png(tmp_path / "m" / "a.png", mask, "L")
    common = ["--kind", "custom", "--images", tmp_path / "im", "--masks", tmp_path / "m", "--set",
              "model.num_classes=2"]
    done = prepare(*common, "data.label_map={255: 1, 2: 255}", "--out", tmp_path / "mapped")
    assert done.returncode == 0, done.stderr
    assert labels_of(tmp_path / "mapped", "train")[0][1][0].tolist() == [0, 1, 1, 255]
    done = prepare(*common, "data.reduce_zero_label=true", "--out", tmp_path / "mapped")  # other settings: redone
    assert done.returncode == 0, done.stderr
    assert labels_of(tmp_path / "mapped", "train")[0][1][0].tolist() == [255, 255, 0, 1]
    done = prepare(*common, "data.reduce_zero_label=true", "--out", tmp_path / "mapped")
    assert "0 mask(s) converted, 1 already up to date" in done.stderr


def test_custom_errors_name_file_value_and_fix(tmp_path):
    write_jpeg(tmp_path / "im" / "a.jpg", np.zeros((4, 5, 3), np.uint8))
    write_png(tmp_path / "m" / "a.png", np.array([[0, 1, 7, 7, 9]] * 4, np.uint8), "L")
    done = prepare("--kind", "custom", "--images", tmp_path / "im", "--masks", tmp_path / "m", "--out",
                   tmp_path / "out", "--set", *CUSTOM_CONFIG)
    assert done.returncode == 2
    assert str(tmp_path / "m" / "a.png") in done.stderr and "7 (8 px), 9 (4 px)" in done.stderr
    assert "data.label_map" in done.stderr and not (tmp_path / "out" / "train.txt").exists()

    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[2, 3] = (1, 2, 3)
    write_png(tmp_path / "m" / "a.png", rgb, "RGB")
    done = prepare("--kind", "custom", "--images", tmp_path / "im", "--masks", tmp_path / "m", "--out",
                   tmp_path / "out", "--set", *CUSTOM_CONFIG, PALETTE, "data.mask_format=rgb")
    assert done.returncode == 2
    assert "a.png: colour RGB(1, 2, 3) at pixel (x=3, y=2) is not in the palette" in done.stderr


def test_unmatched_images_and_masks_name_both_files(tmp_path):
    write_jpeg(tmp_path / "im" / "lonely.jpg", np.zeros((4, 4, 3), np.uint8))
    write_png(tmp_path / "m" / "orphan_mask.png", np.zeros((4, 4), np.uint8), "L")
    done = prepare("--kind", "custom", "--images", tmp_path / "im", "--masks", tmp_path / "m", "--mask-suffix",
                   "_mask.png", "--out", tmp_path / "out", "--set", *CUSTOM_CONFIG)
    assert done.returncode == 2
    assert f"image {tmp_path / 'im' / 'lonely.jpg'} has no mask (expected {tmp_path / 'm' / 'lonely_mask.png'})" \
        in done.stderr
    assert f"mask {tmp_path / 'm' / 'orphan_mask.png'} has no image (expected {tmp_path / 'im' / 'orphan.jpg'})" \
        in done.stderr


@pytest.mark.parametrize("crop", ["0", "[512, -1]", "[512]"])
def test_crop_of_zero_or_negative_is_a_config_error(crop):
    with pytest.raises(ConfigError, match="data.train.crop_size"):
        load_config(None, [f"data.train.crop_size={crop}"])


def test_non_square_crop_and_config_keys_load():
    cfg = load_config(None, ["data.train.crop_size=[512, 1024]", "data.train.base_size=[2048, 1024]",
                             "data.label_map={255: 1}", "model.num_classes=2"])
    assert cfg.data.train.crop_size == [512, 1024] and cfg.data.label_map == {255: 1}
    with pytest.raises(ConfigError, match="label_map"):
        load_config(None, ["data.label_map={255: 7}", "model.num_classes=2"])


def test_predictions_convert_back_to_label_ids(tmp_path):
    from deeplabv3.visualization import save_mask

    save_mask(tmp_path / "preds" / "berlin_000000_000019_leftImg8bit.png", np.arange(19, dtype=np.uint8)[None])
    done = run_tool("cityscapes_label_ids", ["--pred-dir", tmp_path / "preds", "--out", tmp_path / "submit"])
    assert done.returncode == 0, done.stderr
    ids = np.asarray(Image.open(tmp_path / "submit" / "berlin_000000_000019_leftImg8bit.png"))
    assert ids.tolist() == [[i for i, t in OFFICIAL if t != 255 and i >= 0]]


def test_predict_writes_cityscapes_label_ids(tmp_path):
    """--label-ids writes what cityscapes_label_ids makes of predict's own masks, from the same network."""
    from conftest import TINY_MODEL
    from deeplabv3.models import build_model, save_weights

    synthetic.write_cityscapes(tmp_path / "cs", per_city=2, size=(33, 49))
    images = tmp_path / "cs" / "leftImg8bit" / "val" / "frankfurt"
    overrides = [*TINY_MODEL, "model.num_classes=19", "data.dataset=cityscapes", "eval.crop_size=33"]
    checkpoint = save_weights(build_model(load_config(None, overrides)), tmp_path / "tiny.ckpt")
    config = tmp_path / "c.yaml"
    config.write_text("{}\n")
    common = ["--config", config, "--set", *overrides, "--checkpoint", checkpoint, "--input", images]
    masks = run_tool("predict", [*common, "--out-dir", tmp_path / "masks"], timeout=600)
    ids = run_tool("predict", [*common, "--out-dir", tmp_path / "ids", "--label-ids"], timeout=600)
    assert masks.returncode == 0 and ids.returncode == 0, masks.stderr[-2000:] + ids.stderr[-2000:]
    converted = run_tool("cityscapes_label_ids", ["--pred-dir", tmp_path / "masks", "--out", tmp_path / "submit"])
    assert converted.returncode == 0, converted.stderr
    names = sorted(p.name for p in images.glob("*.png"))
    assert len(names) == 2 and sorted(p.name for p in (tmp_path / "ids").glob("*.png")) == names
    for name in names:
        with Image.open(tmp_path / "ids" / name) as written, Image.open(tmp_path / "masks" / name) as train_ids:
            assert written.mode == "L" and written.size == train_ids.size
            label_ids = np.asarray(written)
            np.testing.assert_array_equal(label_ids, to_label_ids(np.asarray(train_ids)))
        np.testing.assert_array_equal(label_ids, np.asarray(Image.open(tmp_path / "submit" / name)))
        assert set(np.unique(label_ids)) <= {i for i, t in OFFICIAL if t != 255 and i >= 0}

    voc = run_tool("predict", ["--config", config, "--set", *TINY_MODEL, "--checkpoint", checkpoint, "--input", images,
                               "--out-dir", tmp_path / "voc", "--label-ids"], timeout=120)
    assert voc.returncode == 2 and "Traceback" not in voc.stderr
    assert "data.dataset=voc" in voc.stderr and "--label-ids" in voc.stderr and not (tmp_path / "voc").exists()
