"""The real boards' firmware, checked without the boards: both build; the ELF layout (vector table, stack in DTCM
behind an MPU guard, the Nano's image above its bootloader, RTT rings where a probe can read them) is what the
linker scripts promise; and every clock, flash-latency and baud value the board code writes matches the vendor's
formula (RM0433 for the STM32H743, the nRF52840 Product Specification), recomputed here from the board config."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from harness.boards import load_board_config
from harness.boards.regvalues import (
    H7_FLASH_TABLE,
    NRF52_ICACHECNF_CACHEEN,
    NRF52_UARTE_BAUDRATE_TABLE,
    H7ClockPlan,
    decode_h7_plan,
    h7_flash_wait_states,
    h7_plan_problems,
    nrf52_uarte_actual_baud,
    nrf52_uarte_baudrate,
    stm32_usart_brr,
)
from harness.build.elf import ElfImage

REPO = Path(__file__).resolve().parent.parent
REAL_BOARDS = ("nucleo-h743zi", "nano33ble")
DTCM = (0x2000_0000, 128 * 1024)


def _in(addr: int, base: int, size: int) -> bool:
    return base <= addr < base + size


@pytest.fixture(scope="module")
def images(fixture_firmware):
    return {b: fixture_firmware(b) for b in REAL_BOARDS}


@pytest.mark.toolchain
@pytest.mark.parametrize("board", REAL_BOARDS)
def test_real_board_builds_and_fits_with_its_vector_table_at_the_flash_base(images, board):
    r, cfg = images[board], load_board_config(board)
    assert r.flash_used <= cfg.flash.size and r.sram_used <= cfg.sram.size
    with ElfImage(r.elf) as elf:
        sp, reset = elf.vector_table(2)
        vectors = elf.symbol("th_vectors")
        assert vectors.address == cfg.flash.base  # the core (or the bootloader) takes SP and PC from here
        assert reset & 1 == 1 and _in(reset & ~1, cfg.flash.base, cfg.flash.size)  # Thumb, in flash
        assert reset & ~1 == elf.symbol("Reset_Handler").address & ~1
        assert sp == elf.symbol("__stack_top").address
        # Every loadable byte lies in the board's flash (nothing under the Nano's bootloader).
        for name in (".text", ".ARM.exidx"):
            addr, size = elf.section(name)
            assert (
                _in(addr, cfg.flash.base, cfg.flash.size) and addr + size <= cfg.flash.base + cfg.flash.size
            )
        data_addr, _ = elf.section(".data")
        assert _in(data_addr, cfg.sram.base, cfg.sram.size)
        guard, bottom = elf.symbol("__stack_guard").address, elf.symbol("__stack_bottom").address
        assert guard % 32 == 0 and bottom == guard + 32  # the MPU guard region sits right below the stack
        assert sp - bottom >= 8 * 1024
        rtt = elf.symbol("_SEGGER_RTT")
        assert rtt.size == 24 + 2 * 24  # ID, counts, one up and one down ring descriptor
        # The board's own bring-up and the core helpers are linked in.
        for sym in ("th_board_init", "th_core_quiesce", "th_mpu_stack_guard", "th_dwt_guard", "th_rtt_init"):
            elf.symbol(sym)


@pytest.mark.toolchain
def test_h743_stack_and_rtt_live_in_dtcm_and_data_in_axi_sram(images):
    with ElfImage(images["nucleo-h743zi"].elf) as elf:
        top = elf.symbol("__stack_top").address
        assert top == DTCM[0] + DTCM[1]  # the whole DTCM above the RTT rings is stack
        assert _in(elf.symbol("__stack_bottom").address, *DTCM)
        assert _in(elf.symbol("_SEGGER_RTT").address, *DTCM)  # uncached: a probe reads what the core wrote
        assert _in(elf.symbol("__bss_start").address, 0x2400_0000, 512 * 1024)
        for sym in ("th_cm7_icache_enable", "th_cm7_dcache_enable"):
            elf.symbol(sym)


@pytest.mark.toolchain
def test_nano_image_is_linked_at_the_arduino_bootloaders_application_offset(images):
    cfg = load_board_config("nano33ble")
    assert cfg.flash.base == 0x10000 and cfg.flash.size == 0x100000 - 0x10000  # 64 KB bootloader, 1 MB flash
    with ElfImage(images["nano33ble"].elf) as elf:
        assert elf.section(".text")[0] == 0x10000
        assert elf.symbol("th_vectors").address == 0x10000
    ld = (REPO / "firmware/boards/nano33ble/link.ld").read_text()
    assert "ORIGIN = 0x00010000" in ld


# --- register values against the reference manuals ----------------------------------------------------------


@pytest.mark.toolchain
def test_h743_clock_plans_in_the_elf_follow_rm0433(images):
    cfg = load_board_config("nucleo-h743zi")
    with ElfImage(images["nucleo-h743zi"].elf) as elf:
        words = elf.words("th_h7_plans")
    n = len(H7ClockPlan.__dataclass_fields__)
    plans = [H7ClockPlan.from_words(words[i * n : (i + 1) * n]) for i in range(4)]
    for p in plans:
        assert h7_plan_problems(p, baud=cfg.uart["baud"]) == [], p
    hse, hsi, safe_hse, safe_hsi = plans
    # The requested clock from either source, and the revision-Y fallback at 400 MHz.
    assert hse.sysclk_hz == hsi.sysclk_hz == cfg.clock_hz == cfg.timer.hz == 480_000_000
    assert safe_hse.sysclk_hz == safe_hsi.sysclk_hz == 400_000_000
    assert (decode_h7_plan(hse).pllsrc, hse.src_hz) == (2, 8_000_000)  # HSE from the ST-LINK MCO
    assert (decode_h7_plan(hsi).pllsrc, hsi.src_hz) == (0, 64_000_000)
    # 480 MHz: VOS0, AXI 240 MHz -> 4 wait states, WRHIGHFREQ 2; 400 MHz: VOS1, AXI 200 MHz -> 2 WS, WRHIGHFREQ 2.
    assert (hse.vos, hse.hclk_hz, hse.flash_acr) == (0, 240_000_000, 0x24)
    assert (safe_hse.vos, safe_hse.hclk_hz, safe_hse.flash_acr) == (1, 200_000_000, 0x22)
    # USART3 at 115200 from a 120 MHz / 100 MHz APB1: 1042 and 868 (RM0433: BRR = f_ck / baud).
    assert (hse.usart_brr, safe_hse.usart_brr) == (stm32_usart_brr(120_000_000, 115200), 868) == (1042, 868)
    vco = hse.src_hz / decode_h7_plan(hse).divm * decode_h7_plan(hse).divn
    assert vco == 960_000_000


def test_h7_plan_checker_catches_a_wrong_wait_state_a_wrong_divider_and_a_bus_over_its_limit():
    good = H7ClockPlan(480_000_000, 8_000_000, 240_000_000, 120_000_000, 0, (3 << 4) | 2, (1 << 2) | (1 << 16),
                       359 | (1 << 9) | (3 << 16) | (1 << 24), 0x48, 0x440, 0x40, 0x24, 1042)  # fmt: skip
    assert h7_plan_problems(good) == []
    assert any(
        "FLASH_ACR" in m for m in h7_plan_problems(H7ClockPlan(**{**good.__dict__, "flash_acr": 0x23}))
    )
    assert any("BRR" in m for m in h7_plan_problems(H7ClockPlan(**{**good.__dict__, "usart_brr": 1041})))
    odd_p = H7ClockPlan(**{**good.__dict__, "pll1divr": 359 | (2 << 9)})  # DIVP1 = 3
    assert any("DIVP1" in m for m in h7_plan_problems(odd_p))
    no_hpre = H7ClockPlan(**{**good.__dict__, "d1cfgr": 0x40, "hclk_hz": 480_000_000})  # AXI at 480 MHz
    assert any("AXI/AHB" in m for m in h7_plan_problems(no_hpre))
    assert any("VOS1" in m for m in h7_plan_problems(H7ClockPlan(**{**good.__dict__, "vos": 1})))


def test_h7_wait_state_table_rows():
    assert [h7_flash_wait_states(f, 0) for f in (70e6, 70e6 + 1, 185e6, 200e6, 225e6, 240e6)] == [
        (0, 0), (1, 1), (2, 1), (2, 2), (3, 2), (4, 2)]  # fmt: skip
    assert [row[0] for row in H7_FLASH_TABLE] == sorted(row[0] for row in H7_FLASH_TABLE)
    with pytest.raises(ValueError):
        h7_flash_wait_states(240_000_000, 1)  # VOS1 stops at 200 MHz


@pytest.mark.toolchain
def test_nano_uarte_baud_and_icache_values_in_the_elf_follow_the_product_specification(images):
    for baud, register in NRF52_UARTE_BAUDRATE_TABLE.items():
        assert nrf52_uarte_baudrate(baud) == register  # the formula reproduces the PS table
    assert abs(nrf52_uarte_actual_baud(0x01D7E000) - 115200) / 115200 < 0.001
    with ElfImage(images["nano33ble"].elf) as elf:
        (baudrate,) = elf.words("th_nrf52_uarte_baudrate")
        (icachecnf,) = elf.words("th_nrf52_icachecnf")
    assert baudrate == nrf52_uarte_baudrate(load_board_config("nano33ble").uart["baud"]) == 0x01D7E000
    assert icachecnf == NRF52_ICACHECNF_CACHEEN


# --- the Arduino bootloader upload path, up to the hardware boundary ------------------------------------------


@pytest.mark.toolchain
def test_nano_pio_upload_touches_the_port_and_hands_bossac_the_image_linked_at_0x10000(tmp_path):
    """``pio run -t upload`` for the Nano: objcopy to .bin, 1200-baud touch on the port, then bossac. bossac
    itself needs the board, so a stand-in on PATH records what it was given."""
    from harness.build import build, generate_project
    from harness.build.pio_core import pio_environment
    from tests.fixtures.fixture_model import FixtureModel

    FixtureModel().write(tmp_path / "model")
    project = generate_project("nano33ble", tmp_path / "model", tmp_path / "p")
    r = build(project, "nano33ble", cache_dir=False)
    # A pseudo-terminal stands in for the board's USB port; waiting for a re-enumerated port needs the board.
    master, slave = os.openpty()
    port = os.ttyname(slave)
    with (project / "platformio.ini").open("a") as f:
        f.write("board_upload.wait_for_upload_port = no\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    record = tmp_path / "bossac.args"
    fake = bindir / "bossac"
    fake.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {record}\n"
                    f"for a; do case \"$a\" in *.bin) cp \"$a\" {tmp_path / 'uploaded.bin'};; esac; done\n")  # fmt: skip
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = pio_environment()
    env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
    cmd = [
        sys.executable,
        "-m",
        "platformio",
        "run",
        "-d",
        str(project),
        "-t",
        "upload",
        "--upload-port",
        port,
    ]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    finally:
        os.close(master)
        os.close(slave)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1200bps" in out.stdout  # PlatformIO's touch: the Arduino way into the bootloader
    args = record.read_text().split()
    assert f"--port={port}" in args and {"-U", "-i", "-e", "-w", "-R"} <= set(args)
    image = (tmp_path / "uploaded.bin").read_bytes()
    with ElfImage(r.elf) as elf:
        sp, reset = elf.vector_table(2)
    # The .bin starts with the vector table: bossac writes it at the bootloader's application offset.
    assert int.from_bytes(image[0:4], "little") == sp and int.from_bytes(image[4:8], "little") == reset
    assert 0x10000 <= reset < 0x10000 + len(image)


def test_platform_boards_declare_the_upload_paths():
    nano = json.loads((REPO / "firmware/platform/boards/nano33ble.json").read_text())
    assert nano["upload"]["protocol"] == "sam-ba" and nano["upload"]["offset_address"] == "0x10000"
    assert nano["upload"]["use_1200bps_touch"] is True
    assert nano["debug"]["pyocd_target"] == load_board_config("nano33ble").driver.target
    h7 = json.loads((REPO / "firmware/platform/boards/nucleo-h743zi.json").read_text())
    assert h7["upload"]["protocol"] == "pyocd"
    assert h7["debug"]["pyocd_target"] == load_board_config("nucleo-h743zi").driver.target
    for board in (nano, h7):
        assert "TH_TIMER_DWT" in board["build"]["tinyhil_defines"]  # cycles from the DWT counter
