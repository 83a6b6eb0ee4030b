"""Counts in cycles become milliseconds at the core clock; instructions (QEMU) never do. build_only stops a run at
the flash step with the build's numbers."""

from __future__ import annotations

import hashlib

import pytest

from harness.boards import make_board
from harness.boards.build_only import BuildOnlyBoard, BuiltOnly, mode
from harness.errors import ConfigError
from harness.measure.units import add_milliseconds, cycles_to_ms


def test_cycle_counts_get_clock_and_milliseconds_beside_them():
    s = {"unit": "cycles", "total_count": 480_000, "final_count_loop": 960_000.0, "n_inputs": 2,
         "count_per_mac": 1.5, "per_layer": [{"layer": "conv", "count": 48_000}, {"layer": "fc", "count": 4_800}]}  # fmt: skip
    out = add_milliseconds(s, "cycles", 480_000_000)
    assert out["clock_hz"] == 480_000_000
    assert out["total_ms"] == 1.0 and out["final_ms_loop"] == 2.0
    assert [r["ms"] for r in out["per_layer"]] == [0.1, 0.01]
    assert "count_per_ms" not in out and "n_inputs" in out  # ratios and counters of things are not times
    assert cycles_to_ms(64_000, 64_000_000) == 1.0


def test_instruction_counts_are_left_alone():
    s = {"unit": "instructions", "total_count": 1000}
    assert add_milliseconds(s, "instructions", 25_000_000) == s


def test_build_only_board_builds_like_the_real_one_and_stops_at_flash(tmp_path):
    with mode(True):
        board = make_board("nucleo-h743zi")
    assert isinstance(board, BuildOnlyBoard) and board.name == "nucleo-h743zi"
    assert not isinstance(make_board("nucleo-h743zi"), BuildOnlyBoard)  # the mode ends with the block
    elf = tmp_path / "firmware.elf"
    elf.write_bytes(b"\x7fELF")
    with pytest.raises(BuiltOnly) as e:
        board.flash(elf)
    assert e.value.board == "nucleo-h743zi"
    with pytest.raises(ConfigError, match="build_only"):
        board.open_transport()
    assert not isinstance(e.value, Exception)  # an experiment's `except Exception` cannot swallow it


@pytest.mark.toolchain
def test_built_only_summary_carries_sizes_and_the_images_hash(fixture_firmware):
    r = fixture_firmware("nano33ble")
    s = BuiltOnly("nano33ble", r).summary()
    assert s["built"] is True and s["board"] == "nano33ble"
    assert (s["flash_used"], s["sram_used"], s["flash_size"]) == (r.flash_used, r.sram_used, r.flash_size)
    assert s["elf_sha256"] == hashlib.sha256(r.elf.read_bytes()).hexdigest()
