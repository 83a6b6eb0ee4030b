"""The budgeted ILP start: optimal against brute force on a small network, greedy feasible, budgets
enforced."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from harness.errors import ConfigError
from harness.graph.spec import LayerSpec
from harness.memory.budget import param_bytes, peak_sram_bytes
from harness.precision.config import PrecisionConfig
from harness.precision.groups import activation_groups, layer_bits
from harness.search.bitops_budget import bitops, bitops_search
from harness.table.lut import LatencyTable, profile_entries

BITS = (2, 4, 8)
TARGET = {"board": "b", "timer": "t", "firmware_hash": "h", "cflags": ""}


def net() -> list[LayerSpec]:
    """c0 -> c1 -> add(c0, c1) -> c2 -> fc: two free activation groups, (c0, c1, add) and (c2)."""
    return [
        LayerSpec("c0", "conv2d", (6, 6, 3), (6, 6, 8), kernel=(3, 3), padding=(1, 1, 1, 1)),
        LayerSpec("c1", "pointwise", (6, 6, 8), (6, 6, 8), inputs=("c0",)),
        LayerSpec("add", "add", (6, 6, 8), (6, 6, 8), inputs=("c0", "c1")),
        LayerSpec(
            "c2",
            "depthwise",
            (6, 6, 8),
            (3, 3, 8),
            kernel=(3, 3),
            stride=2,
            padding=(0, 0, 1, 1),
            inputs=("add",),
        ),
        LayerSpec("fc", "fc", (1, 1, 72), (1, 1, 10), inputs=("c2",)),
    ]


def random_table(layers: list[LayerSpec], seed: int) -> LatencyTable:
    """Counts that depend on a, w and o, not monotonically."""
    rng = np.random.default_rng(seed)
    rows = [
        {
            "layer_key": k,
            "a_bits": a,
            "w_bits": w,
            "o_bits": o,
            "op": s.op,
            "count": float(s.macs // 8 * rng.uniform(0.5, 2.0) + rng.integers(0, 50) * o),
        }
        for (k, a, w, o), s in profile_entries(layers)
    ]
    t = LatencyTable()
    t.add(rows, **TARGET)
    return t


def all_configs(layers: list[LayerSpec]):
    """Every consistent configuration with the image input at 8 bits."""
    for ga, gb, *ws in itertools.product(BITS, BITS, BITS, BITS, BITS, BITS):
        yield PrecisionConfig({"c0": (8, ws[0]), "c1": (ga, ws[1]), "c2": (ga, ws[2]), "fc": (gb, ws[3])})


def latency(layers, table, config) -> float:
    bits = layer_bits(activation_groups(layers), config)
    return sum(table.estimate(s.key(), *bits[s.name])[0] for s in layers)


def score(config) -> int:
    return sum(a + w for a, w in config.values())


def brute(layers, objective, feasible):
    pool = [c for c in all_configs(layers) if feasible(c)]
    assert pool, "the test case must be feasible"
    return min(objective(c) for c in pool)


def ref8_bitops(layers) -> int:
    return sum(s.macs * 64 for s in layers if s.has_weights)


def test_max_bits_under_a_bitops_budget_is_optimal():
    layers = net()
    cap = 0.3 * ref8_bitops(layers)
    c = bitops_search(layers, objective="bits", bitops_frac=0.3)
    assert bitops(layers, c) <= cap
    assert -score(c) == brute(layers, lambda x: -score(x), lambda x: bitops(layers, x) <= cap)
    assert c.meta["optimal"] is True


def test_min_bitops_over_a_minimum_mean_precision_is_optimal():
    layers = net()
    c = bitops_search(layers, objective="bitops", min_mean_bits=5.0)
    assert score(c) / 2 / len(c) >= 5.0
    assert bitops(layers, c) == brute(layers, lambda x: bitops(layers, x), lambda x: score(x) >= 2 * 5.0 * 4)


@pytest.mark.parametrize("seed", [1, 2])
def test_min_table_latency_with_output_bits_and_memory_budgets_is_optimal(seed):
    layers = net()
    t = random_table(layers, seed)
    flash = param_bytes(layers, PrecisionConfig({"c0": (8, 4), "c1": (4, 4), "c2": (4, 4), "fc": (4, 4)}))
    sram = peak_sram_bytes(layers, PrecisionConfig({"c0": (8, 8), "c1": (4, 8), "c2": (4, 8), "fc": (8, 8)}))

    def feasible(x):
        return (
            score(x) >= 2 * 4.0 * 4 and param_bytes(layers, x) <= flash and peak_sram_bytes(layers, x) <= sram
        )

    c = bitops_search(
        layers, objective="latency", table=t, min_mean_bits=4.0, flash_bytes=flash, sram_bytes=sram
    )
    assert feasible(c)
    assert latency(layers, t, c) == pytest.approx(brute(layers, lambda x: latency(layers, t, x), feasible))
    assert c.meta["predicted"] == pytest.approx(latency(layers, t, c))


def test_max_bits_under_a_latency_budget_is_optimal():
    layers = net()
    t = random_table(layers, 3)
    cap = 0.7 * latency(layers, t, PrecisionConfig({n: (8, 8) for n in ("c0", "c1", "c2", "fc")}))
    c = bitops_search(layers, objective="bits", table=t, latency_frac=0.7)
    assert latency(layers, t, c) <= cap + 1e-6
    assert -score(c) == brute(layers, lambda x: -score(x), lambda x: latency(layers, t, x) <= cap + 1e-6)


def test_the_greedy_fallback_meets_the_budgets_and_is_no_better_than_the_ilp():
    layers = net()
    t = random_table(layers, 4)
    cases = [
        {"objective": "bits", "bitops_frac": 0.3},
        {"objective": "bitops", "min_mean_bits": 5.0},
        {"objective": "latency", "table": t, "min_mean_bits": 4.0},
    ]
    for kw in cases:
        g = bitops_search(layers, solver="greedy", **kw)
        ilp = bitops_search(layers, **kw)
        assert g.meta["solver"] == "greedy"
        if "bitops_frac" in kw:
            assert bitops(layers, g) <= kw["bitops_frac"] * ref8_bitops(layers)
            assert score(g) <= score(ilp)
        if "min_mean_bits" in kw:
            assert score(g) >= 2 * kw["min_mean_bits"] * 4
        if kw["objective"] == "bitops":
            assert bitops(layers, g) >= bitops(layers, ilp)
        if kw["objective"] == "latency":
            assert latency(layers, t, g) >= latency(layers, t, ilp) - 1e-6


def test_the_image_input_stays_8_bit_and_the_readers_of_a_tensor_agree():
    c = bitops_search(net(), objective="bitops")
    assert c["c0"][0] == 8
    assert c["c1"][0] == c["c2"][0]


@pytest.mark.parametrize("solver", ["ilp", "greedy"])
def test_an_impossible_budget_is_a_config_error(solver):
    with pytest.raises(ConfigError, match="no precision configuration meets the budget"):
        bitops_search(net(), objective="bits", bitops_frac=0.001, solver=solver)


def test_latency_needs_a_table_and_bad_options_are_refused():
    with pytest.raises(ConfigError, match="latency table"):
        bitops_search(net(), objective="latency")
    with pytest.raises(ConfigError, match="objective"):
        bitops_search(net(), objective="speed")
    with pytest.raises(ConfigError, match="bits"):
        bitops_search(net(), bits=(3, 8))


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_with_a_floor_the_ilp_is_the_exact_free_bits_optimum_the_refiner_approaches(seed):
    from harness.search.freebits import refine

    layers = net()
    t = random_table(layers, seed)
    start = PrecisionConfig({"c0": (8, 2), "c1": (2, 4), "c2": (2, 2), "fc": (4, 2)})

    def raises_only(x):
        return all(x[n][i] >= start[n][i] for n in start for i in (0, 1))

    exact = bitops_search(layers, objective="latency", table=t, floor=start)
    assert raises_only(exact)
    assert latency(layers, t, exact) == pytest.approx(
        brute(layers, lambda x: latency(layers, t, x), raises_only)
    )
    assert refine(layers, start, t).predicted_after >= latency(layers, t, exact) - 1e-6
    greedy = bitops_search(layers, objective="latency", table=t, floor=start, solver="greedy")
    assert raises_only(greedy)
