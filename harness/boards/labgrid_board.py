"""A board of a labgrid farm (``driver.type: labgrid``): the same Board interface as a local board.

``flash(image)`` reserves and acquires the place (:class:`~harness.boards.labgrid_place.FarmPlace`), builds the
labgrid target of its resources and loads the image with the place's ``BootstrapProtocol`` driver: ``flasher:
gdb`` (default) is :class:`~harness.boards.labgrid_gdb.GdbLoadDriver` on the place's ``GdbServer`` (QEMU's gdbstub
or a probe's gdbserver on the lab host), ``flasher: openocd`` is labgrid's ``OpenOCDDriver`` on the place's
``USBDebugger`` (an ST-LINK on a lab host; ``driver.openocd_config`` names its config files).
``open_transport()`` opens the place's serial port (``NetworkSerialPort``, named ``console`` when the place has
several) with labgrid's ``SerialDriver`` and wraps it as the protocol's link. ``close()`` deactivates the drivers
and releases the place (and the reservation), so other users get the board between two images. The core never
knows: it sees a Board.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from labgrid.driver import OpenOCDDriver, SerialDriver
from pexpect import TIMEOUT

from harness.boards.board import Board, _image
from harness.boards.labgrid_gdb import GdbLoadDriver
from harness.boards.labgrid_place import FarmPlace
from harness.config.board import BoardConfig
from harness.errors import DeviceError
from harness.transport.link import BLOCK, SerialLink

CONSOLE = "console"


class LabgridPort:
    """The link's byte port over labgrid's SerialDriver (its ConsoleProtocol ``read``/``write``)."""

    def __init__(self, driver: SerialDriver):
        self.driver = driver

    def read_some(self, timeout: float) -> bytes | None:
        try:
            return self.driver.read(size=1, timeout=max(0.0, min(timeout, 0.05)), max_size=BLOCK)
        except TIMEOUT:
            return b""

    def write(self, data: bytes) -> None:
        self.driver.write(data)

    def close(self) -> None:
        pass  # the driver is deactivated with the target


def _named(target: Any, cls_name: str, prefer: str | None = None) -> str | None:
    """The name of the target's resource of class ``cls_name`` (``prefer`` when there are several)."""
    names = [r.name for r in target.resources if type(r).__name__ == cls_name]
    if not names:
        return None
    if len(names) > 1 and prefer in names:
        return prefer
    if len(names) > 1:
        raise DeviceError(f"the labgrid place has {len(names)} {cls_name} resources ({', '.join(map(str, names))}); "
                          f"name the board's one {prefer!r} in the place's match (labgrid-client add-named-match)")
    return names[0]


class LabgridBoard(Board):
    """A farm board behind a labgrid place; see the module docstring."""

    def __init__(self, cfg: BoardConfig):
        super().__init__(cfg)
        d = cfg.driver
        self.place = FarmPlace(str(d.place), d.coordinator, reserve=d.reserve, timeout=d.acquire_timeout_s)
        self.target: Any = None
        self.image: Path | None = None
        self.flash_seconds = 0.0

    def _bootstrap(self):
        t = self.target
        if (self.cfg.driver.flasher or "gdb") == "openocd":
            debugger = _named(t, "NetworkUSBDebugger") or _named(t, "USBDebugger")
            if debugger is None:
                raise DeviceError(f"{self.name}: labgrid place {self.place.name} has no USBDebugger for OpenOCD")
            t.set_binding_map({"interface": debugger})
            return OpenOCDDriver(t, name=None, config=list(self.cfg.driver.openocd_config))
        server = _named(t, "GdbServer")
        if server is None:
            raise DeviceError(f"{self.name}: labgrid place {self.place.name} has no GdbServer resource to flash "
                              "through (export one on the lab host, or use board.driver.flasher=openocd)")
        t.set_binding_map({"server": server})
        return GdbLoadDriver(t, name=None, timeout=float(self.cfg.driver.boot_timeout_s))

    def flash(self, artifact) -> None:
        self.close()
        image = _image(artifact)
        if not image.is_file():
            raise DeviceError(f"firmware image {image} does not exist")
        t0 = time.monotonic()
        self.place.acquire()
        try:
            self.target = self.place.target()
            loader = self._bootstrap()
            self.target.activate(loader)
            loader.load(str(image))
        except BaseException:
            self.close()
            raise
        self.image = image
        self.flash_seconds = time.monotonic() - t0

    def open_transport(self) -> SerialLink:
        if self.image is None or self.target is None:
            raise DeviceError(f"{self.name}: nothing flashed yet (call flash() with a built image)")
        if self.link is not None:
            self.link.close()
            self.link = None
        port = _named(self.target, "NetworkSerialPort", prefer=CONSOLE) or _named(self.target, "RawSerialPort")
        if port is None:
            raise DeviceError(f"{self.name}: labgrid place {self.place.name} has no serial port resource")
        try:
            driver = self.target.get_driver(SerialDriver, name=port, activate=False)
        except Exception:  # noqa: BLE001 - labgrid's NoDriverFoundError: make one
            self.target.set_binding_map({"port": port})
            driver = SerialDriver(self.target, name=port)
        self.target.activate(driver)
        self.link = SerialLink(f"labgrid://{self.place.name}/{port}", port=LabgridPort(driver))
        return self.link

    def close(self) -> None:
        super().close()
        if self.target is not None:
            try:
                self.target.deactivate_all_drivers()
            except Exception:  # noqa: BLE001,S110 - a dead connection: release the place all the same
                pass
            self.target = None
        self.place.release()
