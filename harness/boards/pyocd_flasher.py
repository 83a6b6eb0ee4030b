"""Flashing through a debug probe with pyOCD's Python API (no subprocess, no waiting for a probe).

``PyOcdFlasher(DebugProbe(target, unique_id)).flash(elf)`` programs the ELF's loadable sections (pyOCD erases only
the sectors it writes, so the Nano 33 BLE's bootloader below 0x10000 stays) and resets the core so the new
firmware runs. ``pyocd_session`` opens a session on one attached probe for other users (the RTT transport).
Every failure is a DeviceError naming the probe and the fix; none of this ever blocks waiting for a probe.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.boards.resources import DebugProbe
from harness.errors import DeviceError, MissingDependencyError


def _probe_for(unique_id: str | None, target: str) -> Any:
    try:
        from pyocd.core.helpers import ConnectHelper
    except ImportError as exc:  # pragma: no cover - pyocd is a declared dependency
        raise MissingDependencyError("pyocd is not installed: pip install pyocd") from exc
    probes = ConnectHelper.get_all_connected_probes(blocking=False)
    if unique_id:
        probes = [p for p in probes if unique_id in str(p.unique_id)]
    if not probes:
        which = f" with unique id {unique_id}" if unique_id else ""
        raise DeviceError(
            f"no debug probe connected{which} for target {target}: attach the board's ST-LINK / CMSIS-DAP / J-Link "
            f"probe (`tinyhil boards` lists what is attached) or name one with board.driver.probe=<unique id>"
        )
    if len(probes) > 1:
        ids = ", ".join(str(p.unique_id) for p in probes)
        raise DeviceError(
            f"several debug probes are attached ({ids}): choose one with board.driver.probe=<unique id>"
        )
    return probes[0]


@contextlib.contextmanager
def pyocd_session(probe: DebugProbe, connect_mode: str = "halt", **options: Any) -> Iterator[Any]:
    """An open pyOCD session on ``probe`` (``connect_mode='attach'`` leaves a running core running)."""
    from pyocd.core.session import Session

    if not probe.target:
        raise DeviceError("no pyOCD target name: set board.driver.target (e.g. stm32h743xx, nrf52840)")
    dev = _probe_for(probe.unique_id, probe.target)
    logging.getLogger("pyocd").setLevel(logging.WARNING)
    session = Session(
        dev,
        auto_open=False,
        options={"target_override": probe.target, "connect_mode": connect_mode, **options},
    )
    try:
        session.open()
    except Exception as exc:
        raise DeviceError(
            f"pyOCD could not connect to target {probe.target} through probe {dev.unique_id}: {exc} (is the board "
            f"powered and the SWD cable seated? is another debugger using the probe?)"
        ) from exc
    try:
        yield session
    finally:
        with contextlib.suppress(Exception):
            session.close()


class PyOcdFlasher:
    """Programs an ELF through one attached probe and restarts the core."""

    def __init__(self, probe: DebugProbe):
        self.probe = probe

    def flash(self, image: str | Path) -> None:
        from pyocd.flash.file_programmer import FileProgrammer

        image = Path(image)
        if not image.is_file():
            raise DeviceError(f"firmware image {image} does not exist")
        with pyocd_session(self.probe, connect_mode="halt") as session:
            try:
                FileProgrammer(session).program(str(image), file_format="elf")
                session.board.target.reset()
            except Exception as exc:
                raise DeviceError(
                    f"pyOCD failed to flash {image.name} to {self.probe.target}: {exc}"
                ) from exc
