"""labgrid classes for a farm board flashed through a network GDB server.

``GdbServer`` is the resource (a lab host exports it like any other: ``GdbServer: {host: ..., port: ...}`` in the
exporter's YAML): a GDB remote-protocol server in front of one board, QEMU's gdbstub for an emulated board, pyOCD's
or OpenOCD's gdbserver in front of a debug probe. ``GdbLoadDriver`` binds to it and implements labgrid's
``BootstrapProtocol``: ``load(elf)`` writes the image through the server and starts it
(:mod:`harness.boards.gdb_loader`). Importing this module registers both with labgrid's target factory.
"""

from __future__ import annotations

from typing import ClassVar

import attr
from labgrid.driver.common import Driver
from labgrid.factory import target_factory
from labgrid.protocol import BootstrapProtocol
from labgrid.resource.common import NetworkResource
from labgrid.step import step
from labgrid.util.proxy import proxymanager

from harness.boards.gdb_loader import MONITOR_RESET, load_elf


@target_factory.reg_resource
@attr.s(eq=False)
class GdbServer(NetworkResource):
    """A GDB remote-protocol server on ``host:port`` in front of one board; ``kind`` says how it resets the
    target (``qemu``, ``openocd``, ``pyocd``)."""

    port = attr.ib(validator=attr.validators.instance_of(int))
    kind = attr.ib(default="qemu", validator=attr.validators.in_(tuple(MONITOR_RESET)))


@target_factory.reg_driver
@attr.s(eq=False)
class GdbLoadDriver(Driver, BootstrapProtocol):
    """Load an ELF image through the place's :class:`GdbServer` and start it."""

    bindings: ClassVar[dict] = {"server": {"GdbServer"}}
    timeout = attr.ib(default=10.0, validator=attr.validators.instance_of(float))

    def __attrs_post_init__(self):
        super().__attrs_post_init__()
        self.bytes_written = 0

    @Driver.check_active
    @step(args=["filename"])
    def load(self, filename: str) -> None:
        host, port = proxymanager.get_host_and_port(self.server)  # direct, or an SSH tunnel to an isolated host
        self.bytes_written = load_elf(host, port, filename, self.server.kind, self.timeout)
