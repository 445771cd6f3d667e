"""VOC colour map, palette PNGs, overlays and legends."""
from __future__ import annotations

import numpy as np
from PIL import Image

from deeplabv3.visualization import PALETTE, PALETTE_BGR, colorize, legend, overlay, save_mask, side_by_side

# Colours of the published VOC colour map (RGB).
KNOWN = {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 3: (128, 128, 0), 4: (0, 0, 128), 8: (64, 0, 0),
         15: (192, 128, 128), 20: (0, 64, 128), 255: (224, 224, 192)}


def test_voc_colour_map():
    for index, rgb in KNOWN.items():
        assert tuple(PALETTE[index]) == rgb
    assert len({tuple(c) for c in PALETTE.tolist()}) == 256


def test_palette_png_keeps_class_indices(tmp_path):
    mask = np.array([[0, 1, 2], [15, 20, 255]], np.uint8)
    path = save_mask(tmp_path / "m.png", mask)
    with Image.open(path) as img:
        assert img.mode == "P"
        np.testing.assert_array_equal(np.asarray(img), mask)
        shown = np.asarray(img.convert("RGB"))
    np.testing.assert_array_equal(shown, PALETTE[mask])
    assert colorize(mask).getpalette()[:6] == [0, 0, 0, 128, 0, 0]


def test_overlay_blends_with_alpha():
    image = np.full((2, 2, 3), 200, np.uint8)
    mask = np.array([[0, 1], [2, 15]], np.uint8)
    out = overlay(image, mask, alpha=0.25)
    expected = np.round(0.75 * 200 + 0.25 * PALETTE_BGR[mask].astype(np.float64))
    np.testing.assert_allclose(out, expected, atol=1)


def test_legend_and_side_by_side_show_the_classes_present():
    names = [f"c{i}" for i in range(21)]
    strip = legend([1, 15], names, width=300)
    colours = {tuple(c) for c in strip.reshape(-1, 3).tolist()}
    assert tuple(PALETTE_BGR[1]) in colours and tuple(PALETTE_BGR[15]) in colours
    assert tuple(PALETTE_BGR[2]) not in colours
    assert (strip == 0).all(axis=2).any()  # the names are written in black
    image = np.full((30, 40, 3), 128, np.uint8)
    pred = np.zeros((30, 40), np.uint8)
    pred[5:15, 5:15] = 7
    gt = np.full((30, 40), 7, np.uint8)
    gt[0] = 255  # ignore: in neither legend nor class list
    view = side_by_side(image, pred, gt, names)
    assert view.shape[1] == 3 * 40 + 2 * 4 and view.shape[0] > 30
    legend_colours = {tuple(c) for c in view[30:].reshape(-1, 3).tolist()}
    assert tuple(PALETTE_BGR[7]) in legend_colours and tuple(PALETTE_BGR[255]) not in legend_colours
