"""``timer=qemu-cycles``: cycles of an emulated board under a timing profile, counted by the QEMU timing plugin.

``apply_timer`` turns a board configuration and the user's ``timer=``/``timing=`` choice into the board's timer
and a :class:`CycleCounter`; the counter prepares the plugin for an image (address regions from the ELF, the model
file, a fresh records file per QEMU session), checks that the plugin loaded, and turns the records of each
inference into per-layer cycles and instructions. Nothing ever falls back to instruction counts: every missing
piece is a :class:`~harness.errors.TimingError` or :class:`~harness.errors.ConfigError` that names the fix.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.build.project import TIMER_BUILD_FLAGS
from harness.config.board import BoardConfig, TimerSpec
from harness.errors import ChipFitError, ConfigError, TimingError
from harness.timing import plugin
from harness.timing.elf import ImageLayout, image_layout
from harness.timing.model import CoreModel, Region, load_core, model_text, model_version
from harness.timing.profile import TimingProfile, profile_for_board
from harness.timing.records import LayerCount, RecordFile, check_against_ticks, layer_counts

TIMER = "qemu-cycles"
#: Build flags of an image whose cycles the plugin counts (firmware/runtime/include/th_board.h, TH_MARK).
BUILD_FLAGS = TIMER_BUILD_FLAGS[TIMER]


def _name(timing: Any) -> str:
    if isinstance(timing, TimingProfile):
        return timing.name
    if isinstance(timing, Mapping):
        return str(timing.get("name", "?"))
    return str(timing)


def apply_timer(cfg: BoardConfig, timer: str | None = None,
                timing: str | Mapping[str, Any] | TimingProfile | None = None,
                *, events: bool = False) -> tuple[BoardConfig, CycleCounter | None]:
    """The board configuration with the chosen timer, and its cycle counter when that timer is ``qemu-cycles``."""
    if timing is not None and not isinstance(timing, (str, Mapping, TimingProfile)):
        raise ConfigError(f"timing must be a profile name, not {type(timing).__name__}")
    expected = None
    if timing in (None, "") and cfg.timer.source == TIMER and cfg.timer.model:
        # A board config that already carries a cycle timer (e.g. one handed to a profiling worker) names its
        # profile: keep it, and refuse a model that changed since.
        timing, expected = cfg.timer.model.split("/")[0], cfg.timer.model
    has_timing = timing not in (None, "") and not (isinstance(timing, Mapping) and not timing)
    if timer in (None, "") or timer == cfg.timer.source:
        if has_timing and cfg.timer.source != TIMER:
            raise ConfigError(f"timing={_name(timing)} needs timer={TIMER}: board '{cfg.name}' counts "
                              f"{cfg.timer.unit} with {cfg.timer.source}, which no timing profile changes")
        if cfg.timer.source != TIMER:
            return cfg, None
    if timer not in (None, "", TIMER):
        raise ConfigError(f"timer={timer} is not available on board '{cfg.name}' (its timer: {cfg.timer.source}; "
                          f"emulated boards also offer timer={TIMER})")
    if not cfg.emulated:
        raise ConfigError(f"timer={TIMER} counts cycles of an emulated board; board '{cfg.name}' is real silicon "
                          f"and counts with {cfg.timer.source}")
    profile = profile_for_board(cfg, timing if has_timing else None)
    core = load_core(profile.core)
    model = f"{profile.name}/{model_version(core)}"
    if expected is not None and model != expected:
        raise TimingError(f"board '{cfg.name}' was configured for cycle model {expected}, the sources now give "
                          f"{model}: run again so that every count comes from one model")
    spec = TimerSpec(source=TIMER, hz=profile.clock_hz, unit="cycles", count_per_tick=cfg.timer.count_per_tick,
                     model=model)
    return replace(cfg, timer=spec), CycleCounter(cfg, profile, core, events=events)


@dataclass
class CycleCounter:
    """The plugin's side of one emulated board: prepares each QEMU session and reads its records."""

    board: BoardConfig
    profile: TimingProfile
    core: CoreModel
    events: bool = False
    overrides: dict[str, float] = field(default_factory=dict)
    hot_path: Path | None = None
    layout: ImageLayout | None = None
    records: RecordFile | None = None
    per_input: list[list[LayerCount]] = field(default_factory=list)
    qemu_messages: Callable[[], str] | None = None  # QEMU's stderr, for error messages
    _dir: Path | None = None
    _loaded: bool = False

    @property
    def version(self) -> str:
        return model_version(self.core)

    def describe(self) -> dict[str, Any]:
        """The keys every summary of a cycle count carries."""
        return {"timer": TIMER, "unit": "cycles", "core": self.core.name, "timing_profile": self.profile.name,
                "timing_model_version": self.version, "clock_hz": self.profile.clock_hz}

    # ---- image and QEMU session ------------------------------------------------------------------------------

    def attach(self, elf: str | Path) -> ImageLayout:
        """Read the image's markers and layout, and check it fits the profile's memories (before QEMU starts)."""
        layout = image_layout(elf)
        self.regions(layout)
        self.layout = layout
        return layout

    def regions(self, layout: ImageLayout) -> list[Region]:
        """The board's address ranges and the real memories the profile places there; TimingError if the image
        uses more of a memory than the real chip has."""
        b, p = self.board, self.profile
        code, data, stack = p.memory("code"), p.memory("data"), p.memory("stack")
        sram_end = b.sram.base + b.sram.size
        if not (b.sram.base <= layout.stack_bottom <= sram_end):
            raise TimingError(f"the image's stack ({layout.stack_bottom:#x}) is outside board {b.name}'s SRAM")
        flash_used = layout.flash_end - b.flash.base
        ram_used = layout.ram_bytes - 4 * layout.n_marks  # the marker array exists only in emulator images
        if code.size is not None and flash_used > code.size:
            raise ChipFitError(f"the image needs {flash_used} B of flash but timing={p.name}'s {code.name} has "
                              f"{code.size} B: the model does not fit the real chip")
        need = ram_used + (layout.min_stack if stack.name == data.name else 0)
        if data.size is not None and need > data.size:
            others = [n for n in sorted(p.memories) if n != data.name]
            raise ChipFitError(f"the image's .data/.bss ({ram_used} B{' + stack' if stack.name == data.name else ''})"
                              f" does not fit timing={p.name}'s {data.name} ({data.size} B); choose a profile that "
                              f"places it elsewhere (other memories of this chip: {', '.join(others)})")
        if stack.size is not None and stack.name != data.name and layout.min_stack > stack.size:
            raise ChipFitError(f"the minimum stack ({layout.min_stack} B) does not fit {stack.name} ({stack.size} B)")
        return [Region("code", b.flash.base, b.flash.size, code),
                Region("data", b.sram.base, layout.stack_bottom - b.sram.base, data),
                Region("stack", layout.stack_bottom, sram_end - layout.stack_bottom, stack)]

    def qemu_args(self) -> list[str]:
        """``-plugin ...`` for a new QEMU session of the attached image (a fresh records file each time)."""

        if self.layout is None:
            raise TimingError("no image attached to the cycle counter (flash the board first)")
        lib = plugin.plugin_path()  # looked up at call time: tests stand a broken plugin in
        if self._dir is None or not self._dir.is_dir():
            self._dir = Path(tempfile.mkdtemp(prefix="thtiming-"))
            atexit.register(shutil.rmtree, self._dir, True)
        model = self._dir / "model.txt"
        model.write_text(model_text(self.core, self.profile, self.regions(self.layout), self.overrides))
        rec = self._dir / "records.txt"
        rec.write_text("")
        self.records = RecordFile(rec)
        self._loaded = False
        args = [f"model={model}", f"out={rec}", f"marks={self.layout.marks:#x}", f"nmarks={self.layout.n_marks}"]
        if self.events:
            args.append("events=on")
        if self.hot_path is not None:
            args.append(f"hot={self.hot_path}")
        for a in args:
            if "," in a:
                raise TimingError(f"plugin argument {a!r} contains a comma, which QEMU's -plugin option cannot carry "
                                  "(use a temporary folder without commas)")
        return ["-plugin", ",".join([str(lib), *args])]

    def check_loaded(self) -> None:
        """TimingError unless the plugin has written its header (QEMU loads plugins once the serial link is up,
        so call this after the board answered)."""
        if self._loaded:
            return
        if self.records is None or self.records.header() is None:
            msg = self.qemu_messages() if self.qemu_messages is not None else ""
            detail = f": {msg.strip()}" if msg.strip() else ""
            raise TimingError("the QEMU timing plugin did not load, so there are no cycle counts" + detail +
                              " (rebuild it: python -m harness.timing.plugin; needs gcc and Debian's QEMU 7.2)")
        self._loaded = True

    # ---- per-inference counts ------------------------------------------------------------------------------

    def begin(self) -> None:
        """Call right before an ``infer`` command: later records belong to it."""
        if self.records is None:
            raise TimingError("the cycle counter has no QEMU session (open the board first)")
        self.check_loaded()
        self.records.mark()

    def collect(self, n_layers: int, names: Sequence[str] = (), ticks: Sequence[int] | None = None
                ) -> list[LayerCount]:
        """Per-layer counts of the last inference since ``begin``; also appended to ``per_input``."""
        if self.records is None:
            raise TimingError("the cycle counter has no QEMU session (open the board first)")
        counts = layer_counts(self.records.read_new(), n_layers, names)
        if ticks is not None:
            check_against_ticks(counts, ticks, self.board.timer.count_per_tick)
        self.per_input.append(counts)
        return counts

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self.records = None
