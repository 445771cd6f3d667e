"""The interpolation-matrix resize equals MindSpore's resize operators, and swapping it in is reversible."""
from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest
from mindspore import ops

from deeplabv3.export.resize import MatrixResize, bilinear_matrix, matrix_resizes, nearest_matrix
from deeplabv3.models.layers import Resize
from export_helpers import tiny_config, tiny_net

# (in_h, in_w) -> (out_h, out_w): the network's upsampling (5x7 -> 65x97), odd and even factors, downsampling,
# a single-pixel source and a single-pixel target.
SIZES = [((5, 7), (65, 97)), ((17, 25), (65, 97)), ((4, 6), (13, 8)), ((9, 13), (3, 5)), ((1, 1), (9, 4)),
         ((6, 5), (1, 1)), ((33, 33), (513, 513))]


def _maps(in_size, seed=0):
    return np.random.default_rng(seed).normal(size=(2, 3, *in_size)).astype(np.float32)


@pytest.mark.parametrize("in_size,out_size", SIZES)
def test_bilinear_matrices_equal_align_corners_interpolate(in_size, out_size):
    x = _maps(in_size)
    expected = ops.interpolate(ms.Tensor(x), size=out_size, mode="bilinear", align_corners=True).asnumpy()
    primitive = ops.ResizeBilinearV2(align_corners=True)(ms.Tensor(x), out_size).asnumpy()
    rows, cols = bilinear_matrix(in_size[0], out_size[0]), bilinear_matrix(in_size[1], out_size[1])
    got = np.einsum("Hh,nchw,Ww->ncHW", rows, x, cols)
    assert np.abs(got - expected).max() < 1e-5
    assert np.abs(got - primitive).max() < 1e-5
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("in_size,out_size", SIZES)
def test_nearest_matrices_pick_the_same_pixels(in_size, out_size):
    x = _maps(in_size, seed=1)
    expected = ops.ResizeNearestNeighbor(out_size, True)(ms.Tensor(x)).asnumpy()
    rows, cols = nearest_matrix(in_size[0], out_size[0]), nearest_matrix(in_size[1], out_size[1])
    np.testing.assert_array_equal(np.einsum("Hh,nchw,Ww->ncHW", rows, x, cols), expected)


def test_nearest_matrix_rounds_ties_like_the_operator():
    # 3 -> 5 samples positions 0, 0.5, 1, 1.5, 2: the ties go up, as the operator's roundf does.
    assert nearest_matrix(3, 5).argmax(axis=1).tolist() == [0, 1, 1, 2, 2]
    index = np.arange(3, dtype=np.float32).reshape(1, 1, 3, 1)
    assert ops.ResizeNearestNeighbor((5, 1), True)(ms.Tensor(index)).asnumpy().ravel().tolist() == [0, 1, 1, 2, 2]


@pytest.mark.parametrize("execution_mode", ["graph"], indirect=True)
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_matrix_resize_cell_equals_resize_cell_in_graph_mode(mode, execution_mode):
    x = ms.Tensor(_maps((9, 13), seed=2))
    expected = Resize(mode)(x, (33, 49)).asnumpy()
    got = MatrixResize(mode)(x, (33, 49)).asnumpy()
    assert np.abs(got - expected).max() < 1e-5


@pytest.mark.parametrize("name,count", [("deeplabv3", 1), ("deeplabv3plus", 2)])
def test_swap_covers_every_resize_and_is_undone(name, count):
    net = tiny_net(tiny_config(name))
    before = {cell_name: cell for cell_name, cell in net.cells_and_names() if isinstance(cell, Resize)}
    params = [id(p) for p in net.get_parameters()]
    with matrix_resizes(net) as swapped:
        assert swapped == count == len(before)
        assert not any(isinstance(cell, Resize) for _, cell in net.cells_and_names())
        assert sum(isinstance(cell, MatrixResize) for _, cell in net.cells_and_names()) == count
        assert [id(p) for p in net.get_parameters()] == params
    after = {cell_name: cell for cell_name, cell in net.cells_and_names() if isinstance(cell, Resize)}
    assert after.keys() == before.keys()
    assert all(after[cell_name] is before[cell_name] for cell_name in before)
