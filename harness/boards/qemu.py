"""QEMU driver: runs one firmware image in ``qemu-system-arm`` with its UART on a TCP socket.

QEMU listens on an ephemeral port (``tcp:127.0.0.1:0,server=on,wait=on``) and prints the port it chose; it starts
the guest only once the host has connected, so nothing the firmware prints is lost. ``-icount shift=0`` makes one
guest instruction one nanosecond of virtual time (deterministic SysTick counts); semihosting lets the firmware set
QEMU's exit status.
"""

from __future__ import annotations

import atexit
import contextlib
import re
import shutil
import subprocess
import sys
import threading
import weakref
from collections import deque
from pathlib import Path

from harness.boards.resources import QemuMachine
from harness.errors import DeviceError, MissingDependencyError

_PORT_RE = re.compile(rb"waiting for connection on: \S*tcp:127\.0\.0\.1:(\d+)")
_REG_DUMP = re.compile(r"^(R\d\d=|s\d\d=|XPSR=|FPSCR:|PSR=)")
EXIT_STATUS_MEANING = {
    3: "the firmware faulted (see its e-[fault ...] line)",
    4: "the firmware took an unexpected exception",
    -6: "QEMU aborted, e.g. the CPU locked up on a bad image",
}


_LIVE: weakref.WeakSet[QemuDriver] = weakref.WeakSet()


def _stop_all() -> None:
    for drv in list(_LIVE):
        drv.stop(timeout=1.0)


atexit.register(_stop_all)


def _with_parent_death_signal(cmd: list[str]) -> list[str]:
    """Prefix ``setpriv --pdeathsig TERM`` where available: an emulator whose host process died (a killed test run,
    a crashed experiment) gets SIGTERM instead of holding its resources forever."""
    setpriv = shutil.which("setpriv")
    return (
        [setpriv, "--pdeathsig", "TERM", "--", *cmd] if setpriv and sys.platform.startswith("linux") else cmd
    )


class QemuDriver:
    """Start, watch and stop one QEMU process (stopped at interpreter exit, and killed if its parent dies)."""

    def __init__(self, machine: QemuMachine, elf: str | Path, cwd: str | Path | None = None):
        self.machine = machine
        self.elf = Path(elf).resolve()
        # Semihosting resolves the firmware's file names here: the harness's private folder for this session.
        self.cwd = Path(cwd) if cwd is not None else None
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr: deque[bytes] = deque(maxlen=200)
        self._port: int | None = None
        self._port_seen = threading.Event()
        self._reader: threading.Thread | None = None

    def command_line(self, serial: str = "tcp:127.0.0.1:0,server=on,wait=on") -> list[str]:
        m = self.machine
        cmd = [m.binary, "-M", m.machine]
        if m.cpu:
            cmd += ["-cpu", m.cpu]
        cmd += [
            "-nographic",
            "-monitor", "none",
            "-icount", "shift=0",
            "-semihosting-config", "enable=on,target=native",
            "-serial", serial,
            *m.extra_args,
            "-kernel", str(self.elf),
        ]  # fmt: skip
        return cmd

    def _pump_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in iter(self.proc.stderr.readline, b""):
            self._stderr.append(line)
            if self._port is None:
                m = _PORT_RE.search(line)
                if m:
                    self._port = int(m.group(1))
                    self._port_seen.set()
        self._port_seen.set()  # EOF: wake start() so it can report the exit

    def start(self, timeout: float = 10.0) -> str:
        """Launch QEMU and return the pyserial URL of its UART (QEMU waits for that connection to boot)."""
        if shutil.which(self.machine.binary) is None:
            raise MissingDependencyError(
                f"{self.machine.binary} not found: apt-get install -y --no-install-recommends qemu-system-arm"
            )
        if not self.elf.is_file():
            raise DeviceError(f"firmware image {self.elf} does not exist")
        self.stop()
        self._stderr.clear()
        self._port = None
        self._port_seen.clear()
        self.proc = subprocess.Popen(
            _with_parent_death_signal(self.command_line()),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.cwd,
            start_new_session=True,  # a Ctrl-C in the terminal must not kill QEMU before we clean up
        )
        _LIVE.add(self)
        self._reader = threading.Thread(target=self._pump_stderr, name="qemu-stderr", daemon=True)
        self._reader.start()
        if not self._port_seen.wait(timeout) or self._port is None:
            diag = self.diagnose() or "QEMU did not open its serial socket"
            self.stop()
            raise DeviceError(f"QEMU ({self.machine.machine}) failed to start within {timeout:g} s: {diag}")
        return f"socket://127.0.0.1:{self._port}"

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stderr_text(self, max_lines: int = 12) -> str:
        """QEMU's own messages, without its connection notice and register dumps."""
        lines = b"".join(self._stderr).decode("utf-8", "replace").splitlines()
        keep = [
            ln
            for ln in lines
            if ln.strip() and "waiting for connection" not in ln and not _REG_DUMP.match(ln)
        ]
        return "\n".join(keep[:max_lines]).strip()

    def diagnose(self) -> str | None:
        """Why the link failed, when QEMU knows: its exit status and its stderr. None while it still runs."""
        if self.proc is None:
            return None
        try:
            rc = self.proc.wait(timeout=0.5)  # a dying QEMU closes the socket just before it exits
        except subprocess.TimeoutExpired:
            return None
        if self._reader is not None:
            self._reader.join(timeout=1.0)
        meaning = EXIT_STATUS_MEANING.get(rc, "")
        err = self.stderr_text()
        msg = f"QEMU exited with status {rc}" + (f" ({meaning})" if meaning else "")
        return msg + (f": {err}" if err else "")

    def wait(self, timeout: float) -> int:
        """Wait for QEMU to exit by itself; DeviceError if it does not."""
        if self.proc is None:
            raise DeviceError("QEMU is not running")
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"QEMU did not exit within {timeout:g} s") from None

    def stop(self, timeout: float = 3.0) -> None:
        """Terminate QEMU (SIGTERM, then SIGKILL) and reap it."""
        p = self.proc
        if p is None:
            return
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=timeout)
        if self._reader is not None:
            self._reader.join(timeout=1.0)
        if p.stderr is not None:
            p.stderr.close()
        self.proc = None
        _LIVE.discard(self)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown may have torn down subprocess already
            self.stop(timeout=1.0)
