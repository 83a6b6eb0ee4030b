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

from harness.errors import ConfigError

TIMER_SOURCES = ("qemu-icount", "qemu-cycles", "dwt-cycles", "systick")
DRIVER_TYPES = ("qemu", "serial")
FLASHERS = ("pyocd", "pio")


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
            from harness.errors import TimingError

            raise TimingError("timer=qemu-cycles counts come from the timing plugin's records "
                              "(harness.timing.CycleCounter), not from the firmware's ticks; this code path does "
                              "not read them yet")
        return float(ticks) * self.count_per_tick


@dataclass(frozen=True)
class DriverSpec:
    """How to reach the board. ``qemu``: machine/cpu/extra_args. ``serial``: port/baud/flasher/target/probe."""

    type: str
    machine: str | None = None
    cpu: str | None = None
    extra_args: tuple[str, ...] = ()
    port: str | None = None
    baud: int = 115200
    flasher: str | None = None
    target: str | None = None
    probe: str | None = None
    boot_timeout_s: float = 10.0
    command_timeout_s: float = 60.0


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
        """Validate a plain mapping (a loaded yaml or a Hydra ``cfg.board``)."""
        name = str(m.get("name", "?"))

        def need(key: str, where: Mapping[str, Any] = m, prefix: str = "") -> Any:
            if key not in where or where[key] is None:
                raise ConfigError(f"board '{name}': missing required key '{prefix}{key}'")
            return where[key]

        def region(key: str) -> MemRegion:
            r = need(key)
            try:
                return MemRegion(base=int(need("base", r, f"{key}.")), size=int(need("size", r, f"{key}.")))
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"board '{name}': {key}.base/size must be integers") from exc

        t = need("timer")
        timer = TimerSpec(
            source=str(need("source", t, "timer.")),
            hz=int(need("hz", t, "timer.")),
            unit=str(t.get("unit", "ticks")),
            count_per_tick=float(need("count_per_tick", t, "timer.")),
        )
        if timer.source not in TIMER_SOURCES:
            raise ConfigError(f"board '{name}': timer.source '{timer.source}' is not one of {TIMER_SOURCES}")
        d = need("driver")
        dtype = str(need("type", d, "driver."))
        if dtype not in DRIVER_TYPES:
            raise ConfigError(f"board '{name}': driver.type '{dtype}' is not one of {DRIVER_TYPES}")
        driver = DriverSpec(
            type=dtype,
            machine=d.get("machine"),
            cpu=d.get("cpu"),
            extra_args=tuple(str(a) for a in (d.get("extra_args") or ())),
            port=d.get("port"),
            baud=int(d.get("baud", 115200) or 115200),
            flasher=d.get("flasher"),
            target=d.get("target"),
            probe=d.get("probe"),
            boot_timeout_s=float(d.get("boot_timeout_s", 10.0)),
            command_timeout_s=float(d.get("command_timeout_s", 60.0)),
        )
        if dtype == "qemu" and not driver.machine:
            raise ConfigError(f"board '{name}': a qemu driver needs driver.machine")
        if dtype == "serial":
            if not driver.port:
                raise ConfigError(f"board '{name}': a serial driver needs driver.port")
            if driver.flasher not in FLASHERS:
                raise ConfigError(f"board '{name}': driver.flasher must be one of {FLASHERS}")
        cfg = cls(
            name=str(need("name")),
            core=str(need("core")),
            cpu_flags=tuple(str(f) for f in need("cpu_flags")),
            clock_hz=int(need("clock_hz")),
            flash=region("flash"),
            sram=region("sram"),
            linker_script=str(need("linker_script")),
            platformio_board=str(m.get("platformio_board") or m["name"]),
            timer=timer,
            driver=driver,
            uart=dict(m.get("uart") or {}),
            description=str(m.get("description", "")),
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
        from omegaconf import OmegaConf

        data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        assert isinstance(data, dict)
        return BoardConfig.from_mapping(data)
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(board, DictConfig):
            board = OmegaConf.to_container(board, resolve=True)  # type: ignore[assignment]
    except ImportError:  # pragma: no cover
        pass
    if not isinstance(board, Mapping):
        raise ConfigError(f"a board must be a name or a mapping, not {type(board).__name__}")
    return BoardConfig.from_mapping(board)
