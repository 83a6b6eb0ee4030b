"""QuantMCU end to end on an integer patch-based model: statistics, VDPC, VDQS, per-patch models."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields

import numpy as np

from harness.config.schema import QuantMcuMethod
from harness.errors import ConfigError
from harness.patch.intmodel import PatchedModel, patched_bitops
from harness.precision.config import PrecisionConfig
from harness.search.quantmcu.branches import Branches, branches
from harness.search.quantmcu.build import patched_from_config, to_config
from harness.search.quantmcu.stats import collect
from harness.search.quantmcu.vdpc import Vdpc, classify
from harness.search.quantmcu.vdqs import Vdqs, measure, search

_DEFAULT = QuantMcuMethod()  # every default lives in the schema


@dataclass(frozen=True)
class QuantMcuParams:
    """The method's knobs (:class:`~harness.config.schema.QuantMcuMethod` documents each).

    ``phi`` (VDPC threshold in standard deviations) and ``lam`` (VDQS accuracy weight ``lambda``) are the two
    the paper names; the rest fix the choices it leaves open.
    """

    phi: float = _DEFAULT.phi
    rule: str = _DEFAULT.rule
    percentile: float = _DEFAULT.percentile
    maps: str = _DEFAULT.maps
    min_fraction: float = _DEFAULT.min_fraction
    center: str = _DEFAULT.center
    lam: float = _DEFAULT.lam
    bits: tuple[int, ...] = tuple(_DEFAULT.bits)
    range_mode: str = _DEFAULT.range_mode
    scope: str = _DEFAULT.scope  # stage (patch branches only, the paper's setting) | network (also the rest)
    budget: int | None = None  # SRAM bytes for arena + result tables + scratch (None: no limit)

    @classmethod
    def from_mapping(cls, d: Mapping) -> QuantMcuParams:
        """From a method config; ``lambda`` may be spelled ``lambda`` or ``lam``; unknown keys are errors."""
        d = dict(d)
        d.pop("name", None)
        if "lambda" in d:
            d["lam"] = d.pop("lambda")
        known = {f.name for f in fields(cls)}
        extra = sorted(set(d) - known)
        if extra:
            raise ConfigError(f"unknown QuantMCU option(s) {extra}; known: {sorted(known | {'lambda'})}")
        if "bits" in d:
            d["bits"] = tuple(sorted({int(b) for b in d["bits"]}, reverse=True))
            if not set(d["bits"]) <= {2, 4, 8} or 8 not in d["bits"]:
                raise ConfigError(f"bits must be a subset of (8, 4, 2) containing 8, got {d['bits']}")
        for k in ("phi", "percentile", "min_fraction", "lam"):
            if k in d:
                d[k] = float(d[k])
        if d.get("budget") is not None:
            d["budget"] = int(d["budget"])
        return cls(**d)


@dataclass
class QuantMcuResult:
    """What QuantMCU chose and the model that runs it."""

    base: PatchedModel  # uniform (8-bit) patch-based inference, MCUNetV2
    patched: PatchedModel  # per-patch precisions
    config: PrecisionConfig
    vdpc: Vdpc
    vdqs: Vdqs
    branches: Branches
    figures: dict = field(default_factory=dict)


def quantmcu(
    base: PatchedModel, calib: Sequence[np.ndarray], params: QuantMcuParams | None = None
) -> QuantMcuResult:
    """Run VDPC and VDQS on the uniform patch-based model ``base`` with calibration inputs ``calib``."""
    params = params or QuantMcuParams()
    br = branches(base, params.scope)
    if not br.maps:
        raise ConfigError(
            f"the patch stage (up to {base.plan.split!r}) has no feature map QuantMCU may lower: its tensors are "
            "the input and the stage output only; split later"
        )
    stats = collect(base, calib)
    vdpc = classify(
        br, stats, params.phi, params.rule, params.percentile, params.maps, params.min_fraction, params.center
    )
    quant = measure(br, stats, params.bits, params.range_mode)
    vdqs = search(br, quant, vdpc.outlier, params.lam, params.bits, params.budget)
    meta = {
        "phi": params.phi,
        "lambda": params.lam,
        "rule": params.rule,
        "maps": params.maps,
        "center": params.center,
        "range_mode": params.range_mode,
        "scope": params.scope,
        "outlier_patches": [p for p, o in enumerate(vdpc.outlier) if o],
    }
    config = to_config(br, vdqs.bits, quant.clips, meta, vdqs.rest_bits)
    patched = patched_from_config(br, config)
    b8, bq = patched_bitops(base), patched_bitops(patched)
    # The patch stage alone (the part QuantMCU decides; the paper's 2.2x is about patch-based computation)
    all8 = {fm.index: max(params.bits) for fm in br.maps}
    s8 = sum(br.branch_bitops(p, all8) for p in range(br.num_patches))
    sq = sum(br.branch_bitops(p, vdqs.bits[p]) for p in range(br.num_patches))
    figures = {
        "bitops_stage_patch8": s8,
        "bitops_stage": sq,
        "bitops_stage_reduction": s8 / sq if sq else float("inf"),
        "bitops_patch8": b8,
        "bitops": bq,
        "bitops_reduction": b8 / bq if bq else float("inf"),
        "sram_need_8bit": vdqs.memory_start,  # arena + result tables + scratch, as the fit check counts them
        "sram_need": vdqs.memory_end,
        "n_patches": base.plan.num_patches,
        "n_outlier_patches": vdpc.n_outliers,
        "n_feature_maps": len(br.maps),
        "n_moves": len(vdqs.moves),
        "n_rest_moves": sum(1 for m in vdqs.moves if m.patch < 0),
    }
    return QuantMcuResult(base, patched, config, vdpc, vdqs, br, figures)
