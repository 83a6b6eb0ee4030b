"""The instruction-set floor of a layer: the fewest instructions (and cycles under the Cortex-M4 and Cortex-M7
models) an ARMv7E-M + DSP kernel needs per MAC for a layer shape at an (a, w) pair, under the constructions
documented in docs/kernels.md ("The floor"). Pure functions; ``tinyhil bench experiment=kernels`` divides each
measured count by it.

What it counts, per MAC (weighted ops) or per element (add, avgpool):

* **multiplies**: SMLAD is two MACs on 16-bit lanes ("lane" scheme, every pair); with both operands at 2 or 4
  bits, two offset fields per 16-bit lane make one SMLAD four MACs ("field" scheme), at the price of taking the
  field out into a 32-bit sum every F multiplies (F: how many sums fit the field, from the value ranges);
* **operands**: each multiply needs one activation word (from a column built once per output pixel) and one
  weight word made from the stored packed weights (at least one ALU/SIMD instruction per weight word, the
  construction's known cost), loaded with LDR, LDRD or an LDM of four registers;
* **blocking**: m output channels x n pixels per step share those operands; the register file (r0-r12, lr)
  must hold the m n accumulators (and field sums), the shared operands, two pointers and a loop bound;
* **per output**: bias, requantization (SMMLAR, rounding shift, saturation) and the store;
* **per column entry**: turning the packed input into the multiplier's activation words, once per output pixel
  (amortised over the output channels).

Loop overhead is taken as zero (full unrolling). Cycles: the same instruction mix costed with the Cortex-M4
table (single issue; LDR pipelined at one cycle, LDRD three, LDM 1 + N) and the Cortex-M7 dual-issue limits (one
MAC pipe, one SIMD/slot-0 instruction per cycle, LDRD and LDM single issue, two instructions per cycle), memory at
zero wait
states: a floor for the core, not for caches or flash.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, fields

from harness.errors import ConfigError

#: General registers a loop may use: r0-r12 and lr (sp and pc excluded).
REGISTERS = 14
#: Registers the loop itself needs: the column pointer, the weight pointer, the loop bound.
LOOP_REGISTERS = 3
#: Cores with a cycle floor: the core names of the board configs.
CORES = ("cortex-m4", "cortex-m7")


@dataclass(frozen=True)
class Mix:
    """Instructions by the resource they use (fractions allowed: per MAC)."""

    mul: float = 0.0  # the multiply pipe: SMLAD, SMUAD, SMMLAR, MLA
    simd: float = 0.0  # SIMD / saturating / bit-field (Cortex-M7 slot 0 only): SXTB16, SXTAB16, PKH, UXTAB16, USADA8, UBFX, SSAT, REV16, SSUB16
    alu: float = 0.0  # plain ALU, shifted-operand ALU, BFI
    ldr: float = 0.0  # single-word loads
    ldrd: float = 0.0  # two-word loads
    ldm: float = 0.0  # four-word loads (LDM of four registers)
    st: float = 0.0  # stores

    def __add__(self, o: Mix) -> Mix:
        return Mix(*(getattr(self, f.name) + getattr(o, f.name) for f in fields(self)))

    def __mul__(self, k: float) -> Mix:
        return Mix(*(getattr(self, f.name) * k for f in fields(self)))

    __rmul__ = __mul__

    @property
    def instructions(self) -> float:
        return self.mul + self.simd + self.alu + self.ldr + self.ldrd + self.ldm + self.st

    def cycles(self, core: str) -> float:
        """Cycles of the mix on ``core`` (a lower bound: perfect pairing and pipelining)."""
        if core == "cortex-m4":
            # Cortex-M4 TRM table 3-1: 1 cycle each; LDR pipelined behind another load 1, LDRD 1 + 2, LDM 1 + 4
            return self.mul + self.simd + self.alu + self.st + self.ldr + 3.0 * self.ldrd + 5.0 * self.ldm
        if core == "cortex-m7":
            # one MAC pipe, one SIMD (slot 0) per cycle, two loads per cycle, one store, two instructions per
            # cycle, LDRD issues alone, LDM alone over two cycles (two registers a cycle)
            single = self.ldrd + 2.0 * self.ldm
            return max(
                self.mul,
                self.simd,
                self.st,
                self.ldr / 2.0 + single,
                (self.instructions - self.ldrd - self.ldm) / 2.0 + single,
            )
        raise ConfigError(f"no cycle floor for core {core!r} (known: {', '.join(CORES)})")

    def count(self, unit: str, core: str | None = None) -> float:
        """Instructions, or cycles on ``core``."""
        if unit == "instructions":
            return self.instructions
        if unit == "cycles":
            if core is None:
                raise ConfigError("a cycle floor needs the core (cortex-m4 or cortex-m7)")
            return self.cycles(core)
        raise ConfigError(f"unknown unit {unit!r}: instructions or cycles")


@dataclass(frozen=True)
class Scheme:
    """How one multiply instruction does P MACs, and what its operands cost.

    ``wextract``: instructions (Mix) per weight operand word made from the stored weights; ``flush``: the Mix
    that moves one field accumulator into its 32-bit sum, needed every ``fill`` multiplies (0: never);
    ``sum_regs``: extra registers per accumulator for the field sums; ``col``: Mix per column entry (one input
    element of one output pixel) to build the activation words; ``out``: Mix per output beyond the common one.
    """

    name: str
    P: int
    wextract: Mix
    fill: int = 0
    flush: Mix = Mix()
    sum_regs: float = 0.0
    col: Mix = Mix()
    out: Mix = Mix()


def _lane(a: int, w: int) -> Scheme:
    # weights: 8-bit words -> SXTB16 / SXTB16 ROR 8 per lane word; 4- and 2-bit: one AND (shifted operand) puts a
    # field of every byte at the byte's top for two SXTB16s (three instructions per two lane words)
    wx = Mix(simd=1.0) if w == 8 else Mix(alu=0.5, simd=1.0)
    # activations: 8-bit words -> SXTAB16 (centred) per two entries; 4/2-bit: shift-and-mask + SSUB16 per two
    # entries; one STR per lane word, one LDR per 32 bits of input
    col = (Mix(simd=0.5) if a == 8 else Mix(alu=0.5, simd=0.5)) + Mix(st=0.5, ldr=a / 32.0)
    return Scheme("lane", 2, wx, col=col)


def _field(a: int, w: int) -> Scheme | None:
    """Two offset fields per 16-bit lane (a, w <= 4): u = x + 2^(a-1) in [0, 2^a - 1], v = w + o >= 0."""
    if a > 4 or w > 4:
        return None
    umax = (1 << a) - 1
    # 2-bit weights: v = w + 2 (one EOR per weight word, in [1, 3]); 4-bit: v = w + 8 (one EOR, in [1, 15])
    vmax = 3 if w == 2 else 15
    prod = umax * vmax
    if 4 * prod < 256:  # 8-bit fields: the field takes 4 products per SMLAD, the low garbage 2
        fill = 255 // (4 * prod)
        per_word = 32 // w // 4  # lane words per weight word
        # one AND (shifted operand) per lane word, the EOR shared by the word's lane words
        wx = Mix(alu=1.0 + 1.0 / per_word)
        # a PKHBT of two accumulators and one UXTAB16 ROR 8 add both fields to packed 16-bit sums
        flush = Mix(simd=1.0)
        # a shift-and-mask and a REV16/PKH per lane word (4 entries), one store, the per-pixel sum (USADA8)
        col = Mix(alu=0.25, simd=0.5, st=0.25, ldr=a / 32.0)
        return Scheme("field8", 4, wx, fill, flush, 0.5, col, out=Mix(alu=1.0))
    # 11-bit fields (a4w4): a lane holds 15 + (15 << 11) < 2^15; the field takes two SMLADs (8 products)
    fill = 2047 // (4 * prod)
    # a lane word from the EORed word: AND, AND of a shifted operand, ORR of a shifted operand
    wx = Mix(alu=3.0 + 0.5)
    flush = Mix(simd=1.0, alu=1.0)  # UBFX + ADD: the field sits between garbage below and above
    col = Mix(alu=0.75, st=0.25, simd=0.25, ldr=a / 32.0)
    return Scheme("field11", 4, wx, fill, flush, 0.0, col, out=Mix(alu=1.0))


def schemes(a: int, w: int) -> list[Scheme]:
    """The multiply constructions available to pair (a, w)."""
    if a not in (2, 4, 8) or w not in (2, 4, 8):
        raise ConfigError(f"bits must be 2, 4 or 8, got a{a}w{w}")
    f = _field(a, w)
    return [_lane(a, w)] + ([f] if f is not None else [])


#: Every output: SMMLAR, the rounding shift and its sign correction, the saturation, a byte store; the bias
#: as the accumulator's start (a load per channel, shared by the pixels) is counted with the parameters.
OUTPUT = Mix(mul=1.0, alu=2.0, simd=1.0, st=1.0)
#: Per output channel and step: bias, multiplier, rounding constant, shift (LDRD pairs)
CHANNEL_PARAMS = Mix(ldrd=2.0)


@dataclass(frozen=True)
class Blocking:
    scheme: str
    m: int  # output channels per step
    n: int  # pixels per step
    load: int  # activation words per load instruction (1: LDR, 2: LDRD, 4: LDM)


def _fits(s: Scheme, m: int, n: int, load: int) -> bool:
    acc = m * n * (1.0 + s.sum_regs) + (1 if s.fill and s.sum_regs == 0 else 0)  # u44: one transient field
    operands = min(m, n) + load + 1  # the shared operands, the streamed ones, the raw weight word
    return acc + operands + LOOP_REGISTERS <= REGISTERS


def _inner(s: Scheme, w: int, m: int, n: int, load: int) -> Mix:
    """Mix per MAC of the inner loop."""
    step = Mix(mul=m * n)
    step += Mix(ldr=n) if load == 1 else (Mix(ldrd=n / 2.0) if load == 2 else Mix(ldm=n / 4.0))
    step += m * (Mix(ldr=s.P * w / 32.0) + s.wextract)
    if s.fill:
        step += (m * n / s.fill) * s.flush
    return step * (1.0 / (m * n * s.P))


def _candidates(s: Scheme, n_max: int):
    for m, n, load in itertools.product(range(1, 9), range(1, 9), (1, 2, 4)):
        if n <= n_max and _fits(s, m, n, load):
            yield m, n, load


def matmul_floor(
    a: int, w: int, k: int, m_out: int, pixels: int, unit: str = "instructions", core: str | None = None
) -> tuple[float, Blocking]:
    """Floor per MAC of a conv2d / pointwise / fc layer: K = taps * cin products per output, M = output channels,
    ``pixels`` output pixels. Returns (count per MAC, the blocking that reaches it)."""
    best: tuple[float, Blocking] | None = None
    for s in schemes(a, w):
        per_mac_out = (OUTPUT + s.out) * (1.0 / k)
        per_mac_col = s.col * (1.0 / m_out)
        for m, n, load in _candidates(s, max(1, pixels)):
            mix = _inner(s, w, m, n, load) + per_mac_out + CHANNEL_PARAMS * (1.0 / (n * k)) + per_mac_col
            v = mix.count(unit, core)
            if best is None or v < best[0]:
                best = (v, Blocking(s.name, m, n, load))
    assert best is not None
    return best


def depthwise_floor(
    a: int, w: int, stride: int, unit: str = "instructions", core: str | None = None
) -> float:
    """Floor per MAC of a 3x3 depthwise layer (9 MACs per output).

    Lane scheme: a row of three taps is one SMLAD (two horizontal neighbours) and a third product shared with
    another output (SMLAD over two rows' third taps): 4.5 multiplies per output, one word load per row. Field
    scheme (a, w <= 4): a row's three taps and a zero fit one SMLAD's four products: 3 multiplies, 3 loads,
    one field extraction per ``fill`` multiplies. Per output: requantization and store; per input element the
    row conversion, each input element reaching 9 / stride^2 outputs.
    """
    best = None
    for s in schemes(a, w):
        if s.name == "lane":
            per_out = Mix(mul=4.5, ldr=3.0)
        else:
            per_out = Mix(mul=3.0, ldr=3.0) + s.flush * (3.0 / s.fill) + s.out
        per_out += OUTPUT
        conv = s.col * float(stride * stride)  # the input elements one output brings in
        v = ((per_out + conv) * (1.0 / 9.0)).count(unit, core)
        best = v if best is None else min(best, v)
    return float(best)


def add_floor(bits: int, unit: str = "instructions", core: str | None = None) -> float:
    """Floor per element of TFLite ADD (both inputs and the output at ``bits``): per input, (x - zp) << left_shift
    (half a SXTAB16 and one shift), its rescale (SMMLAR, sign correction, rounding shift); the sum; the output's
    rescale, saturation; word loads and stores of packed data."""
    per_input = Mix(simd=0.5, alu=1.0) + Mix(mul=1.0, alu=2.0) + Mix(ldr=bits / 32.0)
    out = Mix(alu=1.0) + Mix(mul=1.0, alu=2.0, simd=1.0) + Mix(st=bits / 32.0)
    return (per_input * 2.0 + out).count(unit, core)


def avgpool_floor(bits: int, window: int, unit: str = "instructions", core: str | None = None) -> float:
    """Floor per window tap of average pooling: each tap is a word load per 32 bits and half a SIMD add
    (two channels per UXTAB16 / SADD16); per output the requantization and store."""
    per_tap = Mix(ldr=bits / 32.0, simd=0.5)
    per_out = OUTPUT
    return ((per_tap * float(window) + per_out) * (1.0 / window)).count(unit, core)


@dataclass(frozen=True)
class LayerGeometry:
    """What the floor needs to know about a layer: op, reduction length K, output channels M, output pixels,
    stride, window taps."""

    op: str
    k: int
    m: int
    pixels: int
    stride: int = 1
    taps: int = 1


def floor_per_mac(
    g: LayerGeometry, a: int, w: int, unit: str = "instructions", core: str | None = None
) -> float:
    """The floor of a layer per MAC (per element for add) in ``unit`` (cycles: on ``core``)."""
    if g.op in ("conv2d", "pointwise", "fc"):
        return matmul_floor(a, w, g.k, g.m, g.pixels, unit, core)[0]
    if g.op == "depthwise":
        if g.taps != 9:
            raise ConfigError("the depthwise floor covers 3x3 kernels")
        return depthwise_floor(a, w, g.stride, unit, core)
    if g.op == "add":
        return add_floor(a, unit, core)
    if g.op == "avgpool":
        return avgpool_floor(a, g.taps, unit, core)
    raise ConfigError(f"no floor for op {g.op!r}")
