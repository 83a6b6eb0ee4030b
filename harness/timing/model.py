"""Core cycle models (``configs/timing/core/<core>.yaml``) and the model file the timing plugin reads.

The plugin (``harness/timing/plugin``) is a generic engine: the per-event costs of the core, the address regions of
the image with their memory costs, and the cache geometry all come from a small text file written here. A model
version names the core model and a hash of the plugin's sources and the core's costs, so counts of two different
models are never mixed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from omegaconf import OmegaConf

from harness.errors import ConfigError
from harness.timing.profile import Memory, TimingProfile, timing_config_dir

PLUGIN_DIR = Path(__file__).resolve().parent / "plugin"

#: Event names of the plugin, in its order (th_timing.h enum th_event up to EV_REGION_BASE).
CORE_EVENTS = (
    "alu", "mul", "div", "load", "load_pipelined", "store", "store_reg", "dual", "multi", "multi_reg", "agu_stall",
    "load_use", "branch", "fp_mac", "fp_div", "sys", "issue", "refill_direct", "refill_indirect", "mispredict",
)
#: Per-region events, in the plugin's order (enum th_region_event).
REGION_EVENTS = ("fetch_ws", "read_ws", "write_ws", "ifill", "dfill", "writeback")
MAX_REGIONS = 6
M7_PARAMS = ("lat_alu", "lat_sat", "lat_mul", "lat_load", "lat_load_bh", "div", "ldm_per_cycle", "tb_issue",
             "sys_issue", "fp_div")


@dataclass(frozen=True)
class CoreModel:
    name: str
    plugin_core: str  # "m4" | "m7"
    version: str
    costs: dict[str, float]
    m7: dict[str, float] = field(default_factory=dict)
    btac_entries: int = 0
    sources: dict[str, str] = field(default_factory=dict)
    cost_sources: dict[str, str] = field(default_factory=dict)


def _number(entry: object, what: str) -> tuple[float, str]:
    if isinstance(entry, Mapping):
        if "cycles" not in entry:
            raise ConfigError(f"{what}: needs 'cycles'")
        return float(entry["cycles"]), str(entry.get("source", ""))
    try:
        return float(entry), ""  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what}: not a number ({entry!r})") from exc


@lru_cache(maxsize=8)
def load_core(name: str) -> CoreModel:
    """The core model ``configs/timing/core/<name>.yaml``."""
    path = timing_config_dir() / "core" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (timing_config_dir() / "core").glob("*.yaml"))
        raise ConfigError(f"no cycle model for core '{name}' (configs/timing/core/); models: {', '.join(known)}")

    d = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    assert isinstance(d, dict)
    plugin_core = str(d.get("plugin_core", ""))
    if plugin_core not in ("m4", "m7"):
        raise ConfigError(f"core model {path}: plugin_core must be m4 or m7")
    costs, cost_sources = {}, {}
    for k, v in dict(d.get("costs") or {}).items():
        if k not in CORE_EVENTS:
            raise ConfigError(f"core model {path}: unknown cost '{k}' (events: {', '.join(CORE_EVENTS)})")
        costs[k], cost_sources[k] = _number(v, f"{path} costs.{k}")
    m7 = {}
    for k, v in dict(d.get("m7") or {}).items():
        if k not in M7_PARAMS:
            raise ConfigError(f"core model {path}: unknown m7 parameter '{k}' ({', '.join(M7_PARAMS)})")
        m7[k], cost_sources[f"m7.{k}"] = _number(v, f"{path} m7.{k}")
    if plugin_core == "m7" and set(m7) != set(M7_PARAMS):
        raise ConfigError(f"core model {path}: the m7 core needs every m7 parameter ({', '.join(M7_PARAMS)})")
    btac = d.get("btac") or {}
    return CoreModel(name=str(d.get("name", name)), plugin_core=plugin_core, version=str(d.get("version", "0")),
                     costs=costs, m7=m7, btac_entries=int(btac.get("entries", 0)) if btac else 0,
                     sources={str(k): str(v) for k, v in dict(d.get("sources") or {}).items()},
                     cost_sources=cost_sources)


def plugin_sources() -> list[Path]:
    return sorted(p for p in PLUGIN_DIR.iterdir() if p.suffix in (".c", ".h"))


def model_version(core: CoreModel) -> str:
    """``<core version>.<8 hex>``: the hash covers the plugin's sources and the core's parameters."""
    h = hashlib.sha256()
    for p in plugin_sources():
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    h.update(repr(sorted(core.costs.items())).encode())
    h.update(repr(sorted(core.m7.items())).encode())
    h.update(str(core.btac_entries).encode())
    # How counts are taken belongs to what they mean: since counts are steady state (the session drops one warm-up
    # inference, harness.measure.session), tables counted cold are another target and are measured again.
    h.update(b"steady state after one warm-up inference")
    return f"{core.version}.{h.hexdigest()[:8]}"


@dataclass(frozen=True)
class Region:
    """An address range of the image and the real memory it stands for."""

    role: str
    base: int
    size: int
    memory: Memory


def model_text(core: CoreModel, profile: TimingProfile, regions: list[Region],
               overrides: Mapping[str, float] | None = None) -> str:
    """The plugin's model file. ``overrides`` replaces core costs by name (calibration)."""
    if len(regions) > MAX_REGIONS:
        raise ConfigError(f"the timing plugin takes at most {MAX_REGIONS} regions, got {len(regions)}")
    costs = dict(core.costs)
    for k, v in (overrides or {}).items():
        if k not in CORE_EVENTS:
            raise ConfigError(f"unknown cost '{k}' (events: {', '.join(CORE_EVENTS)})")
        costs[k] = float(v)
    lines = [f"# {core.name} ({model_version(core)}) under timing profile {profile.name}",
             f"core {core.plugin_core}"]
    lines += [f"cost {k} {v!r}" for k, v in costs.items()]
    lines += [f"m7 {k} {v!r}" for k, v in core.m7.items()]
    for r in regions:
        m = r.memory
        lines.append(f"region 0x{r.base:08x} 0x{r.size:08x} {m.fetch_ws} {m.read_ws} {m.write_ws} {int(m.icache)} "
                     f"{int(m.dcache)} {m.ifill} {m.dfill} {m.writeback}  # {r.role}: {m.name}")
    for key, g in (("icache", profile.icache), ("dcache", profile.dcache)):
        if g is not None:
            lines.append(f"{key} {g.size} {g.line} {g.ways}")
    stack = [i for i, r in enumerate(regions) if r.role == "stack"]
    if stack:
        lines.append(f"sp_region {stack[0]}")  # SP-relative accesses: the plugin skips them where they cost nothing
    lines.append(f"fetch_bytes {profile.fetch_bytes}")
    if core.plugin_core == "m7":
        lines.append(f"btac {core.btac_entries}")
    return "\n".join(lines) + "\n"


def event_names(n_regions: int = MAX_REGIONS) -> list[str]:
    """Names of the event counts a record carries with ``events=on``: core events, then per-region events."""
    return [*CORE_EVENTS, *(f"r{r}.{e}" for r in range(n_regions) for e in REGION_EVENTS)]
