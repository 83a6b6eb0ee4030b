"""Board configuration (Hydra group ``board``): typed, validated once, then passed around as data.

A board yaml (``configs/board/<name>.yaml``) says what the chip is (core, clock, flash/SRAM), how the firmware is
built for it (PlatformIO board, linker script), what its timer counts and how to convert ticks to that unit, and
how to reach it (``driver.type``: ``qemu`` with machine/cpu, or ``serial`` with a port and a flasher).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from harness.config.schema import BoardSchema
from harness.errors import ConfigError, TimingError

TIMER_SOURCES = ("qemu-icount", "qemu-cycles", "dwt-cycles", "systick")
DRIVER_TYPES = ("qemu", "serial", "labgrid")
LABGRID_FLASHERS = ("gdb", "openocd")  # labgrid: a GDB server on the lab host | labgrid's OpenOCDDriver
FLASHERS = ("pyocd", "pio")
LINKS = ("serial", "rtt")  # how the host talks to a real board: a serial port, or RTT through a debug probe


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def board_config_dir() -> Path:
    return repo_root() / "configs" / "board"


def known_boards() -> list[str]:
    """Names of the boards with a yaml in ``configs/board/``."""
    return sorted(p.stem for p in board_config_dir().glob("*.yaml"))


@dataclass(frozen=True)
class MemRegion:
    base: int
    size: int


@dataclass(frozen=True)
class TimerSpec:
    """What the firmware's tick counter measures: ``count = ticks * count_per_tick`` in ``unit``."""

    source: str
    hz: int
    unit: str
    count_per_tick: float
    model: str = ""  # timer=qemu-cycles: "<timing profile>/<model version>" (counts of two models never mix)

    def to_count(self, ticks: float) -> float:
        if self.source == "qemu-cycles":
            # The firmware's ticks still count instructions; cycles come only from the timing plugin's records.
            raise TimingError("timer=qemu-cycles counts come from the timing plugin's records "
                              "(harness.timing.CycleCounter), not from the firmware's ticks; this code path does "
                              "not read them yet")
        return float(ticks) * self.count_per_tick


@dataclass(frozen=True)
class DriverSpec:
    """How to reach the board. ``qemu``: machine/cpu/extra_args. ``serial``: port/baud/flasher/target/probe/link.

    ``port`` and ``probe`` may be ``auto``/null: discovery (harness.boards.discovery) then picks the one attached
    device of this board. ``link`` is ``serial`` (the protocol on ``port``) or ``rtt`` (SEGGER RTT through the
    debug probe, no serial port needed)."""

    type: str
    machine: str | None
    cpu: str | None
    extra_args: tuple[str, ...]
    port: str | None
    baud: int
    flasher: str | None
    target: str | None
    probe: str | None
    link: str
    boot_timeout_s: float
    command_timeout_s: float
    place: str | None = None  # labgrid: the place, coordinator, reservation and flashing (DriverSchema)
    coordinator: str | None = None
    reserve: bool = True
    acquire_timeout_s: float = 600.0
    openocd_config: tuple[str, ...] = ()


@dataclass(frozen=True)
class BoardConfig:
    name: str
    core: str
    cpu_flags: tuple[str, ...]
    clock_hz: int
    flash: MemRegion
    sram: MemRegion
    linker_script: str
    platformio_board: str
    timer: TimerSpec
    driver: DriverSpec
    uart: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    default_timer: str | None = None  # what timer= means when not given (qemu-cycles: counts cycles)
    default_timing: str | None = None  # the timing profile it counts under when not given (configs/timing)

    @property
    def emulated(self) -> bool:
        return self.driver.type == "qemu"

    @property
    def firmware_dir(self) -> Path:
        """The board-support folder the firmware build needs (``firmware/boards/<platformio_board>``)."""
        return repo_root() / "firmware" / "boards" / self.platformio_board

    @property
    def buildable(self) -> bool:
        return (
            self.firmware_dir.is_dir()
            and (repo_root() / "firmware" / "platform" / "boards" / f"{self.platformio_board}.json").is_file()
        )

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> BoardConfig:
        """Validate a plain mapping (a loaded yaml or a Hydra ``cfg.board``) against :class:`BoardSchema`,
        which holds every default, then check the values the schema's types cannot."""
        name = str(m.get("name", "?"))
        raw = {k: v for k, v in m.items() if k != "defaults"}
        try:
            typed = OmegaConf.merge(OmegaConf.structured(BoardSchema), raw)
            d = OmegaConf.to_container(typed, resolve=True, throw_on_missing=True)
        except OmegaConfBaseException as exc:
            key = getattr(exc, "full_key", None) or "?"
            msg = str(getattr(exc, "msg", exc)).splitlines()[0]
            if isinstance(exc, MissingMandatoryValue):
                msg = "missing required key"
            raise ConfigError(f"board '{name}': {msg}: '{key}'") from None
        t, drv = d["timer"], d["driver"]
        timer = TimerSpec(t["source"], t["hz"], t["unit"], t["count_per_tick"], t["model"])
        if timer.source not in TIMER_SOURCES:
            raise ConfigError(f"board '{name}': timer.source '{timer.source}' is not one of {TIMER_SOURCES}")
        if drv["type"] not in DRIVER_TYPES:
            raise ConfigError(f"board '{name}': driver.type '{drv['type']}' is not one of {DRIVER_TYPES}")
        driver = DriverSpec(**{**drv, "extra_args": tuple(drv["extra_args"]),
                               "openocd_config": tuple(drv["openocd_config"])})
        if driver.type == "labgrid":
            if not driver.place:
                raise ConfigError(f"board '{name}': a labgrid driver needs driver.place (the farm's place name)")
            if (driver.flasher or "gdb") not in LABGRID_FLASHERS:
                raise ConfigError(f"board '{name}': a labgrid driver's flasher must be one of {LABGRID_FLASHERS}")
        if driver.type == "qemu" and not driver.machine:
            raise ConfigError(f"board '{name}': a qemu driver needs driver.machine")
        if driver.type == "serial":
            if not driver.port:
                raise ConfigError(f"board '{name}': a serial driver needs driver.port")
            if driver.flasher not in FLASHERS:
                raise ConfigError(f"board '{name}': driver.flasher must be one of {FLASHERS}")
            if driver.link not in LINKS:
                raise ConfigError(f"board '{name}': driver.link must be one of {LINKS}")
        cfg = cls(
            name=d["name"],
            core=d["core"],
            cpu_flags=tuple(d["cpu_flags"]),
            clock_hz=d["clock_hz"],
            flash=MemRegion(**d["flash"]),
            sram=MemRegion(**d["sram"]),
            linker_script=d["linker_script"],
            platformio_board=d["platformio_board"] or d["name"],
            timer=timer,
            driver=driver,
            uart=dict(d["uart"]),
            description=d["description"],
            default_timer=d["default_timer"],
            default_timing=d["default_timing"],
        )
        if cfg.sram.size <= 0 or cfg.flash.size <= 0:
            raise ConfigError(f"board '{name}': flash and sram sizes must be positive")
        return cfg


def load_board_config(board: str | Mapping[str, Any] | BoardConfig) -> BoardConfig:
    """A :class:`BoardConfig` from a board name (``configs/board/<name>.yaml``), a mapping or a DictConfig."""
    if isinstance(board, BoardConfig):
        return board
    if isinstance(board, str):
        path = board_config_dir() / f"{board}.yaml"
        if not path.is_file():
            raise ConfigError(f"unknown board '{board}'; known boards: {', '.join(known_boards())}")
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        if not isinstance(data, dict):
            raise ConfigError(f"{path} is not a mapping of board settings")
        return BoardConfig.from_mapping(data)
    if isinstance(board, DictConfig):
        board = OmegaConf.to_container(board, resolve=True)  # type: ignore[assignment]
    if not isinstance(board, Mapping):
        raise ConfigError(f"a board must be a name or a mapping, not {type(board).__name__}")
    return BoardConfig.from_mapping(board)
