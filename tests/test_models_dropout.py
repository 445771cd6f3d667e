"""SeededDropout: its masks are the documented hash of (index, key), independent per key, absent in inference,
and the layer adds no tensor to the network's checkpoints."""
from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest
from mindspore import ops

from conftest import TINY_MODEL
from deeplabv3.config import load_config
from deeplabv3.models import build_model
from deeplabv3.models.dropout import DropoutKeys, SeededDropout, dropout_key

pytestmark = [pytest.mark.usefixtures("execution_mode"),
              pytest.mark.parametrize("execution_mode", ["graph"], indirect=True)]


def reference_mask(shape, key: int, keep_prob: float) -> np.ndarray:
    """The mask in NumPy uint32 arithmetic (wrapping multiplications), as the module docstring defines it."""
    def shift(h, bits):
        return h ^ (h >> np.uint32(bits))

    with np.errstate(over="ignore"):
        h = np.arange(int(np.prod(shape)), dtype=np.uint32).reshape(shape) ^ np.uint32(key)
        h = shift(h, 16) * np.uint32(0x7FEB352D)
        h = shift(h, 15) * np.uint32(0x846CA68B)
        h = shift(h, 16)
    return (h >> np.uint32(8)).astype(np.int64) < int(round(keep_prob * 2 ** 24))


def test_the_mask_is_the_hash_of_index_and_key_and_changes_with_the_key_without_recompiling():
    cell = SeededDropout(0.7)
    cell.set_train(True)
    x = ops.ones((2, 16, 9, 9), ms.float32)
    outputs = []
    for key in (0, dropout_key(0, 1, 0, 0), 0xFFFFFFFF):
        cell.set_key(key)
        out = cell(x).asnumpy()
        mask = reference_mask(x.shape, key, 0.3)
        np.testing.assert_allclose(out, mask / 0.3, rtol=1e-6)
        assert abs(mask.mean() - 0.3) < 0.03
        outputs.append(out)
    assert len(cell.compile_cache) == 1
    assert (outputs[0] != outputs[1]).mean() > 0.3 and (outputs[1] != outputs[2]).mean() > 0.3
    cell.set_key(dropout_key(0, 1, 0, 0))
    np.testing.assert_array_equal(cell(x).asnumpy(), outputs[1])  # the same key draws the same mask


def test_gradients_flow_through_the_kept_elements_only():
    cell = SeededDropout(0.5)
    cell.set_train(True)
    cell.set_key(7)
    grad = ms.grad(cell)(ops.ones((4, 8), ms.float32)).asnumpy()
    np.testing.assert_allclose(grad, reference_mask((4, 8), 7, 0.5) * 2.0)


def test_inference_mode_and_zero_probability_are_the_identity():
    x = ms.Tensor(np.random.default_rng(0).normal(size=(2, 3, 5, 5)).astype(np.float32))
    cell = SeededDropout(0.7)
    cell.set_train(False)
    np.testing.assert_array_equal(cell(x).asnumpy(), x.asnumpy())
    zero = SeededDropout(0.0)
    zero.set_train(True)
    np.testing.assert_array_equal(zero(x).asnumpy(), x.asnumpy())


def test_keys_differ_per_step_rank_and_layer():
    keys = {dropout_key(0, c, r, layer) for c in range(50) for r in range(4) for layer in range(2)}
    assert len(keys) == 400
    assert dropout_key(0, 3, 1, 0) == dropout_key(0, 3, 1, 0) != dropout_key(1, 3, 1, 0)


@pytest.mark.parametrize("name", ["deeplabv3", "deeplabv3plus"])
def test_dropout_adds_no_checkpoint_tensor(name):
    def names(dropout):
        net = build_model(load_config(None, [*TINY_MODEL, f"model.name={name}", f"model.dropout={dropout}"]))
        return [p.name for p in net.get_parameters()], net

    with_dropout, net = names(0.7)
    assert with_dropout == names(0.0)[0] and not any("dropout" in n for n in with_dropout)
    assert len(DropoutKeys(net, 0, 0).layers) == 1
