"""Discovery: which boards are configured, which debug probes and serial ports are attached, and which is which.

A board yaml may carry a ``discovery`` block (read from the raw yaml; the typed BoardConfig ignores it)::

    discovery:
      pyocd_targets: [stm32h743zitx, stm32h743xx]   # pyOCD board-info targets that mean this board
      probe_products: [STLINK, ST-LINK]               # substrings of an on-board probe's product name
      serial_usb: ["0483:374b", "0483:374e"]          # VID:PID of the board's serial port(s); an entry
                                                      # {id: ..., what: ..., bootloader: true} is the board's
                                                      # bootloader: it names the board, never the protocol port
      external_probe: false                           # any generic SWD probe may be wired to it (Nano 33 BLE)

Probes come from pyOCD (``ConnectHelper.get_all_connected_probes(blocking=False)``: returns at once, empty when
none is attached), ports from pyserial (``serial.tools.list_ports.comports()``). An ST-LINK's virtual COM port
carries the probe's unique id as its USB serial number, which ties a port to its probe.

``resolve_probe`` / ``resolve_port`` pick the one attached device a run needs: with ``driver.probe`` /
``driver.port`` set they check it is there; otherwise exactly one match is taken by itself, and none or several
is a DeviceError that lists what is attached and names the override.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from omegaconf import OmegaConf
from serial.tools import list_ports as pyserial_ports

from harness.config.board import BoardConfig, board_config_dir, known_boards, load_board_config
from harness.errors import DeviceError, MissingDependencyError

AUTO = ("", "auto", "none", "null")


@dataclass(frozen=True)
class ProbeInfo:
    """An attached debug probe as pyOCD reports it."""

    unique_id: str
    vendor: str = ""
    product: str = ""
    description: str = ""
    board_name: str = ""  # pyOCD's board database entry for this probe (on-board probes), or ""
    board_target: str = ""


@dataclass(frozen=True)
class PortInfo:
    """An attached serial port as pyserial reports it (vid/pid None for ports that are not USB)."""

    device: str
    vid: int | None = None
    pid: int | None = None
    serial_number: str = ""
    description: str = ""
    manufacturer: str = ""

    @property
    def usb_id(self) -> str:
        return f"{self.vid:04x}:{self.pid:04x}" if self.vid is not None and self.pid is not None else ""


@dataclass(frozen=True)
class DiscoveryRule:
    """How to recognise a board's devices (the yaml's ``discovery`` block)."""

    pyocd_targets: tuple[str, ...] = ()
    probe_products: tuple[str, ...] = ()
    serial_usb: tuple[str, ...] = ()
    serial_names: dict[str, str] = field(default_factory=dict)  # VID:PID -> what it is
    bootloader_usb: tuple[str, ...] = ()  # VID:PIDs (also in serial_usb) of the board's bootloader
    external_probe: bool = False
    hint: str = ""  # appended to "no probe / no port" errors: this board's other ways in

    @classmethod
    def from_mapping(cls, m: dict[str, Any] | None) -> DiscoveryRule:
        m = m or {}
        usb = m.get("serial_usb") or ()
        names: dict[str, str] = {}
        ids: list[str] = []
        boot: list[str] = []
        for entry in usb:
            if isinstance(entry, dict):
                ids.append(str(entry["id"]).lower())
                names[str(entry["id"]).lower()] = str(entry.get("what", ""))
                if entry.get("bootloader"):
                    boot.append(ids[-1])
            else:
                ids.append(str(entry).lower())
        return cls(
            pyocd_targets=tuple(str(t).lower() for t in m.get("pyocd_targets") or ()),
            probe_products=tuple(str(p).lower() for p in m.get("probe_products") or ()),
            serial_usb=tuple(ids),
            serial_names=names,
            bootloader_usb=tuple(boot),
            external_probe=bool(m.get("external_probe", False)),
            hint=str(m.get("hint") or ""),
        )


def discovery_rule(board: str) -> DiscoveryRule:
    """The ``discovery`` block of ``configs/board/<board>.yaml`` (empty for boards without one)."""

    path = board_config_dir() / f"{board}.yaml"
    if not path.is_file():
        return DiscoveryRule()
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    return DiscoveryRule.from_mapping(raw.get("discovery") if isinstance(raw, dict) else None)


# --- what is attached --------------------------------------------------------------------------------------------


def list_probes() -> list[ProbeInfo]:
    """Attached debug probes (pyOCD); an empty list when none is attached. Never waits for one."""
    try:
        from pyocd.core.helpers import ConnectHelper
    except ImportError as exc:  # pragma: no cover - pyocd is a declared dependency
        raise MissingDependencyError("pyocd is not installed: pip install pyocd") from exc
    out = []
    for p in ConnectHelper.get_all_connected_probes(blocking=False):
        try:
            info = p.associated_board_info
        except Exception:  # noqa: BLE001 - a probe whose board info cannot be read is still a probe
            info = None
        out.append(
            ProbeInfo(
                unique_id=str(p.unique_id),
                vendor=str(getattr(p, "vendor_name", "") or ""),
                product=str(getattr(p, "product_name", "") or ""),
                description=str(getattr(p, "description", "") or ""),
                board_name=str(info.name) if info else "",
                board_target=str(info.target) if info else "",
            )
        )
    return out


def list_ports() -> list[PortInfo]:
    """Attached serial ports (pyserial), USB ones first."""

    ports = [
        PortInfo(
            device=p.device,
            vid=p.vid,
            pid=p.pid,
            serial_number=str(p.serial_number or ""),
            description=str(p.description or ""),
            manufacturer=str(p.manufacturer or ""),
        )
        for p in pyserial_ports.comports()
    ]
    return sorted(ports, key=lambda p: (p.vid is None, p.device))


# --- which board is which ----------------------------------------------------------------------------------------


def probe_matches(probe: ProbeInfo, rule: DiscoveryRule) -> bool:
    """True when the probe is this board's own (on-board) probe."""
    if probe.board_target and probe.board_target.lower() in rule.pyocd_targets:
        return True
    name = f"{probe.product} {probe.description}".lower()
    return any(s in name for s in rule.probe_products)


def probe_is_generic(probe: ProbeInfo, rules: dict[str, DiscoveryRule]) -> bool:
    """A probe that is no board's on-board probe (a J-Link, a CMSIS-DAP adapter): any SWD target may be on it."""
    return not probe.board_target and not any(probe_matches(probe, r) for r in rules.values())


def port_matches(port: PortInfo, rule: DiscoveryRule) -> bool:
    return bool(port.usb_id) and port.usb_id in rule.serial_usb


def protocol_port_matches(port: PortInfo, rule: DiscoveryRule) -> bool:
    """A port of this board that speaks the protocol: its serial port, not its bootloader's (the Nano 33 BLE's
    bootloader shows up as 2341:005a only while an upload runs)."""
    return port_matches(port, rule) and port.usb_id not in rule.bootloader_usb


def all_rules(boards: Iterable[str] | None = None) -> dict[str, DiscoveryRule]:
    return {b: discovery_rule(b) for b in (boards if boards is not None else known_boards())}


@dataclass(frozen=True)
class Attached:
    """One attached device and the configured boards it may be."""

    kind: str  # "probe" | "port"
    ident: str  # probe unique id or port device
    detail: str
    boards: tuple[str, ...]


def identify(
    probes: Sequence[ProbeInfo], ports: Sequence[PortInfo], rules: dict[str, DiscoveryRule]
) -> list[Attached]:
    """Every attached probe and USB serial port with the configured boards it may belong to."""
    out = []
    for p in probes:
        own = tuple(b for b, r in rules.items() if probe_matches(p, r))
        if not own and probe_is_generic(p, rules):
            own = tuple(b for b, r in rules.items() if r.external_probe)
        detail = " ".join(x for x in (p.vendor, p.product, f"({p.board_name})" if p.board_name else "") if x)
        out.append(Attached("probe", p.unique_id, detail or p.description, own))
    for port in ports:
        if not port.usb_id:
            continue
        own = tuple(b for b, r in rules.items() if port_matches(port, r))
        what = next(
            (r.serial_names.get(port.usb_id, "") for r in rules.values() if port_matches(port, r)), ""
        )
        detail = f"{port.usb_id} {what or port.description}".strip()
        out.append(Attached("port", port.device, detail, own))
    return out


def _listing(items: Sequence[str]) -> str:
    return "; ".join(items) if items else "none"


def candidate_probes(cfg: BoardConfig, probes: Sequence[ProbeInfo]) -> list[ProbeInfo]:
    rules = all_rules()
    rule = rules.get(cfg.name) or discovery_rule(cfg.name)
    own = [p for p in probes if probe_matches(p, rule)]
    if own or not rule.external_probe:
        return own
    return [p for p in probes if probe_is_generic(p, rules)]


def resolve_probe(cfg: BoardConfig, probes: Sequence[ProbeInfo] | None = None) -> str:
    """The unique id of the debug probe this board's run uses (DeviceError when it cannot be decided)."""
    probes = list_probes() if probes is None else list(probes)
    want = str(cfg.driver.probe or "").strip()
    seen = [f"{p.unique_id} ({p.product or p.description or p.vendor})" for p in probes]
    if want.lower() not in AUTO:
        hits = [p for p in probes if want in p.unique_id]
        if len(hits) == 1:
            return hits[0].unique_id
        raise DeviceError(
            f"{cfg.name}: the debug probe board.driver.probe={want} is not attached"
            + (" uniquely" if hits else "")
            + f" (attached probes: {_listing(seen)}); run `tinyhil boards` to list them"
        )
    cands = candidate_probes(cfg, probes)
    if len(cands) == 1:
        return cands[0].unique_id
    if not cands:
        what = (
            "no debug probe is attached"
            if not probes
            else f"none of the attached probes ({_listing(seen)}) is its probe"
        )
        hint = discovery_rule(cfg.name).hint
        raise DeviceError(
            f"{cfg.name}: {what}. Connect the board's debug USB port (ST-LINK on a NUCLEO, an SWD probe on a Nano "
            f"33 BLE), or name the probe with board.driver.probe=<unique id> (`tinyhil boards` lists attached "
            f"probes), or build without a board: build_only=true" + (f". {hint}" if hint else "")
        )
    listed = [f"{p.unique_id} ({p.product or p.description})" for p in cands]
    raise DeviceError(
        f"{cfg.name}: {len(cands)} debug probes could be this board: {_listing(listed)}; choose one with "
        f"board.driver.probe=<unique id>"
    )


def resolve_port(
    cfg: BoardConfig,
    ports: Sequence[PortInfo] | None = None,
    probe_uid: str | None = None,
    wait_s: float = 0.0,
) -> str:
    """The serial port this board's run uses; waits up to ``wait_s`` for one to appear (a board re-enumerating
    after a reset). An explicit ``driver.port`` (a device or any pyserial URL) is taken as is."""
    want = str(cfg.driver.port or "").strip()
    if want.lower() not in AUTO:
        return want
    rule = discovery_rule(cfg.name)
    deadline = time.monotonic() + wait_s
    while True:
        found = list_ports() if ports is None else list(ports)
        cands = [p for p in found if protocol_port_matches(p, rule)]
        if probe_uid:
            same = [p for p in cands if p.serial_number and p.serial_number == probe_uid]
            cands = same or cands
        if len(cands) == 1:
            return cands[0].device
        if cands or ports is not None or time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    seen = [f"{p.device} {p.usb_id}".strip() for p in found if p.usb_id]
    if not cands:
        ids = ", ".join(i for i in rule.serial_usb if i not in rule.bootloader_usb) or "none configured"
        boot = [p for p in found if port_matches(p, rule) and p.usb_id in rule.bootloader_usb]
        if boot:
            raise DeviceError(
                f"{cfg.name}: the board is in its bootloader ({boot[0].device}, USB {boot[0].usb_id}), not running "
                f"firmware; upload with board.driver.flasher=pio, or press its reset button once to start the "
                f"firmware it has"
            )
        raise DeviceError(
            f"{cfg.name}: no serial port of this board is attached (looked for USB {ids}; attached USB ports: "
            f"{_listing(seen)}); connect it, or name the port with board.driver.port=/dev/ttyACM0 (or any pyserial "
            f"URL), or build without a board: build_only=true"
        )
    listed = [f"{p.device} ({p.usb_id} {p.serial_number})" for p in cands]
    raise DeviceError(
        f"{cfg.name}: {len(cands)} serial ports could be this board: {_listing(listed)}; choose one with "
        f"board.driver.port=<device>"
    )


def link_of(cfg: BoardConfig) -> str:
    """How the host talks to the board: ``serial`` (a port) or ``rtt`` (memory access through a debug probe)."""
    return str(getattr(cfg.driver, "link", None) or "serial")


def needs(cfg: BoardConfig) -> tuple[bool, bool]:
    """(needs a debug probe, needs a serial port) for this board's flasher and link."""
    return cfg.driver.flasher == "pyocd" or link_of(cfg) == "rtt", link_of(cfg) == "serial"


def preflight(cfg: BoardConfig) -> dict[str, str]:
    """Check, in about a second and before any long work, that a real board's devices are attached; returns the
    resolved ``{"probe": uid, "port": device}`` a run should use. Emulated boards need nothing."""
    if cfg.emulated:
        return {}
    needs_probe, needs_port = needs(cfg)
    resolved: dict[str, str] = {}
    if needs_probe:
        resolved["probe"] = resolve_probe(cfg)
    if needs_port:
        resolved["port"] = resolve_port(cfg, probe_uid=resolved.get("probe"))
    return resolved


# --- the configured boards -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoardSummary:
    name: str
    core: str
    clock_hz: int
    timer: str
    unit: str
    emulated: bool
    buildable: bool
    flash_size: int
    sram_size: int
    description: str


def configured_boards() -> list[BoardSummary]:
    out = []
    for name in known_boards():
        cfg = load_board_config(name)
        out.append(
            BoardSummary(
                name=cfg.name,
                core=cfg.core,
                clock_hz=cfg.clock_hz,
                timer=cfg.timer.source,
                unit=cfg.timer.unit,
                emulated=cfg.emulated,
                buildable=cfg.buildable,
                flash_size=cfg.flash.size,
                sram_size=cfg.sram.size,
                description=cfg.description,
            )
        )
    return out
