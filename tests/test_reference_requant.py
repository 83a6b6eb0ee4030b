"""TFLite requantization primitives: the numpy versions equal a scalar transcription of gemmlowp."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import ConfigError
from harness.ir.requant import (
    INT32_MAX,
    INT32_MIN,
    add_params,
    dequantize_multiplier,
    mbqm,
    quantize_multiplier,
    rdbpot,
    srdhm,
)
from tests.fixtures.numerics import scalar_mbqm

EXTREMES = [INT32_MIN, INT32_MIN + 1, -(1 << 30), -3, -2, -1, 0, 1, 2, 3, 1 << 30, INT32_MAX - 1, INT32_MAX]


def test_srdhm_saturates_only_int32_min_squared():
    assert srdhm(INT32_MIN, INT32_MIN) == INT32_MAX
    assert srdhm(INT32_MIN, INT32_MAX) == -INT32_MAX
    assert srdhm(1 << 30, 1 << 30) == 1 << 29


def test_srdhm_rounds_ties_upward():
    # a * b / 2**31 = +-0.5 exactly: gemmlowp's nudge sends both ties toward +infinity
    assert srdhm(1, 1 << 30) == 1
    assert srdhm(-1, 1 << 30) == 0
    assert srdhm(-3, 1 << 30) == -1  # -1.5 -> -1
    assert srdhm(1, (1 << 30) - 1) == 0
    assert srdhm(-1, (1 << 30) + 1) == -1


def test_rdbpot_rounds_half_away_from_zero():
    assert rdbpot(np.array([5, -5, 6, -6, 7, -7]), 1).tolist() == [3, -3, 3, -3, 4, -4]
    assert rdbpot(np.array([INT32_MIN, INT32_MAX]), 31).tolist() == [-1, 1]
    assert rdbpot(np.array([INT32_MIN, INT32_MAX]), 0).tolist() == [INT32_MIN, INT32_MAX]


def test_rdbpot_rejects_bad_exponent():
    with pytest.raises(ConfigError):
        rdbpot(np.array([1]), 32)


@pytest.mark.parametrize("shift", list(range(-31, 32)))
def test_mbqm_matches_scalar_gemmlowp_on_extremes(shift):
    rng = np.random.default_rng(shift + 100)
    xs = EXTREMES + rng.integers(INT32_MIN, INT32_MAX, size=40, endpoint=True).tolist()
    ms = [0, 1, 1 << 30, INT32_MAX, INT32_MIN, -(1 << 30)] + rng.integers(1 << 30, INT32_MAX, size=4).tolist()
    x = np.array([a for a in xs for _ in ms], dtype=np.int64)
    m = np.array([b for _ in xs for b in ms], dtype=np.int64)
    got = mbqm(x, m, shift)
    want = [scalar_mbqm(int(a), int(b), shift) for a, b in zip(x, m)]
    assert got.tolist() == want


def test_mbqm_broadcasts_per_channel():
    acc = np.arange(-12, 12).reshape(2, 3, 4)
    m = np.array([1 << 30, 1 << 30, INT32_MAX, 1 << 30])
    s = np.array([0, -1, -2, 3])
    want = np.array(
        [[[scalar_mbqm(int(v), int(m[c]), int(s[c])) for c, v in enumerate(px)] for px in row] for row in acc]
    )
    assert (mbqm(acc, m, s) == want).all()


@pytest.mark.parametrize("real", [1e-12, 1e-6, 0.0123, 0.5, 0.75, 0.9999999999, 1.0, 3.7, 1234.5])
def test_quantize_multiplier_round_trips(real):
    m, s = quantize_multiplier(real)
    if real < 2.0**-32:
        assert (m, s) == (0, 0)
    else:
        assert (1 << 30) <= m <= INT32_MAX
        assert dequantize_multiplier(m, s) == pytest.approx(real, rel=1e-9)


def test_quantize_multiplier_applies_the_real_scale():
    m, s = quantize_multiplier(0.0123)
    x = np.arange(-100000, 100000, 997)
    assert np.abs(mbqm(x, m, s) - x * 0.0123).max() <= 0.5 + 1e-6


def test_quantize_multiplier_rejects_negative_and_huge():
    with pytest.raises(ConfigError):
        quantize_multiplier(-1.0)
    with pytest.raises(ConfigError):
        quantize_multiplier(2.0**40)


def test_add_params_follow_tflite():
    ls, m1, s1, m2, s2, mo, so = add_params(0.02, 0.01, 0.03)
    assert ls == 20
    assert dequantize_multiplier(m1, s1) == pytest.approx(0.5)
    assert dequantize_multiplier(m2, s2) == pytest.approx(0.25)
    assert dequantize_multiplier(mo, so) == pytest.approx(0.04 / (2**20 * 0.03))
