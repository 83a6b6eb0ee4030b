"""Discovery and the probe-less path: which attached device is which board, how a run picks one, and what happens
on this machine, which has no debug probe and no board (pyOCD and pyserial run for real and find none)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.boards import load_board_config
from harness.boards.discovery import (
    PortInfo,
    ProbeInfo,
    all_rules,
    identify,
    list_ports,
    list_probes,
    preflight,
    resolve_port,
    resolve_probe,
)
from harness.errors import DeviceError

REPO = Path(__file__).resolve().parent.parent
NUCLEO = load_board_config("nucleo-h743zi")
NANO = load_board_config("nano33ble")
STLINK = ProbeInfo("066DFF555", "STMicroelectronics", "STM32 STLink", "NUCLEO-H743ZI", "NUCLEO-H743ZI",
                   "stm32h743zitx")  # fmt: skip
STLINK2 = ProbeInfo("0670FF777", "STMicroelectronics", "STM32 STLink", "", "", "")
JLINK = ProbeInfo("000260112233", "Segger", "J-Link", "J-Link EDU", "", "")
VCP = PortInfo("/dev/ttyACM0", 0x0483, 0x374B, "066DFF555", "STM32 STLink", "STMicroelectronics")
VCP2 = PortInfo("/dev/ttyACM1", 0x0483, 0x374B, "0670FF777", "STM32 STLink", "STMicroelectronics")
NANO_APP = PortInfo("/dev/ttyACM2", 0x2341, 0x805A, "ABC", "Nano 33 BLE", "Arduino")
NANO_BOOT = PortInfo("/dev/ttyACM3", 0x2341, 0x005A, "ABC", "Nano 33 BLE", "Arduino")


def test_this_machine_has_no_probe_and_listing_returns_at_once():
    t0 = time.monotonic()
    assert list_probes() == []
    assert time.monotonic() - t0 < 5
    assert all(p.usb_id == "" or p.vid is not None for p in list_ports())


def test_no_probe_attached_is_one_clear_error_naming_the_override():
    t0 = time.monotonic()
    with pytest.raises(DeviceError) as e:
        resolve_probe(NUCLEO)
    msg = str(e.value)
    assert "no debug probe is attached" in msg and "board.driver.probe=" in msg and "build_only=true" in msg
    assert time.monotonic() - t0 < 5
    with pytest.raises(DeviceError, match="no debug probe"):
        preflight(NUCLEO)
    assert preflight(load_board_config("qemu-mps2-an386")) == {}


def test_attached_devices_are_told_apart_by_board_info_product_and_usb_ids():
    rules = all_rules()
    found = {a.ident: a.boards for a in identify([STLINK, JLINK], [VCP, NANO_APP, NANO_BOOT], rules)}
    assert found["066DFF555"] == ("nucleo-h743zi",)  # pyOCD's board id says NUCLEO-H743ZI
    assert found["000260112233"] == ("nano33ble",)  # a generic SWD probe: the board without its own probe
    assert found["/dev/ttyACM0"] == ("nucleo-h743zi",)  # ST-LINK virtual COM port
    assert found["/dev/ttyACM2"] == found["/dev/ttyACM3"] == ("nano33ble",)  # Arduino firmware / bootloader


def test_one_match_is_picked_and_the_vcp_follows_its_probe():
    assert resolve_probe(NUCLEO, [STLINK, JLINK]) == STLINK.unique_id
    assert resolve_probe(NANO, [STLINK, JLINK]) == JLINK.unique_id
    assert resolve_port(NUCLEO, [VCP, NANO_APP]) == "/dev/ttyACM0"
    # Two NUCLEOs: the port whose USB serial number is the chosen probe's unique id.
    assert resolve_port(NUCLEO, [VCP, VCP2], probe_uid=STLINK2.unique_id) == "/dev/ttyACM1"


def test_several_matches_are_an_error_listing_them_and_the_override_chooses():
    with pytest.raises(DeviceError) as e:
        resolve_probe(NUCLEO, [STLINK, STLINK2])
    assert STLINK.unique_id in str(e.value) and STLINK2.unique_id in str(e.value)
    assert "board.driver.probe=" in str(e.value)
    chosen = NUCLEO.__class__.from_mapping(_with_driver("nucleo-h743zi", probe="0670FF"))
    assert resolve_probe(chosen, [STLINK, STLINK2]) == STLINK2.unique_id
    with pytest.raises(DeviceError) as e:
        resolve_port(NUCLEO, [VCP, VCP2])
    assert (
        "/dev/ttyACM0" in str(e.value)
        and "/dev/ttyACM1" in str(e.value)
        and "board.driver.port=" in str(e.value)
    )


def test_a_named_probe_that_is_absent_and_a_missing_port_are_errors():
    absent = NUCLEO.__class__.from_mapping(_with_driver("nucleo-h743zi", probe="FFFF"))
    with pytest.raises(DeviceError, match="board.driver.probe=FFFF is not attached"):
        resolve_probe(absent, [STLINK])
    with pytest.raises(DeviceError, match="no serial port of this board"):
        resolve_port(NUCLEO, [NANO_APP])
    explicit = NUCLEO.__class__.from_mapping(_with_driver("nucleo-h743zi", port="socket://127.0.0.1:9"))
    assert resolve_port(explicit, []) == "socket://127.0.0.1:9"  # any pyserial URL is taken as it is


def _with_driver(board: str, **driver) -> dict:
    from omegaconf import OmegaConf

    raw = OmegaConf.to_container(OmegaConf.load(REPO / "configs" / "board" / f"{board}.yaml"))
    raw["driver"].update(driver)
    return raw


def _tinyhil(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.toolchain
def test_tinyhil_boards_lists_both_real_boards_as_buildable(tmp_path):
    r = _tinyhil("boards", f"hydra.run.dir={tmp_path}", f"workdir={tmp_path / 'work'}")
    assert r.returncode == 0, r.stdout + r.stderr
    s = json.loads((tmp_path / "summary.json").read_text())
    for board in ("nucleo-h743zi", "nano33ble"):
        assert s[f"board_{board}_buildable"] is True and s[f"board_{board}_builds"] is True
        assert s[f"board_{board}_unit"] == "cycles" and s[f"board_{board}_timer"] == "dwt-cycles"
        assert 0 < s[f"board_{board}_flash_used"] and 0 < s[f"board_{board}_sram_used"]
    assert s["board_nucleo-h743zi_clock_hz"] == 480_000_000 and s["board_nano33ble_clock_hz"] == 64_000_000
    assert s["probes"] == 0
    assert s["use_nucleo-h743zi_probe"] == "no debug probe is attached"
    out = r.stdout
    assert "nucleo-h743zi" in out and "nano33ble" in out and "attached debug probes" in out


@pytest.mark.parametrize("board", ["nucleo-h743zi", "nano33ble"])
def test_run_on_a_real_board_without_its_probe_exits_2_within_seconds(tmp_path, board):
    t0 = time.monotonic()
    r = _tinyhil("run", "experiment=smoke", f"board={board}", f"hydra.run.dir={tmp_path}", timeout=120)
    assert r.returncode == 2
    msg = " ".join((r.stdout + r.stderr).split())
    if board == "nano33ble":  # its default is the USB cable: the port is what is missing
        assert "no serial port of this board is attached" in msg and "board.driver.port=" in msg
    else:
        assert "no debug probe is attached" in msg and "board.driver.probe=" in msg
    assert "Traceback" not in r.stderr
    assert time.monotonic() - t0 < 30  # before the model is even exported (the CLI itself starts in ~3 s)
    assert not (tmp_path / "summary.json").exists()


@pytest.mark.toolchain
@pytest.mark.parametrize("board", ["nucleo-h743zi", "nano33ble"])
def test_build_only_builds_checks_fit_and_writes_the_summary_without_a_board(tmp_path, board):
    import hashlib

    r = _tinyhil("run", "experiment=smoke", f"board={board}", "build_only=true", f"hydra.run.dir={tmp_path}",
                 f"workdir={tmp_path / 'work'}")  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    s = json.loads((tmp_path / "summary.json").read_text())
    cfg = load_board_config(board)
    assert s["built"] is True and s["board"] == board and s["experiment"] == "smoke"
    assert 0 < s["flash_used"] <= cfg.flash.size and 0 < s["sram_used"] <= cfg.sram.size
    assert not Path(s["elf"]).is_absolute()  # relative to the run folder (the build folder is inside it here)
    assert s["elf_sha256"] == hashlib.sha256((tmp_path / s["elf"]).read_bytes()).hexdigest()
    assert s["unit"] == "cycles" and s["clock_hz"] == cfg.clock_hz
