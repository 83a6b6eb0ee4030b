"""QuantMCU on the host: what VDPC marks, what VDQS lowers, and that the result is a runnable per-patch model.

The network is a small random integer model with the shape of a MobileNetV2 stage (conv, inverted residual
blocks, one with a residual add); calibration inputs are random images, half of them with a saturated corner.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness import ops
from harness.codegen.artifact import patch_artifact
from harness.errors import ConfigError, DoesNotFitError
from harness.patch.int_reference import run_patched
from harness.patch.intmodel import patched_bitops, patched_model
from harness.patch.specs import SpecBuilder
from harness.precision.config import PrecisionConfig
from harness.search.quantmcu import (
    QuantMcuParams,
    branches,
    classify,
    collect,
    entropy_bits,
    measure,
    patched_from_config,
    quantmcu,
    search,
    sram_need,
)
from harness.synth.random_model import random_input, random_int_model


@pytest.fixture(scope="module")
def setup():
    b = SpecBuilder(24, 24, 3)
    b.conv(8, 3, stride=2, name="stem")
    b.inverted_residual(8, expand=3, prefix="b1")
    b.inverted_residual(12, expand=3, stride=2, prefix="b2")
    b.inverted_residual(12, expand=3, prefix="b3")
    b.pool(6, name="pool")
    model = random_int_model(b.layers, 0, name="stage-net")
    base = patched_model(model, "b2.project", 3)
    rng = np.random.default_rng(1)
    calib = []
    for i in range(6):
        x = random_input(model.tensors[model.input], rng) // 4  # mostly small values
        if i % 2 == 0:
            x[:8, :8] = 127  # a bright top-left corner on half of the images
        calib.append(x.astype(np.int8))
    br = branches(base)
    return base, calib, br, collect(base, calib)


def test_entropy_of_a_histogram_is_in_bits():
    levels = np.arange(-8, 8)
    assert entropy_bits(np.repeat(levels, 3), 4) == pytest.approx(4.0)
    assert entropy_bits(np.full(50, 3), 4) == 0.0
    assert entropy_bits(np.array([-2, 1]), 2) == pytest.approx(1.0)


def test_feature_maps_are_the_stage_groups_inside_the_patches(setup):
    base, _, br, _ = setup
    inside = {t for fm in br.maps for t in fm.tensors}
    assert base.model.input not in inside and base.stage_output not in inside
    # a residual stream (stem output, b1's project output, b1's add) is one decision, read by both expands
    out = {layer.name: layer.output for layer in base.model.layers}
    joined = [fm for fm in br.maps if len(fm.tensors) > 1]
    assert [set(fm.tensors) for fm in joined] == [{out["stem"], out["b1.project"], out["b1.add"]}]
    assert joined[0].readers == ("b1.expand", "b2.expand")
    assert len(br.maps) == 5 and all(fm.readers for fm in br.maps)
    assert sum(br.branch_bitops(p, {fm.index: 8 for fm in br.maps}) for p in range(9)) + sum(
        ops.macs(base.model, x) * 64 for x in base.model.layers[base.n_stage :] if x.weight is not None
    ) == patched_bitops(base)


def test_a_larger_phi_marks_fewer_outlier_patches_and_bright_patches_first(setup):
    _, _, br, stats = setup
    counts = [classify(br, stats, phi=phi).n_outliers for phi in (0.5, 1, 2, 3, 5, 10)]
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1]

    # a stage output that is small everywhere but in patch 0's grain on most images
    from harness.search.quantmcu import CalibStats

    base, t = stats.pm, stats.pm.stage_output
    rng = np.random.default_rng(0)
    zp = base.model.tensors[t].zero_point
    full = np.clip(zp + np.round(rng.normal(0, 3, stats.full[t].shape)), -128, 127).astype(np.int8)
    h0, h1, w0, w1 = base.plan.windows[base.plan.split][0]
    full[:4, h0:h1, w0:w1] = 127
    wins = [
        {**w, t: full[:, a:b, c:d]}
        for w, (a, b, c, d) in zip(stats.windows, base.plan.windows[base.plan.split])
    ]
    v = classify(br, CalibStats(base, {**stats.full, t: full}, wins), phi=2)
    assert v.outlier == (True,) + (False,) * 8
    assert v.fraction[0] == pytest.approx(4 / 6) and v.peak_ratio[0] == max(v.peak_ratio) > 1
    pct = classify(br, stats, rule="percentile", percentile=99.0, min_fraction=0.0)
    assert 0 < pct.n_outliers <= 9
    with pytest.raises(ConfigError, match="rule"):
        classify(br, stats, rule="mad")


def test_lambda_trades_information_for_bitops_and_outlier_branches_stay_8_bit(setup):
    _, _, br, stats = setup
    q = measure(br, stats, (8, 4, 2))
    outlier = (True, False, False, False, True, False, False, False, False)
    res = {lam: search(br, q, outlier, lam=lam) for lam in (0.0, 0.3, 0.5, 0.7, 1.0)}
    ops = {lam: sum(br.branch_bitops(p, r.bits[p]) for p in range(9)) for lam, r in res.items()}
    assert ops[0.0] <= ops[0.3] <= ops[0.5] <= ops[0.7] <= ops[1.0]
    assert res[1.0].moves == []  # only information loss counts: nothing is worth lowering
    lowest = res[0.0]  # only BitOPs count: every read feature map of every searched branch goes to 2 bits
    for p in range(9):
        for fm in br.maps:
            want = 8 if outlier[p] or not fm.readers else 2
            assert lowest.bits[p][fm.index] == want, (p, fm.name)
    for r in res.values():
        assert all(
            m.patch not in (0, 4) and m.score > 0 and (m.old, m.new) in ((8, 4), (4, 2)) for m in r.moves
        )


def _artifact_need(pm) -> int:
    e = patch_artifact(pm).estimate  # what the build's fit check adds runtime and stack to
    return e.arena + e.scratch


def test_memory_is_what_the_firmware_arena_planner_lays_out(setup):
    base, _, br, _ = setup
    all8 = [{fm.index: 8 for fm in br.maps}] * 9
    assert sram_need(br, all8) == _artifact_need(base)
    # mixed per-patch precisions: the need of the model the code generator emits, whatever it builds from
    layers = {x.name: (base.model.a_bits(x), x.w_bits) for x in base.model.layers if x.weight is not None}
    rng = np.random.default_rng(3)
    for _ in range(3):
        bits = [{fm.index: int(rng.choice([8, 4, 2])) for fm in br.maps} for _ in range(9)]
        patches = {p: {n: br.a_bits(n, b) for n in br.weighted} for p, b in enumerate(bits)}
        config = PrecisionConfig(layers, patches)
        assert sram_need(br, bits) == _artifact_need(patched_from_config(br, config))


def test_moves_keep_the_memory_budget(setup):
    base, calib, br, stats = setup
    q = measure(br, stats, (8, 4, 2))
    free = (False,) * 9
    free_run = search(br, q, free, lam=0.0)
    start = sram_need(br, [{fm.index: 8 for fm in br.maps}] * 9)
    assert free_run.memory_start == start > free_run.memory_end == sram_need(br, free_run.bits)
    # the tightest budget the start fits: every move is checked against the planner, the end state fits
    capped = search(br, q, free, lam=0.0, budget=start)
    assert capped.memory_end == sram_need(br, capped.bits) <= start
    r = quantmcu(base, calib, QuantMcuParams(lam=0.0, min_fraction=0.0, phi=1000.0, budget=start))
    assert _artifact_need(r.patched) == r.figures["sram_need"] <= start < r.figures["sram_need_8bit"] + 1
    with pytest.raises(DoesNotFitError, match="over the budget"):
        search(br, q, free, lam=0.0, budget=start - 1)


def test_quantmcu_result_runs_patch_based_and_its_config_rebuilds_it(setup, tmp_path):
    base, calib, br, _ = setup
    r = quantmcu(base, calib, QuantMcuParams(phi=3.0, lam=0.4, min_fraction=0.0))
    assert (
        r.figures["bitops"] == patched_bitops(r.patched) <= r.figures["bitops_patch8"] == patched_bitops(base)
    )
    assert set(r.config.patches) == set(range(9))
    for p in range(9):
        assert set(r.config.patches[p]) == set(br.weighted)
        m = r.patched.patch_models[p]
        assert r.config.patches[p] == {
            n: m.a_bits(m.layers[i]) for i, n in enumerate(base.plan.stage) if n in br.weighted
        }
    path = r.config.save(tmp_path / "quantmcu.json")
    again = patched_from_config(br, PrecisionConfig.load(path))
    x = calib[1]
    a, b = run_patched(r.patched, x), run_patched(again, x)
    assert np.array_equal(a.output(r.patched), b.output(again))
    for p in range(9):
        for t in a.patches[p]:
            assert np.array_equal(a.patches[p][t], b.patches[p][t])


def test_params_come_from_a_method_config():
    p = QuantMcuParams.from_mapping({"name": "quantmcu", "phi": 2, "lambda": 0.3, "bits": [2, 8]})
    assert (p.phi, p.lam, p.bits) == (2.0, 0.3, (8, 2))
    with pytest.raises(ConfigError, match="unknown QuantMCU option"):
        QuantMcuParams.from_mapping({"phii": 2})
    with pytest.raises(ConfigError, match="subset"):
        QuantMcuParams.from_mapping({"bits": [4, 2]})


def test_network_scope_also_lowers_the_shared_rest_and_the_config_carries_it(setup):
    base, calib, _, _ = setup
    r = quantmcu(base, calib, QuantMcuParams(lam=0.0, scope="network"))
    rest = r.branches.rest
    assert rest is not None and {fm.readers for fm in rest.maps} >= {("b3.expand",)}
    assert r.figures["n_rest_moves"] > 0 and all(m.new < m.old for m in r.vdqs.moves)
    lowered = {n for n, (a, _) in r.config.layers.items() if a < 8}
    assert lowered and lowered <= set(rest.weighted)  # stage layers keep their base bits in config.layers
    # the stage output belongs to the rest: every patch writes it at the rest branch's precision
    (fm,) = [fm for fm in rest.maps if base.stage_output in fm.tensors]
    assert r.patched.model.tensors[base.stage_output].bits == r.vdqs.rest_bits[fm.index]
    assert {m.tensors[base.stage_output].bits for m in r.patched.patch_models} == {r.vdqs.rest_bits[fm.index]}
    stage_only = quantmcu(base, calib, QuantMcuParams(lam=0.0))
    assert r.figures["bitops"] < stage_only.figures["bitops"]
    again = patched_from_config(r.branches, r.config)
    x = calib[0]
    assert np.array_equal(run_patched(again, x).output(again), run_patched(r.patched, x).output(r.patched))


def test_vdpc_ignores_an_offset_every_patch_shares_and_flags_the_object(setup):
    base, _, br, stats = setup
    from harness.search.quantmcu import CalibStats

    t = base.stage_output
    spec = base.model.tensors[t]
    n = stats.n_images
    rng = np.random.default_rng(4)
    q = spec.zero_point + np.round(rng.normal(0, 2, stats.full[t].shape))
    q[..., 0] += 90  # a background far from 0 in one channel, the same in every patch (an offset)
    wins = base.plan.windows[base.plan.split]
    h0, h1, w0, w1 = wins[4]
    q[: n - 1, h0:h1, w0:w1, 1] += 60  # the object: the centre patch, on all images but one
    q = np.clip(q, -128, 127).astype(np.int8)
    crafted = CalibStats(
        base, {**stats.full, t: q}, [{**w, t: q[:, a:b, c:d]} for w, (a, b, c, d) in zip(stats.windows, wins)]
    )
    for center in ("mean", "zero"):
        v = classify(br, crafted, phi=3.0, center=center)
        assert v.outlier == (False,) * 4 + (True,) + (False,) * 4, center
        assert v.fraction[4] == pytest.approx((n - 1) / n)
    # the rule this replaced: one sigma pooled over channels around the mean, against |x|: the offset channel
    # trips it in every patch
    real = crafted.real(t, q)
    pooled = 3.0 * real.std()
    assert all(
        (np.abs(crafted.real(t, w[t])) > pooled).any(axis=(1, 2, 3)).mean() > 0.5 for w in crafted.windows
    )
    # the branch input: an object in the image's top-left corner only reaches patch 0's input window
    x = base.model.input
    img = stats.full[x].copy()
    img[:] = 20
    img[..., :2, :2, :] = 120
    crafted = CalibStats(
        base,
        {**stats.full, x: img},
        [{**w, x: img[:, a:b, c:d]} for w, (a, b, c, d) in zip(stats.windows, base.plan.windows["input"])],
    )
    v = classify(br, crafted, phi=3.0, maps="input")
    assert v.outlier == (True,) + (False,) * 8
    with pytest.raises(ConfigError, match="center"):
        classify(br, stats, center="median")


def _entropy(values: np.ndarray) -> float:
    _, counts = np.unique(values, return_counts=True)
    pr = counts / counts.sum()
    return float(-(pr * np.log2(pr)).sum())


def _requant4(values: np.ndarray, spec) -> np.ndarray:
    """8-bit integers of ``spec`` at 4 bits over the same real range: scale * 255 / 15, zero at the same place."""
    real = spec.scale * (values.astype(np.float64) - spec.zero_point)
    s4 = spec.scale * 255 / 15
    z4 = int(np.clip(round(-8 + (spec.zero_point + 128) / 255 * 15), -8, 7))
    return np.clip(np.round(real / s4) + z4, -8, 7)


def test_vdqs_scores_phi_omega_and_s_as_computed_by_hand():
    b = SpecBuilder(8, 8, 2)
    b.conv(4, 3, name="c1")
    b.conv(4, 1, name="c2")
    b.conv(6, 1, name="c3", activation=None)
    b.pool(8, name="pool")
    model = random_int_model(b.layers, 5, name="two-maps")
    base = patched_model(model, "c3", 2)
    rng = np.random.default_rng(2)
    calib = [random_input(model.tensors[model.input], rng) for _ in range(5)]
    stats = collect(base, calib)
    br = branches(base)
    out = {layer.name: layer.output for layer in model.layers}
    assert [fm.tensors for fm in br.maps] == [(out["c1"],), (out["c2"],)]
    assert [fm.readers for fm in br.maps] == [("c2",), ("c3",)]

    # patch 0 only (the others are outliers); minmax keeps the 8-bit range at 4 bits (no clip to choose)
    q = measure(br, stats, (8, 4), range_mode="minmax")
    lam = 0.2  # both moves worth taking: the larger score first
    res = search(br, q, (False, True, True, True), lam=lam, bit_choices=(8, 4))
    steps = {st.layer: st for st in base.plan.schedule[0]}

    def window_macs(layer: str, cin: int, k: int) -> int:
        h0, h1, w0, w1 = steps[layer].out_window
        return (h1 - h0) * (w1 - w0) * model.tensors[out[layer]].shape[2] * cin * k * k

    m1, m2, m3 = window_macs("c1", 2, 3), window_macs("c2", 4, 1), window_macs("c3", 4, 1)
    ops8 = (m1 + m2 + m3) * 8 * 8
    phi = {0: m2 * 8 * (8 - 4) / ops8, 1: m3 * 8 * (8 - 4) / ops8}
    info8, lost = 0.0, {}
    for i, t in enumerate((out["c1"], out["c2"])):
        v = stats.windows[0][t]
        n = v[0].size  # elements per image
        h8, h4 = _entropy(v), _entropy(_requant4(v, model.tensors[t]))
        info8 += n * h8
        lost[i] = n * (h8 - h4)
    omega = {i: lost[i] / info8 for i in (0, 1)}
    score = {i: -lam * omega[i] + (1 - lam) * phi[i] for i in (0, 1)}
    order = sorted((i for i in (0, 1) if score[i] > 0), key=lambda i: -score[i])
    assert order == [1, 0] and score[1] > score[0] > 0  # a real choice between two moves
    assert [(m.patch, m.feature_map, m.old, m.new) for m in res.moves] == [
        (0, br.maps[i].name, 8, 4) for i in order
    ]
    for m, i in zip(res.moves, order):
        assert m.phi == pytest.approx(phi[i], rel=1e-12)
        assert m.omega == pytest.approx(omega[i], rel=1e-12)
        assert m.score == pytest.approx(score[i], rel=1e-12)
    assert res.bits == [{0: 4, 1: 4}] + [{0: 8, 1: 8}] * 3
