"""Plain-text report of a patch plan, for the CLI and logs."""

from __future__ import annotations

from harness.patch.plan import PatchPlan, Window


def _kib(b: int) -> str:
    return f"{b / 1024:.1f} KiB"


def _span(values: list[int]) -> str:
    lo, hi = min(values), max(values)
    return str(lo) if lo == hi else f"{lo}-{hi}"


def _hw(wins: list[Window]) -> str:
    return f"{_span([w[1] - w[0] for w in wins])}x{_span([w[3] - w[2] for w in wins])}"


def _fmt_win(w: Window) -> str:
    return f"[{w[0]}:{w[1]}, {w[2]}:{w[3]}]"


def describe(plan: PatchPlan, per_patch: bool = False) -> str:
    """A table of the patch stage (per-patch input/output sizes, MACs once vs per patch) and the peaks.

    Sizes are ``rows x cols`` and show the range over patches (border patches are smaller). With ``per_patch``
    every patch's windows and padding are listed too. KiB = 1024 bytes.
    """
    lines = [
        f"patch plan: split after {plan.split} (layer {plan.split_index}), {plan.n}x{plan.n} patches over "
        f"{plan.stage_out_shape[0]}x{plan.stage_out_shape[1]}x{plan.stage_out_shape[2]}, "
        f"memory rule {plan.rule.name}",
        f"output grains: rows {[hi - lo for lo, hi in plan.grid_rows]}, "
        f"cols {[hi - lo for lo, hi in plan.grid_cols]}",
    ]
    head = (
        f"{'layer':<28} {'op':<9} {'in (per patch)':>15} {'out (per patch)':>15} {'MACs once':>12} "
        f"{'MACs patched':>13} {'redundant':>11}"
    )
    lines += [head, "-" * len(head)]
    for i, name in enumerate(plan.stage):
        steps = [sched[i] for sched in plan.schedule]
        once, patched = plan.per_layer_macs[name]
        lines.append(
            f"{name:<28.28} {steps[0].op:<9} {_hw([s.in_windows[0] for s in steps]):>15} "
            f"{_hw([s.out_window for s in steps]):>15} {once:>12,} {patched:>13,} {patched - once:>11,}"
        )
    lines += [
        "-" * len(head),
        f"patch-stage MACs: {plan.stage_macs_once:,} once, {plan.stage_macs_patched:,} per patch; redundant "
        f"{plan.redundant_macs:,} = {100 * plan.stage_mac_overhead:.1f} % of the stage, "
        f"{100 * plan.mac_overhead:.1f} % of the network ({plan.total_macs:,} MACs)",
        f"layer-by-layer peak: {_kib(plan.layer_peak)} (at {plan.layer_peak_step})",
        f"patch stage peak:    {_kib(plan.stage_peak)} = stage output {_kib(plan.stage_out_bytes)}"
        + (" + resident input" if plan.rule.resident_input else "")
        + f" + per-patch working set {_kib(plan.patch_working_set)} (patch {plan.stage_peak_at[0]}, "
        f"at {plan.stage_peak_at[1]})",
        f"rest of network:     {_kib(plan.rest_peak)} (at {plan.rest_peak_step})",
        f"patch-based peak:    {_kib(plan.patch_peak)} -> "
        + (
            f"{plan.layer_peak / plan.patch_peak:.2f}x lower than layer by layer"
            if plan.patch_wins
            else "NOT lower than layer by layer"
        ),
    ]
    if per_patch:
        for p, steps in enumerate(plan.schedule):
            lines.append(f"patch {p} (output {_fmt_win(steps[-1].out_window)}):")
            for st in steps:
                ins = ", ".join(_fmt_win(w) for w in st.in_windows)
                lines.append(
                    f"  {st.layer:<28.28} in {ins} pad {st.padding} -> out {_fmt_win(st.out_window)}"
                    f"  {st.macs:,} MACs"
                )
    return "\n".join(lines)
