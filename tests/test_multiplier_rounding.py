"""The requantization multiplier rounds an exact half away from zero, as TFLite's ``QuantizeMultiplier``."""

from __future__ import annotations

import numpy as np
import torch

from harness.ir.requant import dequantize_multiplier, mbqm, quantize_multiplier
from harness.quant.numerics import quantize_multiplier_t

# The case: q * 2**31 = 1342177280.5 exactly (46459 * 57779 = 2**31 + 2**30 + 1, an odd number)
IN_SCALE = 46459 * 2.0**-20
W_SCALE = 57779 * 2.0**-22
OUT_SCALE = 2.0**-10


def test_the_tie_rounds_away_from_zero_like_tflite():
    real = IN_SCALE * W_SCALE / OUT_SCALE
    assert quantize_multiplier(real) == (1342177281, 0)


def test_the_torch_twin_rounds_the_tie_the_same_way():
    real = torch.tensor([IN_SCALE * W_SCALE / OUT_SCALE, 0.5, 0.75, 1e-12], dtype=torch.float64)
    m, s = quantize_multiplier_t(real)
    assert m.tolist() == [1342177281, 1 << 30, 3 << 29, 0]
    assert s.tolist() == [0, 0, 0, 0]
    # and both twins agree on many random multipliers, ties included
    rng = np.random.default_rng(0)
    reals = np.concatenate([rng.uniform(1e-6, 4.0, 2000), (2 * rng.integers(1 << 30, 1 << 31, 200) + 1) / 2**33])
    m, s = quantize_multiplier_t(torch.tensor(reals, dtype=torch.float64))
    assert list(zip(m.tolist(), s.tolist())) == [quantize_multiplier(float(r)) for r in reals]


def test_the_rounded_multiplier_changes_outputs_of_a_layer():
    # accumulators of a layer with this multiplier: the half-to-even multiplier (one less) gives other outputs
    m, s = quantize_multiplier(IN_SCALE * W_SCALE / OUT_SCALE)
    acc = np.arange(-(1 << 20), 1 << 20, 4099, dtype=np.int64)
    assert abs(dequantize_multiplier(m, s) - IN_SCALE * W_SCALE / OUT_SCALE) <= 2.0**-32
    assert int((mbqm(acc, m, s) != mbqm(acc, m - 1, s)).sum()) > 0
