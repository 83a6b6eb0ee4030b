"""Resources: passive descriptions of how a board is reached (labgrid's split). Drivers bind to these."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QemuMachine:
    """An emulated board: ``qemu-system-arm -M machine -cpu cpu``."""

    machine: str
    cpu: str | None = None
    binary: str = "qemu-system-arm"
    extra_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class SerialPort:
    """A serial line: a device path (``/dev/ttyACM0``) or any pyserial URL (``socket://host:port``, ``rfc2217://``)."""

    url: str
    baud: int = 115200


@dataclass(frozen=True)
class DebugProbe:
    """A debug probe for flashing: pyOCD target name and, when several probes are attached, the probe's id."""

    target: str
    unique_id: str | None = None
