"""The board interface the core uses, the same for emulated and real boards (microTVM's project API shape).

``build(project) -> BuildResult``, ``flash(artifact)``, ``open_transport() -> Transport`` (a SerialLink, or an
RttLink on a real board with ``driver.link: rtt``), ``close()``; plus
``open_dut()`` for a synchronised protocol client. Only ``make_board`` looks at the driver type.
"""

from __future__ import annotations

import shutil
import tempfile
from abc import ABC, abstractmethod
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.boards.discovery import link_of, resolve_port, resolve_probe
from harness.boards.flashers import PioUploader, PyOcdFlasher
from harness.boards.pyocd_rtt import open_pyocd_rtt
from harness.boards.qemu import QemuDriver
from harness.boards.resources import DebugProbe, QemuMachine, SerialPort
from harness.build.project import build as build_project
from harness.config.board import BoardConfig
from harness.errors import DeviceError, TimingError
from harness.transport.link import SerialLink
from harness.transport.protocol import Dut

if TYPE_CHECKING:  # harness.build imports harness.config.board: keep the runtime import one-way
    from harness.build.project import BuildResult, MemoryEstimate


def _image(artifact: BuildResult | str | Path) -> Path:
    return Path(artifact) if isinstance(artifact, (str, Path)) else artifact.elf


class Board(ABC):
    """One board: build firmware for it, put the firmware on it, talk to it."""

    #: timer=qemu-cycles: the timing plugin's counter (harness.timing.CycleCounter) of an emulated board
    cycles: Any = None

    def __init__(self, cfg: BoardConfig):
        self.cfg = cfg
        self.link: SerialLink | None = None

    @property
    def name(self) -> str:
        return self.cfg.name

    def build(self, project: str | Path, estimate: MemoryEstimate | None = None, **kw: Any) -> BuildResult:
        """Build a generated project (see ``harness.build.project.generate_project``) for this board."""

        return build_project(project, self.cfg, estimate=estimate, **kw)

    @abstractmethod
    def flash(self, artifact: BuildResult | str | Path) -> None:
        """Put the image on the board (QEMU: remember it for the next boot)."""

    @abstractmethod
    def open_transport(self) -> SerialLink:
        """(Re)start the firmware if needed and return a fresh line link to it."""

    def host_dir(self) -> Path | None:
        """A folder the firmware can read directly (emulators only), for fast input loading."""
        return None

    def open_dut(self, timeout: float | None = None) -> Dut:
        """A protocol client on a fresh transport, synchronised past the boot banner."""
        link = self.open_transport()
        dut = Dut(link, timeout=timeout or self.cfg.driver.command_timeout_s, host_dir=self.host_dir())
        try:
            dut.sync(self.cfg.driver.boot_timeout_s)
        except BaseException:
            self.close()
            raise
        return dut

    def close(self) -> None:
        if self.link is not None:
            self.link.close()
            self.link = None

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class QemuBoard(Board):
    """An emulated board: every ``open_transport`` boots the flashed image in a fresh QEMU.

    With ``cycles`` (a :class:`harness.timing.CycleCounter`, ``timer=qemu-cycles``) QEMU runs the timing plugin.
    """

    def __init__(self, cfg: BoardConfig, cycles: Any = None):
        super().__init__(cfg)
        self.cycles = cycles
        d = cfg.driver
        self.machine = QemuMachine(machine=str(d.machine), cpu=d.cpu, extra_args=tuple(d.extra_args))
        self.image: Path | None = None
        self.driver: QemuDriver | None = None
        self._host_dir: Path | None = None

    def host_dir(self) -> Path:
        # Semihosting gives the guest the host's files; a short private folder keeps `db host PATH%` short.
        if self._host_dir is None or not self._host_dir.is_dir():
            self._host_dir = Path(tempfile.mkdtemp(prefix="tinyhil-"))
        return self._host_dir

    def flash(self, artifact: BuildResult | str | Path) -> None:
        image = _image(artifact)
        if not image.is_file():
            raise DeviceError(f"firmware image {image} does not exist")
        self.close()
        if self.cycles is not None:
            self.cycles.attach(image)  # markers and memory layout checked before QEMU starts
        self.image = image

    def open_transport(self) -> SerialLink:
        if self.image is None:
            raise DeviceError(f"{self.name}: nothing flashed yet (call flash() with a built image)")
        self.close()
        machine = self.machine
        if self.cycles is not None:
            machine = replace(machine, extra_args=(*machine.extra_args, *self.cycles.qemu_args()))
        self.driver = QemuDriver(machine, self.image, cwd=self.host_dir())
        if self.cycles is not None:
            self.cycles.qemu_messages = self.driver.stderr_text
        url = self.driver.start(timeout=self.cfg.driver.boot_timeout_s)
        try:
            self.link = SerialLink(url, diagnose=self.driver.diagnose)
        except DeviceError as exc:
            self.close()
            raise self._plugin_error(exc) from exc
        except BaseException:
            self.close()
            raise
        return self.link

    def open_dut(self, timeout: float | None = None) -> Dut:
        try:
            return super().open_dut(timeout)
        except DeviceError as exc:  # QEMU loads plugins once the serial link is up: a failure shows here
            raise self._plugin_error(exc) from exc

    def _plugin_error(self, exc: DeviceError) -> Exception:
        """A QEMU failure caused by the timing plugin as the TimingError that names the fix; others unchanged."""
        if self.cycles is None or "plugin" not in str(exc).lower():
            return exc

        detail = "; ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip())
        return TimingError(f"the QEMU timing plugin did not load ({detail}); rebuild it with "
                           "`python -m harness.timing.plugin` (needs gcc and Debian's QEMU 7.2)")

    def wait_exit(self, timeout: float = 10.0) -> int:
        """Wait for the firmware to leave (``exit N%``, fault) and return QEMU's exit status."""
        if self.driver is None:
            raise DeviceError(f"{self.name}: not running")
        return self.driver.wait(timeout)

    def close(self) -> None:
        super().close()
        if self.driver is not None:
            self.driver.stop()
            self.driver = None
        if self._host_dir is not None:
            shutil.rmtree(self._host_dir, ignore_errors=True)
            self._host_dir = None


class SerialBoard(Board):
    """A real board: flashed with pyOCD (Python API) or PlatformIO's upload target, reached over a serial port or
    over RTT through its debug probe. ``auto`` probe/port settings are resolved by harness.boards.discovery."""

    def __init__(self, cfg: BoardConfig):
        super().__init__(cfg)
        d = cfg.driver
        self.port = SerialPort(url=str(d.port), baud=d.baud)
        self.probe = DebugProbe(target=str(d.target or ""), unique_id=d.probe)
        self.project: Path | None = None
        self.image: Path | None = None

    def build(self, project: str | Path, estimate: MemoryEstimate | None = None, **kw: Any) -> BuildResult:
        self.project = Path(project)
        return super().build(project, estimate=estimate, **kw)

    def attached_probe(self) -> DebugProbe:
        """The probe to use: ``driver.probe`` if set and attached, else the one attached probe of this board."""
        if not self.probe.target:
            raise DeviceError(f"{self.name}: driver.target (the pyOCD target name) is not set")
        return DebugProbe(target=self.probe.target, unique_id=resolve_probe(self.cfg))

    def flash(self, artifact: BuildResult | str | Path) -> None:
        self.close()
        self.image = _image(artifact)
        if self.cfg.driver.flasher == "pio":
            if self.project is None:
                raise DeviceError(f"{self.name}: the pio flasher uploads a built project; call build() first")
            # PlatformIO finds the upload port itself (the board's USB ids); driver.port is the protocol's port,
            # which on a Nano 33 BLE with a USB-serial adapter is not the port the bootloader listens on.
            PioUploader(self.project, self.cfg.name).flash()
        else:
            PyOcdFlasher(self.attached_probe()).flash(self.image)

    def open_transport(self) -> SerialLink:
        self.close()
        timeout = self.cfg.driver.boot_timeout_s
        if link_of(self.cfg) == "rtt":
            self.link = open_pyocd_rtt(self.attached_probe(), elf=self.image, find_timeout=timeout)  # type: ignore[assignment]
        else:
            # A board that re-enumerates after flashing (the Nano's USB port) may take a moment to show its port.
            self.link = SerialLink(resolve_port(self.cfg, wait_s=timeout), baudrate=self.port.baud)
        return self.link  # type: ignore[return-value]

    def open_dut(self, timeout: float | None = None) -> Dut:
        """As Board.open_dut, then checks that the firmware runs at the configured clock with the configured timer
        (cycles convert to milliseconds with ``clock_hz``; a chip that fell back to a safer clock says so)."""
        dut = super().open_dut(timeout)
        try:
            info = dut.model_info()
            want = self.cfg.clock_hz
            if info.core_hz != want:
                raise DeviceError(
                    f"{self.name}: the firmware runs at {info.core_hz} Hz, the board config says {want} Hz (a "
                    f"revision Y STM32H743 tops out at 400 MHz and the firmware picks that by itself; a PLL that "
                    f"fails to lock stays at the reset clock). Counts are cycles either way; to convert them at the "
                    f"real clock run with board.clock_hz={info.core_hz} board.timer.hz={info.core_hz} "
                    f"(docs/real-boards.md)"
                )
            if info.timer != self.cfg.timer.source:
                raise DeviceError(
                    f"{self.name}: the firmware times with {info.timer}, the board config expects "
                    f"{self.cfg.timer.source}"
                )
        except BaseException:
            self.close()
            raise
        return dut
