"""Timing profiles (``configs/timing/<name>.yaml``): what an emulated board's cycles stand for.

A profile names the core model (``configs/timing/core/<core>.yaml``), the clock, and what each part of the
emulated board's memory is on the real chip (``placement``: ``code`` = the board's flash with .text/.rodata, code and
weights; ``data`` = the board's SRAM below the stack, .data/.bss with arena and scratch; ``stack``), with each
memory's wait states, cacheability and line-fill costs, and the caches' geometry. Every number carries its source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from harness.config.board import BoardConfig, repo_root
from harness.errors import ConfigError

PLACEMENT_ROLES = ("code", "data", "stack")


def timing_config_dir() -> Path:
    return repo_root() / "configs" / "timing"


def known_profiles() -> list[str]:
    return sorted(p.stem for p in timing_config_dir().glob("*.yaml"))


@dataclass(frozen=True)
class Memory:
    """One kind of memory on the real chip, as the plugin charges it (cycles)."""

    name: str
    size: int | None = None  # bytes on the real chip (None: not limited)
    fetch_ws: int = 0  # per instruction-fetch word outside the I-cache
    read_ws: int = 0  # per data read outside the D-cache
    write_ws: int = 0
    icache: bool = False
    dcache: bool = False
    ifill: int = 0  # per I-cache line fill
    dfill: int = 0  # per D-cache line fill
    writeback: int = 0  # per dirty line written back
    source: str = ""

    @property
    def zero_wait(self) -> bool:
        return not (self.fetch_ws or self.read_ws or self.write_ws or self.icache or self.dcache)


@dataclass(frozen=True)
class CacheGeometry:
    size: int
    line: int
    ways: int
    source: str = ""


@dataclass(frozen=True)
class TimingProfile:
    name: str
    core: str
    clock_hz: int
    placement: dict[str, str]
    memories: dict[str, Memory]
    icache: CacheGeometry | None = None
    dcache: CacheGeometry | None = None
    fetch_bytes: int = 4
    description: str = ""
    sources: tuple[str, ...] = field(default_factory=tuple)

    def memory(self, role: str) -> Memory:
        return self.memories[self.placement[role]]

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> TimingProfile:
        name = str(m.get("name", "?"))

        def need(key: str, where: Mapping[str, Any] = m, what: str = "") -> Any:
            if key not in where or where[key] is None:
                raise ConfigError(f"timing profile '{name}': missing required key '{what}{key}'")
            return where[key]

        mems: dict[str, Memory] = {}
        for mname, mm in dict(need("memories")).items():
            mm = dict(mm or {})
            unknown = set(mm) - {f for f in Memory.__dataclass_fields__ if f != "name"}
            if unknown:
                raise ConfigError(f"timing profile '{name}': memory '{mname}' has unknown keys {sorted(unknown)}")
            try:
                mem = Memory(name=str(mname), **{k: (v if k in ("source", "icache", "dcache") else
                                                    (None if v is None else int(v))) for k, v in mm.items()})
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"timing profile '{name}': memory '{mname}': {exc}") from exc
            if any(getattr(mem, f) < 0 for f in ("fetch_ws", "read_ws", "write_ws", "ifill", "dfill", "writeback")):
                raise ConfigError(f"timing profile '{name}': memory '{mname}' has a negative cost")
            mems[str(mname)] = mem
        placement = {str(k): str(v) for k, v in dict(need("placement")).items()}
        for role in PLACEMENT_ROLES:
            if role not in placement:
                raise ConfigError(f"timing profile '{name}': placement.{role} is missing (roles: {PLACEMENT_ROLES})")
            if placement[role] not in mems:
                raise ConfigError(f"timing profile '{name}': placement.{role} names '{placement[role]}', which is "
                                  f"not one of its memories {sorted(mems)}")

        def cache(key: str) -> CacheGeometry | None:
            c = m.get(key)
            if not c:
                return None
            g = CacheGeometry(int(need("size", c, f"{key}.")), int(need("line", c, f"{key}.")),
                              int(need("ways", c, f"{key}.")), str(c.get("source", "")))
            if g.line < 4 or g.line & (g.line - 1) or g.ways < 1 or g.size % (g.line * g.ways):
                raise ConfigError(f"timing profile '{name}': {key} geometry {g.size}/{g.line}/{g.ways} is not a "
                                  "power-of-two line size dividing size/ways")
            return g

        prof = cls(
            name=str(need("name")), core=str(need("core")), clock_hz=int(need("clock_hz")), placement=placement,
            memories=mems, icache=cache("icache"), dcache=cache("dcache"), fetch_bytes=int(m.get("fetch_bytes", 4)),
            description=str(m.get("description", "")), sources=tuple(str(s) for s in (m.get("sources") or ())))
        if prof.clock_hz <= 0:
            raise ConfigError(f"timing profile '{name}': clock_hz must be positive")
        if prof.fetch_bytes not in (2, 4, 8, 16):
            raise ConfigError(f"timing profile '{name}': fetch_bytes must be 2, 4, 8 or 16")
        for mem in mems.values():
            if mem.icache and prof.icache is None:
                raise ConfigError(f"timing profile '{name}': memory '{mem.name}' is I-cacheable but there is no icache")
            if mem.dcache and prof.dcache is None:
                raise ConfigError(f"timing profile '{name}': memory '{mem.name}' is D-cacheable but there is no dcache")
        return prof


def load_profile(profile: str | Mapping[str, Any] | TimingProfile) -> TimingProfile:
    """A profile from its name (``configs/timing/<name>.yaml``), a mapping (Hydra ``cfg.timing``) or itself."""
    if isinstance(profile, TimingProfile):
        return profile
    if isinstance(profile, str):
        path = timing_config_dir() / f"{profile}.yaml"
        if not path.is_file():
            raise ConfigError(f"unknown timing profile '{profile}'; known profiles: {', '.join(known_profiles())}")
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        assert isinstance(data, dict)
        return TimingProfile.from_mapping(data)
    if isinstance(profile, DictConfig):
        profile = OmegaConf.to_container(profile, resolve=True)  # type: ignore[assignment]
    if not isinstance(profile, Mapping):
        raise ConfigError(f"a timing profile must be a name or a mapping, not {type(profile).__name__}")
    return TimingProfile.from_mapping(profile)


def profile_for_board(board: BoardConfig, timing: str | Mapping[str, Any] | TimingProfile | None) -> TimingProfile:
    """The profile a board runs ``timer=qemu-cycles`` under: ``timing`` if given, else the board's own zero-wait
    profile (``configs/timing/<board>.yaml``). ConfigError if the profile models another core."""
    if timing is None or (isinstance(timing, str) and not timing):
        if not (timing_config_dir() / f"{board.name}.yaml").is_file():
            raise ConfigError(f"board '{board.name}' has no default timing profile (configs/timing/{board.name}.yaml): "
                              f"name one with timing=... ({', '.join(known_profiles())})")
        timing = board.name
    prof = load_profile(timing)
    if prof.core != board.core:
        boards_hint = {"cortex-m7": "qemu-mps2-an500", "cortex-m4": "qemu-mps2-an386"}.get(prof.core)
        raise ConfigError(
            f"timing={prof.name} models a {prof.core} but board '{board.name}' is a {board.core}"
            + (f": use board={boards_hint}" if boards_hint else ""))
    return prof
