/*
 * STM32H743 clock plan, computed at compile time from the target core clock (TH_CORE_HZ) and the PLL source.
 * Every field is the value board.c writes to a register, so a host test recomputes each one from the reference
 * manual's formulas (harness/boards/regvalues.py) and compares it with the constants in the built ELF
 * (th_h7_plans[]). References are RM0433 (STM32H742/743/750/753 reference manual) by chapter and section title.
 *
 *  - Sources: HSE in bypass mode fed by the ST-LINK's 8 MHz MCO (NUCLEO-H743ZI user manual UM2407, "HSE clock
 *    (high-speed external clock)": MCO from ST-LINK is the default), or HSI at 64 MHz when HSE never becomes
 *    ready (a board with the MCO solder bridge opened).
 *  - PLL1 (RCC chapter, "PLL description"; RCC_PLLCKSELR, RCC_PLLCFGR, RCC_PLL1DIVR): ref1_ck = src / DIVM1 is
 *    8/3 MHz from either source (inside the 2-4 MHz input range, PLL1RGE = 01, away from the range edges),
 *    wide-range VCO (PLL1VCOSEL = 0), vco1_ck = ref1_ck * DIVN1, pll1_p_ck = vco1_ck / DIVP1 with DIVP1 = 2
 *    (PLL1's P divider takes only 1 or even values). 480 MHz: DIVN1 = 360, VCO 960 MHz (the VOS0 VCO of ST's
 *    own 480 MHz settings; the datasheet's general wide-range limit is 836 MHz); 400 MHz: DIVN1 = 300, VCO
 *    800 MHz.
 *  - Bus prescalers (RCC_D1CFGR, RCC_D2CFGR, RCC_D3CFGR): D1CPRE = 1 (CPU at sys_ck), HPRE = 2 (AXI/AHB at
 *    sys_ck / 2), every APB at hclk / 2: 480 MHz gives 240 MHz AXI and 120 MHz APB, the maxima at VOS0.
 *  - Voltage scaling (PWR chapter, "Voltage scaling"): above 400 MHz the core needs VOS0 (VOS1, then
 *    SYSCFG_PWRCR.ODEN; silicon revision V only); 400 MHz and below run at VOS1.
 *  - Flash wait states (FLASH chapter, table "FLASH recommended number of wait states and programming delay"),
 *    by the AXI clock ACLK = hclk: <=70 MHz 0 WS / WRHIGHFREQ 0, <=140 1/1, <=185 2/1, <=210 2/2, <=225 3/2,
 *    <=240 (VOS0) 4/2.
 *  - USART3 kernel clock: rcc_pclk1 (RCC_D2CCIP2R.USART234578SEL keeps its reset value 000) = hclk / 2.
 */
#ifndef TH_STM32H7_CLOCK_H
#define TH_STM32H7_CLOCK_H

#include <stdint.h>

#include "stm32h7_usart.h"

#define TH_H7_HSE_HZ 8000000u
#define TH_H7_HSI_HZ 64000000u
#define TH_H7_DIVM_HSE 3u  /* 8 MHz / 3 = 2.667 MHz */
#define TH_H7_DIVM_HSI 24u /* 64 MHz / 24 = 2.667 MHz */
#define TH_H7_PLLSRC_HSI 0u
#define TH_H7_PLLSRC_HSE 2u
#define TH_H7_DIVP 2u
#define TH_H7_DIVQ 4u
#define TH_H7_DIVR 2u
#define TH_H7_SAFE_HZ 400000000u /* the most a revision Y chip (or VOS1) allows */

#define TH_H7_DIVN(sys, src, m) ((sys) / 1000u * TH_H7_DIVP * (m) / ((src) / 1000u))
#define TH_H7_REF_HZ(src, m) ((src) / (m))
#define TH_H7_PLLRGE(ref) ((ref) < 2000000u ? 0u : (ref) < 4000000u ? 1u : (ref) < 8000000u ? 2u : 3u)
#define TH_H7_VOS(sys) ((sys) > TH_H7_SAFE_HZ ? 0u : 1u)
#define TH_H7_HCLK(sys) ((sys) / 2u)
#define TH_H7_PCLK(sys) ((sys) / 4u)
#define TH_H7_LATENCY(h)                                                                                      \
    ((h) <= 70000000u ? 0u : (h) <= 140000000u ? 1u : (h) <= 210000000u ? 2u : (h) <= 225000000u ? 3u : 4u)
#define TH_H7_WRHIGHFREQ(h) ((h) <= 70000000u ? 0u : (h) <= 185000000u ? 1u : 2u)

/* Register field encodings (RM0433 8.7.7-8.7.13, 4.9.1 FLASH_ACR). */
#define TH_H7_PLLCKSELR(src_sel, m) (((uint32_t)(m) << 4) | (uint32_t)(src_sel))
#define TH_H7_PLLCKSELR_MASK ((0x3Fu << 4) | 0x3u)
#define TH_H7_PLLCFGR(ref) ((TH_H7_PLLRGE(ref) << 2) | (1u << 16)) /* RGE, VCOSEL = 0 wide, FRACEN = 0, DIVP1EN */
#define TH_H7_PLLCFGR_MASK (0xFu | (7u << 16))
#define TH_H7_PLL1DIVR(n)                                                                                     \
    (((uint32_t)(n) - 1u) | ((TH_H7_DIVP - 1u) << 9) | ((TH_H7_DIVQ - 1u) << 16) | ((TH_H7_DIVR - 1u) << 24))
#define TH_H7_D1CFGR (0x0u << 8 | 0x4u << 4 | 0x8u) /* D1CPRE /1, D1PPRE /2, HPRE /2 */
#define TH_H7_D2CFGR (0x4u << 8 | 0x4u << 4)        /* D2PPRE2 /2, D2PPRE1 /2 */
#define TH_H7_D3CFGR (0x4u << 4)                    /* D3PPRE /2 */
#define TH_H7_FLASH_ACR(h) (TH_H7_LATENCY(h) | (TH_H7_WRHIGHFREQ(h) << 4))

typedef struct {
    uint32_t sysclk_hz;
    uint32_t src_hz;
    uint32_t hclk_hz;
    uint32_t pclk1_hz;
    uint32_t vos; /* 0 = VOS0 (overdrive), 1 = VOS1 */
    uint32_t pllckselr;
    uint32_t pllcfgr;
    uint32_t pll1divr;
    uint32_t d1cfgr;
    uint32_t d2cfgr;
    uint32_t d3cfgr;
    uint32_t flash_acr;
    uint32_t usart_brr;
} th_h7_clock_plan_t;

#define TH_H7_PLAN(sys, src, src_sel, m)                                                                      \
    {                                                                                                         \
        (sys), (src), TH_H7_HCLK(sys), TH_H7_PCLK(sys), TH_H7_VOS(sys), TH_H7_PLLCKSELR(src_sel, m),          \
            TH_H7_PLLCFGR(TH_H7_REF_HZ(src, m)), TH_H7_PLL1DIVR(TH_H7_DIVN(sys, src, m)), TH_H7_D1CFGR,       \
            TH_H7_D2CFGR, TH_H7_D3CFGR, TH_H7_FLASH_ACR(TH_H7_HCLK(sys)),                                     \
            TH_USART_BRR(TH_H7_PCLK(sys), TH_UART_BAUD)                                                        \
    }

/* Plans in th_h7_plans[]: the requested clock from HSE, then from HSI; the 400 MHz fallback (revision Y
 * silicon cannot run VOS0) from HSE, then from HSI. */
enum { TH_H7_PLAN_HSE = 0, TH_H7_PLAN_HSI = 1, TH_H7_PLAN_SAFE_HSE = 2, TH_H7_PLAN_SAFE_HSI = 3 };
extern const th_h7_clock_plan_t th_h7_plans[4];

#endif /* TH_STM32H7_CLOCK_H */
