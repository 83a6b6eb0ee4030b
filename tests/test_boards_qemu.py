"""The fixture firmware on every QEMU board, over the real serial link: the protocol round trip, bit-exact outputs
and layer CRCs, deterministic and linear counts in the board's unit, and each failure mode as a clear error."""

from __future__ import annotations

import time
import zlib

import numpy as np
import pytest

from harness.boards import make_board
from harness.errors import DeviceError
from harness.transport import frame, parse_line
from tests.fixtures.boards import QEMU_BOARDS
from tests.fixtures.fixture_model import FixtureModel

pytestmark = pytest.mark.qemu

SPIN = FixtureModel(
    n_bytes=100, spin=(1000, 0)
)  # layer 0 spins 1000 * (uint8)x[0] two-instruction iterations


def rand_input(n: int, seed: int = 0, first: int | None = None) -> bytes:
    x = np.random.default_rng(seed).integers(-128, 128, n, dtype=np.int8)
    if first is not None:
        x[0] = np.int8(np.uint8(first))
    return x.tobytes()


@pytest.fixture
def board_session(fixture_firmware):
    """``open(board, model)`` -> (board, dut) booted on a fresh QEMU; everything is closed afterwards."""
    opened = []

    def open_(name: str, model: FixtureModel | None = None, timeout: float = 30.0):
        board = make_board(name, timer="qemu-icount")  # the fixture images count instructions on every board
        board.flash(fixture_firmware(name, model))
        opened.append(board)
        return board, board.open_dut(timeout=timeout)

    yield open_
    for b in opened:
        b.close()


@pytest.mark.parametrize("name", QEMU_BOARDS)
def test_protocol_round_trip_outputs_and_layer_crcs_are_bit_exact(board_session, name):
    board, dut = board_session(name, SPIN)
    assert dut.name() == f"tinyhil-{name}"
    info = dut.model_info()
    assert (info.name, info.n_layers, info.n_tensors) == ("fixture", 2, 3)
    assert (info.input_bytes, info.output_bytes, info.input_clobbered) == (100, 100, False)
    assert (info.board, info.core_hz, info.timer) == (name, board.cfg.clock_hz, "qemu-icount")
    assert info.timer_hz == board.cfg.timer.hz
    x = rand_input(100, seed=1, first=3)
    dut.load_input(x)
    out = dut.infer(n=2, warmup=1, crc=True)
    assert out.dtype == np.int8 and np.array_equal(out, SPIN.expected(x))
    assert np.array_equal(dut.results(), out)
    layers = dut.layers()
    assert [(r.index, r.name, r.op, r.macs) for r in layers] == [
        (0, "add_a", "add", 100),
        (1, "add_b", "add", 100),
    ]
    assert [r.crc32 for r in layers] == SPIN.expected_layer_crcs(x)
    assert all(r.ticks > 0 for r in layers)
    assert dut.total_ticks() == sum(r.ticks for r in layers)
    assert dut.tensor(0) == x  # the input is still in the arena
    assert dut.last_timing is not None and dut.last_timing.iterations == 2
    mem = dut.mem()
    assert mem.arena_size == SPIN.arena_size and mem.static_ram >= mem.arena_size
    assert 0 < mem.stack_used < 2048 < mem.stack_size
    assert mem.peak_sram == mem.static_ram + mem.stack_used
    dut.exit(7)
    assert board.wait_exit() == 7  # semihosting SYS_EXIT_EXTENDED sets QEMU's status


@pytest.mark.parametrize("name", QEMU_BOARDS)
def test_counts_are_deterministic_and_convert_to_instructions(board_session, name):
    # 2 instructions per spin iteration; ticks * count_per_tick must recover the instruction difference.
    per_run = []
    for _ in range(2):  # two boots of the same image
        board, dut = board_session(name, SPIN)
        ticks = {}
        for first in (10, 60, 110, 160):
            dut.load_input(rand_input(100, seed=2, first=first))
            dut.infer(1, 0)
            ticks[first] = [r.ticks for r in dut.layers()]
        board.close()
        per_run.append(ticks)
    assert per_run[0] == per_run[1]
    t = {k: v[0] for k, v in per_run[0].items()}
    assert len({v[1] for v in per_run[0].values()}) == 1  # layer 1 does the same work every time
    cpt = make_board(name, timer="qemu-icount").cfg.timer.count_per_tick
    for a, b in [(10, 60), (60, 110), (110, 160), (10, 160)]:
        instructions = 2 * 1000 * (b - a)
        assert abs((t[b] - t[a]) * cpt - instructions) <= cpt + 1e-6
    steps = [t[60] - t[10], t[110] - t[60], t[160] - t[110]]
    assert max(steps) - min(steps) <= 1  # linear in the work, to one tick


def test_repeated_add_work_scales_linearly(fixture_firmware):
    board = make_board("qemu-mps2-an386")
    ticks = []
    try:
        for reps in (1, 2, 3):
            board.flash(fixture_firmware("qemu-mps2-an386", FixtureModel(n_bytes=4000, reps=(reps, 1))))
            dut = board.open_dut()
            dut.load_input(rand_input(4000))
            dut.infer(1, 0)
            ticks.append(dut.layers()[0].ticks)
            board.close()
    finally:
        board.close()
    steps = np.diff(ticks)
    assert steps.min() > 0 and steps.max() - steps.min() <= 1


def test_long_db_hex_command_is_decoded_while_it_streams(board_session):
    # One 40 000-character command: far beyond any line buffer, so the firmware must decode it on the fly.
    model = FixtureModel(n_bytes=20_000)
    _board, dut = board_session("qemu-mps2-an386", model, timeout=120)
    dut.host_dir = None  # force the UART path
    dut.chunk_bytes = 20_000
    x = rand_input(20_000, seed=3)
    dut.load_input(x)
    assert zlib.crc32(dut.tensor(0)) == zlib.crc32(x)
    assert np.array_equal(dut.infer(1, 0), model.expected(x))


def test_100kb_input_takes_the_host_file_fast_path_on_qemu(board_session):
    model = FixtureModel(n_bytes=100_000)
    _board, dut = board_session("qemu-mps2-an386", model, timeout=120)
    assert dut.host_dir is not None
    x = rand_input(100_000, seed=6)
    t0 = time.monotonic()
    dut.load_input(x)
    assert time.monotonic() - t0 < 5.0
    out = dut.infer(1, 0, crc=True)
    assert np.array_equal(out, model.expected(x))
    assert [r.crc32 for r in dut.layers()] == model.expected_layer_crcs(x)
    (dut.host_dir / "short.bin").write_bytes(b"123")
    with pytest.raises(DeviceError, match="size is not the input tensor"):
        dut.command("db host short.bin")
    with pytest.raises(DeviceError, match="cannot open"):
        dut.command("db host missing.bin")


@pytest.mark.parametrize("path", ["/etc/passwd", "../input.bin", "sub/input.bin", ".hidden"])
def test_semihosting_reads_only_plain_file_names_in_the_emulators_private_folder(board_session, path):
    # The emulator runs in the harness's private folder; the firmware refuses any path that could leave it, so
    # semihosting gives the guest no other host file.
    _board, dut = board_session("qemu-mps2-an386", FixtureModel(n_bytes=100_000), timeout=60)
    with pytest.raises(DeviceError, match="only a plain file name"):
        dut.command(f"db host {path}")


def test_model_that_reuses_its_input_buffer_gets_the_input_reloaded(board_session):
    model = FixtureModel(clobber=True)
    _board, dut = board_session("qemu-mps2-an386", model)
    assert dut.model_info().input_clobbered
    x = rand_input(64, seed=4)
    dut.load_input(x)
    # the firmware refuses to run twice on an input it has overwritten...
    with pytest.raises(DeviceError, match="overwrites its input"):
        dut.command("infer 2 0")
    # ...and the client reloads it before each inference instead
    assert np.array_equal(dut.infer(n=3, warmup=1), model.expected(x))


def raw(dut, text: bytes) -> list[str]:
    """Send raw bytes and collect the verified reply lines up to m-ready."""
    dut.link.write(text)
    lines = []
    while (ln := dut.read_line(10)) != "m-ready":
        lines.append(ln)
    return lines


def test_firmware_rejects_bad_commands_with_e_lines(board_session):
    _board, dut = board_session("qemu-netduinoplus2")
    assert raw(dut, b"name*0000%") == ["e-[command checksum mismatch]"]
    assert raw(dut, b"name%")[0] == "m-name-dut-[tinyhil-qemu-netduinoplus2]"  # the checksum is optional
    assert raw(dut, b"frobnicate%") == ["e-[unknown command: frobnicate]"]
    assert raw(dut, b"infer 1 0%")[0].startswith("e-[no input loaded")
    assert raw(dut, b"results%")[0].startswith("e-[no inference yet")
    assert raw(dut, b"db load 5%")[0] == "e-[db load 5: the input tensor takes 64 bytes]"
    assert raw(dut, b"x" * 500 + b"%") == ["e-[command too long]"]
    assert raw(dut, b"tensor 9%")[0].startswith("e-[bad tensor command")
    assert raw(dut, b"crc 2%")[0].startswith("e-[bad crc command")
    assert raw(dut, b"patches%") == ["e-[not a patch-based model: use layers]"]  # a layer-by-layer model


def test_db_chunk_with_bad_checksum_or_hex_is_rolled_back_and_can_be_resent(board_session):
    _board, dut = board_session("qemu-mps3-an547")
    x = rand_input(64, seed=5)
    assert raw(dut, frame("db load 64") + b"%") == ["m-[Expecting 64 bytes]"]
    first, second = b"db " + x[:32].hex().encode(), b"db " + x[32:].hex().encode()
    assert raw(dut, first + b"*0000%") == ["e-[db data rejected: command checksum mismatch]"]
    assert raw(dut, b"db 0g%") == ["e-[db data rejected: not a hex digit]"]
    assert raw(dut, b"db 012%") == ["e-[db data rejected: odd number of hex digits]"]
    assert raw(dut, frame(first) + b"%") == []
    assert raw(dut, frame(b"db " + x[32:].hex().encode() + b"00") + b"%") == [
        "e-[db data rejected: more bytes than announced by db load]"
    ]
    assert raw(dut, frame(second) + b"%") == ["m-load-done"]
    assert dut.tensor(0) == x


def test_firmware_fault_is_a_device_error_and_qemu_exits_3(board_session):
    board, dut = board_session("qemu-mps2-an386", FixtureModel(fault=True))
    dut.load_input(bytes(64))
    with pytest.raises(DeviceError, match=r"faulted.*e-\[fault exc=6 pc=0x"):
        dut.infer(1, 0)
    assert board.wait_exit(5) == 3


def test_bad_image_is_a_device_error_with_qemus_message(tmp_path, fixture_firmware, elf_copy):
    image = elf_copy(fixture_firmware("qemu-mps2-an386"), tmp_path / "bad.elf")
    image.write_bytes(b"this is not an ELF file")
    board = make_board("qemu-mps2-an386")
    board.flash(image)
    try:
        with pytest.raises(DeviceError) as e:
            board.open_dut()
        # QEMU loads a non-ELF file as a raw image, whose garbage vector table locks the core up
        assert "QEMU exited with status" in str(e.value)
        assert "qemu: fatal: Lockup" in str(e.value)
    finally:
        board.close()


def test_hung_firmware_is_a_device_error_within_the_timeout(board_session):
    _board, dut = board_session("qemu-netduinoplus2", FixtureModel(hang=True))
    dut.load_input(bytes(64))
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match="no reply"):
        dut.infer(1, 0, timeout=1.0)
    assert time.monotonic() - t0 < 5.0


def test_every_firmware_line_carries_a_valid_checksum(board_session):
    _board, dut = board_session("qemu-mps2-an386")
    dut.link.write(frame("model") + b"%")
    seen = 0
    while True:
        rawline = dut.link.read_line(10)
        text = parse_line(rawline)  # raises on any bad line
        seen += 1
        if text == "m-ready":
            break
    assert seen == 6


def test_closing_the_board_stops_qemu(fixture_firmware):
    board = make_board("qemu-mps3-an547")
    board.flash(fixture_firmware("qemu-mps3-an547"))
    board.open_dut()
    proc = board.driver.proc
    board.close()
    assert proc.poll() is not None


def test_silicon_timer_path_builds_and_reports_itself(tmp_path):
    # Real boards time with DWT CYCCNT. QEMU does not implement it (reads 0): the image must still build, boot and
    # say which timer it uses, so the silicon path cannot rot while only emulators are at hand.
    from harness.build import build, generate_project

    FixtureModel().write(tmp_path / "model")
    project = generate_project(
        "qemu-mps2-an386", tmp_path / "model", tmp_path / "p", build_flags=["-DTH_TIMER_DWT"]
    )
    board = make_board("qemu-mps2-an386")
    board.flash(build(project, "qemu-mps2-an386", cache_dir=False))
    try:
        dut = board.open_dut()
        info = dut.model_info()
        assert (info.timer, info.timer_hz) == ("dwt-cycles", 25_000_000)
        dut.load_input(rand_input(64))
        dut.infer(1, 0)
        assert [r.ticks for r in dut.layers()] == [0, 0]
    finally:
        board.close()
