/*
 * NUCLEO-H743ZI (STM32H743ZI, Cortex-M7): supply and voltage scaling, HSE bypass (ST-LINK MCO) or HSI, PLL1 to
 * TH_CORE_HZ (480 MHz by default) with the flash wait states that clock needs, I- and D-cache on, the stack in
 * DTCM behind an MPU guard, USART3 (PD8 TX / PD9 RX, AF7) to the ST-LINK virtual COM port plus an RTT channel,
 * and the DWT cycle counter as the timer.
 *
 * Register references are RM0433 by chapter and section title (see stm32h7_clock.h for the clock plan):
 *  - PWR (base 0x58024800): PWR_CSR1 0x04 (ACTVOSRDY bit 13), PWR_CR3 0x0C (BYPASS 0, LDOEN 1, SCUEN 2),
 *    PWR_D3CR 0x18 (VOSRDY 13, VOS 15:14; 11 = scale 1). "Power supply configuration": the supply is written
 *    once after reset (this board: LDO), then ACTVOSRDY is awaited before the voltage scale is changed.
 *  - SYSCFG (base 0x58000400): SYSCFG_PWRCR 0x2C (ODEN bit 0): VOS0 = scale 1 + overdrive, revision V only.
 *  - DBGMCU_IDC (0x5C001000): REV_ID 31:16 (0x1003 = revision Y, 400 MHz max; 0x2003 = revision V, 480 MHz).
 *  - RCC (base 0x58024400): CR 0x00 (HSION 0, HSIRDY 2, HSEON 16, HSERDY 17, HSEBYP 18, PLL1ON 24,
 *    PLL1RDY 25), CFGR 0x10 (SW 2:0, SWS 5:3; 011 = PLL1), D1CFGR 0x18, D2CFGR 0x1C, D3CFGR 0x20,
 *    PLLCKSELR 0x28, PLLCFGR 0x2C, PLL1DIVR 0x30, PLL1FRACR 0x34, AHB4ENR 0xE0 (GPIODEN 3),
 *    APB1LENR 0xE8 (USART3EN 18), APB4ENR 0xF4 (SYSCFGEN 1). "Clock enabling delays": an enable bit is read back
 *    before the peripheral is touched.
 *  - FLASH (base 0x52002000): FLASH_ACR 0x00 (LATENCY 3:0, WRHIGHFREQ 5:4); raised before the clock goes up and
 *    read back until it holds the new value ("FLASH read operations").
 *  - GPIOD (base 0x58020C00): MODER 0x00 (10 = alternate function), OSPEEDR 0x08, PUPDR 0x0C, AFRH 0x24.
 */
#include <stdint.h>

#include "armv7m_core.h"
#include "channels.h"
#include "stm32h7_clock.h"
#include "th_board.h"

#define REG(a) (*(volatile uint32_t *)(a))

#define PWR_CSR1 REG(0x58024804u)
#define PWR_CR3 REG(0x5802480Cu)
#define PWR_D3CR REG(0x58024818u)
#define PWR_CSR1_ACTVOSRDY (1u << 13)
#define PWR_CR3_BYPASS (1u << 0)
#define PWR_CR3_LDOEN (1u << 1)
#define PWR_CR3_SCUEN (1u << 2)
#define PWR_D3CR_VOSRDY (1u << 13)
#define PWR_D3CR_VOS_MASK (3u << 14)
#define PWR_D3CR_VOS_SCALE1 (3u << 14)

#define SYSCFG_PWRCR REG(0x5800042Cu)
#define SYSCFG_PWRCR_ODEN (1u << 0)
#define DBGMCU_IDC REG(0x5C001000u)
#define REV_ID_Y 0x1003u

#define RCC_CR REG(0x58024400u)
#define RCC_CFGR REG(0x58024410u)
#define RCC_D1CFGR REG(0x58024418u)
#define RCC_D2CFGR REG(0x5802441Cu)
#define RCC_D3CFGR REG(0x58024420u)
#define RCC_PLLCKSELR REG(0x58024428u)
#define RCC_PLLCFGR REG(0x5802442Cu)
#define RCC_PLL1DIVR REG(0x58024430u)
#define RCC_PLL1FRACR REG(0x58024434u)
#define RCC_AHB4ENR REG(0x580244E0u)
#define RCC_APB1LENR REG(0x580244E8u)
#define RCC_APB4ENR REG(0x580244F4u)
#define RCC_CR_HSION (1u << 0)
#define RCC_CR_HSIRDY (1u << 2)
#define RCC_CR_HSEON (1u << 16)
#define RCC_CR_HSERDY (1u << 17)
#define RCC_CR_HSEBYP (1u << 18)
#define RCC_CR_PLL1ON (1u << 24)
#define RCC_CR_PLL1RDY (1u << 25)
#define RCC_CFGR_SW_MASK 0x7u
#define RCC_CFGR_SW_PLL1 0x3u
#define RCC_CFGR_SWS_SHIFT 3
#define RCC_AHB4ENR_GPIODEN (1u << 3)
#define RCC_APB1LENR_USART3EN (1u << 18)
#define RCC_APB4ENR_SYSCFGEN (1u << 1)

#define FLASH_ACR REG(0x52002000u)

#define GPIOD_MODER REG(0x58020C00u)
#define GPIOD_OSPEEDR REG(0x58020C08u)
#define GPIOD_PUPDR REG(0x58020C0Cu)
#define GPIOD_AFRH REG(0x58020C24u)
#define USART3_AF 7u

/* Loop budget for a ready flag; at the 64 MHz reset clock this is a few milliseconds, far more than HSE
 * (bypass), the PLL or the regulator need. */
#define READY_SPINS 200000u

const th_h7_clock_plan_t th_h7_plans[4] = {
    TH_H7_PLAN(TH_CORE_HZ, TH_H7_HSE_HZ, TH_H7_PLLSRC_HSE, TH_H7_DIVM_HSE),
    TH_H7_PLAN(TH_CORE_HZ, TH_H7_HSI_HZ, TH_H7_PLLSRC_HSI, TH_H7_DIVM_HSI),
    TH_H7_PLAN(TH_H7_SAFE_HZ, TH_H7_HSE_HZ, TH_H7_PLLSRC_HSE, TH_H7_DIVM_HSE),
    TH_H7_PLAN(TH_H7_SAFE_HZ, TH_H7_HSI_HZ, TH_H7_PLLSRC_HSI, TH_H7_DIVM_HSI),
};

/* What the board ended up running at (reported by th_core_hz(), so `model%` shows the real clock). */
static uint32_t core_hz = 64000000u; /* HSI, the reset clock */
static uint32_t pclk1_hz = 64000000u;
volatile uint32_t th_h7_plan_used = 0xFFFFFFFFu; /* index into th_h7_plans, 0xFFFFFFFF: stayed on HSI */

static int wait_set(volatile uint32_t *reg, uint32_t mask, uint32_t want)
{
    for (uint32_t i = 0; i < READY_SPINS; ++i) {
        if ((*reg & mask) == want) {
            return 1;
        }
    }
    return 0;
}

/* LDO supply, then scale 1; VOS0 (overdrive) on top when the plan asks for it. */
static int set_voltage(uint32_t vos)
{
    if ((PWR_CR3 & PWR_CR3_SCUEN) != 0u) {
        PWR_CR3 = (PWR_CR3 & ~(PWR_CR3_SCUEN | PWR_CR3_BYPASS)) | PWR_CR3_LDOEN; /* clearing SCUEN locks it */
    }
    if (!wait_set(&PWR_CSR1, PWR_CSR1_ACTVOSRDY, PWR_CSR1_ACTVOSRDY)) {
        return 0;
    }
    PWR_D3CR = (PWR_D3CR & ~PWR_D3CR_VOS_MASK) | PWR_D3CR_VOS_SCALE1;
    (void)PWR_D3CR;
    if (!wait_set(&PWR_D3CR, PWR_D3CR_VOSRDY, PWR_D3CR_VOSRDY)) {
        return 0;
    }
    if (vos == 0u) {
        RCC_APB4ENR |= RCC_APB4ENR_SYSCFGEN;
        (void)RCC_APB4ENR;
        SYSCFG_PWRCR |= SYSCFG_PWRCR_ODEN;
        (void)SYSCFG_PWRCR;
        if (!wait_set(&PWR_D3CR, PWR_D3CR_VOSRDY, PWR_D3CR_VOSRDY)) {
            return 0;
        }
    }
    return 1;
}

static int start_hse_bypass(void)
{
    RCC_CR |= RCC_CR_HSEBYP;
    RCC_CR |= RCC_CR_HSEON;
    if (wait_set(&RCC_CR, RCC_CR_HSERDY, RCC_CR_HSERDY)) {
        return 1;
    }
    RCC_CR &= ~RCC_CR_HSEON; /* no 8 MHz from the ST-LINK: fall back to HSI */
    RCC_CR &= ~RCC_CR_HSEBYP;
    return 0;
}

static int apply_plan(const th_h7_clock_plan_t *p)
{
    /* Wait states first: the flash must keep up with the faster clock before it arrives. */
    FLASH_ACR = p->flash_acr;
    if (!wait_set(&FLASH_ACR, 0x3Fu, p->flash_acr)) {
        return 0;
    }
    RCC_CR &= ~RCC_CR_PLL1ON;
    if (!wait_set(&RCC_CR, RCC_CR_PLL1RDY, 0u)) {
        return 0;
    }
    RCC_PLLCKSELR = (RCC_PLLCKSELR & ~TH_H7_PLLCKSELR_MASK) | p->pllckselr;
    RCC_PLL1DIVR = p->pll1divr;
    RCC_PLL1FRACR = 0u;
    RCC_PLLCFGR = (RCC_PLLCFGR & ~TH_H7_PLLCFGR_MASK) | p->pllcfgr;
    RCC_CR |= RCC_CR_PLL1ON;
    if (!wait_set(&RCC_CR, RCC_CR_PLL1RDY, RCC_CR_PLL1RDY)) {
        return 0;
    }
    /* Prescalers before the switch, so no bus ever runs above its limit. */
    RCC_D1CFGR = p->d1cfgr;
    RCC_D2CFGR = p->d2cfgr;
    RCC_D3CFGR = p->d3cfgr;
    RCC_CFGR = (RCC_CFGR & ~RCC_CFGR_SW_MASK) | RCC_CFGR_SW_PLL1;
    return wait_set(&RCC_CFGR, RCC_CFGR_SW_MASK << RCC_CFGR_SWS_SHIFT, RCC_CFGR_SW_PLL1 << RCC_CFGR_SWS_SHIFT);
}

static void clock_init(void)
{
    uint32_t rev = DBGMCU_IDC >> 16;
    int safe = TH_CORE_HZ > TH_H7_SAFE_HZ && rev == REV_ID_Y;
    uint32_t idx = safe ? TH_H7_PLAN_SAFE_HSE : TH_H7_PLAN_HSE;
    RCC_CR |= RCC_CR_HSION;
    (void)wait_set(&RCC_CR, RCC_CR_HSIRDY, RCC_CR_HSIRDY);
    if (!set_voltage(th_h7_plans[idx].vos)) {
        return; /* stay on HSI at the reset voltage: slow but correct */
    }
    if (!start_hse_bypass()) {
        idx += 1u; /* the HSI plan of the same clock */
    }
    const th_h7_clock_plan_t *p = &th_h7_plans[idx];
    if (apply_plan(p)) {
        core_hz = p->sysclk_hz;
        pclk1_hz = p->pclk1_hz;
        th_h7_plan_used = idx;
    }
}

static void usart3_pins(void)
{
    RCC_AHB4ENR |= RCC_AHB4ENR_GPIODEN;
    RCC_APB1LENR |= RCC_APB1LENR_USART3EN;
    (void)RCC_AHB4ENR; /* clock enabling delay: read back before touching the peripherals */
    (void)RCC_APB1LENR;
    GPIOD_AFRH = (GPIOD_AFRH & ~0xFFu) | (USART3_AF << 0) | (USART3_AF << 4); /* PD8, PD9 */
    GPIOD_OSPEEDR = (GPIOD_OSPEEDR & ~(0xFu << 16)) | (0x5u << 16);           /* medium speed */
    GPIOD_PUPDR = (GPIOD_PUPDR & ~(0xFu << 16)) | (0x1u << 18);               /* pull-up on RX */
    GPIOD_MODER = (GPIOD_MODER & ~(0xFu << 16)) | (0xAu << 16);               /* alternate function */
}

uint32_t th_board_uart_clock_hz(void)
{
    return pclk1_hz;
}

/* The clock the board really runs at (the weak default in startup.c returns TH_CORE_HZ). */
uint32_t th_core_hz(void)
{
    return core_hz;
}

extern uint32_t __stack_guard;

void th_board_init(void)
{
    th_core_quiesce();
    clock_init();
    th_cm7_icache_enable();
    th_cm7_dcache_enable();
    (void)th_mpu_stack_guard((uint32_t)(uintptr_t)&__stack_guard, 32u);
    usart3_pins();
    th_uart_init();
    th_timer_init();
    th_dwt_report(th_dwt_guard());
}
