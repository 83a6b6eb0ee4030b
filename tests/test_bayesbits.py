"""Bayesian Bits (method=bayesbits): gates, the regularisers, the search's answer and its cache, on tiny-cnn."""

from __future__ import annotations

import pytest
import torch

from harness.data import load_data
from harness.data.base import batches
from harness.errors import ConfigError
from harness.graph.spec import LayerSpec
from harness.models.registry import build_model, checkpoint_path, load_checkpoint
from harness.precision.groups import activation_groups
from harness.quant.calibrate import calibrate
from harness.quant.qnet import quantize_model
from harness.search import make_start
from harness.search.bayesbits import (
    BayesBitsSettings,
    Gates,
    bayesbits_search,
    cached_search,
    expected_bitops,
    gated_net,
)

SHAPE = (1, 8, 8)


@pytest.fixture(scope="module")
def tiny():
    model = load_checkpoint(build_model("tiny-cnn"), checkpoint_path("tiny-cnn", "digits")).eval()
    data = load_data({"name": "digits", "n_train": 256, "n_test": 128})
    return model, data


def _gated(model, data, init: float):
    q = quantize_model(model, input_shape=SHAPE)
    sub = data.train.subset(64, 0)
    calibrate(q, next(batches(sub, SHAPE, len(sub), mean=data.mean, std=data.std))[0])
    return gated_net(q, gate_init=init)


def test_gate_probabilities_follow_the_nested_decomposition():
    g = Gates(0.0)
    with torch.no_grad():
        g.log_alpha[:] = torch.tensor([10.0, -10.0])  # 4-bit residual on, 8-bit residual off
    p = g.probs()
    assert p.sum().item() == pytest.approx(1.0)
    assert p[1].item() > 0.99 and g.bits() == 4
    with torch.no_grad():
        g.log_alpha[:] = torch.tensor([-10.0, 10.0])  # z_8 does not count without z_4
    assert g.bits() == 2 and g.probs()[0].item() > 0.99
    g.eval()
    assert g.sample().tolist() == [0.0, 1.0]  # deterministic gates at evaluation


def test_expected_bitops_is_one_at_eight_bits_and_falls_with_the_gates(tiny):
    model, data = tiny
    g = _gated(model, data, init=10.0)
    assert expected_bitops(g).item() == pytest.approx(1.0, abs=1e-3)
    assert set(g.config().layers.values()) == {(8, 8)}
    with torch.no_grad():
        for gate in g.weight_gates.values():
            gate.log_alpha[:] = torch.tensor([10.0, -10.0])  # every weight at 4 bits, activations at 8
    assert expected_bitops(g).item() == pytest.approx(0.5, abs=1e-3)
    cfg = g.config()
    groups = activation_groups(g.layers)
    assert {w for _, w in cfg.layers.values()} == {4} and set(cfg.layers) == set(groups.weighted)


def test_a_strong_bitops_regulariser_lowers_the_bits(tiny):
    model, data = tiny
    weak = BayesBitsSettings(lam=0.0, epochs=1, n_train=256, batch_size=16, gate_init=1.0, threads=1)
    strong = BayesBitsSettings(lam=50.0, epochs=1, n_train=256, batch_size=16, gate_init=1.0, threads=1)
    c0 = bayesbits_search(model, data, SHAPE, weak)
    c1 = bayesbits_search(model, data, SHAPE, strong)

    def mean_bits(c):
        return sum(a + w for a, w in c.layers.values()) / (2 * len(c.layers))

    assert mean_bits(c1) < mean_bits(c0)
    assert c1.meta["method"] == "bayesbits-bitops" and c1.meta["steps"] == 16
    assert all(a in (2, 4, 8) and w in (2, 4, 8) for a, w in c1.layers.values())


def test_the_cached_search_returns_the_same_answer_without_training(tiny, tmp_path):
    model, data = tiny
    st = BayesBitsSettings(lam=1.0, epochs=1, n_train=64, batch_size=32, threads=1)
    first = cached_search(model, data, SHAPE, st, cache_dir=tmp_path)
    again = cached_search(model, data, SHAPE, st, cache_dir=tmp_path)
    assert again.layers == first.layers and again.meta.get("cached") is True
    other = cached_search(
        model, data, SHAPE, BayesBitsSettings(**{**st.__dict__, "lam": 2.0}), cache_dir=tmp_path
    )
    assert not other.meta.get("cached")  # another setting is another search
    assert len(list(tmp_path.glob("bayesbits-*.json"))) == 2


def test_the_latency_regulariser_needs_a_table_and_the_start_needs_the_network(tiny):
    model, data = tiny
    with pytest.raises(ConfigError, match="needs the board's latency table"):
        bayesbits_search(model, data, SHAPE, BayesBitsSettings(regulariser="latency", threads=1))
    with pytest.raises(ConfigError, match="trains the network"):
        make_start(
            {"name": "bayesbits"}, [LayerSpec("l", "pointwise", (4, 4, 8), (4, 4, 8), inputs=("input",))]
        )
