"""Register values of the real boards, from the vendors' formulas (pure functions).

The firmware computes the values it writes at compile time (C macros) and keeps them as symbols; the tests
decode those words with the field layouts below and check them against these formulas and the manuals'
limits, so a wrong clock, wait state or baud divider is caught without the board.

* STM32H743: RM0433 (RCC: RCC_PLLCKSELR, RCC_PLLCFGR, RCC_PLL1DIVR, RCC_D1CFGR/D2CFGR/D3CFGR; FLASH: FLASH_ACR and
  the table "FLASH recommended number of wait states and programming delay"; PWR: voltage scaling; USART: baud
  rate generation).
* nRF52840: Product Specification v1.x (UARTE BAUDRATE; NVMC ICACHECNF).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

# --- STM32H743 -----------------------------------------------------------------------------------------------

#: FLASH wait states by AXI clock (ACLK = hclk): (upper bound in Hz, LATENCY, WRHIGHFREQ). Rows up to 225 MHz
#: hold for VOS1 and VOS0; the last row needs VOS0 (revision V silicon).
H7_FLASH_TABLE = (
    (70_000_000, 0, 0),
    (140_000_000, 1, 1),
    (185_000_000, 2, 1),
    (210_000_000, 2, 2),
    (225_000_000, 3, 2),
    (240_000_000, 4, 2),
)
H7_SYSCLK_MAX = {
    0: 480_000_000,
    1: 400_000_000,
}  # VOS0, VOS1 (revision V); revision Y stops at VOS1 / 400 MHz
H7_HCLK_MAX = {0: 240_000_000, 1: 200_000_000}
H7_PCLK_MAX = {0: 120_000_000, 1: 100_000_000}
H7_PLL_REF_RANGES = (
    (1_000_000, 2_000_000),
    (2_000_000, 4_000_000),
    (4_000_000, 8_000_000),
    (8_000_000, 16_000_000),
)
H7_VCO_WIDE = (192_000_000, 960_000_000)  # wide-range VCO; 960 MHz is the VOS0 / 480 MHz case
#: D1CPRE / HPRE encodings (RCC_D1CFGR): 0xxx = /1, 1000 = /2, 1001 = /4, ... ; D1PPRE, D2PPREx, D3PPRE: 0xx = /1,
#: 100 = /2, 101 = /4, 110 = /8, 111 = /16.
_AHB_DIV = {8: 2, 9: 4, 10: 8, 11: 16, 12: 64, 13: 128, 14: 256, 15: 512}
_APB_DIV = {4: 2, 5: 4, 6: 8, 7: 16}


def h7_flash_wait_states(aclk_hz: int, vos: int) -> tuple[int, int]:
    """(LATENCY, WRHIGHFREQ) for an AXI clock at a voltage scale (0 or 1); ValueError above the scale's limit."""
    if aclk_hz > H7_HCLK_MAX[vos]:
        raise ValueError(f"ACLK {aclk_hz} Hz is above the VOS{vos} maximum {H7_HCLK_MAX[vos]} Hz")
    for limit, latency, wrhighfreq in H7_FLASH_TABLE:
        if aclk_hz <= limit:
            return latency, wrhighfreq
    raise ValueError(f"ACLK {aclk_hz} Hz is above every row of the wait-state table")


def stm32_usart_brr(kernel_hz: int, baud: int) -> int:
    """USART BRR with 16x oversampling: USARTDIV = f_ck / baud, rounded to the nearest integer."""
    return (kernel_hz + baud // 2) // baud


def _ahb_div(code: int) -> int:
    return _AHB_DIV.get(code, 1)


def _apb_div(code: int) -> int:
    return _APB_DIV.get(code, 1)


@dataclass(frozen=True)
class H7ClockPlan:
    """The firmware's ``th_h7_clock_plan_t`` (field order as in stm32h7_clock.h)."""

    sysclk_hz: int
    src_hz: int
    hclk_hz: int
    pclk1_hz: int
    vos: int
    pllckselr: int
    pllcfgr: int
    pll1divr: int
    d1cfgr: int
    d2cfgr: int
    d3cfgr: int
    flash_acr: int
    usart_brr: int

    @classmethod
    def from_words(cls, words: list[int]) -> H7ClockPlan:
        return cls(*words[: len(fields(cls))])


@dataclass(frozen=True)
class H7PllSetting:
    """What the PLL and bus registers of a plan mean, decoded with RM0433's field layouts."""

    pllsrc: int  # RCC_PLLCKSELR.PLLSRC: 0 HSI, 1 CSI, 2 HSE
    divm: int
    rge: int  # RCC_PLLCFGR.PLL1RGE: input range 0..3
    vcosel: int  # 0 wide, 1 medium
    fracen: int
    divp_en: int
    divn: int
    divp: int
    d1cpre: int
    hpre: int
    d1ppre: int
    d2ppre1: int
    d2ppre2: int
    d3ppre: int
    latency: int
    wrhighfreq: int


def decode_h7_plan(p: H7ClockPlan) -> H7PllSetting:
    s = H7PllSetting(
        pllsrc=p.pllckselr & 0x3,
        divm=(p.pllckselr >> 4) & 0x3F,
        rge=(p.pllcfgr >> 2) & 0x3,
        vcosel=(p.pllcfgr >> 1) & 0x1,
        fracen=p.pllcfgr & 0x1,
        divp_en=(p.pllcfgr >> 16) & 0x1,
        divn=(p.pll1divr & 0x1FF) + 1,
        divp=((p.pll1divr >> 9) & 0x7F) + 1,
        d1cpre=_ahb_div((p.d1cfgr >> 8) & 0xF),
        hpre=_ahb_div(p.d1cfgr & 0xF),
        d1ppre=_apb_div((p.d1cfgr >> 4) & 0x7),
        d2ppre1=_apb_div((p.d2cfgr >> 4) & 0x7),
        d2ppre2=_apb_div((p.d2cfgr >> 8) & 0x7),
        d3ppre=_apb_div((p.d3cfgr >> 4) & 0x7),
        latency=p.flash_acr & 0xF,
        wrhighfreq=(p.flash_acr >> 4) & 0x3,
    )
    return s


def h7_plan_problems(p: H7ClockPlan, baud: int = 115200) -> list[str]:
    """Every way ``p`` breaks RM0433's formulas or limits (empty when the plan is right)."""
    s = decode_h7_plan(p)
    bad: list[str] = []
    if s.pllsrc not in (0, 2):
        bad.append(f"PLLSRC {s.pllsrc} is neither HSI (0) nor HSE (2)")
    if s.pllsrc == 2 and p.src_hz != 8_000_000:
        bad.append("HSE plan must start from the ST-LINK's 8 MHz")
    if s.pllsrc == 0 and p.src_hz != 64_000_000:
        bad.append("HSI plan must start from 64 MHz")
    if not 1 <= s.divm <= 63:
        bad.append(f"DIVM1 {s.divm} outside 1..63")
        return bad
    ref = p.src_hz / s.divm
    lo, hi = H7_PLL_REF_RANGES[s.rge]
    if not lo <= ref <= hi:
        bad.append(f"ref1_ck {ref:.0f} Hz outside PLL1RGE={s.rge} range {lo}..{hi}")
    if s.rge == 0 or s.vcosel != 0:
        bad.append("expected the wide-range VCO (PLL1VCOSEL=0) with an input range of 2 MHz or more")
    if s.fracen:
        bad.append("fractional mode must be off")
    if not s.divp_en:
        bad.append("DIVP1EN must be set (pll1_p_ck is the system clock)")
    if not 4 <= s.divn <= 512:
        bad.append(f"DIVN1 {s.divn} outside 4..512")
    vco = ref * s.divn
    if not H7_VCO_WIDE[0] <= vco <= H7_VCO_WIDE[1]:
        bad.append(f"VCO {vco:.0f} Hz outside {H7_VCO_WIDE}")
    if not (s.divp == 1 or s.divp % 2 == 0):
        bad.append(f"DIVP1 {s.divp} must be 1 or even")
    sysclk = vco / s.divp
    if round(sysclk) != p.sysclk_hz:
        bad.append(f"pll1_p_ck {sysclk:.0f} Hz is not the planned {p.sysclk_hz} Hz")
    cpu = sysclk / s.d1cpre
    hclk = cpu / s.hpre
    pclk1 = hclk / s.d2ppre1
    if round(hclk) != p.hclk_hz or round(pclk1) != p.pclk1_hz:
        bad.append(f"bus clocks {hclk:.0f}/{pclk1:.0f} Hz differ from the plan's {p.hclk_hz}/{p.pclk1_hz}")
    vos = p.vos
    if vos not in (0, 1):
        bad.append(f"VOS {vos} is not 0 or 1")
        return bad
    if cpu > H7_SYSCLK_MAX[vos]:
        bad.append(f"CPU clock {cpu:.0f} Hz above the VOS{vos} maximum")
    if vos == 0 and cpu <= H7_SYSCLK_MAX[1]:
        bad.append("VOS0 (overdrive) used where VOS1 suffices")
    if hclk > H7_HCLK_MAX[vos]:
        bad.append(f"AXI/AHB clock {hclk:.0f} Hz above the VOS{vos} maximum")
    for name, div in (
        ("D1PPRE", s.d1ppre),
        ("D2PPRE1", s.d2ppre1),
        ("D2PPRE2", s.d2ppre2),
        ("D3PPRE", s.d3ppre),
    ):
        if hclk / div > H7_PCLK_MAX[vos]:
            bad.append(f"{name}: APB clock {hclk / div:.0f} Hz above the VOS{vos} maximum")
    try:
        want = h7_flash_wait_states(round(hclk), vos)
        if (s.latency, s.wrhighfreq) != want:
            bad.append(f"FLASH_ACR LATENCY/WRHIGHFREQ {(s.latency, s.wrhighfreq)} but the table gives {want}")
    except ValueError as e:
        bad.append(str(e))
    brr = stm32_usart_brr(round(pclk1), baud)
    if p.usart_brr != brr:
        bad.append(f"USART BRR {p.usart_brr} but f_ck / baud rounds to {brr}")
    elif abs(pclk1 / brr - baud) / baud > 0.01:
        bad.append(f"baud error {abs(pclk1 / brr - baud) / baud:.2%} above 1 %")
    return bad


# --- nRF52840 ------------------------------------------------------------------------------------------------

#: BAUDRATE register values the PS lists (a subset), to check the formula against.
NRF52_UARTE_BAUDRATE_TABLE = {9600: 0x00275000, 115200: 0x01D7E000, 1_000_000: 0x10000000}
NRF52_ICACHECNF_CACHEEN = 1 << 0


def nrf52_uarte_baudrate(baud: int) -> int:
    """UARTE BAUDRATE: baud * 2^32 / 16 MHz, rounded, low 12 bits cleared (rounded to the nearest 2^12)."""
    exact = ((baud << 32) + 8_000_000) // 16_000_000
    return (exact + 0x800) & 0xFFFFF000


def nrf52_uarte_actual_baud(register: int) -> float:
    return register * 16_000_000 / 2**32
