"""Fit the timing model's parameters from microbenchmark counts (``tinyhil calibrate``).

Every cycle count of the model is linear in its parameters: ``cycles = sum_k events_k * cost_k`` (core events such
as loads, pipelined loads, taken-branch refills; per-region events such as wait-state accesses and cache-line
fills). The microbenchmarks below exercise each event in different proportions; the emulator (with ``events=on``)
gives every benchmark's event counts, and a count of the same benchmarks - the emulator's own cycles, or a real
board's DWT cycles - is fitted by linear least squares. Against the emulator the fit must recover the profile's own
costs; against silicon it shows how far the profile is and gives fitted costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.timing.microbench import EMPTY, Bench, rep
from harness.timing.model import CORE_EVENTS, REGION_EVENTS, CoreModel
from harness.timing.profile import TimingProfile

ROLES = ("code", "data", "stack")  # the plugin's regions, in the order harness.timing.counter writes them


def _taken(n: int) -> tuple[str, ...]:
    out: list[str] = []
    for k in range(n):
        out += [f"b {{L}}t{k}", "nop", f"{{L}}t{k}:"]
    return tuple(out)


CALIBRATION_BENCHES: tuple[Bench, ...] = (
    EMPTY,
    Bench("alu", rep(["add r0, r0, r8"], 16), 32),
    Bench("alu_pairs", rep(["add r0, r0, r8", "add r9, r9, r10"], 8), 32),
    Bench("mul", rep(["mul r0, r8, r9"], 16), 32),
    Bench("mac_chain", rep(["smlad r0, r8, r9, r0"], 16), 32),
    Bench("div", rep(["sdiv r0, r9, r8"], 8), 32),
    Bench("load_dependent", rep(["ldr r1, [r1]"], 16), 32),
    Bench("load_independent", rep(["ldr r0, [r3]", "ldr r8, [r4]", "ldr r9, [r6]", "ldr r10, [r7]"], 4), 32),
    Bench("load_alu", rep(["ldr r0, [r3]", "add r9, r9, r8"], 8), 32),
    Bench("load_use", rep(["add r8, r8, #1", "ldr r0, [r3]", "ldr r9, [r4]", "add r10, r9, r8"], 4), 32),
    Bench("store_imm", rep(["str r0, [r3, #4]"], 16), 32),
    Bench("store_reg", rep(["str r0, [r3, r2]", "add r9, r9, r8"], 8), 32),
    Bench("ldrd_strd", rep(["ldrd r8, r9, [r3]", "strd r8, r9, [r4]"], 4), 32),
    Bench("ldm2", rep(["ldm r3, {r8, r9}"], 8), 32),
    Bench("ldm6_stm3", rep(["ldm r3, {r0, r2, r5, r8, r9, r10}", "stm r4, {r0, r2, r5}"], 4), 32),
    Bench("agu_interlock", rep(["add r3, r3, #0", "ldr r0, [r3]"], 8), 32),
    Bench("branch_taken", _taken(8), 32),
    Bench("branch_not_taken", rep(["cmp r8, r9", "beq {never}"], 8), 32),
    Bench("call_return", rep(["bl mb_ret"], 8), 32),
    Bench("sys", rep(["dmb"], 8), 8),
    Bench("fp", rep(["vadd.f32 s0, s1, s2"], 8), 16),
    Bench("fp_mac", rep(["vmla.f32 s0, s1, s2"], 8), 16),
    Bench("fp_div", rep(["vdiv.f32 s0, s1, s2"], 4), 16),
    Bench("flash_stream", rep(["ldr r0, [r11], #4"], 16), 64),  # 4 KB of flash, word by word
    Bench("flash_lines", rep(["ldr r0, [r11], #32"], 16), 64),  # 32 KB of flash, one word per 32-byte line
    Bench("ram_lines_read", rep(["ldr r0, [r7], #32"], 16), 64),  # 32 KB of RAM, one word per line
    Bench("ram_lines_write", rep(["str r0, [r7], #32"], 16), 64),
    Bench("code_resident", rep(["adds r0, #1"], 256), 16),  # a loop that fits every cache modelled here
    Bench("code_large", rep(["adds r0, #1"], 10000), 2),  # 20 KB of straight code: misses any I-cache modelled
)


def parameter_names(n_regions: int = len(ROLES)) -> list[str]:
    """Names of the event columns: core events, then ``<role>.<event>`` for each region."""
    return [*CORE_EVENTS, *(f"{ROLES[r]}.{e}" for r in range(n_regions) for e in REGION_EVENTS)]


def profile_parameters(core: CoreModel, profile: TimingProfile, overrides: dict[str, float] | None = None
                       ) -> dict[str, float]:
    """The parameter vector the plugin runs with: the core's costs and each region's memory costs."""
    p = {k: 0.0 for k in parameter_names()}
    p.update({k: float(v) for k, v in core.costs.items()})
    p.update(overrides or {})
    if core.plugin_core == "m7":
        p["issue"] = float(core.costs.get("issue", 1.0))
    for role in ROLES:
        m = profile.memory(role)
        for e in REGION_EVENTS:
            p[f"{role}.{e}"] = float(getattr(m, e))
    return p


@dataclass
class Fit:
    names: list[str]  # fitted parameters
    values: dict[str, float]
    unidentified: list[str]  # exercised but not separable from the others
    unexercised: list[str]  # no benchmark touches them
    residual_rms: float
    rank: int


def fit(events: np.ndarray, counts: np.ndarray, names: Sequence[str], *, intercept: bool = False) -> Fit:
    """Least-squares costs from per-benchmark ``events`` (rows) and ``counts``. Columns no benchmark exercises are
    left out; columns that are linear combinations of others (rank deficiency) are reported, not guessed."""
    A = np.asarray(events, dtype=float)
    y = np.asarray(counts, dtype=float)
    cols = [j for j in range(A.shape[1]) if np.any(A[:, j] != 0)]
    unexercised = [names[j] for j in range(A.shape[1]) if j not in cols]
    use_names = [names[j] for j in cols]
    M = A[:, cols]
    if intercept:
        M = np.hstack([M, np.ones((M.shape[0], 1))])
        use_names.append("region_overhead")
    # Greedy column selection by QR-like rank growth: a column that adds no rank is unidentified.
    keep: list[int] = []
    unidentified: list[str] = []
    for j in range(M.shape[1]):
        trial = keep + [j]
        if np.linalg.matrix_rank(M[:, trial], tol=1e-9 * max(1.0, np.abs(M).max())) == len(trial):
            keep = trial
        else:
            unidentified.append(use_names[j])
    sol, *_ = np.linalg.lstsq(M[:, keep], y, rcond=None)
    pred = M[:, keep] @ sol
    values = {use_names[j]: float(v) for j, v in zip(keep, sol)}
    return Fit(names=[use_names[j] for j in keep], values=values, unidentified=unidentified,
               unexercised=unexercised, residual_rms=float(np.sqrt(np.mean((pred - y) ** 2))), rank=len(keep))


def param_error_pct(fitted: dict[str, float], truth: dict[str, float]) -> dict[str, float]:
    """|fitted - true| in percent of the true cost (of 1 cycle where the true cost is below one cycle)."""
    return {k: abs(v - truth.get(k, 0.0)) / max(abs(truth.get(k, 0.0)), 1.0) * 100.0 for k, v in fitted.items()}
