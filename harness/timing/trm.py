"""Documented instruction sequences and their cycle counts: the timing model's check against its sources.

``M4_CASES`` are the Cortex-M4 TRM's (ARM DDI 0439 r0p1): single instructions from table 3-1 and the load/store
pairings of section 3.3.2, each with the TRM's count at zero wait states. Where the TRM gives a range (P, the
pipeline refill, is 1..3; divides take 2..12) the case says so and is checked against the range; ``exact`` cases
must match to the cycle. ``M7_CASES`` check the Cortex-M7 model's dual-issue rules (two ALU pipes, two load pipes,
one MAC pipe with accumulator forwarding, single-issue LDRD/divide): Arm publishes no such table for the M7, so
these follow the TRM's pipe description with LLVM's ARMScheduleM7.td latencies and are model-rule regressions,
not TRM checks.

Sequences use the register set-up of :mod:`harness.timing.microbench`.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import TimingError
from harness.timing.microbench import EMPTY, Bench, run_benches

T31 = "TRM 3.3.1 table 3-1"
T32 = "TRM 3.3.2 Load/store timings"
FPU = "TRM chapter 7, FPU instruction set table"

M4_CASES: tuple[Bench, ...] = (
    Bench("add", ("add r0, r8, r9",), expected=1, source=f"{T31}: ADD 1"),
    Bench("mul", ("mul r0, r8, r9",), expected=1, source=f"{T31}: MUL 1"),
    Bench("mla", ("mla r0, r8, r9, r10",), expected=1, source=f"{T31}: MLA 1"),
    Bench("mls", ("mls r0, r8, r9, r10",), expected=1, source=f"{T31}: MLS 1"),
    Bench("smlad", ("smlad r0, r8, r9, r10",), expected=1, source=f"{T31}: SMLAD 1"),
    Bench("smlal", ("smlal r0, r2, r8, r9",), expected=1, source=f"{T31}: SMLAL 1"),
    Bench("umull", ("umull r0, r2, r8, r9",), expected=1, source=f"{T31}: UMULL 1"),
    Bench("ssat_ubfx_sxtb16", ("ssat r0, #8, r9", "ubfx r2, r9, #1, #3", "sxtb16 r5, r9"), expected=3,
          source=f"{T31}: SSAT, UBFX, SXTB16 1 each"),
    Bench("sadd16_sel", ("sadd16 r0, r8, r9", "sel r2, r8, r9"), expected=2, source=f"{T31}: SADD16, SEL 1 each"),
    Bench("sdiv", ("sdiv r0, r9, r8",), expected_range=(2, 12), source=f"{T31}: SDIV 2-12"),
    Bench("ldr", ("ldr r0, [r3]",), expected=2, source=f"{T31}: LDR 2"),
    Bench("ldrb_ldrsh", ("ldrb r0, [r3]", "add r9, r9, r8", "ldrsh r10, [r4]"), expected=5,
          source=f"{T31}: LDRB 2, ADD 1, LDRSH 2 (the ADD breaks the load pairing)"),
    Bench("str_imm", ("str r0, [r3, #4]",), expected=1, source=f"{T32}: STR Rx,[Ry,#imm] is always one cycle"),
    Bench("ldr_ldr", ("ldr r0, [r3]", "ldr r3, [r4]"), expected=3,
          source=f"{T32}: LDR R0,[R1]; LDR R1,[R2] normally three cycles total"),
    Bench("ldr_str_imm", ("ldr r0, [r3, r2]", "str r0, [r4, #20]"), expected=3,
          source=f"{T32}: LDR R0,[R1,R2]; STR R0,[R3,#20] normally three cycles total"),
    Bench("ldr_str_reg", ("ldr r0, [r3, r2]", "str r3, [r4, r2]"), expected=3,
          source=f"{T32}: LDR R0,[R1,R2]; STR R1,[R3,R2] normally three cycles total"),
    Bench("ldr_ldr_ldr", ("ldr r0, [r3, r5]", "ldr r3, [r4]", "ldr r4, [r6, #4]"), expected=4,
          source=f"{T32}: LDR R0,[R1,R5]; LDR R1,[R2]; LDR R2,[R3,#4] normally four cycles total"),
    Bench("ldr_dependent_address", ("ldr r1, [r1]", "ldr r0, [r1]"), expected=4,
          source=f"{T32}: loads pipeline only if the first one's destination does not form the next address: 2 + 2"),
    Bench("str_then_ldr", ("str r0, [r3, r2]", "ldr r9, [r4]"), expected=4,
          source=f"{T31}/{T32}: STR (register offset) 2, nothing pipelines after a store: LDR 2"),
    Bench("agu_interlock", ("add r3, r3, #4", "ldr r0, [r3]"), expected=4,
          source=f"{T32}: a load whose address depends on the preceding data-processing result stalls a cycle: "
                 "1 + 2 + 1"),
    Bench("ldrd", ("ldrd r8, r9, [r3]",), expected=3, source=f"{T31}: LDRD 1+N (N=2); {T32}: three cycles"),
    Bench("strd", ("strd r8, r9, [r3]",), expected=3, source=f"{T31}: STRD 1+N (N=2)"),
    Bench("ldm3", ("ldm r3, {r0, r8, r9}",), expected=4, source=f"{T31}: LDM 1+N (N=3)"),
    Bench("stm4", ("stm r3, {r0, r8, r9, r10}",), expected=5, source=f"{T31}: STM 1+N (N=4)"),
    Bench("push_pop", ("push {r4-r7}", "pop {r4-r7}"), expected=10, source=f"{T31}: PUSH 1+N, POP 1+N (N=4)"),
    Bench("b_taken", ("b {L}t", "nop", "{L}t:"), expected_range=(2, 4), source=f"{T31}: B 1+P, P = 1..3"),
    Bench("bcc_not_taken", ("cmp r8, r9", "beq {never}"), expected=2,
          source=f"{T31}: CMP 1; a conditional branch not taken completes in a single cycle"),
    Bench("bl_bx", ("bl mb_ret",), expected_range=(4, 8),
          source=f"{T31}: BL 1+P and BX 1+P, P = 1..3 each"),
    Bench("ldr_pc", ("ldr pc, ={L}target+1", ".ltorg", "{L}target:"), expected=5,
          source=f"{T32}: LDR PC,[any]: two cycles for the load, three for the pipeline reload, at least five"),
    Bench("tbb", ("tbb [pc, r0]", ".byte 1, 1", "3:"), expected=6,
          source=f"{T32}: TBB: two cycles for the load, one for the add, three for the reload, at least six"),
    Bench("vadd_vmul", ("vadd.f32 s0, s1, s2", "vmul.f32 s3, s4, s5"), expected=2, source=f"{FPU}: VADD 1, VMUL 1"),
    Bench("vmla", ("vmla.f32 s0, s1, s2",), expected=3, source=f"{FPU}: VMLA 3"),
    Bench("vdiv", ("vdiv.f32 s0, s1, s2",), expected=14, source=f"{FPU}: VDIV 14"),
    Bench("vldr_vstr", ("vldr s0, [r3]", "vstr s1, [r4]"), expected=4, source=f"{FPU}: VLDR 2, VSTR 2"),
    Bench("vldm4", ("vldm r3, {s0-s3}",), expected=5, source=f"{FPU}: VLDM 1+N (N=4)"),
)

M7_RULES = "M7 model rule (TRM pipes + LLVM ARMScheduleM7.td latencies)"

M7_CASES: tuple[Bench, ...] = (
    Bench("alu_pair", ("add r0, r8, r9", "add r2, r9, r10"), expected=1, source=f"{M7_RULES}: two ALU pipes"),
    Bench("alu_dependent", ("add r0, r8, r9", "add r2, r0, r10"), expected=2, source=f"{M7_RULES}: ALU latency 1"),
    Bench("two_loads", ("ldr r0, [r3]", "ldr r2, [r4]"), expected=1, source=f"{M7_RULES}: two load pipes"),
    Bench("load_store", ("ldr r0, [r3]", "str r9, [r4]"), expected=1, source=f"{M7_RULES}: load + store pipe"),
    Bench("two_stores", ("str r8, [r3]", "str r9, [r4]"), expected=2, source=f"{M7_RULES}: one store pipe"),
    Bench("load_then_alu_use", ("ldr r0, [r3]", "add r2, r0, r8"), expected=2,
          source=f"{M7_RULES}: word load latency 1"),
    Bench("alu_then_address", ("add r3, r3, #4", "ldr r0, [r3]"), expected=3,
          source=f"{M7_RULES}: address operands are read at issue: ALU result + 1"),
    Bench("mac_chain", ("smlad r0, r8, r9, r0", "smlad r0, r8, r10, r0"), expected=2,
          source=f"{M7_RULES}: one MAC pipe, accumulator forwarded (ReadMAC advance 1)"),
    Bench("mac_then_use", ("mul r0, r8, r9", "add r2, r0, r8"), expected=3, source=f"{M7_RULES}: MUL latency 2"),
    Bench("load_mac_pairs", ("ldr r0, [r3]", "smlad r2, r8, r9, r2", "ldr r5, [r4]", "smlad r2, r8, r10, r2"),
          expected=2, source=f"{M7_RULES}: a load and a MAC issue together"),
    Bench("simd_slot0", ("sxtb16 r0, r8", "sxtb16 r2, r9"), expected=2, source=f"{M7_RULES}: SIMD unit, slot 0 only"),
    Bench("ldrd_single", ("ldrd r0, r2, [r3]", "add r9, r9, r8"), expected=2, source=f"{M7_RULES}: LDRD single issue"),
    Bench("ldm4", ("ldm r3, {r0, r2, r8, r9}",), expected=2, source=f"{M7_RULES}: LDM two registers per cycle"),
    Bench("sdiv", ("sdiv r0, r9, r8",), expected=7, source=f"{M7_RULES}: divide latency 7, single issue"),
)


@dataclass
class CaseResult:
    name: str
    model: float
    expected: float | None
    expected_range: tuple[float, float] | None
    source: str

    @property
    def exact(self) -> bool:
        return self.expected is not None

    @property
    def ok(self) -> bool:
        if self.expected is not None:
            return abs(self.model - self.expected) < 1e-6
        lo, hi = self.expected_range or (float("-inf"), float("inf"))
        return lo <= self.model <= hi


def run_cases(board, cases: tuple[Bench, ...], workdir) -> list[CaseResult]:
    """Run ``cases`` (each once, beside an empty bench) on an emulated ``board`` with ``timer=qemu-cycles`` and
    return each sequence's cycles (its layer minus the empty layer)."""

    if getattr(board, "cycles", None) is None:
        raise TimingError("the documented-sequence check needs an emulated board with timer=qemu-cycles")
    res = run_benches(board, (EMPTY, *cases), workdir)
    base = res[0].cycles
    assert base is not None
    return [CaseResult(c.name, float(r.cycles) - base, c.expected, c.expected_range, c.source)  # type: ignore[arg-type]
            for c, r in zip(cases, res[1:])]
