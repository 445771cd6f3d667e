"""The evaluation protocol on fixed tiny networks and odd-sized images."""
from __future__ import annotations

import cv2
import mindspore as ms
import numpy as np
import pytest

from deeplabv3.evaluation.predictor import Predictor, input_size, tile_starts
from eval_helpers import NUM_CLASSES, ConvNet, PixelNet, SizeDependentNet, eval_config, random_image, softmax

MEAN = np.array([103.53, 116.28, 123.675], np.float32)
STD = np.array([57.375, 57.120, 58.395], np.float32)


def direct_probabilities(net, image, resized_hw, square):
    """The protocol written out for one scale: resize, normalise, pad, run, softmax, crop, resize back."""
    h, w = resized_hw
    resized = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    x = np.zeros((1, 3, square, square), np.float32)
    x[0, :, :h, :w] = ((resized.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1)
    probs = softmax(net(ms.Tensor(x)).asnumpy()[0], axis=0)
    crop = np.ascontiguousarray(probs[:, :h, :w].transpose(1, 2, 0))
    return cv2.resize(crop, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)


# image size -> size of the image inside the 49 x 49 input (long side 49, short side rounded down)
CASES = [((37, 50), (36, 49)),   # landscape, downsampled
         ((61, 23), (49, 18)),   # portrait
         ((15, 20), (36, 49))]   # small: upsampled


@pytest.mark.parametrize("shape,resized", CASES)
def test_single_scale_equals_direct_computation(shape, resized):
    net = ConvNet()
    image = random_image(*shape, seed=1)
    predictor = Predictor(net, eval_config())
    probs = predictor.probabilities([image])[0]
    expected = direct_probabilities(net, image, resized, 49)
    assert probs.shape == (*shape, NUM_CLASSES) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    labels = predictor.predict(image)
    assert labels.shape == shape  # original resolution
    np.testing.assert_array_equal(labels, expected.argmax(axis=2))
    assert len(np.unique(labels)) > 1  # the check is not satisfied by a constant map


def test_input_size_follows_the_reference_formula():
    assert [input_size(513, s) for s in (0.5, 0.75, 1.0, 1.25, 1.75)] == [257, 385, 513, 641, 897]


def test_flip_of_mirrored_image_gives_mirrored_prediction():
    net = ConvNet(seed=3)
    image = random_image(37, 50, seed=2)  # landscape: no horizontal padding at any scale
    mirrored = np.ascontiguousarray(image[:, ::-1])
    flip = Predictor(net, eval_config("eval.flip=true", "eval.scales=[0.75,1.0]"))
    a, b = flip.probabilities([image, mirrored])
    np.testing.assert_allclose(b, a[:, ::-1], atol=1e-5)
    np.testing.assert_array_equal(flip.predict(mirrored), flip.predict(image)[:, ::-1])
    # without flip the network is not mirror-symmetric, so the property above is the flip's doing
    plain = Predictor(net, eval_config("eval.scales=[0.75,1.0]"))
    c, d = plain.probabilities([image, mirrored])
    assert np.abs(d - c[:, ::-1]).max() > 1e-2
    # and the flipped result is the plain one plus the mirrored image's, mirrored back
    np.testing.assert_allclose(a, c + d[:, ::-1], atol=1e-5)


def test_multi_scale_sums_probabilities_not_labels():
    # crop 33, scales 0.5 / 1.0 / 1.5 -> inputs 17, 33, 49; class 0 wins narrowly at two scales, class 1 clearly
    # at the third: a vote of labels says 0, the summed probabilities say 1.
    logits = {17: [0.2, 0.0, -2.0], 33: [0.2, 0.0, -2.0], 49: [-2.0, 3.0, -2.0]}
    net = SizeDependentNet(logits)
    image = random_image(21, 30)
    per_scale = [Predictor(net, eval_config(f"eval.scales=[{s}]", "eval.crop_size=33", num_classes=3))
                 .predict(image) for s in (0.5, 1.0, 1.5)]
    assert [int(np.bincount(p.ravel()).argmax()) for p in per_scale] == [0, 0, 1]
    multi = Predictor(net, eval_config("eval.scales=[0.5,1.0,1.5]", "eval.crop_size=33", num_classes=3))
    assert (multi.predict(image) == 1).all()
    expected = sum(softmax(np.asarray(v, np.float32), axis=0) for v in logits.values())
    np.testing.assert_allclose(multi.probabilities([image])[0], np.broadcast_to(expected, (21, 30, 3)), atol=1e-5)


def test_batches_give_the_same_labels_as_single_images():
    net = ConvNet(seed=5)
    images = [random_image(h, w, seed=i) for i, (h, w) in enumerate([(37, 50), (61, 23), (15, 20), (49, 49)])]
    cfg = "eval.scales=[0.5,1.0]"
    single = Predictor(net, eval_config(cfg))
    batched = Predictor(net, eval_config(cfg, "eval.batch_size=3"))  # 4 images: a full batch and a short one
    for one, many in zip([single.predict(im) for im in images], batched.predict_batch(images)):
        np.testing.assert_array_equal(one, many)


@pytest.mark.parametrize("length,tile,stride", [(49, 20, 13), (49, 49, 30), (10, 20, 13), (100, 30, 30)])
def test_tiles_cover_the_image_without_leaving_it(length, tile, stride):
    starts = tile_starts(length, tile, stride)
    covered = np.zeros(length, bool)
    for s in starts:
        assert 0 <= s and (s + tile <= length or s == 0)
        covered[s:s + tile] = True
    assert covered.all()
    assert all(b - a <= stride for a, b in zip(starts, starts[1:]))


def test_sliding_window_with_one_covering_tile_equals_whole_image():
    net = ConvNet(seed=7)
    images = [random_image(37, 50, seed=3), random_image(61, 23, seed=4)]
    whole = Predictor(net, eval_config("eval.flip=true"))
    slide = Predictor(net, eval_config("eval.flip=true", "eval.slide=true", "eval.slide_max_size=32",
                                       "eval.tile_size=49", "eval.tile_stride=32"))
    for a, b in zip(whole.probabilities(images), slide.probabilities(images)):
        np.testing.assert_allclose(b, a, atol=1e-6)


def test_sliding_window_matches_whole_image_for_a_pointwise_network():
    net = PixelNet(seed=2)
    images = [random_image(37, 50, seed=5), random_image(61, 23, seed=6)]
    whole = Predictor(net, eval_config("eval.scales=[1.0,1.5]"))
    # long sides 49 and 73 > 40: overlapping 20 x 20 tiles, 13 apart, batched by 3
    slide = Predictor(net, eval_config("eval.scales=[1.0,1.5]", "eval.slide=true", "eval.slide_max_size=40",
                                       "eval.tile_size=20", "eval.tile_stride=13", "eval.batch_size=3"))
    for a, b in zip(whole.probabilities(images), slide.probabilities(images)):
        np.testing.assert_allclose(b, a, atol=1e-5)


def test_class_groups_bound_memory_and_keep_the_labels():
    net = ConvNet(num_classes=9, seed=4)
    cfg = eval_config("eval.scales=[0.75,1.0]", num_classes=9)
    image = random_image(61, 47, seed=8)
    full = Predictor(net, cfg).predict(image)
    small = Predictor(net, cfg, max_accumulator_bytes=61 * 47 * 4 * 2)  # two classes at a time
    grouped = small.predict(image)
    assert grouped.shape == full.shape
    assert (grouped == full).mean() > 0.999
    with pytest.raises(RuntimeError, match="budget"):
        small.probabilities([image])


def test_parameter_names_are_left_unchanged():
    net = ConvNet()
    names = [p.name for p in net.get_parameters()]
    Predictor(net, eval_config("eval.flip=true")).predict(random_image(20, 30))
    assert [p.name for p in net.get_parameters()] == names == ["conv1.weight", "conv1.bias", "conv2.weight",
                                                               "conv2.bias"]


def test_timer_separates_host_work_from_the_network():
    predictor = Predictor(ConvNet(), eval_config("eval.flip=true"))
    predictor.predict(random_image(37, 50))
    seconds = predictor.timer.seconds
    assert all(seconds[k] > 0 for k in ("pre", "net", "post"))
    assert 0 < predictor.timer.host_fraction() < 1
