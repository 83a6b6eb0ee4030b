"""The line protocol over a real TCP loopback: every line is checksummed, and corruption, truncation, silence and a
closed link each surface as a specific, catchable error. (The same parser runs against QEMU in test_boards_qemu.)"""

from __future__ import annotations

import binascii
import socket
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from harness.errors import DeviceError, ProtocolError
from harness.transport import Dut, SerialLink, frame, parse_line
from harness.transport.link import LinkTimeout
from harness.transport.protocol import fields


class FakePeer:
    """A TCP server on 127.0.0.1 playing a board: it runs ``script(conn)`` for the first connection."""

    def __init__(self, script: Callable[[socket.socket], None]):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.url = f"socket://127.0.0.1:{self.server.getsockname()[1]}"
        self.received = bytearray()
        self._thread = threading.Thread(target=self._serve, args=(script,), daemon=True)
        self._thread.start()

    def _serve(self, script: Callable[[socket.socket], None]) -> None:
        conn, _ = self.server.accept()
        try:
            script(conn)
        finally:
            conn.close()
            self.server.close()

    def join(self) -> None:
        self._thread.join(timeout=5)


def line(payload: str) -> bytes:
    return frame(payload) + b"\r\n"


def test_checksum_is_crc16_ccitt_false():
    assert binascii.crc_hqx(b"123456789", 0xFFFF) == 0x29B1  # the standard check value
    assert frame("m-ready") == b"m-ready*EB0C"  # as printed by the firmware
    assert parse_line(b"m-ready*EB0C") == "m-ready"


@pytest.mark.parametrize(
    "raw",
    [
        b"m-ready*EB0D",  # wrong checksum
        b"m-readz*EB0C",  # payload bit flip
        b"m-ready",  # no checksum at all
        b"m-rea",  # truncated
        b"m-ready*EB",  # truncated checksum
        b"\xff\xfe*0000",  # garbage
        b"m-ready*ZZZZ",
    ],
)
def test_corrupt_truncated_or_garbage_lines_are_protocol_errors(raw):
    with pytest.raises(ProtocolError):
        parse_line(raw)


def test_fields_are_the_bracketed_values_in_order():
    assert fields("m-layer-[0]-[123]-[DEADBEEF]-[conv_1]-[conv2d]-[4608]") == [
        "0", "123", "DEADBEEF", "conv_1", "conv2d", "4608"
    ]  # fmt: skip


def test_a_corrupted_byte_on_the_wire_is_detected():
    good = line("m-results-[1,2,3]")
    bad = bytearray(line("m-results-[1,2,3]"))
    bad[12] ^= 0x04  # one bit flipped in transit
    peer = FakePeer(lambda c: (c.sendall(good + bytes(bad)), time.sleep(0.5)))
    with SerialLink(peer.url) as link:
        dut = Dut(link, timeout=2)
        assert dut.read_line() == "m-results-[1,2,3]"
        with pytest.raises(ProtocolError, match="checksum mismatch"):
            dut.read_line()
    peer.join()


def test_silence_is_a_device_error_within_the_timeout():
    peer = FakePeer(lambda c: time.sleep(2.0))
    with SerialLink(peer.url) as link:
        t0 = time.monotonic()
        with pytest.raises(DeviceError, match="no reply"):
            Dut(link, timeout=0.5).read_line()
        assert 0.4 < time.monotonic() - t0 < 1.5
    peer.join()


def test_a_line_cut_off_on_a_live_link_is_a_truncation_error():
    peer = FakePeer(lambda c: (c.sendall(b"m-results-[1,2"), time.sleep(1.5)))
    with SerialLink(peer.url) as link, pytest.raises(ProtocolError, match="truncated"):
        link.read_line(0.5)
    peer.join()


def test_last_words_before_the_peer_closes_are_not_lost():
    # pyserial's read(n) drops what it gathered when the socket closes; the link must still deliver every line.
    words = b"".join(line(f"m-line-{i}") for i in range(50)) + line("e-[fault exc=3 pc=0x00000100]")
    peer = FakePeer(lambda c: c.sendall(words))
    with SerialLink(peer.url) as link:
        got = [parse_line(link.read_line(2.0)) for _ in range(51)]
        assert got[-1].startswith("e-[fault")
        with pytest.raises(DeviceError, match="closed"):
            link.read_line(2.0)
    peer.join()


def test_a_peer_that_talks_at_once_on_connect_loses_nothing():
    # QEMU starts the guest the moment the host connects; its banner must survive the port's opening.
    peer = FakePeer(lambda c: (c.sendall(line("m-init-done") + line("m-ready")), time.sleep(0.5)))
    with SerialLink(peer.url) as link:
        assert parse_line(link.read_line(2.0)) == "m-init-done"
        assert parse_line(link.read_line(2.0)) == "m-ready"
    peer.join()


def test_closed_link_mid_line_reports_the_partial_line():
    peer = FakePeer(lambda c: c.sendall(b"m-infer-st"))
    with SerialLink(peer.url) as link, pytest.raises(DeviceError, match="m-infer-st"):
        link.read_line(2.0)
    peer.join()


def _board_answering(replies: dict[bytes, list[str]]) -> Callable[[socket.socket], None]:
    """A scripted board: for each command received (text before '*'), send its reply lines and m-ready."""

    def script(conn: socket.socket) -> None:
        buf = b""
        conn.settimeout(3.0)
        while True:
            try:
                data = conn.recv(4096)
            except OSError:
                return
            if not data:
                return
            buf += data
            while b"%" in buf:
                cmd, buf = buf.split(b"%", 1)
                payload, _, crc = cmd.rpartition(b"*")
                assert int(crc, 16) == binascii.crc_hqx(payload, 0xFFFF)
                out = b"".join(line(s) for s in replies.get(payload, ["e-[unknown command]"]))
                conn.sendall(out + line("m-ready"))

    return script


def test_commands_carry_a_checksum_and_errors_are_device_errors():
    peer = FakePeer(
        _board_answering({b"name": ["m-name-dut-[tinyhil-test]"], b"results": ["e-[no inference yet]"]})
    )
    with SerialLink(peer.url) as link:
        dut = Dut(link, timeout=2)
        assert dut.name() == "tinyhil-test"
        with pytest.raises(DeviceError, match="no inference yet"):
            dut.results()
    peer.join()


def test_sync_skips_noise_and_banner():
    def script(conn: socket.socket) -> None:
        conn.sendall(b"\x00\xffgarbage\r\n" + line("m-init-done") + line("m-ready"))
        _board_answering({b"name": ["m-name-dut-[tinyhil-x]"]})(conn)

    peer = FakePeer(script)
    with SerialLink(peer.url) as link:
        assert Dut(link, timeout=2).sync(timeout=5) == "tinyhil-x"
    peer.join()


def test_results_parse_as_int8():
    peer = FakePeer(_board_answering({b"results": ["m-results-[-128,0,127,5]"]}))
    with SerialLink(peer.url) as link:
        out = Dut(link, timeout=2).results()
    assert out.dtype == np.int8 and out.tolist() == [-128, 0, 127, 5]
    peer.join()


def test_link_timeout_is_a_device_error_subclass():
    assert issubclass(LinkTimeout, DeviceError)
