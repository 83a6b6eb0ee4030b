"""The cycle model's host side without QEMU: profiles and core models (every number sourced), the model file,
the timer/profile rules, the records merge and its errors, the least-squares fit and the microbenchmark source."""

from __future__ import annotations

import numpy as np
import pytest

from harness.boards import load_board_config, make_board
from harness.build.project import timer_build_flags
from harness.config.board import TimerSpec
from harness.errors import ConfigError, TimingError
from harness.timing import apply_timer, known_profiles, load_core, load_profile, profile_for_board
from harness.timing.calibrate import (
    CALIBRATION_BENCHES,
    fit,
    param_error_pct,
    parameter_names,
    profile_parameters,
)
from harness.timing.counter import BUILD_FLAGS
from harness.timing.elf import ImageLayout
from harness.timing.mca import without_it_blocks
from harness.timing.microbench import Bench, model_source
from harness.timing.model import CORE_EVENTS, M7_PARAMS, model_text, model_version
from harness.timing.records import Record, check_against_ticks, layer_counts, parse_line
from harness.timing.trm import M4_CASES, M7_CASES


@pytest.mark.parametrize("core", ["cortex-m4", "cortex-m7"])
def test_core_models_give_every_cost_a_source(core):
    m = load_core(core)
    assert m.costs and all(m.cost_sources[k] for k in m.costs)
    assert set(m.costs) <= set(CORE_EVENTS)
    if m.plugin_core == "m7":
        assert set(m.m7) == set(M7_PARAMS) and all(m.cost_sources[f"m7.{k}"] for k in M7_PARAMS)
    assert m.sources and model_version(m).startswith(m.version + ".")


def test_m4_costs_are_the_trm_table():
    c = load_core("cortex-m4").costs
    assert (c["alu"], c["mul"], c["load"], c["load_pipelined"], c["store"], c["dual"]) == (1, 1, 2, 1, 1, 3)
    assert c["multi"] + 3 * c["multi_reg"] == 4  # LDM of three registers: 1 + N
    assert 1 <= c["refill_direct"] <= 3 and c["refill_indirect"] == 3  # P in 1..3; LDR PC: 2 + 3


@pytest.mark.parametrize("name", ["stm32h743", "stm32h743-dtcm", "nrf52840", "qemu-mps2-an386", "qemu-mps2-an500"])
def test_profiles_load_with_sources(name):
    p = load_profile(name)
    assert p.name == name and p.clock_hz > 0 and p.core in ("cortex-m4", "cortex-m7")
    assert all(m.source for m in p.memories.values())
    assert name in known_profiles()


def test_real_chip_profiles_state_their_memory_system():
    h7 = load_profile("stm32h743")
    assert h7.clock_hz == 480_000_000 and h7.core == "cortex-m7"
    assert (h7.icache.size, h7.icache.ways, h7.dcache.size, h7.dcache.ways) == (16384, 2, 16384, 4)
    assert h7.memory("code").name == "axi_flash" and h7.memory("code").dcache and h7.memory("code").icache
    assert h7.memory("stack").name == "dtcm" and h7.memory("stack").zero_wait
    nrf = load_profile("nrf52840")
    assert nrf.clock_hz == 64_000_000 and nrf.core == "cortex-m4"
    assert nrf.memory("code").read_ws > 0 and nrf.memory("code").icache and not nrf.memory("code").dcache
    assert load_profile("qemu-mps2-an386").memory("data").zero_wait


def test_profile_validation_errors_name_the_key():
    good = {"name": "x", "core": "cortex-m4", "clock_hz": 1, "placement": {"code": "m", "data": "m", "stack": "m"},
            "memories": {"m": {}}}
    with pytest.raises(ConfigError, match="placement.stack"):
        load_profile({**good, "placement": {"code": "m", "data": "m"}})
    with pytest.raises(ConfigError, match="not one of its memories"):
        load_profile({**good, "placement": {"code": "m", "data": "m", "stack": "q"}})
    with pytest.raises(ConfigError, match="I-cacheable but there is no icache"):
        load_profile({**good, "memories": {"m": {"icache": True}}})
    with pytest.raises(ConfigError, match="unknown keys"):
        load_profile({**good, "memories": {"m": {"waitstates": 2}}})
    with pytest.raises(ConfigError, match="unknown timing profile"):
        load_profile("no-such-chip")


def test_timer_and_profile_rules():
    an386 = load_board_config("qemu-mps2-an386")
    cfg, counter = apply_timer(an386, "qemu-cycles")
    assert counter is not None and counter.profile.name == "qemu-mps2-an386"  # the board's zero-wait default
    assert (cfg.timer.source, cfg.timer.unit, cfg.timer.hz) == ("qemu-cycles", "cycles", 25_000_000)
    assert cfg.timer.model.startswith("qemu-mps2-an386/m4-1.")
    assert timer_build_flags(cfg) == BUILD_FLAGS and timer_build_flags(an386) == ()
    assert apply_timer(an386) == (an386, None)
    with pytest.raises(ConfigError, match="needs timer=qemu-cycles"):
        apply_timer(an386, None, "stm32h743")
    with pytest.raises(ConfigError, match="use board=qemu-mps2-an500"):
        apply_timer(an386, "qemu-cycles", "stm32h743")
    with pytest.raises(ConfigError, match="real silicon"):
        apply_timer(load_board_config("nucleo-h743zi"), "qemu-cycles")
    with pytest.raises(ConfigError, match="no default timing profile"):
        profile_for_board(load_board_config("qemu-netduinoplus2"), None)
    board = make_board("qemu-mps2-an500", timer="qemu-cycles", timing="stm32h743")
    assert board.cycles.profile.name == "stm32h743" and board.cfg.timer.hz == 480_000_000


def test_cycle_timer_never_turns_ticks_into_counts():
    spec = TimerSpec("qemu-cycles", 25_000_000, "cycles", 40.0)
    with pytest.raises(TimingError, match="timing plugin's records"):
        spec.to_count(10)


def _layout(ram: int, n_marks: int = 1026) -> ImageLayout:
    return ImageLayout(marks=0x20000000, n_marks=n_marks, stack_bottom=0x20000000 + ram + 4 * n_marks,
                       stack_top=0x20400000, flash_end=50_000, ram_bytes=ram + 4 * n_marks, min_stack=8192)


def test_regions_follow_the_placement_and_refuse_what_the_chip_cannot_hold():
    _, counter = apply_timer(load_board_config("qemu-mps2-an500"), "qemu-cycles", "stm32h743")
    regions = counter.regions(_layout(150_000))
    assert [(r.role, r.memory.name) for r in regions] == [("code", "axi_flash"), ("data", "axi_sram"),
                                                        ("stack", "dtcm")]
    assert regions[1].base == 0x20000000 and regions[2].base == regions[1].base + regions[1].size
    text = model_text(counter.core, counter.profile, regions)
    assert "core m7" in text and "icache 16384 32 2" in text and "dcache 16384 32 4" in text
    assert "sp_region 2" in text and text.count("\nregion ") == 3
    _, dtcm = apply_timer(load_board_config("qemu-mps2-an500"), "qemu-cycles", "stm32h743-dtcm")
    dtcm.regions(_layout(100_000))
    with pytest.raises(TimingError, match="does not fit timing=stm32h743-dtcm's dtcm"):
        dtcm.regions(_layout(150_000))


def test_records_merge_per_layer_over_regions_of_the_last_inference():
    lines = ["0 0 0", "2 10 5", "1 30 15", "3 30 15", "1 70 35",  # first inference
             "0 100 50", "2 110 55", "1 150 75", "3 150 75", "1 160 80", "3 160 80", "1 165 83"]
    c = layer_counts([parse_line(x) for x in lines], 2, ["a", "b"])
    assert [(x.cycles, x.instructions, x.regions) for x in c] == [(40.0, 20, 1), (15.0, 8, 2)]
    check_against_ticks(c, [1, 0], count_per_tick=20.0)
    with pytest.raises(TimingError, match="more than"):
        check_against_ticks(c, [9, 0], count_per_tick=20.0, overhead_per_region=1.0)


@pytest.mark.parametrize("lines, match", [
    ([], "no cycle markers came back"),
    (["2 0 0", "1 5 5"], "no inference-start marker"),
    (["0 0 0", "2 1 1", "1 5 5"], "no cycle marker for layer"),
    (["0 0 0", "2 1 1", "3 2 2"], "has no end marker"),
    (["0 0 0", "1 1 1"], "end marker without a begin"),
    (["0 0 0", "2 1 1", "1 2 2", "5 2 2", "1 3 3"], "model has 2 layers"),
    (["0 0 0", "2 1 1"], "never ended"),
])
def test_records_that_do_not_fit_the_model_are_clear_errors(lines, match):
    with pytest.raises(TimingError, match=match):
        layer_counts([parse_line(x) for x in lines], 2)


def test_garbled_record_is_an_error():
    with pytest.raises(TimingError, match="garbled"):
        parse_line("2 x 3")
    assert parse_line("4 1.5 3 7 8") == Record(4, 1.5, 3, (7, 8))


def test_fit_recovers_exact_costs_and_reports_inseparable_ones():
    rng = np.random.default_rng(0)
    names = ["a", "b", "c", "d", "unused"]
    A = rng.integers(0, 50, size=(12, 5)).astype(float)
    A[:, 3] = 2 * A[:, 0]  # d is never separable from a
    A[:, 4] = 0
    truth = np.array([1.0, 2.0, 14.0, 0.0, 0.0])
    f = fit(A, A @ truth, names)
    assert f.unexercised == ["unused"] and f.unidentified == ["d"] and f.rank == 3
    err = param_error_pct(f.values, dict(zip(names, truth)))
    assert max(err.values()) < 1e-6


def test_calibration_parameters_cover_every_event_and_benches_build():
    assert len(parameter_names()) == len(CORE_EVENTS) + 3 * 6
    core, prof = load_core("cortex-m4"), load_profile("nrf52840")
    p = profile_parameters(core, prof)
    assert p["load"] == 2 and p["code.read_ws"] == prof.memory("code").read_ws and p["code.ifill"] == 3
    src = model_source(CALIBRATION_BENCHES)
    assert src.count("__attribute__((naked") == len(CALIBRATION_BENCHES) + 1  # + mb_ret
    assert f".n_layers = {len(CALIBRATION_BENCHES)}" in src and "mb_flash" in src


def test_bench_bodies_may_not_use_the_loop_register():
    with pytest.raises(ConfigError, match="reserved"):
        Bench("bad", ("add r12, r0, r1",))
    with pytest.raises(ConfigError, match="repeat"):
        model_source([Bench("x", ("nop",)), Bench("x", ("nop",))])


def test_documented_cases_carry_their_source():
    assert len(M4_CASES) >= 30 and all(c.source for c in (*M4_CASES, *M7_CASES))
    assert all((c.expected is None) != (c.expected_range is None) for c in M4_CASES)
    assert sum(c.expected is not None for c in M4_CASES) >= 30


def test_it_blocks_become_unconditional_instructions_for_llvm_mca():
    asm = ["cmp r3, r6", "itet ge", "movge r3, r6", "addlt.w r3, r3, #1", "strge r3, [r4]", "bne loop"]
    assert without_it_blocks(asm) == ["cmp r3, r6", "mov r3, r6", "add.w r3, r3, #1", "str r3, [r4]", "bne loop"]
    # outside an IT block nothing changes, even a mnemonic that ends like a condition
    assert without_it_blocks(["bics r0, r1", "movs r0, #1"]) == ["bics r0, r1", "movs r0, #1"]
