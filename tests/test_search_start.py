"""Activation groups, starting points and the method registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.graph.spec import INPUT, LayerSpec
from harness.precision.config import PrecisionConfig
from harness.precision.groups import activation_groups, group_bits, harmonize, layer_bits
from harness.search import available_starts, make_start, register_start
from harness.search.uniform import uniform_config


def pw(name: str, src: str, c_in: int = 8, c_out: int = 8) -> LayerSpec:
    return LayerSpec(name, "pointwise", (4, 4, c_in), (4, 4, c_out), inputs=(src,))


def net() -> list[LayerSpec]:
    """c0 -> c1 -> add(c0, c1) -> pool -> fc: c1 and fc read one group (c0, c1, add, pool)."""
    return [
        pw("c0", INPUT, 3),
        pw("c1", "c0"),
        LayerSpec("add", "add", (4, 4, 8), (4, 4, 8), inputs=("c0", "c1")),
        LayerSpec("pool", "avgpool", (4, 4, 8), (1, 1, 8), kernel=(4, 4), inputs=("add",)),
        LayerSpec("fc", "fc", (1, 1, 8), (1, 1, 10), inputs=("pool",)),
    ]


# activation groups ------------------------------------------------------------------------------------------


def test_weightless_layers_join_their_inputs_and_output_into_one_group():
    g = activation_groups(net())
    shared = g.group_of["c0"]
    assert {g.group_of[t] for t in ("c1", "add", "pool")} == {shared}
    assert g.readers[shared] == ("c1", "fc")
    assert g.producers[shared] == ("c0", "c1")
    assert g.passthrough[shared] == ("add", "pool")
    assert g.readers[g.group_of["fc"]] == ()  # the logits


def test_layer_bits_follow_the_group_and_the_output_stays_8_bit():
    bits = layer_bits(activation_groups(net()), PrecisionConfig({"c0": (8, 4), "c1": (4, 2), "fc": (4, 8)}))
    assert bits == {"c0": (8, 4, 4), "c1": (4, 2, 4), "add": (4, 0, 4), "pool": (4, 0, 4), "fc": (4, 8, 8)}


def test_readers_that_disagree_are_an_error_until_harmonized_to_the_maximum():
    layers = net()
    bad = PrecisionConfig({"c0": (8, 4), "c1": (2, 2), "fc": (4, 8)})
    with pytest.raises(ConfigError, match="c1.*fc|harmonize"):
        group_bits(activation_groups(layers), bad)
    good = harmonize(layers, bad)
    assert good["c1"] == (4, 2) and good["fc"] == (4, 8) and good.meta["harmonized"] == ["c1"]


def test_the_graph_and_the_configuration_are_checked():
    with pytest.raises(ConfigError, match="no earlier layer"):
        activation_groups([pw("c1", "nowhere")])
    with pytest.raises(ConfigError, match="twice"):
        activation_groups([pw("c0", INPUT), pw("c0", "c0")])
    with pytest.raises(ConfigError, match="no \\(a_bits, w_bits\\).*fc"):
        group_bits(activation_groups(net()), PrecisionConfig({"c0": (8, 8), "c1": (8, 8)}))
    with pytest.raises(ConfigError, match="not conv/linear"):
        group_bits(
            activation_groups(net()),
            PrecisionConfig({"c0": (8, 8), "c1": (8, 8), "fc": (8, 8), "add": (8, 8)}),
        )


# starting points --------------------------------------------------------------------------------------------


def test_uniform_keeps_the_image_input_8_bit_unless_told_otherwise():
    c = uniform_config(net(), 4, 2)
    assert c.layers == {"c0": (8, 2), "c1": (4, 2), "fc": (4, 2)}
    assert uniform_config(net(), 4, 2, input_bits=None)["c0"] == (4, 2)


def test_make_start_builds_uniform_and_rejects_unknown_names_and_parameters():
    assert make_start({"name": "uniform", "a_bits": 2, "w_bits": 4}, net()).layers == {
        "c0": (8, 4),
        "c1": (2, 4),
        "fc": (2, 4),
    }
    with pytest.raises(ConfigError, match="unknown search method"):
        make_start({"name": "no_such_method"}, net())
    with pytest.raises(ConfigError, match="does not take \\['abits'\\]"):
        make_start({"name": "uniform", "abits": 4}, net())
    with pytest.raises(ConfigError, match="name"):
        make_start({"a_bits": 4}, net())
    assert {"uniform", "bitops", "file"} <= set(available_starts())


def test_make_start_accepts_a_hydra_method_config():
    from omegaconf import OmegaConf

    method = OmegaConf.create({"name": "uniform", "a_bits": 4, "w_bits": 4})
    assert make_start(method, net())["c1"] == (4, 4)


def test_make_start_loads_a_saved_configuration(tmp_path: Path):
    saved = PrecisionConfig({"c0": (8, 2), "c1": (4, 8), "fc": (4, 4)}, meta={"method": "by-hand"})
    saved.save(tmp_path / "cfg.yaml")
    assert make_start({"name": "file", "path": str(tmp_path / "cfg.yaml")}, net()).layers == saved.layers
    with pytest.raises(ConfigError, match="path"):
        make_start({"name": "file"}, net())


def test_every_start_is_made_consistent_for_shared_activations():
    @register_start("test_independent_bits")
    def independent(params, layers, context):
        assert context == {"table": "T"}
        return PrecisionConfig({"c0": (8, 8), "c1": (2, 8), "fc": (8, 2)})

    c = make_start({"name": "test_independent_bits"}, net(), table="T")
    assert c["c1"] == (8, 8) and c["fc"] == (8, 2) and c.meta["harmonized"] == ["c1"]


def test_make_start_runs_the_bitops_search():
    c = make_start({"name": "bitops", "objective": "bits", "bitops_frac": 0.25}, net())
    assert c.meta["solver"] == "highs-ilp" and c.meta["bitops"] <= c.meta["budgets"]["bitops"]
