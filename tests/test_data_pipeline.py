"""Training augmentation and the batched, sharded, reproducible training stream."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from data_helpers import random_pair, train_config, write_list
from deeplabv3.data.io import read_image, read_label
from deeplabv3.data.mindrecord import build_mindrecord
from deeplabv3.data.pipeline import build_train_dataset, steps_per_epoch
from deeplabv3.data.transforms import TrainTransformParams, train_transform


def reference_transform(image, label, p, rng):
    """The recipe's steps literally: rescale, normalise the whole image, pad, crop, flip, CHW."""
    h, w = label.shape
    s = rng.uniform(p.min_scale, p.max_scale)
    nh, nw = int(h * s), int(w * s)
    image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_CUBIC)
    label = cv2.resize(label, (nw, nh), interpolation=cv2.INTER_NEAREST)
    image = (image.astype(np.float32) - np.float32(p.mean)) / np.float32(p.std)
    ph, pw = max(nh, p.crop_size), max(nw, p.crop_size)
    image = cv2.copyMakeBorder(image, 0, ph - nh, 0, pw - nw, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    label = cv2.copyMakeBorder(label, 0, ph - nh, 0, pw - nw, cv2.BORDER_CONSTANT, value=p.ignore_label)
    top, left = rng.integers(0, ph - p.crop_size + 1), rng.integers(0, pw - p.crop_size + 1)
    image = image[top:top + p.crop_size, left:left + p.crop_size]
    label = label[top:top + p.crop_size, left:left + p.crop_size]
    if rng.random() < p.flip_prob:
        image, label = image[:, ::-1], label[:, ::-1]
    return image.transpose(2, 0, 1), label


def sample(h, w, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8), rng.integers(0, 3, (h, w)).astype(np.uint8)


@pytest.mark.parametrize("h,w", [(20, 30), (60, 45), (90, 120)])
def test_transform_equals_the_reference_order(h, w):
    params = TrainTransformParams(crop_size=41)
    image, label = sample(h, w)
    for seed in range(8):
        out_image, out_label = train_transform(image, label, params, np.random.default_rng(seed))
        ref_image, ref_label = reference_transform(image, label, params, np.random.default_rng(seed))
        assert out_image.shape == (3, 41, 41) and out_image.dtype == np.float32 and out_image.flags.c_contiguous
        assert out_label.shape == (41, 41) and out_label.dtype == np.int32
        np.testing.assert_array_equal(out_image, ref_image)
        np.testing.assert_array_equal(out_label, ref_label)


def test_padding_image_zero_label_ignore():
    params = TrainTransformParams(crop_size=41, min_scale=1.0, max_scale=1.0, flip_prob=0.0)
    image, label = sample(20, 30)
    out_image, out_label = train_transform(image, label, params, np.random.default_rng(0))
    normalised = (image.astype(np.float32) - np.float32(params.mean)) / np.float32(params.std)
    np.testing.assert_allclose(out_image[:, :20, :30], normalised.transpose(2, 0, 1), rtol=1e-6)
    np.testing.assert_array_equal(out_label[:20, :30], label)
    assert (out_image[:, 20:] == 0).all() and (out_image[:, :, 30:] == 0).all()
    assert (out_label[20:] == 255).all() and (out_label[:, 30:] == 255).all()


def test_flip_applies_to_image_and_label_together():
    image, label = sample(50, 70, seed=4)
    kept = train_transform(image, label, TrainTransformParams(crop_size=41, flip_prob=0.0), np.random.default_rng(9))
    flipped = train_transform(image, label, TrainTransformParams(crop_size=41, flip_prob=1.0),
                              np.random.default_rng(9))
    np.testing.assert_array_equal(flipped[0], kept[0][:, :, ::-1])
    np.testing.assert_array_equal(flipped[1], kept[1][:, ::-1])
    assert not np.array_equal(flipped[1], kept[1])


def test_scale_is_drawn_from_the_configured_range():
    params = TrainTransformParams(crop_size=200, min_scale=0.5, max_scale=2.0, flip_prob=0.0)
    image, label = sample(40, 60)
    scales = []
    for seed in range(40):
        _, out_label = train_transform(image, label, params, np.random.default_rng(seed))
        rows, cols = np.nonzero(out_label != 255)
        s = np.random.default_rng(seed).uniform(0.5, 2.0)  # the first draw is the scale
        assert (rows.max() + 1, cols.max() + 1) == (int(40 * s), int(60 * s))
        scales.append((rows.max() + 1) / 40)
    assert 0.5 <= min(scales) < 0.7 and 1.8 < max(scales) <= 2.0


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    return [random_pair(root, f"p{i:02d}", h=30 + i, w=56 - i, seed=i) for i in range(24)]


@pytest.fixture(scope="module")
def shard(pairs):
    root = pairs[0][0].parent
    return build_mindrecord(write_list(root / "train.txt", pairs), root / "train.mindrecord", num_shards=2,
                            num_classes=3).first_shard


def collect(cfg, epochs=2, total_epochs=2, **kwargs):
    dataset = build_train_dataset(cfg, **kwargs)
    iterator = dataset.create_dict_iterator(num_epochs=total_epochs, output_numpy=True)
    return [[(b["image"].copy(), b["label"].copy()) for b in iterator] for _ in range(epochs)]


def test_stream_carries_the_stored_pairs(shard, pairs):
    """Without rescaling, flipping or cropping, every sample is a stored pair, normalised and padded."""
    cfg = train_config(shard, "data.train.crop_size=60", "data.train.min_scale=1.0", "data.train.max_scale=1.0",
                       "data.train.flip_prob=0.0")
    sources = {read_label(lab).shape: (read_image(img), read_label(lab)) for img, lab in pairs}
    seen = set()
    for images, labels in collect(cfg, epochs=1, total_epochs=1)[0]:
        for image, label in zip(images, labels):
            h, w = int((label.sum(axis=1) != 255 * 60).sum()), int((label.sum(axis=0) != 255 * 60).sum())
            source_image, source_label = sources[(h, w)]
            np.testing.assert_array_equal(label[:h, :w], source_label)
            assert (label[h:] == 255).all() and (label[:, w:] == 255).all() and (image[:, h:] == 0).all()
            expected = (source_image.astype(np.float32) - np.float32(cfg.data.mean)) / np.float32(cfg.data.std)
            np.testing.assert_allclose(image[:, :h, :w], expected.transpose(2, 0, 1), rtol=1e-6)
            seen.add((h, w))
    assert len(seen) == len(pairs)


def same(a, b):
    return len(a) == len(b) and all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) for x, y in zip(a, b))


def test_batches_and_steps_per_epoch(shard):
    cfg = train_config(shard)
    assert [steps_per_epoch(cfg, g) for g in (1, 2, 5)] == [6, 3, 1]  # 24 samples, ceil(24 / g) // 4
    dataset = build_train_dataset(cfg, rank=1, group_size=2)
    assert dataset.get_dataset_size() == 3
    batches = collect(cfg, epochs=1, total_epochs=1)[0]
    assert len(batches) == 6
    image, label = batches[0]
    assert image.shape == (4, 3, 41, 41) and image.dtype == np.float32
    assert label.shape == (4, 41, 41) and label.dtype == np.int32
    assert set(np.unique(np.stack([b[1] for b in batches])).tolist()) <= {0, 1, 2, 255}


def test_fixed_seed_gives_identical_batches_and_exact_resume(shard):
    cfg = train_config(shard, "train.deterministic_data=true", "runtime.seed=7")
    first = collect(cfg, rank=1, group_size=2)
    second = collect(cfg, rank=1, group_size=2)
    assert all(same(a, b) for a, b in zip(first, second))
    assert not same(first[0], first[1])  # another epoch: another order and other crops
    resumed = collect(cfg, epochs=1, rank=1, group_size=2, epoch_offset=1, skip_batches=1)
    assert same(resumed[0], first[1][1:])
    other_seed = collect(train_config(shard, "train.deterministic_data=true", "runtime.seed=8"), epochs=1)
    assert not same(other_seed[0], collect(cfg, epochs=1)[0])
    with pytest.raises(ValueError, match="skip_batches"):
        build_train_dataset(cfg, skip_batches=6)


def test_default_mode_draws_fresh_augmentation(shard):
    cfg = train_config(shard, "runtime.seed=7")
    first, second = collect(cfg, epochs=1), collect(cfg, epochs=1)
    assert not same(first[0], second[0])


def test_non_square_crop_and_base_size_resize():
    """crop [h, w]; base_size scales the *base* by the drawn ratio and fits the image into it, keeping its ratio."""
    image, label = np.zeros((64, 128, 3), np.uint8), np.zeros((64, 128), np.uint8)
    params = TrainTransformParams(crop_size=(300, 500), min_scale=1.5, max_scale=1.5, flip_prob=0.0,
                                  base_size=(256, 128))
    out_image, out_label = train_transform(image, label, params, np.random.default_rng(0))
    assert out_image.shape == (3, 300, 500) and out_label.shape == (300, 500)
    # fit 64 x 128 into (128 * 1.5) x (256 * 1.5): factor 3 -> 192 x 384 labelled, the rest padding
    assert (out_label[:192, :384] == 0).all() and (out_label[192:] == 255).all() and (out_label[:, 384:] == 255).all()


def test_non_square_crop_batches(shard):
    cfg = train_config(shard, "data.train.crop_size=[33, 49]", "data.train.base_size=[96, 48]")
    images, labels = next(build_train_dataset(cfg).create_tuple_iterator(num_epochs=1))
    assert images.shape == (4, 3, 33, 49) and labels.shape == (4, 33, 49)
