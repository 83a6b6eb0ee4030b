"""Hostile serial peers: real TCP servers on 127.0.0.1 that play a broken, flooding or lying board.

Each :class:`Scenario` pairs a peer script with what the host does against it, the deadline the host is given,
and the clear error it must end in (its class, and a text the message must name: the offending line or value).
:func:`run_scenario` runs one against the real :class:`~harness.transport.link.SerialLink` and
:class:`~harness.transport.protocol.Dut` and measures how long the host took. Used by ``tinyhil bench
experiment=reliability`` and by tests/test_transport_hostile.py. Peers bind to the loopback only, serve one
connection, and stop when the host disconnects, when they are closed, or after ``lifetime`` seconds.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.errors import DeviceError, ProtocolError, TinyHilError
from harness.transport.link import SerialLink
from harness.transport.protocol import Dut, frame, line_crc

# ------------------------------------------------------------------------------------------------ the peer


class PeerGone(Exception):
    """The host disconnected or the peer was closed: the script ends."""


class PeerConn:
    """The peer's side of one connection, with helpers to speak (or garble) the protocol."""

    def __init__(self, sock: socket.socket, stop: threading.Event, until: float):
        self.sock = sock
        self._stop = stop
        self._until = until
        self._rx = b""

    @property
    def alive(self) -> bool:
        return not self._stop.is_set() and time.monotonic() < self._until

    def send(self, data: bytes) -> None:
        if not self.alive:
            raise PeerGone
        try:
            self.sock.sendall(data)
        except OSError:
            raise PeerGone from None

    def lines(self, *payloads: str) -> None:
        """Send framed lines (``payload*XXXX\\r\\n``)."""
        self.send(b"".join(frame(p) + b"\r\n" for p in payloads))

    def flood(self, unit: bytes, pause: float = 0.0) -> None:
        """Send ``unit`` again and again until the host goes away (or the peer's lifetime ends)."""
        while True:
            self.send(unit)
            if pause:
                time.sleep(pause)

    def hang_up(self) -> None:
        """Close the connection now (a board that dies)."""
        raise PeerGone

    def wait(self, seconds: float) -> None:
        """Stay connected and silent for ``seconds`` (or until closed)."""
        end = min(self._until, time.monotonic() + seconds)
        while self.alive and time.monotonic() < end:
            self._stop.wait(min(0.05, max(0.0, end - time.monotonic())))

    def commands(self) -> Iterator[str]:
        """The host's commands (``text*XXXX%``, checksum verified) until it disconnects."""
        self.sock.settimeout(0.05)
        while True:
            while b"%" in self._rx:
                cmd, self._rx = self._rx.split(b"%", 1)
                payload, _, crc = cmd.strip(b"\r\n").rpartition(b"*")
                if crc and int(crc, 16) == line_crc(payload):
                    yield payload.decode("ascii")
            if not self.alive:
                raise PeerGone
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                raise PeerGone from None
            if not data:
                raise PeerGone
            self._rx += data


Script = Callable[[PeerConn], None]


class HostilePeer:
    """A TCP server on 127.0.0.1 that runs ``script`` on its first connection (use as a context manager)."""

    def __init__(self, script: Script, lifetime: float = 30.0):
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self._server.getsockname()[1]}"
        self._stop = threading.Event()
        self._lifetime = lifetime
        self._conn: socket.socket | None = None
        self._thread = threading.Thread(target=self._serve, args=(script,), name="hostile-peer", daemon=True)
        self._thread.start()

    def _serve(self, script: Script) -> None:
        try:
            self._server.settimeout(self._lifetime)
            conn, _ = self._server.accept()
        except OSError:
            return
        self._conn = conn
        try:
            script(PeerConn(conn, self._stop, time.monotonic() + self._lifetime))
        except PeerGone:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        if self._conn is not None:
            try:
                self._conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)

    def __enter__(self) -> HostilePeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------------------------------ a board to bend
#: A consistent two-layer model's replies (payloads before ``m-ready``), which the scenarios bend one at a time.
GOOD: dict[str, list[str]] = {
    "name": ["m-name-dut-[tinyhil-hostile]"],
    "model": [
        "m-model-[fake]-[0000ABCD]-[2]-[3]-[1024]-[0]",
        "m-io-[0]-[4]-[2]-[4]-[0]",
        "m-board-[hostile]-[25000000]",
        "m-timer-[qemu-icount]-[1000000000]",
        "m-runtime-[0.1.0]-[256]",
    ],
    "layers": ["m-layer-[0]-[100]-[]-[a]-[add]-[4]", "m-layer-[1]-[200]-[]-[b]-[add]-[4]", "m-total-[300]"],
    "infer": [
        "m-warmup-start-0",
        "m-warmup-done",
        "m-infer-start-1",
        "m-lap-us-100",
        "m-lap-us-150",
        "m-infer-done",
        "m-results-[1,2,3,4]",
    ],
    "results": ["m-results-[1,2,3,4]"],
    "mem": ["m-mem-[2048]-[8192]-[512]-[1024]-[0]-[512]"],
    "crc": ["m-crc-[1]"],
    "patches": [
        "m-patches-[2]-[1]-[1]",
        "m-pstep-[0]-[0]-[10]-[2]-[]-[8]-[8]-[4]",
        "m-pstep-[1]-[0]-[10]-[2]-[]-[8]-[8]-[4]",
    ],
}

Reply = Sequence[str] | Callable[[PeerConn], None]


def board(overrides: Mapping[str, Reply] | None = None) -> Script:
    """A board answering each command (by its first word) from :data:`GOOD`, with ``overrides``: a list of
    payloads (then ``m-ready``), or a function that sends whatever it likes."""
    replies: dict[str, Reply] = {**GOOD, **(overrides or {})}

    def script(conn: PeerConn) -> None:
        for cmd in conn.commands():
            reply = replies.get(cmd.split(" ", 1)[0], [f"e-[unknown command: {cmd[:20]}]"])
            if callable(reply):
                reply(conn)
            else:
                conn.lines(*reply, "m-ready")

    return script


def replace(key: str, i: int, text: str) -> list[str]:
    """:data:`GOOD`'s reply to ``key`` with line ``i`` replaced."""
    out = list(GOOD[key])
    out[i] = text
    return out


# ------------------------------------------------------------------------------------------------ scenarios
@dataclass(frozen=True)
class Scenario:
    """One hostile behaviour, what the host does against it, and how it must end."""

    name: str
    what: str
    script: Script
    action: Callable[[Dut], Any]
    deadline: float  # seconds: the host's timeout for the action
    expect: type[TinyHilError]
    mentions: str  # the message must contain this (the offending line or value)
    dut_options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ScenarioResult:
    name: str
    what: str
    deadline_s: float
    elapsed_s: float
    error: str  # the exception's class name ("" if the action returned)
    message: str
    passed: bool
    why: str  # what was wrong, when not passed

    @property
    def overshoot_s(self) -> float:
        return max(0.0, self.elapsed_s - self.deadline_s)


def _measure(dut: Dut) -> None:
    """What a measurement asks after an inference: model, outputs, per-layer rows, memory."""
    dut.model_info()
    dut.results()
    dut.layers()
    dut.mem()


def _stream(unit: bytes, pause: float = 0.0) -> Callable[[PeerConn], None]:
    return lambda c: c.flood(unit, pause)


def _layer_stream(pause: float) -> Callable[[PeerConn], None]:
    def send(c: PeerConn) -> None:
        i = 0
        while True:
            c.lines(*(f"m-layer-[{i + k}]-[100]-[]-[l]-[add]-[4]" for k in range(8)))
            i += 8
            if pause:
                time.sleep(pause)

    return send


def _sync(dut: Dut) -> Any:
    return dut.sync(timeout=dut.timeout, banner_wait=min(2.0, dut.timeout / 3))


def _then(*parts: Callable[[PeerConn], None]) -> Callable[[PeerConn], None]:
    def run(c: PeerConn) -> None:
        for p in parts:
            p(c)

    return run


def scenarios() -> list[Scenario]:
    """The catalogue: every hostile case of issue #18, each with the clear error it must end in."""
    P, D = ProtocolError, DeviceError

    def layers(*rows: str) -> Script:
        return board({"layers": list(rows)})

    L0, L1 = GOOD["layers"][0], GOOD["layers"][1]
    return [
        # ---- hangs and floods: each must end by its deadline
        Scenario("blank-lines-read", "endless blank lines (read_line used to restart its timeout on each)",
                 lambda c: c.flood(b"\r\n", 0.005), lambda d: d.read_line(), 1.0, P, "empty lines"),
        Scenario("blank-lines-reply", "endless blank lines as the reply to a command",
                 board({"name": _stream(b"\r\n", 0.005)}), Dut.name, 1.0, P, "no m-ready"),
        Scenario("valid-lines-no-ready", "CRC-valid layer lines trickling forever, never m-ready",
                 board({"layers": _layer_stream(0.002)}), Dut.layers, 1.5, P, "no m-ready"),
        Scenario("valid-lines-flood", "CRC-valid lines as fast as TCP goes, never m-ready (memory must stay capped)",
                 board({"layers": _layer_stream(0.0)}), Dut.layers, 5.0, P, "exceeds"),
        Scenario("endless-line", "bytes without an end of line, as fast as TCP goes",
                 board({"name": _stream(b"m-name-dut-" * 512)}), Dut.name, 3.0, P, "longer than"),
        Scenario("byte-trickle", "one byte every 20 ms, never an end of line",
                 board({"name": _stream(b"x", 0.02)}), Dut.name, 1.0, P, "truncated"),
        Scenario("silence", "connected, never a byte", lambda c: c.wait(60), Dut.name, 1.0, D, "no reply"),
        Scenario("silent-mid-reply", "two layer lines, then silence (a hung board)",
                 board({"layers": lambda c: (c.lines(L0, L1), c.wait(60))}), Dut.layers, 1.0, D, "went silent"),
        Scenario("closed-mid-line", "the board dies in the middle of a line",
                 board({"layers": lambda c: (c.send(frame(L0) + b"\r\nm-layer-[1]-[2"), c.hang_up())}), Dut.layers, 2.0, D,
                 "m-layer-[1]-[2"),
        Scenario("fault-mid-reply", "a fault report in the middle of a reply",
                 board({"layers": lambda c: c.lines(L0, "e-[fault exc=3 pc=0x00000100]")}), Dut.layers, 2.0, D,
                 "exc=3"),
        Scenario("sync-valid-flood", "CRC-valid noise flooding the link, never an answer to name%",
                 _stream(frame("m-noise") + b"\r\n"), _sync, 3.0, D, "m-noise"),
        Scenario("sync-blank-flood", "blank lines flooding the link while synchronising",
                 _stream(b"\r\n" * 64), _sync, 3.0, D, "name%"),
        Scenario("sync-garbage-flood", "lines with bad checksums flooding the link while synchronising",
                 _stream(b"m-ready*0000\r\n" * 16), _sync, 3.0, D, "garbled"),
        Scenario("sync-banner-then-flood", "a boot banner, then noise that never answers name%",
                 _then(lambda c: c.lines("m-init-done", "m-ready"), _stream(frame("m-noise") + b"\r\n")),
                 _sync, 3.0, D, "m-noise"),
        Scenario("garbled-line", "a line whose checksum does not verify",
                 board({"name": lambda c: c.send(b"m-name-dut-[x]*0000\r\n")}), Dut.name, 2.0, P, "checksum"),
        # ---- inconsistent replies: each must be refused, naming the line
        Scenario("negative-ticks", "a negative tick count", layers("m-layer-[0]-[-5]-[]-[a]-[add]-[4]", L1,
                 "m-total-[195]"), _measure, 2.0, P, "-5"),
        Scenario("non-integer-field", "a tick count that is not a number (was a ValueError)",
                 layers("m-layer-[0]-[12a]-[]-[a]-[add]-[4]", L1, "m-total-[300]"), _measure, 2.0, P, "12a"),
        Scenario("duplicate-layer", "a layer index twice", layers(L0, L0, "m-total-[200]"), _measure, 2.0, P,
                 "m-layer-[0]"),
        Scenario("extra-layer", "a third layer on a two-layer model (was dropped silently)",
                 layers(L0, L1, "m-layer-[2]-[5]-[]-[c]-[add]-[4]", "m-total-[305]"), _measure, 2.0, P,
                 "m-layer-[2]"),
        Scenario("missing-layer", "one layer of two (was an IndexError later)", layers(L0, "m-total-[100]"),
                 _measure, 2.0, P, "1 layers"),
        Scenario("total-not-sum", "m-total that is not the sum of the layers", layers(L0, L1, "m-total-[299]"),
                 _measure, 2.0, P, "m-total-[299]"),
        Scenario("stranger-line", "a line that does not belong in the layers reply",
                 layers(L0, "m-foo-[1]", L1, "m-total-[300]"), _measure, 2.0, P, "m-foo"),
        Scenario("laps-backwards", "lap stamps going backwards",
                 board({"infer": replace("infer", 4, "m-lap-us-90")}), lambda d: d.infer(1, 0), 2.0, P,
                 "m-lap-us-90"),
        Scenario("result-out-of-range", "a result value of 300 (was an OverflowError)",
                 board({"results": ["m-results-[1,300,3,4]"]}), _measure, 2.0, P, "300"),
        Scenario("result-count", "3 result values for a 4-byte output",
                 board({"results": ["m-results-[1,2,3]"]}), _measure, 2.0, P, "3 result values"),
        Scenario("short-mem", "an m-mem line with 3 fields (was a TypeError)",
                 board({"mem": ["m-mem-[2048]-[8192]-[512]"]}), _measure, 2.0, P, "m-mem"),
        Scenario("stack-overflowed", "stack use beyond the stack", board({"mem": ["m-mem-[2048]-[8192]-[9000]-[1024]-[0]"]}),
                 _measure, 2.0, P, "9000"),
        Scenario("model-over-limit", "more layers than the runtime allows",
                 board({"model": replace("model", 0, "m-model-[fake]-[0000ABCD]-[300]-[3]-[1024]-[0]")}),
                 _measure, 2.0, P, "300 layers"),
        Scenario("model-hash-mismatch", "the firmware runs another model than the one deployed",
                 board(), _measure, 2.0, D, "0000ABCD", {"expect_hash": 0x12345678}),
        Scenario("patch-duplicate", "a (patch, step) pair twice",
                 board({"patches": replace("patches", 2, GOOD["patches"][1])}), lambda d: d.patches(), 2.0, P,
                 "m-pstep-[0]-[0]"),
        Scenario("patch-count", "fewer patches than the deployed plan",
                 board(), lambda d: d.patches(), 2.0, P, "2 patches", {"expect_patches": (3, 1)}),
    ]  # fmt: skip


def run_scenario(s: Scenario, grace: float = 10.0) -> ScenarioResult:
    """Run ``s`` against a fresh peer; the action runs in a thread so that a host that hangs is reported (after
    ``deadline + grace`` seconds the peer is closed, which ends any wait of the host)."""
    outcome: dict[str, Any] = {}

    with HostilePeer(s.script, lifetime=s.deadline + grace + 5) as peer:
        link = SerialLink(peer.url)
        dut = Dut(link, timeout=s.deadline, **s.dut_options)

        def act() -> None:
            t0 = time.monotonic()
            try:
                s.action(dut)
            except BaseException as e:  # noqa: BLE001 - every outcome is recorded, judged below
                outcome["error"] = e
            outcome["elapsed"] = time.monotonic() - t0

        worker = threading.Thread(target=act, name=f"scenario-{s.name}", daemon=True)
        worker.start()
        worker.join(s.deadline + grace)
        hung = worker.is_alive()
        if hung:
            peer.close()
            link.close()
            worker.join(5)
        link.close()
    err = outcome.get("error")
    elapsed = outcome.get("elapsed", s.deadline + grace)
    name, msg = (type(err).__name__, str(err)) if err is not None else ("", "")
    why = ""
    if hung:
        why = f"still running after {s.deadline + grace:g} s"
    elif err is None:
        why = "returned without an error"
    elif not isinstance(err, s.expect):
        why = f"{name} instead of {s.expect.__name__}"
    elif s.mentions not in msg:
        why = f"the message does not name {s.mentions!r}"
    return ScenarioResult(s.name, s.what, s.deadline, round(elapsed, 3), name, msg, not why, why)


def link_throughput(n_lines: int = 20_000) -> dict:
    """Bytes per second that :meth:`SerialLink.read_line` delivers from a peer that sends as fast as it can."""
    payload = b"".join(
        frame(f"m-layer-[{i}]-[123456]-[DEADBEEF]-[conv_{i}]-[conv2d]-[4608]") + b"\r\n"
        for i in range(n_lines)
    )
    with HostilePeer(lambda c: (c.send(payload), c.wait(60))) as peer, SerialLink(peer.url) as link:
        t0 = time.monotonic()
        got = sum(len(link.read_line(30.0)) + 2 for _ in range(n_lines))
        dt = time.monotonic() - t0
    return {"bytes": got, "seconds": round(dt, 4), "kB_per_s": round(got / dt / 1e3, 1)}
