"""``tinyhil boards``: what is configured, what is attached, and which is which.

Prints three tables: the configured boards (core, clock, timer and unit, firmware support, whether the demo firmware
builds and its flash/SRAM), the attached debug probes and USB serial ports with the configured board(s) each may
be, and for every real board the device a run would pick by itself (or why it cannot). The summary has the same in
flat keys (``board_<name>_builds``, ``probe_<i>_id``, ...).
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from harness import FIRMWARE_DIR
from harness.boards.discovery import (
    all_rules,
    configured_boards,
    identify,
    list_ports,
    list_probes,
    needs,
    resolve_port,
    resolve_probe,
)
from harness.build.project import build, generate_project
from harness.config.board import load_board_config
from harness.errors import TinyHilError
from harness.experiments.common import workdir


def build_demo(board: str, workdir: Path) -> dict:
    """Build firmware/demo for ``board`` (cached by content); the result's sizes, or the error."""

    try:
        project = generate_project(board, FIRMWARE_DIR / "demo", workdir / board)
        r = build(project, board)
        return {"builds": True, "flash_used": r.flash_used, "sram_used": r.sram_used}
    except TinyHilError as e:
        return {"builds": False, "error": str(e).splitlines()[0]}


def _short(message: str) -> str:
    """The reason of a discovery error without the board name and the how-to."""
    reason = message.split(": ", 1)[-1]
    for cut in (" (", ". ", "; "):
        reason = reason.split(cut, 1)[0]
    return reason


def _use(needed: bool, resolve, board, devices) -> str:
    """The device a run would take, or why there is none."""
    if not needed:
        return "not needed"
    try:
        return resolve(board, devices)
    except TinyHilError as e:
        return _short(str(e))


def _mhz(hz: int) -> str:
    return f"{hz / 1e6:g} MHz"


def run(cfg: DictConfig, run_dir: Path) -> dict:
    console = Console(width=None if sys.stdout.isatty() else 150)
    summary: dict = {"command": "boards"}
    boards = configured_boards()
    build_dir = workdir(cfg, "boards")

    t = Table(title="configured boards")
    for col in ("board", "core", "clock", "timer (unit)", "kind", "firmware", "builds", "flash / SRAM used"):
        t.add_column(col)
    for b in boards:
        result = build_demo(b.name, build_dir) if (cfg.build and b.buildable) else {}
        builds = "yes" if result.get("builds") else ("no" if result else "-")
        used = (
            f"{result['flash_used']} / {result['sram_used']} B"
            if result.get("builds")
            else result.get("error", "")
        )
        t.add_row(b.name, b.core, _mhz(b.clock_hz), f"{b.timer} ({b.unit})", "emulated" if b.emulated else "real",
                  "yes" if b.buildable else "no support", builds, used)  # fmt: skip
        summary[f"board_{b.name}"] = {
            "core": b.core, "clock_hz": b.clock_hz, "timer": b.timer, "unit": b.unit, "emulated": b.emulated,
            "buildable": b.buildable, "builds": result.get("builds") if result else None,
            "flash_used": result.get("flash_used"), "sram_used": result.get("sram_used"),
        }  # fmt: skip
    console.print(t)

    probes, ports = list_probes(), list_ports()
    rules = all_rules([b.name for b in boards])
    attached = identify(probes, ports, rules)
    t = Table(title="attached debug probes (pyOCD) and USB serial ports (pyserial)")
    for col in ("kind", "id / device", "what", "configured board"):
        t.add_column(col)
    for a in attached:
        t.add_row(a.kind, a.ident, a.detail, ", ".join(a.boards) or "-")
    if not attached:
        t.add_row("-", "-", "no debug probe and no USB serial port attached", "-")
    console.print(t)
    summary["probes"] = len(probes)
    summary["ports"] = sum(1 for p in ports if p.usb_id)
    for i, a in enumerate(attached):
        summary[f"{a.kind}_{i}"] = {"id": a.ident, "what": a.detail, "boards": ",".join(a.boards)}

    t = Table(title="what a run would use")
    for col in ("board", "probe", "port"):
        t.add_column(col)
    for b in boards:
        if b.emulated:
            continue
        bc = load_board_config(b.name)
        needs_probe, needs_port = needs(bc)
        cells = [_use(needs_probe, resolve_probe, bc, probes), _use(needs_port, resolve_port, bc, ports)]
        t.add_row(b.name, *cells)
        summary[f"use_{b.name}"] = {"probe": cells[0], "port": cells[1]}
    console.print(t)
    return summary
