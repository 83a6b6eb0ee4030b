"""The RTT transport: the control-block parser against memory images (synthetic edge cases, and the block the real
firmware builds in RAM), and the whole protocol over RTT against the real runtime running in QEMU, reached through
QEMU's gdbstub (the memory path a debug probe gives on silicon)."""

from __future__ import annotations

import socket
import struct
import subprocess
import time

import numpy as np
import pytest

from harness.build.elf import ElfImage
from harness.errors import ProtocolError
from harness.transport.gdb_memory import GdbRemoteMemory
from harness.transport.protocol import Dut
from harness.transport.rtt import (
    HEADER_BYTES,
    RttLink,
    RttRing,
    find_control_block,
    parse_control_block,
    read_c_string,
    ring_data,
)
from tests.fixtures.fixture_model import FixtureModel
from tests.fixtures.standalone import FIXTURE_FW, build_image, common, runtime_sources

M4F = ["-mthumb", "-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"]
MODEL = FixtureModel(n_bytes=1500)  # 3000 hex digits each way: more than either ring holds


def _block(base: int, up: tuple[int, int, int, int], down: tuple[int, int, int, int], pad: int = 5) -> bytes:
    """A memory image starting at ``base``: ``pad`` junk bytes, then a control block with one ring each way
    (buffer, size, wr, rd), as SEGGER's layout has it."""
    cb = b"SEGGER RTT".ljust(16, b"\0") + struct.pack("<ii", 1, 1)
    cb += struct.pack("<6I", 0x1000, *up, 0) + struct.pack("<6I", 0x1000, *down, 0)
    return b"\xaa" * pad + cb


def test_parser_reads_rings_from_an_unaligned_block_and_unwraps_pending_data():
    base = 0x2000_0000
    image = bytearray(_block(base, (0x2000_0100, 16, 3, 12), (0x2000_0200, 8, 0, 0)))
    image += bytes(0x300 - len(image))
    image[0x100:0x110] = b"0123456789ABCDEF"
    at = find_control_block(bytes(image), base)
    assert at == base + 5
    cb = parse_control_block(bytes(image), at, base)
    assert (cb.max_up, cb.max_down, cb.size) == (1, 1, HEADER_BYTES + 48)
    up = cb.up[0]
    assert (up.buffer, up.size, up.wr_off, up.rd_off, up.desc_address) == (0x2000_0100, 16, 3, 12, at + 24)
    assert (up.pending(), up.free()) == (7, 8)  # 12..15 then 0..2: the ring wrapped
    assert ring_data(up, lambda a, n: bytes(image[a - base : a - base + n])) == b"CDEF012"
    assert cb.down[0].free() == 7  # one byte always stays free


def test_parser_rejects_what_is_not_a_control_block():
    good = _block(0, (0x100, 16, 0, 0), (0x200, 16, 0, 0), pad=0)
    with pytest.raises(ProtocolError, match="no RTT control block ID"):
        parse_control_block(b"SEGGER XXX" + good[10:], 0)
    with pytest.raises(ProtocolError, match="ring counts"):
        parse_control_block(good[:16] + struct.pack("<ii", 1, 999) + good[24:], 0)
    with pytest.raises(ProtocolError, match="outside its 16 bytes"):
        parse_control_block(_block(0, (0x100, 16, 16, 0), (0x200, 16, 0, 0), pad=0), 0)
    with pytest.raises(ProtocolError, match="runs past"):
        parse_control_block(good[:40], 0)
    assert find_control_block(b"\0" * 64, 0) is None


# --- against the real firmware in QEMU -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def rtt_image(tmp_path_factory):
    """The real runtime on an emulated board whose only host channel is RTT (channels.c + rtt.c)."""
    root = tmp_path_factory.mktemp("rtt-image")
    MODEL.write(root / "model")
    sources = [*runtime_sources(),
               *common("startup.c", "fault.c", "semihost.c", "timer.c", "channels.c", "rtt.c", "armv7m_core.c"),
               FIXTURE_FW / "rtt_board.c", root / "model" / "model_data.c"]  # fmt: skip
    defines = ["TH_CHANNELS", "TH_CHAN_RTT", "TH_QEMU", "TH_SEMIHOSTING", "TH_CORE_HZ=25000000u",
               'TH_BOARD_NAME="qemu-rtt"']  # fmt: skip
    return build_image(root / "build", sources, M4F, defines, FIXTURE_FW / "mps2_real_sections.ld")


@pytest.fixture
def qemu_gdb(rtt_image):
    """QEMU mps2-an386 running the RTT image with its gdbstub on a free port; yields (memory, elf)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen(
        [
            "qemu-system-arm",
            "-M",
            "mps2-an386",
            "-cpu",
            "cortex-m4",
            "-nographic",
            "-monitor",
            "none",
            "-serial",
            "null",
            "-icount",
            "shift=0",
            "-semihosting-config",
            "enable=on,target=native",
            "-gdb",
            f"tcp:127.0.0.1:{port}",
            "-kernel",
            str(rtt_image),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    memory = None
    try:
        deadline = time.monotonic() + 10
        while memory is None:
            try:
                memory = GdbRemoteMemory("127.0.0.1", port)
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        yield memory, rtt_image
    finally:
        if memory is not None:
            memory.close()
        proc.terminate()
        proc.wait(timeout=10)
        proc.stderr.close()


@pytest.mark.toolchain
@pytest.mark.qemu
def test_control_block_the_firmware_builds_parses_against_its_elf(qemu_gdb):
    memory, elf_path = qemu_gdb
    with ElfImage(elf_path) as elf:
        cb_sym = elf.symbol("_SEGGER_RTT")
        uncached = elf.section(".th_uncached")
    deadline = time.monotonic() + 10
    while True:  # the firmware writes the ID last, once the block is complete
        image = memory.read(uncached[0], uncached[1])
        at = find_control_block(image, uncached[0])
        if at is not None or time.monotonic() > deadline:
            break
    assert at == cb_sym.address
    cb = parse_control_block(image, at, uncached[0])
    assert (cb.max_up, cb.max_down) == (1, 1)
    up, down = cb.up[0], cb.down[0]
    assert (up.size, down.size) == (2048, 1024)
    for ring in (up, down):  # both rings live inside the uncached section
        assert uncached[0] <= ring.buffer and ring.buffer + ring.size <= sum(uncached)
    assert read_c_string(memory.read, up.name_ptr) == "tinyhil"
    # The boot banner arrives in the up ring (nobody reads it): the firmware may still be writing it when the
    # control block is complete, so wait for the whole line.
    while True:
        cb = parse_control_block(memory.read(uncached[0], uncached[1]), at, uncached[0])
        up = cb.up[0]
        banner = ring_data(RttRing(up.desc_address, 0, up.buffer, up.size, up.wr_off, up.rd_off, 0), memory.read)
        if (b"m-init-done" in banner and banner.endswith(b"\r\n")) or time.monotonic() > deadline:
            break
    assert b"m-init-done" in banner and banner.endswith(b"\r\n")


@pytest.mark.toolchain
@pytest.mark.qemu
def test_protocol_over_rtt_is_bit_exact_with_inputs_and_outputs_larger_than_the_rings(qemu_gdb):
    memory, elf_path = qemu_gdb
    with ElfImage(elf_path) as elf:
        address = elf.symbol("_SEGGER_RTT").address
    link = RttLink(memory, address=address, poll_s=0.0005)
    dut = Dut(link, timeout=60)
    assert dut.sync(10) == "tinyhil-qemu-rtt"
    info = dut.model_info()
    assert (info.board, info.n_layers, info.input_bytes) == ("qemu-rtt", 2, MODEL.n_bytes)
    x = (np.arange(MODEL.n_bytes) * 7 % 251 - 125).astype(np.int8).tobytes()
    dut.load_input(x)  # 3000 hex digits through a 1024-byte down ring
    out = dut.infer(1, 0, crc=True)
    assert np.array_equal(out, MODEL.expected(x))  # the results line is longer than the 2048-byte up ring
    assert [r.crc32 for r in dut.layers()] == MODEL.expected_layer_crcs(x)
    assert dut.tensor(0) == x
    link.close()


@pytest.mark.toolchain
@pytest.mark.qemu
def test_rtt_link_finds_the_block_by_scanning_ram_without_the_elf(qemu_gdb):
    memory, _ = qemu_gdb
    link = RttLink(memory, search=(0x2000_0000, 64 * 1024))
    assert Dut(link, timeout=30).sync(10) == "tinyhil-qemu-rtt"
