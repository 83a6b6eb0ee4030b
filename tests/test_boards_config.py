"""Board configurations: every yaml is valid, and agrees with the firmware's linker script and PlatformIO board."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from harness.boards import QemuBoard, SerialBoard, known_boards, load_board_config, make_board
from harness.boards.flashers import PyOcdFlasher
from harness.boards.resources import DebugProbe
from harness.config.board import BoardConfig
from harness.errors import ConfigError, DeviceError
from tests.fixtures.boards import QEMU_BOARDS

REPO = Path(__file__).resolve().parent.parent
_LD_MEM = re.compile(
    r"(FLASH|RAM)\s*\([^)]*\)\s*:\s*ORIGIN\s*=\s*(0x[0-9A-Fa-f]+)\s*,\s*LENGTH\s*=\s*(\d+)([KM]?)"
)


def _ld_regions(path: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for name, origin, length, unit in _LD_MEM.findall(path.read_text()):
        out[name] = (int(origin, 16), int(length) * {"": 1, "K": 1024, "M": 1024 * 1024}[unit])
    return out


def test_the_three_qemu_boards_and_two_real_boards_are_configured():
    assert set(QEMU_BOARDS) | {"nucleo-h743zi", "nano33ble"} <= set(known_boards())


@pytest.mark.parametrize("name", known_boards())
def test_every_board_yaml_loads_and_names_itself(name):
    cfg = load_board_config(name)
    assert cfg.name == name
    assert cfg.clock_hz > 0 and cfg.sram.size > 0 and cfg.flash.size > 0
    assert cfg.timer.count_per_tick > 0


@pytest.mark.parametrize("name", QEMU_BOARDS)
def test_qemu_board_sizes_match_linker_script_and_platformio_board(name):
    cfg = load_board_config(name)
    regions = _ld_regions(REPO / cfg.linker_script)
    assert regions["FLASH"] == (cfg.flash.base, cfg.flash.size)
    assert regions["RAM"] == (cfg.sram.base, cfg.sram.size)
    pio = json.loads((REPO / "firmware" / "platform" / "boards" / f"{cfg.platformio_board}.json").read_text())
    assert pio["upload"]["maximum_size"] == cfg.flash.size
    assert pio["upload"]["maximum_ram_size"] == cfg.sram.size
    assert int(pio["build"]["f_cpu"].rstrip("L")) == cfg.clock_hz
    assert f"-mcpu={pio['build']['cpu']}" in cfg.cpu_flags
    assert pio["tinyhil_qemu"] == {"machine": cfg.driver.machine, "cpu": cfg.driver.cpu}


@pytest.mark.parametrize("name", QEMU_BOARDS)
def test_qemu_tick_is_one_nanosecond_instruction_count(name):
    # Under -icount shift=0 a guest instruction takes 1 ns, so a SysTick at hz counts 1e9 / hz instructions.
    cfg = load_board_config(name)
    assert cfg.timer.source == "qemu-icount" and cfg.timer.unit == "instructions"
    assert cfg.timer.hz == cfg.clock_hz
    assert cfg.timer.count_per_tick == pytest.approx(1e9 / cfg.timer.hz, rel=1e-12)
    assert cfg.emulated and isinstance(make_board(name), QemuBoard)


@pytest.mark.parametrize("name", ["nucleo-h743zi", "nano33ble"])
def test_real_boards_use_cycle_counter_pyocd_and_a_serial_port(name):
    cfg = load_board_config(name)
    assert cfg.timer.source == "dwt-cycles" and cfg.timer.count_per_tick == 1.0
    # the NUCLEO's one cable is its ST-LINK (pyOCD); the Nano's is its USB port (bootloader upload + CDC-ACM)
    flasher = {"nucleo-h743zi": "pyocd", "nano33ble": "pio"}[name]
    assert cfg.driver.type == "serial" and cfg.driver.flasher == flasher and cfg.driver.target
    assert cfg.driver.link == "serial"
    board = make_board(name)
    assert isinstance(board, SerialBoard) and not cfg.emulated


def test_unknown_board_is_a_config_error_listing_known_boards():
    with pytest.raises(ConfigError) as e:
        make_board("no-such-board")
    assert "no-such-board" in str(e.value)
    for known in QEMU_BOARDS:
        assert known in str(e.value)


def test_board_from_a_mapping_like_hydra_gives_the_same_config():
    from omegaconf import OmegaConf

    raw = OmegaConf.load(REPO / "configs" / "board" / "qemu-netduinoplus2.yaml")
    assert load_board_config(raw) == load_board_config("qemu-netduinoplus2")
    assert isinstance(make_board(OmegaConf.to_container(raw)), QemuBoard)


def test_missing_key_names_the_key():
    from omegaconf import OmegaConf

    raw = OmegaConf.to_container(OmegaConf.load(REPO / "configs" / "board" / "qemu-mps2-an386.yaml"))
    del raw["timer"]["count_per_tick"]
    with pytest.raises(ConfigError, match="timer.count_per_tick"):
        BoardConfig.from_mapping(raw)


def test_bad_driver_type_is_a_config_error():
    from omegaconf import OmegaConf

    raw = OmegaConf.to_container(OmegaConf.load(REPO / "configs" / "board" / "qemu-mps2-an386.yaml"))
    raw["driver"]["type"] = "telepathy"
    with pytest.raises(ConfigError, match="telepathy"):
        BoardConfig.from_mapping(raw)


def test_ticks_convert_to_the_boards_unit():
    assert load_board_config("qemu-mps2-an386").timer.to_count(3) == 120.0
    assert load_board_config("nucleo-h743zi").timer.to_count(3) == 3.0


def test_pyocd_without_a_probe_fails_fast_and_clearly(tmp_path):
    image = tmp_path / "firmware.elf"
    image.write_bytes(b"\x7fELF")
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match="no debug probe"):
        PyOcdFlasher(DebugProbe(target="stm32h743xx")).flash(image)
    assert time.monotonic() - t0 < 30


def test_real_board_flash_reaches_the_probe_boundary(tmp_path):
    image = tmp_path / "firmware.elf"
    image.write_bytes(b"\x7fELF")
    with pytest.raises(DeviceError, match="no debug probe"):
        make_board("nucleo-h743zi").flash(image)


def test_real_board_with_absent_serial_port_is_a_device_error():
    from omegaconf import OmegaConf

    raw = OmegaConf.to_container(OmegaConf.load(REPO / "configs" / "board" / "nano33ble.yaml"))
    raw["driver"]["port"] = "/dev/tinyhil-no-such-port"
    raw["driver"]["link"] = "serial"  # a USB-serial adapter on the header pins
    with pytest.raises(DeviceError, match="tinyhil-no-such-port"):
        make_board(raw).open_transport()


def _raw(name: str) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(REPO / "configs" / "board" / f"{name}.yaml"))


def test_rtt_link_without_a_probe_is_the_probe_error():
    with pytest.raises(DeviceError, match="no debug probe is attached"):
        make_board({**_raw("nano33ble"), "driver": {**_raw("nano33ble")["driver"], "link": "rtt",
                                                     "flasher": "pyocd"}}).open_transport()  # rtt: through a probe


def test_unknown_link_is_a_config_error():
    from omegaconf import OmegaConf

    raw = OmegaConf.to_container(OmegaConf.load(REPO / "configs" / "board" / "nano33ble.yaml"))
    raw["driver"]["link"] = "carrier-pigeon"
    with pytest.raises(ConfigError, match="driver.link"):
        BoardConfig.from_mapping(raw)


@pytest.mark.parametrize("name", ["nucleo-h743zi", "nano33ble"])
def test_real_board_sizes_match_linker_script_and_platformio_board(name):
    cfg = load_board_config(name)
    regions = _ld_regions(REPO / cfg.linker_script)
    assert regions["FLASH"] == (cfg.flash.base, cfg.flash.size)
    assert regions["RAM"] == (cfg.sram.base, cfg.sram.size)
    pio = json.loads((REPO / "firmware" / "platform" / "boards" / f"{cfg.platformio_board}.json").read_text())
    assert pio["upload"]["maximum_size"] == cfg.flash.size
    assert pio["upload"]["maximum_ram_size"] == cfg.sram.size
    assert int(pio["build"]["f_cpu"].rstrip("L")) == cfg.clock_hz == cfg.timer.hz
    assert f"-mcpu={pio['build']['cpu']}" in cfg.cpu_flags
    assert all(f in cfg.cpu_flags for f in pio["build"]["tinyhil_fpu_flags"])
    assert f"TH_UART_BASE=0x{cfg.uart['base']:08X}u".lower() in [d.lower() for d in pio["build"]["tinyhil_defines"]]
    assert cfg.buildable


def test_qemu_board_without_an_image_says_so():
    with pytest.raises(DeviceError, match="nothing flashed"):
        make_board("qemu-mps2-an386").open_transport()
