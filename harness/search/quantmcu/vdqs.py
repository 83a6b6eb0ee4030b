"""VDQS, value-driven quantization search (QuantMCU, arXiv 2401.13714, Sec. III-B), without training.

Every feature map of every non-outlier branch starts at 8 bits. Each round scores every one-step reduction
(8 -> 4, 4 -> 2) of one feature map in one branch by

    S = -lambda * Omega + (1 - lambda) * Phi

and applies the best move with ``S > 0`` that keeps the memory budget; the search stops when no move is left.
tinyhil's normalisation (the paper leaves it open) makes both terms shares of the same branch:

* ``Phi`` = BitOPs the move saves / the branch's 8-bit BitOPs (the branch = one patch's stage layers, counted on
  its window, recomputed overlap included);
* ``Omega`` = information the move loses / the branch's 8-bit information. The information of a feature map is
  its element count times the Shannon entropy (bits) of the histogram of its quantized values (one bin per
  integer level, pooled over the calibration images); a move loses ``N * (H_before - H_after)``.

So at ``lambda = 0.5`` a move is taken when it saves a larger share of the branch's compute than the share of
the branch's information it destroys; a larger ``lambda`` protects accuracy, a smaller one saves more BitOPs.

Quantizing a feature map at fewer bits needs a range. ``range_mode``: ``"patch"`` (default: the clip of the
8-bit range that minimises the squared error on that patch's own calibration values, value-driven per patch,
each branch's layer copies carry their own scales), ``"tensor"`` (one clip per feature map over the whole map)
or ``"minmax"`` (the full 8-bit range). With ``scope="network"`` the shared rest branch is searched alongside
(normalised by the rest's own 8-bit BitOPs and information, whole tensors, one clip per feature map).

The memory of a configuration is what the firmware's arena planner lays out for it
(:func:`~harness.search.quantmcu.branches.sram_need`: arena, result tables and scratch, as the build's fit
check counts them). Lowering bits shrinks buffers, but first-fit placement of per-patch buffers of different
precisions can still need a larger arena, so every move is checked; a move over the budget is skipped for the
next best one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harness.errors import ConfigError, DoesNotFitError
from harness.patch.rebits import mse_clip, quantize_real, spec_at_bits
from harness.search.quantmcu.branches import Branches, FeatureMap, sram_need
from harness.search.quantmcu.stats import CalibStats

RANGE_MODES = ("patch", "tensor", "minmax")
REST = -1  # the patch index of the shared rest branch (scope="network") in clips, info and moves
MAX_CLIP_VALUES = 65536  # values per (patch, tensor) used to choose a clip (a deterministic subsample)


def entropy_bits(q: np.ndarray, bits: int) -> float:
    """Shannon entropy (bits) of the histogram of integer values ``q`` at ``bits`` (one bin per level)."""
    q = np.asarray(q).reshape(-1).astype(np.int64) + (1 << (bits - 1))
    if q.size == 0:
        return 0.0
    counts = np.bincount(q, minlength=1 << bits).astype(np.float64)
    pr = counts[counts > 0] / q.size
    return float(-(pr * np.log2(pr)).sum())


def _subsample(v: np.ndarray) -> np.ndarray:
    v = v.reshape(-1)
    if v.size <= MAX_CLIP_VALUES:
        return v
    return v[:: int(np.ceil(v.size / MAX_CLIP_VALUES))]


@dataclass
class Quantizer:
    """Clip factors and information content of every (patch, tensor, bits)."""

    clips: dict[tuple[int, str, int], float]
    info: dict[tuple[int, str, int], float]  # element count (per image) * entropy (bits)

    def map_info(self, p: int, fm: FeatureMap, bits: int) -> float:
        return sum(self.info[(p, t, bits)] for t in fm.tensors)


def measure(
    br: Branches, stats: CalibStats, bit_choices: tuple[int, ...], range_mode: str = "patch"
) -> Quantizer:
    """Clips and information of every feature map of every branch at every bit-width in ``bit_choices``."""
    if range_mode not in RANGE_MODES:
        raise ConfigError(f"range_mode must be one of {RANGE_MODES}, got {range_mode!r}")
    model = br.pm.model
    clips: dict[tuple[int, str, int], float] = {}
    info: dict[tuple[int, str, int], float] = {}
    tensor_clip: dict[tuple[str, int], float] = {}
    for fm in br.maps:
        for t in fm.tensors:
            spec = model.tensors[t]
            for b in bit_choices:
                if b >= spec.bits or range_mode == "minmax":
                    tensor_clip[(t, b)] = 1.0
                elif range_mode == "tensor":
                    tensor_clip[(t, b)] = mse_clip(_subsample(stats.full[t]), spec, b)
            for p in range(br.num_patches):
                vals = stats.windows[p][t]
                real = stats.real(t, vals)
                n = vals[0].size
                for b in bit_choices:
                    if (t, b) in tensor_clip:
                        c = tensor_clip[(t, b)]
                    else:
                        c = mse_clip(_subsample(vals), spec, b)
                    clips[(p, t, b)] = c
                    q = vals if b == spec.bits and c == 1.0 else quantize_real(real, spec_at_bits(spec, b, c))
                    info[(p, t, b)] = n * entropy_bits(q, b)
    if br.rest is not None:  # the shared rest branch: whole tensors, one clip per feature map
        for fm in br.rest.maps:
            for t in fm.tensors:
                spec = model.tensors[t]
                vals = stats.full[t]
                real = stats.real(t, vals)
                for b in bit_choices:
                    c = (
                        1.0
                        if b >= spec.bits or range_mode == "minmax"
                        else mse_clip(_subsample(vals), spec, b)
                    )
                    clips[(REST, t, b)] = c
                    q = vals if b == spec.bits and c == 1.0 else quantize_real(real, spec_at_bits(spec, b, c))
                    info[(REST, t, b)] = vals[0].size * entropy_bits(q, b)
    return Quantizer(clips, info)


@dataclass(frozen=True)
class Move:
    """One applied reduction."""

    patch: int
    feature_map: str
    old: int
    new: int
    score: float
    phi: float  # normalised BitOPs saved (Phi)
    omega: float  # normalised information lost (Omega)


@dataclass
class Vdqs:
    """The searched precisions: ``bits[p][map index]`` per branch, the moves in order, and the figures."""

    bits: list[dict[int, int]]
    moves: list[Move]  # patch == REST (-1) for a move in the shared rest branch
    memory_start: int
    memory_end: int
    budget: int | None
    params: dict = field(default_factory=dict)
    rest_bits: dict[int, int] = field(default_factory=dict)  # decisions of the rest branch (scope="network")


def _lower(b: int, choices: tuple[int, ...]) -> int | None:
    smaller = [c for c in choices if c < b]
    return max(smaller) if smaller else None


def search(
    br: Branches,
    quant: Quantizer,
    outlier: tuple[bool, ...],
    lam: float = 0.5,
    bit_choices: tuple[int, ...] = (8, 4, 2),
    budget: int | None = None,
) -> Vdqs:
    """Greedy VDQS over the non-outlier branches (see the module docstring)."""
    if not 0.0 <= lam <= 1.0:
        raise ConfigError(f"lambda must be in [0, 1], got {lam}")
    if len(outlier) != br.num_patches:
        raise ConfigError(f"{len(outlier)} outlier flags for {br.num_patches} patches")
    start = max(bit_choices)
    bits = [{fm.index: start for fm in br.maps} for _ in range(br.num_patches)]
    rest = br.rest
    rest_bits = {fm.index: start for fm in rest.maps} if rest is not None else {}
    mem0 = sram_need(br, bits, rest_bits)
    if budget is not None and mem0 > budget:
        raise DoesNotFitError(
            f"the {start}-bit patch-based model needs {mem0} B of SRAM (arena, result tables, scratch), over "
            f"the budget of {budget} B"
        )
    ops8 = [br.branch_bitops(p, bits[p]) for p in range(br.num_patches)]
    info8 = [sum(quant.map_info(p, fm, start) for fm in br.maps) for p in range(br.num_patches)]
    if rest is not None:
        rest_ops8 = rest.bitops(rest_bits)
        rest_info8 = sum(quant.map_info(REST, fm, start) for fm in rest.maps)
    moves: list[Move] = []
    mem = mem0
    while True:
        cands = []
        for p in range(br.num_patches):
            if outlier[p] or ops8[p] == 0 or info8[p] <= 0:
                continue
            for fm in br.maps:
                b = bits[p][fm.index]
                nb = _lower(b, bit_choices)
                if nb is None:
                    continue
                phi = br.move_bitops(p, fm, b, nb) / ops8[p]
                omega = (quant.map_info(p, fm, b) - quant.map_info(p, fm, nb)) / info8[p]
                s = -lam * omega + (1.0 - lam) * phi
                if s > 0:
                    cands.append((s, -p, -fm.index, p, fm, b, nb, phi, omega))
        if rest is not None and rest_ops8 > 0 and rest_info8 > 0:
            for fm in rest.maps:
                b = rest_bits[fm.index]
                nb = _lower(b, bit_choices)
                if nb is None:
                    continue
                phi = rest.move_bitops(fm, b, nb) / rest_ops8
                omega = (quant.map_info(REST, fm, b) - quant.map_info(REST, fm, nb)) / rest_info8
                s = -lam * omega + (1.0 - lam) * phi
                if s > 0:
                    cands.append((s, -REST, -fm.index, REST, fm, b, nb, phi, omega))
        applied = False
        for s, _, _, p, fm, b, nb, phi, omega in sorted(cands, key=lambda c: c[:3], reverse=True):
            slot = rest_bits if p == REST else bits[p]
            slot[fm.index] = nb
            m = sram_need(br, bits, rest_bits) if budget is not None else None
            if m is None or m <= budget:
                moves.append(Move(p, fm.name, b, nb, float(s), float(phi), float(omega)))
                mem = m
                applied = True
                break
            slot[fm.index] = b
        if not applied:
            break
    if mem is None:  # unchecked moves (no budget): the end state's need, for the record
        mem = sram_need(br, bits, rest_bits)
    return Vdqs(bits, moves, mem0, mem, budget, {"lambda": float(lam), "bits": list(bit_choices)}, rest_bits)
