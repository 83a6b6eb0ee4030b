"""Whole random networks through the real pipeline (codegen -> PlatformIO -> QEMU -> serial), checked layer by
layer against the integer reference; and the counts' two promises: deterministic, and linear in the work."""

from __future__ import annotations

import numpy as np
import pytest

from harness.ir.model import IntModel
from harness.measure.session import measure_model
from harness.synth.random_model import make_weighted_layer, random_input, random_network

pytestmark = pytest.mark.qemu


@pytest.mark.parametrize(
    "seed,shape,width", [(11, (13, 9, 3), 5), (12, (17, 17, 1), 7), (13, (10, 14, 6), 9)]
)
def test_random_mixed_precision_networks_are_bit_exact_on_every_layer(tmp_path, test_board, seed, shape, width):
    """Odd, non-square inputs; channel counts not a multiple of 4; every precision drawn at random."""
    model = random_network(seed, input_shape=shape, width=width, expand=3)
    rng = np.random.default_rng(seed)
    inputs = [random_input(model.tensors[model.input], rng) for _ in range(2)]
    m = measure_model(model, test_board, inputs, tmp_path)
    assert m.mismatched_layers == []
    assert m.bit_exact
    for dev, ref in zip(m.outputs, m.reference_outputs):
        np.testing.assert_array_equal(dev, ref)


def _pointwise_stack(couts: list[int], seed: int = 0) -> IntModel:
    """Independent pointwise layers of growing width, all reading one 8x8x16 input."""
    from harness.ir.model import TensorSpec

    rng = np.random.default_rng(seed)
    x = TensorSpec("input", (8, 8, 16), 8, scale=1 / 16, zero_point=0)
    tensors, layers = {"input": x}, []
    xv = random_input(x, rng)
    for i, c in enumerate(couts):
        layer, out = make_weighted_layer(
            f"pw{i}", "pointwise", x, f"t{i}", w_bits=8, o_bits=8, cout=c, rng=rng, x_values=xv
        )
        layers.append(layer)
        tensors[out.name] = out
    return IntModel(tensors, layers, "input", layers[-1].output, name="pwstack")


def test_counts_are_deterministic_and_linear_in_macs(tmp_path, test_board):
    couts = [8, 16, 24, 32, 48, 64]
    model = _pointwise_stack(couts)
    x = random_input(model.tensors["input"], 0)
    board = test_board
    a = measure_model(model, board, [x], tmp_path / "a")
    b = measure_model(model, board, [x], tmp_path / "b")
    assert [r.count for r in a.layers] == [r.count for r in b.layers]  # identical, run after run
    macs = np.array([r.macs for r in a.layers], float)
    counts = np.array([r.count for r in a.layers], float)
    slope, icpt = np.polyfit(macs, counts, 1)
    resid = counts - (slope * macs + icpt)
    # linear to within 2 % of the largest layer's count (timer resolution is 40 instructions)
    assert np.max(np.abs(resid)) < 0.02 * counts.max()
    assert slope > 0
