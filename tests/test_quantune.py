"""QuantuneV2 sensitivity analysis: metrics, the unfused graph, two passes, ranking and top-k assignments."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from harness.errors import ConfigError, UnsupportedLayerError
from harness.graph.trace import extract_layers
from harness.memory.liveness import bits_from_config
from harness.models import build_model
from harness.precision.config import PrecisionConfig
from harness.precision.groups import grouped_tensor_bits
from harness.quant.calibrate import calibrate
from harness.quant.qnet import quantize_model
from harness.search.quantune.analyze import analyze
from harness.search.quantune.assign import bit_pair, fixed_layers, topk_config
from harness.search.quantune.baseline import one_at_a_time
from harness.search.quantune.metrics import NoiseStats, delta_sqnr, mse, sqnr, sqnr_db
from harness.search.quantune.pipeline import QuantuneParams, probe_config, sensitivity
from harness.search.quantune.probe import build_probe
from harness.search.quantune.ranking import RankRule, rank_layers, spearman, topk_overlap
from harness.search.quantune.units import unfused_ops

torch.set_num_threads(2)


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return build_model("tiny-cnn").eval()


def perturbed(
    model: nn.Module, rel_noise: dict[str, float], default: float = 0.0, seed: int = 1
) -> nn.Module:
    """A copy of ``model`` whose conv/linear weights carry Gaussian noise of ``rel_noise[name]`` x their std:
    stands in for a quantized model (same module names, BN and ReLU kept)."""
    g = torch.Generator().manual_seed(seed)
    q = copy.deepcopy(model)
    with torch.no_grad():
        for name, mod in q.named_modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                s = rel_noise.get(name, default) * float(mod.weight.std())
                mod.weight.add_(torch.randn(mod.weight.shape, generator=g) * s)
    return q


def calib(n: int = 12) -> torch.Tensor:
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(2))


# metrics ----------------------------------------------------------------------------------------------------


def test_sqnr_of_noise_at_a_known_power_ratio():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200_000, generator=g)
    noise = torch.randn(200_000, generator=g) * 0.1  # noise power 1/100 of the signal's: 20 dB
    assert sqnr(x, x + noise) == pytest.approx(20.0, abs=0.1)
    assert sqnr(2 * x, 2 * (x + noise)) == pytest.approx(sqnr(x, x + noise))  # scale-free


def test_sqnr_and_mse_from_exact_sums():
    x = torch.tensor([3.0, 4.0])
    q = torch.tensor([3.0, 3.0])
    # signal 9 + 16 = 25, noise 1 -> 10 log10 25; MSE 1 / 2
    assert sqnr(x, q) == pytest.approx(10 * math.log10(25))
    assert mse(x, q) == pytest.approx(0.5)
    assert sqnr_db(25.0, 0.0, cap_db=None) == math.inf and sqnr_db(25.0, 0.0, cap_db=80.0) == 80.0
    with pytest.raises(ValueError, match="shape"):
        sqnr(x, q[:1])


def test_noise_stats_accumulated_in_chunks_equal_the_whole():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(64, 5, generator=g)
    q = x + 0.05 * torch.randn(64, 5, generator=g)
    parts = NoiseStats()
    for i in range(0, 64, 10):
        parts.add(x[i : i + 10], q[i : i + 10])
    assert parts.sqnr(cap_db=None) == pytest.approx(sqnr(x, q))
    assert parts.mse == pytest.approx(mse(x, q))
    assert parts.count == x.numel()


def test_delta_sqnr_is_what_a_layer_loses():
    assert delta_sqnr(40.0, 30.0) == 10.0 and delta_sqnr(30.0, 30.0) == 0.0


# the unfused graph ------------------------------------------------------------------------------------------


def test_bn_and_relu_are_attributed_to_the_conv_they_fuse_into():
    ops = {op.key: op for op in unfused_ops(tiny())}
    assert (ops["pw.bn"].owner, ops["pw.act"].owner) == ("pw.conv", "pw.conv")
    assert ops["relu"].owner is None  # the ReLU after the residual add fuses into no conv
    assert [k for k, o in ops.items() if o.kind in ("conv", "linear")] == [
        s.name for s in extract_layers(tiny()) if s.has_weights
    ]  # the names a PrecisionConfig uses


def test_a_weight_shared_conv_is_refused():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 1)

        def forward(self, x):
            return self.conv(self.conv(x))

    with pytest.raises(UnsupportedLayerError, match="called 2 times"):
        unfused_ops(Twice())


# two passes and the ranking ---------------------------------------------------------------------------------


def test_exactly_two_forward_passes_and_the_damaged_layer_ranks_first():
    model = tiny()
    quant = perturbed(model, {"pw.conv": 1.0}, default=0.01)
    calls = {"float": 0, "quant": 0}
    model.register_forward_pre_hook(lambda m, a: calls.__setitem__("float", calls["float"] + 1))
    quant.register_forward_pre_hook(lambda m, a: calls.__setitem__("quant", calls["quant"] + 1))
    for rule in (RankRule("dsqnr"), RankRule("zscore")):
        calls.update(float=0, quant=0)
        s = analyze(model, quant, calib(), weight_of=lambda m: m.weight, rule=rule, cap_db=60.0)
        assert calls == {"float": 1, "quant": 1} and s.forward_calls == 2
        assert s.ranking[0] == "pw.conv", rule
        assert s.ranking.index("pw.conv") == 0
        assert min(s.layers, key=lambda r: r["w_sqnr"])["layer"] == "pw.conv"


def test_chunks_pass_each_image_twice_and_give_the_same_metrics():
    model = tiny()
    quant = perturbed(model, {}, default=0.05)
    whole = analyze(model, quant, calib(12), weight_of=lambda m: m.weight)
    chunked = analyze(model, quant, calib(12), weight_of=lambda m: m.weight, chunk_size=5)
    assert chunked.forward_calls == 2 * 3 and chunked.images == 12
    for a, b in zip(whole.ops, chunked.ops):
        assert a["op"] == b["op"] and a["dsqnr"] == pytest.approx(b["dsqnr"], abs=1e-4)  # dB


def test_unit_dsqnr_is_the_sum_of_its_ops():
    model = tiny()
    s = analyze(model, perturbed(model, {}, default=0.05), calib(), weight_of=lambda m: m.weight)
    by_layer = {r["layer"]: r["dsqnr"] for r in s.layers}
    for layer in ("dw.conv", "pw.conv", "res.conv"):
        assert sum(r["dsqnr"] for r in s.ops if r["layer"] == layer) == pytest.approx(
            by_layer[layer], abs=1e-6
        )


def test_dsqnr_rule_breaks_ties_by_mse_and_zscore_weights_select_a_metric():
    rows = [
        {"dsqnr": 5.0, "mse": 1e-3, "w_sqnr": 30.0},
        {"dsqnr": 5.04, "mse": 1e-4, "w_sqnr": 10.0},
        {"dsqnr": 9.0, "mse": 1e-5, "w_sqnr": 40.0},
    ]
    assert rank_layers(rows, RankRule("dsqnr", tie_db=0.1)) == [2, 0, 1]  # 5.0 and 5.04 tie; larger MSE wins
    assert rank_layers(rows, RankRule("dsqnr", tie_db=0.0)) == [2, 1, 0]
    only_w = RankRule("zscore", weights={"dsqnr": 0, "mse": 0, "wsqnr": 1})
    assert rank_layers(rows, only_w) == [1, 0, 2]  # lowest weight SQNR first
    with pytest.raises(ConfigError, match="unknown sensitivity rule"):
        RankRule("accuracy")
    with pytest.raises(ConfigError, match="unknown sensitivity weight"):
        RankRule("zscore", weights={"sqnr": 1})


def test_spearman_and_topk_overlap_of_two_rankings():
    a = ["a", "b", "c", "d"]
    assert spearman(a, a) == 1.0 and spearman(a, a[::-1]) == -1.0
    assert topk_overlap(a, ["b", "a", "d", "c"], 2) == 1.0 and topk_overlap(a, ["c", "d", "a", "b"], 2) == 0.0
    with pytest.raises(ConfigError):
        spearman(a, ["a", "b", "c", "x"])


def test_one_at_a_time_baseline_evaluates_n_plus_one_times():
    acc = {None: (0.9, 0.3), "a": (0.9, 0.35), "b": (0.5, 1.0), "c": (0.9, 0.31)}
    seen = []

    def evaluate(name):
        seen.append(name)
        return acc[name]

    res = one_at_a_time(["a", "b", "c"], evaluate)
    assert seen == [None, "a", "b", "c"] and res.evaluations == 4
    assert res.ranking == ["b", "a", "c"]  # a and c tie on top-1; a raises the loss more


# assignments ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, 1, 3, 5])
def test_topk_keeps_exactly_k_layers_high_and_the_rest_low(k):
    layers = extract_layers(tiny())
    ranking = ["pw.conv", "classifier", "dw.conv", "res.conv", "stem.conv"]
    cfg = topk_config(ranking, layers, k, high=(8, 8), low=(4, 2), input_bits=None)
    assert sorted(n for n, (a, w) in cfg.items() if (a, w) == (8, 8)) == sorted(ranking[:k])
    assert all(cfg[n] == (4, 2) for n in ranking[k:])
    assert cfg.meta["kept_high"] == ranking[:k]


def test_topk_keeps_the_image_input_at_input_bits():
    layers = extract_layers(tiny())
    ranking = ["pw.conv", "classifier", "dw.conv", "res.conv", "stem.conv"]
    cfg = topk_config(ranking, layers, 0, low=2, input_bits=8)
    assert cfg["stem.conv"] == (8, 2) and cfg["pw.conv"] == (2, 2)


def test_layers_whose_bits_cannot_change_are_left_out_of_the_k_budget():
    layers = extract_layers(tiny())
    ranking = ["stem.conv", "pw.conv", "classifier", "dw.conv", "res.conv"]
    # only activations differ and the image arrives at 8 bits: keeping stem.conv high changes nothing
    assert fixed_layers(layers, (8, 4), (4, 4), input_bits=8) == ["stem.conv"]
    assert fixed_layers(layers, (8, 8), (4, 4), input_bits=8) == []
    cfg = topk_config(ranking, layers, 2, high=(8, 4), low=(4, 4), input_bits=8)
    assert cfg.meta["kept_high"] == ["pw.conv", "classifier"] and cfg.meta["fixed"] == ["stem.conv"]
    assert cfg["stem.conv"] == (8, 4) and cfg["pw.conv"] == cfg["classifier"] == (8, 4)
    assert cfg["dw.conv"] == cfg["res.conv"] == (4, 4)
    topk_config(ranking, layers, 4, high=(8, 4), low=(4, 4), input_bits=8)  # all four that can change
    with pytest.raises(ConfigError, match=r"\[0, 4\].*1 cannot"):
        topk_config(ranking, layers, 5, high=(8, 4), low=(4, 4), input_bits=8)


def test_topk_rejects_bad_k_bits_and_foreign_rankings():
    layers = extract_layers(tiny())
    ranking = ["pw.conv", "classifier", "dw.conv", "res.conv", "stem.conv"]
    with pytest.raises(ConfigError, match="k must be"):
        topk_config(ranking, layers, 6)
    with pytest.raises(ConfigError, match="not in"):
        topk_config(ranking, layers, 1, low=3)
    with pytest.raises(ConfigError, match="must not be below"):
        topk_config(ranking, layers, 1, high=4, low=8)
    with pytest.raises(ConfigError, match="another model"):
        topk_config(ranking[:-1] + ["features.0.conv"], layers, 1)
    assert bit_pair({"a_bits": 8, "w_bits": 2}, "x") == (8, 2) and bit_pair([4, 2], "x") == (4, 2)


def test_an_assignment_round_trips_through_json_and_yaml(tmp_path):
    layers = extract_layers(tiny())
    ranking = ["pw.conv", "classifier", "dw.conv", "res.conv", "stem.conv"]
    cfg = topk_config(ranking, layers, 2, high=(8, 8), low=(4, 4))
    for suffix in (".json", ".yaml"):
        back = PrecisionConfig.load(cfg.save(tmp_path / f"cfg{suffix}"))
        assert back.layers == cfg.layers and back.meta == cfg.meta


# method options, saved rankings and the registered starting point ------------------------------------------


def test_method_options_are_validated():
    from harness.search.quantune.pipeline import QuantuneParams

    p = QuantuneParams.from_mapping(
        {"name": "quantune", "k": 2, "high": [8, 8], "low": {"a_bits": 4, "w_bits": 2}}
    )
    assert (p.k, p.high, p.low, p.probe) == (2, (8, 8), (4, 2), (4, 2))  # the probe defaults to `low`
    assert QuantuneParams.from_mapping({"low": 2, "probe": 4}).probe == (4, 4)
    with pytest.raises(ConfigError, match="does not take"):
        QuantuneParams.from_mapping({"kk": 3})
    with pytest.raises(ConfigError, match="k must be"):
        QuantuneParams.from_mapping({"k": -1})
    with pytest.raises(ConfigError, match="unknown sensitivity rule"):
        QuantuneParams.from_mapping({"rule": "top1"})


def test_a_saved_ranking_is_the_quantune_starting_point(tmp_path):
    from harness.search import make_start
    from harness.search.quantune.pipeline import load_ranking, save_ranking

    layers = extract_layers(tiny())
    order = ["pw.conv", "classifier", "dw.conv", "res.conv", "stem.conv"]
    rows = [{"rank": i + 1, "layer": n, "dsqnr": 10.0 - i} for i, n in enumerate(order)]
    path = save_ranking(rows[::-1], tmp_path / "ranking.csv")  # row order does not matter, rank does
    assert load_ranking(path) == order
    cfg = make_start({"name": "quantune", "k": 2, "high": 8, "low": 2, "ranking": str(path)}, layers)
    assert cfg.meta["method"] == "quantune" and cfg.meta["kept_high"] == order[:2]
    assert cfg["pw.conv"] == (8, 8) and cfg["dw.conv"][1] == 2
    with pytest.raises(ConfigError, match="needs the float model"):
        make_start({"name": "quantune", "k": 2}, layers)
    with pytest.raises(ConfigError, match="does not exist"):
        load_ranking(tmp_path / "missing.csv")


# the probe pair on the project's fake-quant network ---------------------------------------------------------


def test_the_probe_pair_reproduces_the_float_model_and_the_deployed_quantization():
    model = tiny()
    layers = extract_layers(model)
    x = calib(32)
    config = probe_config(layers, (4, 4), input_bits=8)
    probe = build_probe(model, config, x)
    with torch.no_grad():
        assert torch.allclose(probe.float_model(x), model(x), atol=1e-5)  # the float twin is the float model
        # the deployed network: tensors at their group's precision (what the loop builds and the table prices)
        qnet = quantize_model(model, config)
        for t, b in grouped_tensor_bits(qnet.specs, config).items():
            qnet.act(t).bits = b
        qnet = calibrate(qnet, x)
        qnet.integer_exact = False  # the probe fake-quantizes from the float result (see probe.py)
        q_probe, q_net = probe.quant_model(x), qnet(x)
        assert sqnr(q_net, q_probe) > 30.0  # same quantization up to bias rounding, unfused vs folded
        assert sqnr(model(x), q_probe) < 30.0  # and it does quantize
    named = dict(probe.quant_model.named_modules())
    assert all(op.module in named for op in probe.ops)  # same module names as the float model
    assert probe.input_op["pw.conv"] == "quant:dw.conv"  # a layer's input noise is taken before its quantizer
    assert "stem.conv" not in probe.input_op  # the int8 image is not a decision: after its quantizer


def test_the_probe_quantizes_every_tensor_at_its_group_precision_and_charges_its_noise_to_the_readers():
    # res.conv's output is read only by the add, the add's only by the pool: one group with pw.conv's
    model = tiny()
    layers = extract_layers(model)
    x = calib(24)
    config = probe_config(layers, (4, 4), input_bits=8)
    probe = build_probe(model, config, x)
    grouped = grouped_tensor_bits(layers, config)
    assert {t: probe.qnet.act(t).bits for t in grouped} == grouped
    # the quantizer's own rule would have kept them at 8 bits: the network analysed was not the deployed one
    differ = {t for t, b in bits_from_config(layers, config.layers).items() if b != grouped[t]}
    assert differ == {"res.conv", "add"} and grouped["res.conv"] == grouped["add"] == 4
    # the group {pw.conv, res.conv, add, pool} is read by res.conv and the classifier: both carry its noise
    assert probe.input_op["res.conv"] == "quant:pw.conv" and probe.input_op["classifier"] == "quant:pool"
    assert sorted(probe.group_ops["res.conv"]) == ["quant:add", "quant:pool", "quant:res.conv"]
    assert sorted(probe.group_ops["classifier"]) == ["quant:add", "quant:pw.conv", "quant:res.conv"]
    # every quantizer whose precision is a decision is charged to a layer (the image's and the logits' are not)
    charged = set(probe.input_op.values()) | {k for v in probe.group_ops.values() for k in v}
    quants = {op.key for op in probe.ops if op.kind == "act_quant"}
    assert quants - charged == {"quant:input", "quant:classifier"}

    s = sensitivity(model, layers, x, QuantuneParams.from_mapping({"low": 4}))
    ops = {r["op"]: r for r in s.ops}
    rows = {r["layer"]: r for r in s.layers}
    for name in ("res.conv", "classifier"):
        want = sum(ops[k]["dsqnr"] for k in probe.group_ops[name])
        assert rows[name]["group_dsqnr"] == pytest.approx(want, abs=1e-9)
        assert rows[name]["dsqnr"] == pytest.approx(rows[name]["unit_dsqnr"] + want, abs=1e-9)
        # the unit: from before its input's quantizer to its last fused op, the telescoping sum of its ops
        unit_ops = [probe.input_op[name]] + [r["op"] for r in s.ops if r["layer"] == name]
        assert rows[name]["unit_dsqnr"] == pytest.approx(sum(ops[k]["dsqnr"] for k in unit_ops), abs=1e-6)
    assert ops["quant:res.conv"]["dsqnr"] > 1.0  # a 4-bit quantizer adds noise that must count somewhere
    assert rows["stem.conv"]["group_dsqnr"] == 0.0  # it reads the image, whose precision is not a decision


def test_quantune_on_the_probe_runs_two_passes_and_ranks_every_layer():
    model = tiny()
    layers = extract_layers(model)
    s = sensitivity(model, layers, calib(24), QuantuneParams.from_mapping({"low": 2}))
    assert s.forward_calls == 2 and s.meta["passes"] == 2 and s.images == 24
    assert sorted(s.ranking) == sorted(x.name for x in layers if x.has_weights)
    assert [r["rank"] for r in s.layers] == list(range(1, len(s.ranking) + 1))
    assert all(math.isfinite(r["dsqnr"]) and r["w_sqnr"] < 20.0 for r in s.layers)  # 2-bit weights are noisy
    assert any(r["kind"] == "act_quant" for r in s.ops)


def test_the_quantune_start_analyses_the_model_it_is_given():
    from harness.search import make_start

    model = tiny()
    layers = extract_layers(model)
    cfg = make_start(
        {"name": "quantune", "k": 1, "low": 2, "n_calib": 8}, layers, model=model, calib=calib(32)
    )
    assert cfg.meta["ranking_from"] == "two-pass analysis" and len(cfg.meta["kept_high"]) == 1
    assert sum(w == 8 for _, w in cfg.values()) == 1  # one layer's weights kept high, the rest at 2 bits


def test_the_shipped_method_config_is_valid():
    from harness.config.compose import group_config
    from harness.search.quantune.pipeline import QuantuneParams

    d = group_config("method", "quantune")
    p = QuantuneParams.from_mapping(d)
    assert d["name"] == "quantune" and p.probe == p.low and p.chunk_size is None


def test_ranking_quality_table_and_the_claim_from_top1_per_k():
    from harness.search.quantune.quality import quality_summary, quality_table, random_rankings

    names = ["a", "b", "c", "d"]
    rnd = random_rankings(names, 3, seed=5)
    assert all(sorted(r) == names for r in rnd) and rnd == random_rankings(names, 3, seed=5)
    assert len({tuple(r) for r in rnd}) > 1
    top1 = {  # k -> (quantune, baseline, random-0, random-1)
        0: (0.40, 0.40, 0.40, 0.40),
        1: (0.70, 0.60, 0.50, 0.45),
        2: (0.75, 0.80, 0.60, 0.50),
        3: (0.85, 0.85, 0.70, 0.80),
        4: (0.90, 0.90, 0.90, 0.90),
    }
    rows = [
        {"method": m, "k": k, "top1": t[i], "bitops_rel_8bit": 0.25 + 0.1 * k}
        for k, t in top1.items()
        for i, m in enumerate(("quantune", "baseline", "random-0", "random-1"))
    ]
    table = quality_table(rows, list(top1))
    assert table[1]["top1_random_mean"] == pytest.approx(0.475) and table[3]["top1_random_max"] == 0.80
    s = quality_summary(table, 4, {"quantune": 2.0, "baseline": 50.0, "random": 0.0}, tolerance_pts=1.0)
    assert s["quality_ks"] == [1, 2, 3]  # k = 0 and k = n choose the same assignment whatever the ranking
    assert s["quality_mean_top1_quantune"] == pytest.approx((0.70 + 0.75 + 0.85) / 3)
    assert s["quality_diff_pts_quantune_vs_baseline"] == pytest.approx(100 * (2.30 - 2.25) / 3)
    assert (s["quality_k_quantune_better_than_baseline"], s["quality_k_quantune_worse_than_baseline"]) == (1, 1)
    assert s["quality_k_quantune_equal_to_baseline"] == 1 and s["quality_k_quantune_better_than_random"] == 3
    assert s["claim_faster"] and s["claim_equal_or_better_accuracy"] and s["claim_holds"]
    slow = quality_summary(table, 4, {"quantune": 60.0, "baseline": 50.0})
    assert not slow["claim_faster"] and not slow["claim_holds"]
