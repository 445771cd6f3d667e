"""The ONNX stand-ins compute what the cells they replace compute, and swapping them in is reversible."""
from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from deeplabv3.export.stand_ins import HardSigmoid, HardSwish, PaddedConv, onnx_stand_in, swapped_cells
from models_helpers import image


@pytest.mark.parametrize("cell, stand_in", [(nn.HSwish(), HardSwish()), (nn.HSigmoid(), HardSigmoid())])
def test_hard_activations_equal_mindspores(cell, stand_in):
    x = np.concatenate([np.linspace(-5, 5, 101), [-3.0, 3.0, 0.0]]).astype(np.float32).reshape(1, 1, 8, 13)
    expected = cell(ms.Tensor(x)).asnumpy()
    np.testing.assert_allclose(stand_in(ms.Tensor(x)).asnumpy(), expected, atol=1e-6)


@pytest.mark.parametrize("kernel, dilation, padding", [(2, 1, (0, 1, 0, 1)), (2, 2, (0, 2, 0, 2)),
                                                       (3, 1, (1, 2, 0, 1))])
def test_padded_conv_equals_the_asymmetrically_padded_conv_with_the_same_parameters(kernel, dilation, padding):
    conv = nn.Conv2d(4, 6, kernel, pad_mode="pad", padding=padding, dilation=dilation, has_bias=True)
    stand_in = onnx_stand_in(conv)
    assert isinstance(stand_in, PaddedConv)
    assert stand_in.conv.weight is conv.weight and stand_in.conv.bias is conv.bias
    x = image((2, 4, 9, 11))
    np.testing.assert_allclose(stand_in(x).asnumpy(), conv(x).asnumpy(), atol=1e-5)
    assert onnx_stand_in(nn.Conv2d(4, 6, 3, pad_mode="pad", padding=1)) is None  # symmetric: written correctly


def test_swapping_keeps_parameter_names_and_puts_the_cells_back():
    net = nn.SequentialCell([nn.Conv2d(3, 4, 2, pad_mode="pad", padding=(0, 1, 0, 1), has_bias=True), nn.HSwish(),
                             nn.Conv2d(4, 4, 1), nn.HSigmoid()])
    net.set_train(False)
    x = image((1, 3, 8, 8))
    names = [p.name for p in net.get_parameters()]
    cells = list(net.cell_list)
    expected = net(x).asnumpy()
    with swapped_cells(net, onnx_stand_in) as swapped:
        assert swapped == 3
        assert [type(c) for c in net.cell_list] == [PaddedConv, HardSwish, nn.Conv2d, HardSigmoid]
        assert [p.name for p in net.get_parameters()] == names
        np.testing.assert_allclose(net(x).asnumpy(), expected, atol=1e-6)
    assert list(net.cell_list) == cells and [p.name for p in net.get_parameters()] == names
