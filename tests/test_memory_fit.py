"""The board's memory budget as the searches see it: the skeleton's estimate equals the exported network's, a
configuration is judged by the build's own fit check, a timing profile holds an emulated board to its real chip,
and starts are refused or tightened before anything is built."""

from __future__ import annotations

import itertools
import random
from types import SimpleNamespace

import pytest
import torch

from harness.boards import make_board
from harness.codegen.artifact import layer_artifact
from harness.config.board import load_board_config
from harness.errors import DoesNotFitError
from harness.graph.trace import extract_layers
from harness.loop.deploy import quantize_grouped
from harness.models.registry import build_model
from harness.precision.config import PrecisionConfig
from harness.precision.groups import activation_groups, harmonize
from harness.quant.export import export_int_model
from harness.search import make_start
from harness.search.bitops_budget import bitops
from harness.search.memory_fit import board_fit, excess, skeleton_model

pytestmark = pytest.mark.hostcc  # the kernels' scratch sizes come from the firmware's C functions


def _random_configs(layers, n: int, seed: int = 0):
    g = activation_groups(layers)
    rng = random.Random(seed)
    for _ in range(n):
        c = {name: (rng.choice([2, 4, 8]), rng.choice([2, 4, 8])) for name in g.weighted}
        c[g.weighted[0]] = (8, c[g.weighted[0]][1])
        yield harmonize(g, PrecisionConfig(c))


def test_the_skeletons_estimate_is_the_exported_networks():
    model = build_model("tiny-cnn")
    layers = extract_layers(model)
    torch.manual_seed(0)
    p = SimpleNamespace(model=model, input_shape=(1, 8, 8), calib=torch.randn(32, 1, 8, 8))
    fit = board_fit(layers, "qemu-mps2-an386")
    for config in itertools.chain([PrecisionConfig.uniform(activation_groups(layers).weighted)],
                                  _random_configs(layers, 4)):  # fmt: skip
        real = layer_artifact(export_int_model(quantize_grouped(p, config))).estimate
        assert fit.need(config) == real
        sk = skeleton_model(layers, config)
        assert [t.bits for t in sk.tensors.values()] == [real_t.bits for real_t in
                                                         export_int_model(quantize_grouped(p, config)).tensors.values()]


def test_a_configuration_is_judged_by_the_builds_fit_check():
    layers = extract_layers(build_model("mbv2-w0.35"))
    small = board_fit(layers, "qemu-netduinoplus2")  # 128 KB SRAM: int8 needs ~155 KB layer by layer
    int8 = PrecisionConfig.uniform(activation_groups(layers).weighted)
    assert not small(int8)
    assert "does not fit qemu-netduinoplus2: SRAM needs" in small.why(int8)
    over_sram, over_flash = excess(small, int8)
    assert over_sram > 0 and over_flash == 0
    four = PrecisionConfig({n: (4, 8) if i else (8, 8) for i, n in enumerate(int8.layers)})
    assert small(four) and small.why(four) == "" and excess(small, four) == (0, 0)
    assert board_fit(layers, "qemu-mps2-an386")(int8), "4 MB of SRAM holds it"


def test_a_timing_profile_holds_an_emulated_board_to_its_real_chip():
    layers = extract_layers(build_model("mbv2-w0.35"))
    plain = board_fit(layers, make_board("qemu-mps2-an500", timer="qemu-icount"))  # instructions: no chip
    chip = board_fit(layers, make_board("qemu-mps2-an500", timer="qemu-cycles", timing="stm32h743"))
    assert plain.board.flash.size == 4 * 1024 * 1024 == load_board_config("qemu-mps2-an500").flash.size
    assert chip.board.flash.size == 2 * 1024 * 1024, "the STM32H743's flash"
    assert chip.board.sram.size < 1024 * 1024, "AXI SRAM for .data/.bss, plus the stack the DTCM holds"


def test_a_start_that_does_not_fit_is_refused_and_the_bitops_search_is_tightened_until_it_fits():
    layers = extract_layers(build_model("mbv2-w0.35"))
    fit = board_fit(layers, "qemu-netduinoplus2")
    with pytest.raises(DoesNotFitError, match="does not fit qemu-netduinoplus2"):
        make_start({"name": "uniform"}, layers, fits=fit)
    # the most bits within half of int8's BitOPs: its own (live-tensor) SRAM limit is tightened by the excess the
    # build's accounting finds until the answer fits
    start = make_start({"name": "bitops", "bitops_frac": 0.5, "time_limit": 10}, layers, fits=fit)
    assert fit(start)
    int8 = PrecisionConfig.uniform(activation_groups(layers).weighted)
    assert bitops(layers, start) <= 0.5 * bitops(layers, int8) + 1
