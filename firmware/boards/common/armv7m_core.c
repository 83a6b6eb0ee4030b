/*
 * Core-generic bring-up for the real-silicon boards: NVIC quiesce and VTOR, Cortex-M7 L1 caches, an MPU stack
 * guard, and a check that the DWT cycle counter really counts. Register addresses and fields are the
 * architectural ones: ARMv7-M ARM (DDI 0403E) B3.2 (SCB: VTOR, CCR, CLIDR, CCSIDR, CSSELR, ICIALLU, DCISW),
 * B3.5 (PMSAv7 MPU), C1.8 (DWT), B3.4 (NVIC); the cache maintenance sequence is B2.2.7 and the Cortex-M7 TRM's
 * "Initializing and enabling the L1 cache".
 */
#include <stdint.h>

#include "armv7m_core.h"
#include "th_board.h"
#include "th_runtime.h"

#define REG(a) (*(volatile uint32_t *)(a))

#define SCB_VTOR REG(0xE000ED08u)
#define SCB_CCR REG(0xE000ED14u)
#define SCB_CLIDR REG(0xE000ED78u)
#define SCB_CCSIDR REG(0xE000ED80u)
#define SCB_CSSELR REG(0xE000ED84u)
#define SCB_ICIALLU REG(0xE000EF50u)
#define SCB_DCISW REG(0xE000EF60u)
#define CCR_DC (1u << 16)
#define CCR_IC (1u << 17)

#define ICTR REG(0xE000E004u)
#define SYST_CSR REG(0xE000E010u)
#define NVIC_ICER(n) REG(0xE000E180u + 4u * (n))
#define NVIC_ICPR(n) REG(0xE000E280u + 4u * (n))

#define MPU_TYPE REG(0xE000ED90u)
#define MPU_CTRL REG(0xE000ED94u)
#define MPU_RNR REG(0xE000ED98u)
#define MPU_RBAR REG(0xE000ED9Cu)
#define MPU_RASR REG(0xE000EDA0u)
#define MPU_CTRL_ENABLE (1u << 0)
#define MPU_CTRL_PRIVDEFENA (1u << 2)
#define MPU_RASR_ENABLE (1u << 0)
#define MPU_RASR_XN (1u << 28) /* AP[26:24] = 000: no access, privileged or not */

#define DEMCR REG(0xE000EDFCu)
#define DEMCR_TRCENA (1u << 24)
#define DWT_CTRL REG(0xE0001000u)
#define DWT_CYCCNT REG(0xE0001004u)
#define DWT_LAR REG(0xE0001FB0u)
#define DWT_CTRL_CYCCNTENA (1u << 0)
#define DWT_CTRL_NOCYCCNT (1u << 25)

typedef void (*th_vector_t)(void);
extern const th_vector_t th_vectors[]; /* startup.c */

volatile int32_t th_dwt_status;

static inline void barrier(void)
{
    __asm volatile("dsb\n\tisb" ::: "memory");
}

void th_core_quiesce(void)
{
    __asm volatile("cpsid i" ::: "memory");
    SYST_CSR = 0u;
    uint32_t words = (ICTR & 0xFu) + 1u; /* INTLINESNUM: 32 interrupt lines per word */
    for (uint32_t n = 0; n < words; ++n) {
        NVIC_ICER(n) = 0xFFFFFFFFu;
        NVIC_ICPR(n) = 0xFFFFFFFFu;
    }
    SCB_VTOR = (uint32_t)(uintptr_t)th_vectors;
    barrier();
    __asm volatile("cpsie i" ::: "memory");
}

int th_cm7_caches_present(void)
{
    /* CLIDR.Ctype1 (bits 2:0): 0 = no L1 cache; 3 = separate I and D caches (Cortex-M7 with both). */
    return (SCB_CLIDR & 0x7u) != 0u;
}

void th_cm7_icache_invalidate(void)
{
    barrier();
    SCB_ICIALLU = 0u;
    barrier();
}

void th_cm7_dcache_invalidate(void)
{
    SCB_CSSELR = 0u; /* level 1, data cache */
    barrier();
    uint32_t ccsidr = SCB_CCSIDR;
    uint32_t sets = ((ccsidr >> 13) & 0x7FFFu) + 1u;
    uint32_t ways = ((ccsidr >> 3) & 0x3FFu) + 1u;
    uint32_t line_shift = (ccsidr & 0x7u) + 4u; /* log2(line bytes): LineSize = log2(words) - 2 */
    uint32_t way_shift = 32u;
    for (uint32_t w = ways - 1u; w != 0u; w >>= 1) {
        --way_shift; /* 32 - ceil(log2(ways)) */
    }
    for (uint32_t set = 0; set < sets; ++set) {
        for (uint32_t way = 0; way < ways; ++way) {
            uint32_t w = way_shift < 32u ? (way << way_shift) : 0u;
            SCB_DCISW = w | (set << line_shift);
        }
    }
    barrier();
}

void th_cm7_icache_enable(void)
{
    if (!th_cm7_caches_present()) {
        return;
    }
    th_cm7_icache_invalidate(); /* the I-cache holds garbage after reset */
    SCB_CCR |= CCR_IC;
    barrier();
}

void th_cm7_dcache_enable(void)
{
    if (!th_cm7_caches_present()) {
        return;
    }
    th_cm7_dcache_invalidate(); /* so are the D-cache's valid bits: invalidate every set and way first */
    SCB_CCR |= CCR_DC;
    barrier();
}

uint32_t th_cm7_cache_state(void)
{
    uint32_t ccr = SCB_CCR;
    return ((ccr & CCR_IC) != 0u ? 1u : 0u) | ((ccr & CCR_DC) != 0u ? 2u : 0u);
}

int th_mpu_stack_guard(uint32_t base, uint32_t size)
{
    uint32_t regions = (MPU_TYPE >> 8) & 0xFFu;
    if (regions == 0u) {
        return -1;
    }
    uint32_t size_field = 0u; /* RASR.SIZE: region bytes = 2^(SIZE + 1), SIZE >= 4 (32 bytes) */
    while ((2u << size_field) < size) {
        ++size_field;
    }
    barrier();
    MPU_CTRL = 0u;
    MPU_RNR = regions - 1u; /* the highest-numbered region wins where regions overlap */
    MPU_RBAR = base & ~0x1Fu;
    MPU_RASR = MPU_RASR_XN | (size_field << 1) | MPU_RASR_ENABLE;
    MPU_CTRL = MPU_CTRL_PRIVDEFENA | MPU_CTRL_ENABLE;
    barrier();
    return 0;
}

int th_dwt_guard(void)
{
    DEMCR |= DEMCR_TRCENA;
    DWT_LAR = 0xC5ACCE55u; /* Cortex-M7: the DWT ignores writes until this key is written */
    int status;
    if ((DWT_CTRL & DWT_CTRL_NOCYCCNT) != 0u) {
        status = TH_DWT_ABSENT;
    } else {
        DWT_CTRL |= DWT_CTRL_CYCCNTENA;
        uint32_t before = DWT_CYCCNT;
        for (volatile uint32_t i = 0; i < 64u; ++i) {
        }
        status = DWT_CYCCNT != before ? TH_DWT_OK : TH_DWT_STUCK;
    }
    th_dwt_status = status;
    return status;
}

void th_dwt_report(int status)
{
    if (status == TH_DWT_ABSENT) {
        th_line("e-[dwt: this core has no cycle counter (DWT_CTRL.NOCYCCNT): every count would read 0]");
    } else if (status == TH_DWT_STUCK) {
        th_line("e-[dwt: the cycle counter does not advance (debug trace disabled or emulated core): counts "
                "would read 0]");
    }
}
