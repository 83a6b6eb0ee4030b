"""The board interface the core uses, the same for emulated and real boards (microTVM's project API shape).

``build(project) -> BuildResult``, ``flash(artifact)``, ``open_transport() -> SerialLink``, ``close()``; plus
``open_dut()`` for a synchronised protocol client. Only ``make_board`` looks at the driver type.
"""

from __future__ import annotations

import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.boards.config import BoardConfig, load_board_config
from harness.boards.flashers import PioUploader, PyOcdFlasher
from harness.boards.qemu import QemuDriver
from harness.boards.resources import DebugProbe, QemuMachine, SerialPort
from harness.errors import DeviceError
from harness.transport.link import SerialLink
from harness.transport.protocol import Dut

if TYPE_CHECKING:  # harness.build imports harness.boards.config: keep the runtime import one-way
    from harness.build.project import BuildResult, MemoryEstimate


def _image(artifact: BuildResult | str | Path) -> Path:
    return Path(artifact) if isinstance(artifact, (str, Path)) else artifact.elf


class Board(ABC):
    """One board: build firmware for it, put the firmware on it, talk to it."""

    def __init__(self, cfg: BoardConfig):
        self.cfg = cfg
        self.link: SerialLink | None = None

    @property
    def name(self) -> str:
        return self.cfg.name

    def build(self, project: str | Path, estimate: MemoryEstimate | None = None, **kw: Any) -> BuildResult:
        """Build a generated project (see ``harness.build.project.generate_project``) for this board."""
        from harness.build.project import build as build_project

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
        self.driver = QemuDriver(machine, self.image)
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
        from harness.errors import TimingError

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
    """A real board on a serial port, flashed with pyOCD or PlatformIO's upload target."""

    def __init__(self, cfg: BoardConfig):
        super().__init__(cfg)
        d = cfg.driver
        self.port = SerialPort(url=str(d.port), baud=d.baud)
        self.probe = DebugProbe(target=str(d.target or ""), unique_id=d.probe)
        self.project: Path | None = None

    def build(self, project: str | Path, estimate: MemoryEstimate | None = None, **kw: Any) -> BuildResult:
        self.project = Path(project)
        return super().build(project, estimate=estimate, **kw)

    def flash(self, artifact: BuildResult | str | Path) -> None:
        self.close()
        if self.cfg.driver.flasher == "pio":
            if self.project is None:
                raise DeviceError(f"{self.name}: the pio flasher uploads a built project; call build() first")
            PioUploader(self.project, self.cfg.name).flash()
        else:
            if not self.probe.target:
                raise DeviceError(f"{self.name}: driver.target (the pyOCD target name) is not set")
            PyOcdFlasher(self.probe).flash(_image(artifact))

    def open_transport(self) -> SerialLink:
        self.close()
        self.link = SerialLink(self.port.url, baudrate=self.port.baud)
        return self.link


def make_board(board_cfg: str | Mapping[str, Any] | BoardConfig, *, timer: str | None = None,
               timing: Any = None) -> Board:
    """The Board for a config (a name, a mapping / Hydra ``cfg.board``, or a BoardConfig); ConfigError if unknown.

    ``timer`` overrides the board's timer (``qemu-cycles`` on emulated boards) and ``timing`` names its timing
    profile (``configs/timing``); see :func:`harness.timing.apply_timer`.
    """
    cfg = load_board_config(board_cfg)
    cycles = None
    if timer not in (None, "") or timing not in (None, "") or cfg.timer.source == "qemu-cycles":
        from harness.timing import apply_timer

        cfg, cycles = apply_timer(cfg, timer, timing)
    if cfg.driver.type == "qemu":
        return QemuBoard(cfg, cycles=cycles)
    return SerialBoard(cfg)
