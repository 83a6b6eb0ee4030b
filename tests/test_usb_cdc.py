"""The Nano 33 BLE's serial channel over its own USB port: a USB CDC-ACM device on the nRF52840 USBD
(firmware/boards/common/usb_cdc_*.c, usbd_nrf52.c), tested up to the hardware boundary.

* The descriptors in the built ELF (the const table ``th_usb_desc``) obey the USB 2.0 / IAD / CDC-PSTN rules, as
  an independent parser reads them (tests/fixtures/usb_descriptors.py), and carry the VID:PID discovery looks for.
* The driver itself, compiled for the host against a register model of the nRF52840 (tests/fixtures/usbd_model.c:
  only the peripheral registers are modelled), goes through the power-up sequence the Product Specification
  requires (VBUS, ENABLE with the errata workarounds, READY, regulator, HFXO, pull-up), answers a host's
  enumeration byte for byte, moves data both ways with flow control, and turns the Arduino 1200-baud touch
  into a reset with the bootloader's GPREGRET value.
* Discovery takes the firmware's port and never the bootloader's.
* On the board (``TINYHIL_HW_BOARD=nano33ble``): the 1200-baud touch really reaches the bootloader, and smoke runs
  over the USB cable alone.
"""

from __future__ import annotations

import ctypes as C
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from harness.boards import load_board_config
from harness.boards.discovery import PortInfo, discovery_rule, list_ports, port_matches, resolve_port
from harness.build.elf import ElfImage
from harness.errors import DeviceError
from tests.fixtures.usb_descriptors import (
    config_problems,
    device_problems,
    parse_config,
    parse_device,
    parse_string,
)
from tests.fixtures.usb_host import CYCCNT, USBD, USBREGSTATUS, Stall, UsbHost, build_usb_model

REPO = Path(__file__).resolve().parent.parent
NANO = load_board_config("nano33ble")
RULE = discovery_rule("nano33ble")
APP_ID = next(i for i in RULE.serial_usb if i not in RULE.bootloader_usb)
BOOT_ID = RULE.bootloader_usb[0]

# Registers (nRF52840 PS) the tests look at.
ENABLE, USBPULLUP, EPINEN, EPOUTEN, EPSTALL = (USBD + o for o in (0x500, 0x504, 0x510, 0x514, 0x518))
TASKS_STARTEPIN0 = USBD + 0x004
ERRATA_KEY, ERRATA_171, ERRATA_187 = 0x4006_EC00, 0x4006_EC14, 0x4006_ED14
CLOCK_TASKS_HFCLKSTART = 0x4000_0000
GPREGRET_BOOTLOADER = 0xB0  # what the Nano 33 BLE bootloader's main() compares POWER.GPREGRET with
TOUCH_DELAY_CYCLES = 64_000_000 * 250 // 1000  # 250 ms at 64 MHz

# Standard and class requests (bmRequestType, bRequest).
GET_DESCRIPTOR, SET_ADDRESS, SET_CONFIGURATION, GET_CONFIGURATION = (0x80, 6), (0x00, 5), (0x00, 9), (0x80, 8)
GET_STATUS_EP, SET_FEATURE_EP, CLEAR_FEATURE_EP = (0x82, 0), (0x02, 3), (0x02, 1)
SET_LINE_CODING, GET_LINE_CODING, SET_CONTROL_LINE_STATE = (0x21, 0x20), (0xA1, 0x21), (0x21, 0x22)


def line_coding(baud: int, stop: int = 0, parity: int = 0, bits: int = 8) -> bytes:
    return struct.pack("<IBBB", baud, stop, parity, bits)


# --- the descriptors in the built firmware -----------------------------------------------------------------


@pytest.fixture(scope="module")
def nano_desc(fixture_firmware) -> tuple[bytes, bytes, bytes, str]:
    """(device, configuration, string 0, product string) as linked into the Nano's firmware."""
    r = fixture_firmware("nano33ble")
    with ElfImage(r.elf) as elf:
        table = elf.symbol("th_usb_desc")
        raw = elf.read(table.address, table.size)
        product = elf.symbol("th_usb_product")
        text = elf.read(product.address, product.size).rstrip(b"\0").decode()
        for fn in ("th_usbcdc_init", "th_usbcdc_poll", "th_usbcdc_putc", "th_usb_ctrl_setup"):
            elf.symbol(fn)  # the channel is linked into the Nano's default image
    assert table.size == 18 + 75 + 4
    return raw[:18], raw[18:93], raw[93:97], text


@pytest.mark.toolchain
def test_the_elf_descriptors_follow_the_usb_and_cdc_rules(nano_desc):
    device, config, langid, product = nano_desc
    d = parse_device(device)
    assert device_problems(d) == []
    assert config_problems(config) == []
    assert (d.cls, d.subclass, d.protocol) == (0xEF, 0x02, 0x01)  # functions described by an IAD
    assert d.max_packet0 == 64  # the nRF52840 USBD's EP0 packet size
    assert d.n_configurations == 1 and d.bcd_usb == 0x0200
    cfg = parse_config(config)
    assert cfg.total_length == 75 and cfg.n_interfaces == 2 and cfg.value == 1
    # Endpoints 1..7 are the USBD's bulk/interrupt endpoints; EP8 is its isochronous one.
    addrs = sorted(e["address"] for i in cfg.interfaces for e in i.endpoints)
    assert addrs == [0x01, 0x81, 0x82] and all(1 <= a & 0x0F <= 7 for a in addrs)
    assert parse_string(langid) == "\u0409"  # US English
    assert product == "tinyhil nano33ble"


@pytest.mark.toolchain
def test_the_firmware_enumerates_with_the_id_that_discovery_and_the_upload_look_for(nano_desc):
    d = parse_device(nano_desc[0])
    assert d.usb_id == APP_ID == "2341:805a"  # Arduino's application id for the Nano 33 BLE (see docs)
    # PlatformIO picks the port for its 1200-baud touch by the board's hwids: the running firmware's is there.
    spec = json.loads((REPO / "firmware/platform/boards/nano33ble.json").read_text())
    hwids = {f"{int(v, 16):04x}:{int(p, 16):04x}" for v, p in spec["build"]["hwids"]}
    assert {APP_ID, BOOT_ID} <= hwids
    assert {"TH_CHAN_USB", "TH_USBD_NRF52"} <= set(spec["build"]["tinyhil_defines"])


# --- the driver on the host, against the register model -------------------------------------------------------


@pytest.fixture(scope="module")
def usb_lib(tmp_path_factory) -> Path:
    return build_usb_model(tmp_path_factory.mktemp("usbd-model"))


@pytest.fixture
def host(usb_lib) -> UsbHost:
    h = UsbHost(usb_lib)
    h.power_on()
    return h


def index_of(writes: list[tuple[int, int]], addr: int, value: int, start: int = 0) -> int:
    return next(i for i, w in enumerate(writes) if i >= start and w == (addr, value))


def enumerate_like_linux(h: UsbHost) -> dict[str, bytes]:
    """The requests Linux sends a new full-speed device, in its order; the bytes of every answer."""
    h.bus_reset()
    first = h.control_in(*GET_DESCRIPTOR, 0x0100, 0, 64)  # the "new scheme" read, then a second reset
    h.bus_reset()
    status, stall = h.var("model_ep0_status"), h.var("model_ep0_stall")
    h.lib.model_host_setup(*SET_ADDRESS, 9, 0, 0)
    h.poll()
    # The USBD completes SET_ADDRESS by itself: the driver must neither stall it nor add a status stage.
    assert (h.var("model_ep0_status"), h.var("model_ep0_stall")) == (status, stall)
    assert h.reg(USBD + 0x470) == 9  # USBADDR
    out = {"device-64": first, "device": h.control_in(*GET_DESCRIPTOR, 0x0100, 0, 18)}
    out["config-9"] = h.control_in(*GET_DESCRIPTOR, 0x0200, 0, 9)
    out["config"] = h.control_in(*GET_DESCRIPTOR, 0x0200, 0, 255)
    for i in range(4):
        out[f"string-{i}"] = h.control_in(*GET_DESCRIPTOR, 0x0300 | i, 0x0409 if i else 0, 255)
    h.control_out(*SET_CONFIGURATION, 1, 0)
    return out


def open_port(h: UsbHost, baud: int = 115200) -> None:
    """What the host's cdc-acm driver and pyserial send when a program opens the port."""
    h.control_out(*SET_CONTROL_LINE_STATE, 0x03, 0)  # DTR | RTS
    h.control_out(*SET_LINE_CODING, 0, 0, line_coding(baud))


@pytest.mark.hostcc
def test_power_up_follows_the_product_specification_sequence(usb_lib):
    h = UsbHost(usb_lib)
    h.power_on(vbus=False)
    h.poll(5)
    assert h.reg(ENABLE) == 0 and h.reg(USBPULLUP) == 0  # no VBUS: the USBD stays off
    h.set_reg(USBREGSTATUS, 1)  # cable in, regulator still settling
    h.poll(5)
    assert h.reg(ENABLE) == 1 and h.reg(USBPULLUP) == 0
    h.set_reg(USBREGSTATUS, 3)  # USBREGSTATUS.OUTPUTRDY
    h.poll()
    assert h.reg(USBPULLUP) == 1
    w = h.writes()
    e187 = index_of(w, ERRATA_187, 3)
    e171 = index_of(w, ERRATA_171, 0xC0)
    enable = index_of(w, ENABLE, 1)
    e171_end = index_of(w, ERRATA_171, 0, enable)
    pullup = index_of(w, USBPULLUP, 1)
    assert e187 < e171 < enable < e171_end < pullup
    # The errata registers are written behind their key while it reads 0, and [187]/[211] stay on while enabled.
    assert w[e187 - 1] == (ERRATA_KEY, 0x9375) and w[e187 + 1] == (ERRATA_KEY, 0x9375)
    assert (ERRATA_187, 0) not in w
    assert h.reg(USBD + 0x400) & (1 << 11) == 0  # EVENTCAUSE.READY seen and cleared
    h.set_reg(USBREGSTATUS, 0)  # cable out
    h.poll()
    assert (h.reg(ENABLE), h.reg(USBPULLUP), h.reg(ERRATA_187)) == (0, 0, 0)
    assert h.lib.th_usbcdc_ready() == 0


@pytest.mark.hostcc
def test_the_pull_up_waits_for_the_crystal(usb_lib):
    h = UsbHost(usb_lib)
    h.lib.model_reset()
    h.set_var("model_hfxo_starts", 0)
    h.set_reg(USBREGSTATUS, 3)
    h.lib.th_usbcdc_init()
    h.poll(20)
    assert h.reg(USBPULLUP) == 0  # USB needs the HFXO; HFCLKSTAT does not show it running
    assert sum(1 for w in h.writes() if w == (CLOCK_TASKS_HFCLKSTART, 1)) == 1  # asked for once
    h.set_reg(0x4000_040C, (1 << 16) | 1)  # HFCLKSTAT: running, crystal
    h.poll()
    assert h.reg(USBPULLUP) == 1


@pytest.mark.hostcc
def test_a_usbd_left_enabled_by_the_bootloader_is_detached_first(usb_lib):
    h = UsbHost(usb_lib)
    h.lib.model_reset()
    h.set_reg(ENABLE, 1)
    h.set_reg(USBPULLUP, 1)
    h.set_reg(USBREGSTATUS, 3)
    h.set_reg(0x4000_040C, (1 << 16) | 1)
    h.lib.th_usbcdc_init()
    w = h.writes()
    assert w[:2] == [(USBPULLUP, 0), (ENABLE, 0)]
    h.poll()
    assert index_of(w, ENABLE, 1) > 1 and h.reg(USBPULLUP) == 1


@pytest.mark.hostcc
def test_enumeration_answers_every_request_byte_for_byte(host):
    got = enumerate_like_linux(host)
    device = parse_device(got["device"])
    assert got["device-64"] == got["device"] and len(got["device"]) == 18  # no padding past bLength
    assert device.usb_id == APP_ID and device_problems(device) == []
    assert got["config-9"] == got["config"][:9] and struct.unpack("<H", got["config"][2:4])[0] == 75
    assert len(got["config"]) == 75 and config_problems(got["config"]) == []
    assert parse_string(got["string-0"]) == "\u0409"
    assert [parse_string(got[f"string-{i}"]) for i in (1, 2, 3)] == [
        "tinyhil", "tinyhil nano33ble", "0123456789ABCDEF"]  # serial: FICR DEVICEID[1], DEVICEID[0]  # fmt: skip
    # SET_CONFIGURATION 1 enabled the function's endpoints with DATA0 toggles and armed the OUT endpoint.
    assert host.reg(EPINEN) == 0b111 and host.reg(EPOUTEN) == 0b011
    for ep, is_in in ((1, True), (2, True), (1, False)):
        assert _data0(host, ep, is_in) >= 1
    assert host.control_in(*GET_CONFIGURATION, 0, 0, 1) == b"\x01"
    assert host.control_in(0x80, 0, 0, 0, 2) == b"\0\0"  # GET_STATUS device: bus powered, no remote wakeup
    assert host.control_in(0x81, 0x0A, 0, 1, 1) == b"\0"  # GET_INTERFACE 1: alternate setting 0
    # Every EasyDMA transfer ran with the [199] workaround on.
    assert host.var("model_dma_count") > 10 and host.var("model_dma_without_errata199") == 0


def _data0(h: UsbHost, ep: int, is_in: bool) -> int:
    """DTOGGLE writes that set DATA0 on the endpoint so far."""
    arr = (C.c_uint32 * 16).in_dll(h.lib, "model_data0")
    return arr[ep + (8 if is_in else 0)]


def _ep0_packets(h: UsbHost, setup: tuple[int, int, int, int, int]) -> list[int]:
    """The sizes of the packets the device sends in a control read's data stage."""
    status = h.var("model_ep0_status")
    h.lib.model_host_setup(*setup)
    h.poll()
    sizes, buf = [], C.create_string_buffer(64)
    while h.var("model_ep0_status") == status and len(sizes) < 10:
        n = h.lib.model_host_in(0, buf)
        if n >= 0:
            sizes.append(n)
        h.poll()
    return sizes


@pytest.mark.hostcc
def test_descriptor_reads_are_clipped_to_wlength_and_end_with_a_short_packet(host):
    enumerate_like_linux(host)
    assert len(host.control_in(*GET_DESCRIPTOR, 0x0100, 0, 8)) == 8  # first eight bytes only
    assert _ep0_packets(host, (*GET_DESCRIPTOR, 0x0200, 0, 64)) == [64]  # exactly wLength: no ZLP
    assert _ep0_packets(host, (*GET_DESCRIPTOR, 0x0200, 0, 255)) == [64, 11]  # 75 bytes


@pytest.mark.hostcc
def test_an_answer_of_whole_packets_shorter_than_asked_ends_with_a_zero_length_packet(tmp_path):
    # A 31-character product name makes a 64-byte string descriptor: one full packet, less than wLength 255.
    h = UsbHost(build_usb_model(tmp_path, extra=['-DTH_USB_PRODUCT="' + "p" * 31 + '"']))
    h.power_on()
    enumerate_like_linux(h)
    assert _ep0_packets(h, (*GET_DESCRIPTOR, 0x0302, 0x0409, 255)) == [64, 0]
    assert _ep0_packets(h, (*GET_DESCRIPTOR, 0x0302, 0x0409, 64)) == [64]
    assert parse_string(h.control_in(*GET_DESCRIPTOR, 0x0302, 0x0409, 255)) == "p" * 31


@pytest.mark.hostcc
def test_requests_the_device_does_not_offer_are_stalled(host):
    enumerate_like_linux(host)
    for bm, req, value, index, length in (
        (0x80, 6, 0x0600, 0, 10),  # device qualifier: full-speed only
        (0x80, 6, 0x0304, 0x0409, 255),  # no string 4
        (0x80, 6, 0x0201, 0, 255),  # no second configuration
        (0xA1, 0x23, 0, 0, 0),  # SEND_BREAK is not in bmCapabilities
        (0xC0, 0x01, 0, 0, 4),  # vendor request
        (0xA1, 0x21, 0, 1, 7),  # GET_LINE_CODING to the data interface
    ):
        with pytest.raises(Stall):
            host.control_in(bm, req, value, index, length)
    with pytest.raises(Stall):
        host.control_out(*SET_CONFIGURATION, 2, 0)
    with pytest.raises(Stall):
        host.control_out(*SET_LINE_CODING, 0, 0, line_coding(9600, parity=7))  # parity 7 does not exist
    assert host.control_in(*GET_CONFIGURATION, 0, 0, 1) == b"\x01"  # still configured


@pytest.mark.hostcc
def test_line_coding_and_control_line_state(host):
    enumerate_like_linux(host)
    assert host.control_in(*GET_LINE_CODING, 0, 0, 7) == line_coding(115200)  # the power-on default
    host.control_out(*SET_LINE_CODING, 0, 0, line_coding(9600, stop=2, parity=2, bits=7))
    assert host.control_in(*GET_LINE_CODING, 0, 0, 7) == line_coding(9600, 2, 2, 7)
    assert host.lib.th_usbcdc_ready() == 0  # configured, but no program has the port open
    host.control_out(*SET_CONTROL_LINE_STATE, 0x03, 0)
    assert host.lib.th_usbcdc_ready() == 1
    host.control_out(*SET_CONTROL_LINE_STATE, 0x02, 0)  # DTR dropped: the port was closed
    assert host.lib.th_usbcdc_ready() == 0


@pytest.mark.hostcc
def test_protocol_bytes_flow_both_ways(host):
    enumerate_like_linux(host)
    open_port(host)
    assert host.bulk_out(b"name*1234%") + host.poll(20) == b"name*1234%"
    # A long command arrives whole and in order; the OUT endpoint NAKs while the firmware has not read a packet.
    cmd = b"db " + bytes(range(48, 58)) * 20 + b"%"
    got = host.bulk_out(cmd)
    got += host.poll(len(cmd) + 5)
    assert got == cmd
    host.set_var("model_auto_ack_in", 1)  # the host reads every IN packet at once
    host.write(b"m-ready*EB0C\r\n")
    line = b"m-layer-[0]-[" + b"7" * 120 + b"]*ABCD\r\n"
    host.write(line)
    data, sizes = host.stream()
    assert data == b"m-ready*EB0C\r\n" + line
    # One packet per line (flushed at the line end), each short: 63-byte packets end the host's transfer.
    assert sizes == [14, 63, 63, len(line) - 126] and max(sizes) < 64


@pytest.mark.hostcc
def test_output_waits_for_the_host_and_is_dropped_when_the_port_is_closed(host):
    enumerate_like_linux(host)
    open_port(host)
    host.write(b"x" * 63)  # one full packet handed to the USBD, not yet read by the host
    host.write(b"tail\n")  # the endpoint is busy: these wait in the firmware
    assert host.bulk_in() == b"x" * 63
    assert host.bulk_in() is None  # NAK until the firmware runs again
    host.poll()
    assert host.bulk_in() == b"tail\n"
    host.control_out(*SET_CONTROL_LINE_STATE, 0x00, 0)  # the host closed the port
    host.write(b"nobody listens\n")  # must return, not block
    host.poll()
    assert host.bulk_in() is None


@pytest.mark.hostcc
def test_endpoint_halt_stalls_and_clears_with_a_data0_toggle(host):
    enumerate_like_linux(host)
    host.control_out(*SET_FEATURE_EP, 0, 0x81)
    assert host.reg(EPSTALL) == 0x181  # EP 1, IN, STALL
    assert host.control_in(*GET_STATUS_EP, 0, 0x81, 2) == b"\x01\x00"
    toggles = _data0(host, 1, True)
    host.control_out(*CLEAR_FEATURE_EP, 0, 0x81)
    assert host.reg(EPSTALL) == 0x081 and _data0(host, 1, True) == toggles + 1
    assert host.control_in(*GET_STATUS_EP, 0, 0x81, 2) == b"\x00\x00"


@pytest.mark.hostcc
def test_a_bus_reset_unconfigures_the_device(host):
    enumerate_like_linux(host)
    open_port(host)
    host.bus_reset()
    assert host.lib.th_usbcdc_ready() == 0
    assert host.reg(EPINEN) == 1 and host.reg(EPOUTEN) == 1  # EP0 only
    host.write(b"dropped\n")  # returns at once
    assert host.control_in(*GET_CONFIGURATION, 0, 0, 1) == b"\x00"


# --- the Arduino bootloader's 1200-baud touch ------------------------------------------------------------


def _advance(h: UsbHost, cycles: int) -> None:
    h.set_reg(CYCCNT, (h.reg(CYCCNT) + cycles) & 0xFFFF_FFFF)
    h.poll()


@pytest.mark.hostcc
def test_the_1200_baud_touch_resets_into_the_bootloader_after_the_request_completes(host):
    enumerate_like_linux(host)
    host.set_reg(CYCCNT, 0xFFFF_0000)  # the cycle counter wraps during the delay
    open_port(host, baud=1200)  # Linux: DTR up at open, then the rate
    _advance(host, 10 * TOUCH_DELAY_CYCLES)
    assert host.var("model_resets") == 0  # 1200 baud alone, with DTR up, is an open port
    host.control_out(*SET_CONTROL_LINE_STATE, 0x00, 0)  # close: DTR down -> the touch
    assert host.var("model_resets") == 0  # the status stage first
    _advance(host, TOUCH_DELAY_CYCLES - 1)
    assert host.var("model_resets") == 0
    _advance(host, 1)
    assert host.var("model_resets") == 1
    assert host.var("model_reset_gpregret") == GPREGRET_BOOTLOADER
    assert host.var("model_reset_pullup") == 0  # detached before the reset: the host sees the port go


@pytest.mark.hostcc
def test_the_touch_in_the_other_order_and_a_cancelled_touch(host):
    enumerate_like_linux(host)
    # Rate first while DTR is low (Windows' touch; also Linux opening a port whose saved rate is 1200) ...
    host.control_out(*SET_LINE_CODING, 0, 0, line_coding(1200))
    _advance(host, TOUCH_DELAY_CYCLES // 10)
    host.control_out(*SET_CONTROL_LINE_STATE, 0x01, 0)  # ... then DTR up within the delay: an open, no reset
    _advance(host, 2 * TOUCH_DELAY_CYCLES)
    assert host.var("model_resets") == 0
    host.control_out(*SET_CONTROL_LINE_STATE, 0x00, 0)
    _advance(host, 0)
    _advance(host, TOUCH_DELAY_CYCLES)
    assert host.var("model_resets") == 1 and host.var("model_reset_gpregret") == GPREGRET_BOOTLOADER


@pytest.mark.hostcc
def test_closing_the_port_at_any_other_rate_never_resets(host):
    enumerate_like_linux(host)
    for baud in (115200, 9600, 1201):
        open_port(host, baud)
        host.control_out(*SET_CONTROL_LINE_STATE, 0x00, 0)
        _advance(host, 0)
        _advance(host, 5 * TOUCH_DELAY_CYCLES)
    assert host.var("model_resets") == 0


STOPPED_POLLS = 500  # the stopped-counter fallback, made small for these two tests (200000 on the board)


@pytest.fixture(scope="module")
def few_polls_host(tmp_path_factory) -> UsbHost:
    lib = build_usb_model(
        tmp_path_factory.mktemp("usbd-few"), extra=[f"-DTH_USB_TOUCH_STOPPED_POLLS={STOPPED_POLLS}u"]
    )
    return UsbHost(lib)


def _touch(h: UsbHost) -> None:
    h.power_on()
    enumerate_like_linux(h)
    open_port(h, baud=1200)
    h.control_out(*SET_CONTROL_LINE_STATE, 0x00, 0)


@pytest.mark.hostcc
def test_the_touch_still_resets_when_the_cycle_counter_is_stopped(few_polls_host):
    h = few_polls_host
    _touch(h)
    h.poll(STOPPED_POLLS - 2)
    assert h.var("model_resets") == 0  # not at once: the host must see its request completed
    h.poll(3)
    assert h.var("model_resets") == 1 and h.var("model_reset_gpregret") == GPREGRET_BOOTLOADER


@pytest.mark.hostcc
def test_a_running_cycle_counter_alone_times_the_touch(few_polls_host):
    h = few_polls_host
    _touch(h)
    for _ in range(4 * STOPPED_POLLS):  # polls 20 cycles apart: the fallback must not count them
        _advance(h, 20)
    assert h.var("model_resets") == 0
    _advance(h, TOUCH_DELAY_CYCLES)
    assert h.var("model_resets") == 1


# --- discovery ------------------------------------------------------------------------------------------


def _nano(**driver) -> object:
    raw = OmegaConf.to_container(OmegaConf.load(REPO / "configs" / "board" / "nano33ble.yaml"))
    raw["driver"].update(driver)
    return NANO.__class__.from_mapping(raw)


APP_PORT = PortInfo("/dev/ttyACM4", 0x2341, 0x805A, "0123456789ABCDEF", "tinyhil nano33ble", "tinyhil")
BOOT_PORT = PortInfo("/dev/ttyACM5", 0x2341, 0x005A, "", "Nano 33 BLE", "Arduino")


def test_link_serial_port_auto_finds_the_firmwares_usb_port_and_never_the_bootloader():
    cfg = _nano(link="serial", port="auto", flasher="pio")
    assert port_matches(APP_PORT, RULE) and port_matches(BOOT_PORT, RULE)  # both are this board
    assert resolve_port(cfg, [APP_PORT]) == "/dev/ttyACM4"
    assert resolve_port(cfg, [BOOT_PORT, APP_PORT]) == "/dev/ttyACM4"  # a bootloader still going away
    with pytest.raises(DeviceError, match="in its bootloader .*board.driver.flasher=pio"):
        resolve_port(cfg, [BOOT_PORT])


# --- on the board -------------------------------------------------------------------------------------------

HW = os.environ.get("TINYHIL_HW_BOARD", "") == "nano33ble"
USB_ARGS = ["board.driver.flasher=pio", "board.driver.link=serial", "board.driver.port=auto"]


def _ports(usb_id: str) -> list[PortInfo]:
    return [p for p in list_ports() if p.usb_id == usb_id]


@pytest.fixture
def nano_usb():
    if not HW:
        pytest.skip("the USB tests run on a Nano 33 BLE: TINYHIL_HW_BOARD=nano33ble")
    if not any(port_matches(p, RULE) for p in list_ports()):
        pytest.skip("no Nano 33 BLE USB port (2341:805a or 2341:005a) is attached")


@pytest.mark.hardware
def test_on_the_board_smoke_runs_over_the_usb_cable_alone(nano_usb, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "harness.cli", "run", "experiment=smoke", "board=nano33ble", *USB_ARGS,
           f"hydra.run.dir={run}", f"workdir={tmp_path / 'work'}"]  # fmt: skip
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1800, check=False)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    s = json.loads((run / "summary.json").read_text())
    assert s["bit_exact"] is True and s["timer"] == "dwt-cycles" and s["unit"] == "cycles"
    assert all(r["count"] > 0 for r in s["per_layer"])
    assert _ports(APP_ID), "the firmware's USB port is gone after the run"


@pytest.mark.hardware
def test_on_the_board_the_1200_baud_touch_reaches_the_bootloader(nano_usb):
    import serial

    app = _ports(APP_ID)
    if not app:
        pytest.skip("the board is not running firmware (no 2341:805a port)")
    s = serial.Serial(app[0].device, 1200)
    s.dtr = False
    s.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not _ports(BOOT_ID):
        time.sleep(0.2)
    assert _ports(BOOT_ID), "no bootloader port (2341:005a) within 10 s of the touch"
    # Leave the board running firmware again: the smoke test above (or any pio upload) flashes it; until then a
    # single press of the reset button starts the firmware the board has.
