"""Board latency profiling: measure every table entry a model needs, many layer variants per firmware image.

``profile_layers(layers, board, path)`` finds the unique layer shapes (:meth:`LayerSpec.key`), lists the entries
``(layer_key, a_bits, w_bits, o_bits)`` a search can ask for (:func:`needed_entries`), drops those the table at
``path`` already has for this target (:meth:`LatencyTable.missing`: a stopped profile resumes where it stopped),
packs the rest into batch images (:mod:`harness.synth.batch`) and measures the images in parallel, one QEMU
(or board) per worker, each image in its own work folder. Every layer of every image is checked bit-exactly
against the integer reference. The table is saved after every image, so no measured row is ever lost.

Rows are filed under the :func:`~harness.measure.target.measurement_target` (board, timer source, kernel build
hash, compiler flags); a table measured elsewhere is never used for this board (``LatencyTable.for_target``).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from harness.boards import make_board
from harness.build.fit import check_fit, runtime_footprint
from harness.codegen.artifact import layer_artifact
from harness.config.board import BoardConfig, load_board_config
from harness.config.schema import ProfileSchema
from harness.errors import ConfigError, DeviceError, DoesNotFitError, TableError
from harness.graph.spec import INPUT, LayerSpec
from harness.measure.executors import check_executor, run_pool, run_ray, run_serial
from harness.measure.session import Session
from harness.measure.target import measurement_target
from harness.memory.estimate import MemoryEstimate
from harness.precision.groups import activation_groups
from harness.synth.batch import (
    ImageBudget,
    Variant,
    batch_input_shape,
    build_batch_model,
    plan_images,
    repeat_inputs,
    standalone_arena_bytes,
    unsigned_inputs,
)
from harness.table.lut import Entry, LatencyTable, Target

BITS = (2, 4, 8)
_DEFAULT = ProfileSchema()  # every default lives in the schema


@dataclass(frozen=True)
class ProfileSettings:
    """What to measure and how (:class:`~harness.config.schema.ProfileSchema` documents each field)."""

    a_bits: tuple[int, ...] = tuple(_DEFAULT.a_bits)
    w_bits: tuple[int, ...] = tuple(_DEFAULT.w_bits)
    o_bits: tuple[int, ...] = tuple(_DEFAULT.o_bits)
    input_bits: int | None = _DEFAULT.input_bits  # the network input arrives at this precision (None: any)
    output_bits: int | None = _DEFAULT.output_bits  # the network output is written at this precision
    repeats: int = _DEFAULT.repeats  # random batch inputs per image; count = median
    workers: int = _DEFAULT.workers  # parallel images (0: one per available core)
    seed: int = 0
    budget: ImageBudget = field(default_factory=ImageBudget)
    build_flags: tuple[str, ...] = tuple(_DEFAULT.build_flags)
    require_bit_exact: bool = _DEFAULT.require_bit_exact
    executor: str = _DEFAULT.executor  # local (process pool) | ray (harness.measure.executors)
    ray_address: str | None = _DEFAULT.ray_address  # executor=ray: a running cluster; None: a local Ray

    def __post_init__(self) -> None:
        check_executor(self.executor)
        for name in ("a_bits", "w_bits", "o_bits"):
            bad = [b for b in getattr(self, name) if b not in BITS]
            if bad or not getattr(self, name):
                raise ConfigError(
                    f"profile {name} must be a non-empty subset of {BITS}, got {getattr(self, name)}"
                )
        if self.repeats < 1:
            raise ConfigError(f"profile repeats must be at least 1, got {self.repeats}")
        if self.budget.max_layers < 4:
            raise ConfigError(f"profile max_layers must be at least 4, got {self.budget.max_layers}")


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def needed_entries(
    layers: Sequence[LayerSpec],
    a_bits: Iterable[int] = BITS,
    w_bits: Iterable[int] = BITS,
    o_bits: Iterable[int] = BITS,
    *,
    input_bits: int | None = 8,
    output_bits: int | None = 8,
) -> list[tuple[Entry, LayerSpec]]:
    """Every entry a search over ``layers`` can price, once, in layer order.

    Like :func:`~harness.table.lut.profile_entries`, keyed as :mod:`harness.precision.groups` describes, but
    the network input's activation group is read only at ``input_bits`` and a group nobody reads (the output) is
    written only at ``output_bits``: entries no configuration can reach are not measured.
    """

    groups = activation_groups(layers)
    g_in = groups.group_of[INPUT]
    g_out = {g for g, rs in enumerate(groups.readers) if not rs}
    a_bits, w_bits, o_bits = tuple(a_bits), tuple(w_bits), tuple(o_bits)

    def choices(g: int, default: tuple[int, ...]) -> tuple[int, ...]:
        if g == g_in and input_bits is not None:
            return (input_bits,)
        if g in g_out and output_bits is not None:
            return (output_bits,)
        return default

    out: list[tuple[Entry, LayerSpec]] = []
    seen: set[Entry] = set()
    for s in layers:
        if s.has_weights:
            a_opts = choices(groups.input_group(s.name), a_bits)
            o_opts = choices(groups.output_group(s.name), o_bits)
            combos = [(a, w, o) for a in a_opts for w in w_bits for o in o_opts]
        else:
            combos = [(g, 0, g) for g in choices(groups.input_group(s.name), a_bits)]
        for a, w, o in combos:
            ent = (s.key(), a, w, o)
            if ent not in seen:
                seen.add(ent)
                out.append((ent, s))
    return out


# ------------------------------------------------------------------------------------------ one image (worker)


@dataclass(frozen=True)
class ImageJob:
    """One batch image to build and measure (picklable: it crosses into a worker process)."""

    index: int
    variants: tuple[Variant, ...]
    input_shape: tuple[int, int, int]
    board: BoardConfig
    workdir: str
    seed: int = 0
    repeats: int = 3
    build_flags: tuple[str, ...] = ()
    target: Target | None = None  # the rows' target: the image is refused if the firmware is no longer it


def _check_target(job: ImageJob, when: str) -> None:
    if job.target is None:
        return
    now = measurement_target(job.board, job.build_flags)
    if now != job.target:
        raise TableError(
            f"the firmware changed {when} (kernel build {job.target.firmware_hash} -> {now.firmware_hash}); "
            "its counts would be filed under the wrong build: run the profile again"
        )


@dataclass
class ImageResult:
    index: int
    rows: list[dict]
    mismatched: list[str]
    seconds: float
    n_builds: int = 1
    unfit: list[Entry] = field(default_factory=list)  # variants that did not fit the board even alone


def _rows(
    job: ImageJob, variants: Sequence[Variant], layer_idx: Sequence[int], m
) -> tuple[list[dict], list[str]]:
    per_input = m.counts_per_input
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    rows, bad = [], []
    for v, i in zip(variants, layer_idx, strict=True):
        counts = [float(row[i]) for row in per_input]
        layer = m.layers[i]
        key, a, w, o = v.entry
        if not layer.bit_exact:
            bad.append(f"{key} a{a}w{w}o{o}")
        rows.append(
            {
                "layer_key": key,
                "a_bits": a,
                "w_bits": w,
                "o_bits": o,
                "count": float(statistics.median(counts)),
                "count_min": min(counts),
                "count_max": max(counts),
                "repeats": len(counts),
                "macs": float(v.spec.macs),
                "op": v.spec.op,
                "out_numel": float(v.spec.out_shape[0] * v.spec.out_shape[1] * v.spec.out_shape[2]),
                "date": date,
                "bit_exact": bool(layer.bit_exact),
                "image": f"{m.firmware_hash:08x}",
            }
        )
    return rows, bad


def measure_image(job: ImageJob) -> ImageResult:
    """Build, flash and run one batch image; its rows (one per variant). Splits an image that does not fit."""
    t0 = time.perf_counter()
    bm = build_batch_model(job.variants, job.input_shape, seed=job.seed, name=f"profile{job.index}")
    board = make_board(job.board)
    _check_target(job, "since the profile was planned")
    try:
        session = Session(board, job.workdir, build_flags=job.build_flags)
        inputs = repeat_inputs(job.input_shape, job.repeats, job.seed)
        m = session.run(layer_artifact(bm.model), inputs, require_exact=False)
    except DoesNotFitError:
        if len(job.variants) < 2:  # cannot run on this board at all: reported, not retried in a loop
            return ImageResult(job.index, [], [], time.perf_counter() - t0, 1, [job.variants[0].entry])
        half = len(job.variants) // 2
        parts = [job.variants[:half], job.variants[half:]]
        results = [
            measure_image(
                ImageJob(
                    job.index,
                    p,
                    job.input_shape,
                    job.board,
                    f"{job.workdir}-{k}",
                    job.seed,
                    job.repeats,
                    job.build_flags,
                    job.target,
                )
            )
            for k, p in enumerate(parts)
        ]
        return ImageResult(
            job.index,
            [r for res in results for r in res.rows],
            [b for res in results for b in res.mismatched],
            time.perf_counter() - t0,
            sum(r.n_builds for r in results),
            [u for res in results for u in res.unfit],
        )
    finally:
        board.close()
    _check_target(job, f"while image {job.index} was being built")
    rows, bad = _rows(job, bm.variants, bm.variant_layers, m)
    return ImageResult(job.index, rows, bad, time.perf_counter() - t0)


# ------------------------------------------------------------------------------------------ the whole profile


@dataclass
class ProfileResult:
    target: Target
    path: Path
    n_entries: int  # entries the model needs
    n_new: int  # measured now
    n_images: int  # images built now
    seconds: float
    workers: int
    mismatched: list[str]
    table: LatencyTable
    unfit: list[Entry] = field(default_factory=list)  # entries whose layer cannot run on the board at all
    executor: str = "local"
    executor_info: dict = field(default_factory=dict)  # executor=ray: ray_nodes, ray_cpus

    def summary(self) -> dict:
        t = self.target
        return {
            "board": t.board,
            "timer": t.timer,
            "firmware_hash": t.firmware_hash,
            "cflags": t.cflags,
            "table": str(self.path),
            "n_entries": self.n_entries,
            "n_new": self.n_new,
            "n_images": self.n_images,
            "seconds": round(self.seconds, 3),
            "workers": self.workers,
            "executor": self.executor,
            **self.executor_info,
            "n_mismatched": len(self.mismatched),
            "mismatched": self.mismatched[:20],
            "n_unfit": len(self.unfit),
            "unfit_shapes": sorted({k for k, *_ in self.unfit}),
        }


def default_budget(
    board: BoardConfig, max_layers: int = _DEFAULT.max_layers, max_macs: float = _DEFAULT.max_macs
) -> ImageBudget:
    """Image limits for ``board``: the given layer/MAC caps, and 70 % of its flash and SRAM after the runtime."""

    runtime = runtime_footprint(board)
    return ImageBudget(
        max_layers=max_layers,
        max_macs=max_macs,
        flash_bytes=int(0.7 * (board.flash.size - runtime.flash)),
        sram_bytes=int(0.7 * (board.sram.size - runtime.sram - 8192)),
    )


@dataclass
class ProfilePlan:
    """What a profile will do: the target, every needed entry, the images of the missing ones, and the entries
    whose layer cannot run on the board at all (its input and output alone exceed the SRAM)."""

    target: Target
    needed: list[tuple[Entry, LayerSpec]]
    images: list[list[Variant]]
    input_shape: tuple[int, int, int]
    table: LatencyTable
    unfit: list[Entry] = field(default_factory=list)


def never_fits(v: Variant, board: BoardConfig) -> bool:
    """Whether variant ``v`` cannot fit ``board`` even alone: its input(s) and output are live together."""

    try:
        check_fit(board, MemoryEstimate(arena=standalone_arena_bytes(v)))
    except DoesNotFitError:
        return True
    return False


def plan_profile(
    layers: Sequence[LayerSpec], board: BoardConfig | str, path: str | Path, settings: ProfileSettings
) -> ProfilePlan:
    """Plan a profile of ``layers`` on ``board`` against the table at ``path`` (nothing is built)."""
    cfg = load_board_config(board)
    target = measurement_target(cfg, settings.build_flags)
    needed = needed_entries(
        layers,
        settings.a_bits,
        settings.w_bits,
        settings.o_bits,
        input_bits=settings.input_bits,
        output_bits=settings.output_bits,
    )
    table = LatencyTable.load(path, missing_ok=True)
    missing = set(
        table.missing(
            [e for e, _ in needed],
            board=target.board,
            timer=target.timer,
            firmware_hash=target.firmware_hash,
            cflags=target.cflags,
        )
    )
    unsigned = unsigned_inputs(layers)
    variants = [Variant(e, s, unsigned.get(s.name, ())) for e, s in needed if e in missing]
    unfit = [v.entry for v in variants if never_fits(v, cfg)]
    variants = [v for v in variants if v.entry not in set(unfit)]
    # the batch input depends on the whole model, not on what is left: a resumed profile builds the same feeds
    shape = batch_input_shape([s for _, s in needed])
    images = plan_images(variants, shape, settings.budget) if variants else []
    return ProfilePlan(target, needed, images, shape, table, unfit)


def profile_layers(
    layers: Sequence[LayerSpec],
    board: BoardConfig | str,
    path: str | Path,
    settings: ProfileSettings | None = None,
    *,
    workdir: str | Path = ".cache/tinyhil/profile",
    progress: Callable[[int], None] | None = None,
    on_plan: Callable[[int, int], None] | None = None,
) -> ProfileResult:
    """Measure every missing entry of ``layers`` on ``board`` and merge it into the table at ``path``.

    ``progress(n)`` is called with the number of entries each finished image measured; ``on_plan(n_missing,
    n_images)`` once the work is known. Raises DeviceError after saving everything that was measured when a
    layer is not bit-exact (``settings.require_bit_exact``) or an image failed.
    """
    t0 = time.perf_counter()
    settings = settings or ProfileSettings()
    cfg = load_board_config(board)
    plan = plan_profile(layers, cfg, path, settings)
    target, needed, images, shape, table = plan.target, plan.needed, plan.images, plan.input_shape, plan.table
    unfit = list(plan.unfit)
    n_missing = sum(len(im) for im in images)
    if on_plan is not None:
        on_plan(n_missing, len(images))
    workers = max(1, min(settings.workers or available_cores(), len(images) or 1))
    base = Path(workdir).resolve() / cfg.name  # absolute: workers (a pool, Ray tasks) may run in another cwd
    jobs = [
        ImageJob(
            i,
            tuple(vs),
            shape,
            cfg,
            str(base / f"img{i}"),
            settings.seed,
            settings.repeats,
            settings.build_flags,
            target,
        )
        for i, vs in enumerate(images)
    ]
    fields = {
        "board": target.board,
        "timer": target.timer,
        "firmware_hash": target.firmware_hash,
        "cflags": target.cflags,
    }
    mismatched: list[str] = []
    errors: list[str] = []
    n_new = 0

    def take(res: ImageResult) -> None:
        nonlocal n_new
        mismatched.extend(res.mismatched)
        unfit.extend(res.unfit)
        keep = [r for r in res.rows if r["bit_exact"] or not settings.require_bit_exact]
        n_new += len(table.add(keep, **fields))
        table.save(path)  # after every image: an interrupted profile loses at most the images in flight
        if progress is not None:
            progress(len(res.rows))

    info: dict = {}
    if jobs and settings.executor == "ray":
        info = run_ray(jobs, settings.ray_address, workers, measure_image, take, errors, _describe)
    elif jobs and workers == 1:
        run_serial(jobs, measure_image, take)
    elif jobs:
        run_pool(jobs, workers, measure_image, take, errors, _describe)
    seconds = time.perf_counter() - t0
    if errors:
        raise DeviceError(
            f"{len(errors)} profiling image(s) failed (the others were saved to {path}; run the "
            f"profile again to retry): {errors[0]}"
        )
    if mismatched and settings.require_bit_exact:
        raise DeviceError(
            f"{len(mismatched)} profiled layer(s) differ from the integer reference (not saved): "
            f"{', '.join(mismatched[:5])}; this is a kernel bug, the counts are not trustworthy"
        )
    mine = table.targets() and target in table.targets()
    result_table = (
        table.for_target(target.board, target.timer, target.firmware_hash, target.cflags)
        if mine
        else LatencyTable()
    )
    return ProfileResult(
        target, Path(path), len(needed), n_new, len(jobs), seconds, workers, mismatched, result_table, unfit,
        settings.executor, info,
    )


def _describe(job: ImageJob) -> str:
    return f"image {job.index} ({len(job.variants)} variants)"


def ensure_profiled(
    layers: Sequence[LayerSpec],
    board: BoardConfig | str,
    path: str | Path,
    settings: ProfileSettings | None = None,
    **kw,
) -> LatencyTable:
    """The table of ``board``'s target covering ``layers``, profiling whatever it lacks first."""
    return profile_layers(layers, board, path, settings, **kw).table
