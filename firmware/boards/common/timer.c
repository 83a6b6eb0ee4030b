/*
 * Tick counters. SysTick (with a software wrap counter) is what QEMU implements: under -icount shift=0 it
 * counts a fixed number of guest instructions per tick, deterministically. DWT CYCCNT is the real-silicon
 * cycle counter (QEMU reads it as 0). Both are compiled on every board; TH_TIMER_DWT picks the live one.
 */
#include <stdint.h>

#include "th_board.h"
#include "timer_sources.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SCB_ICSR (*(volatile uint32_t *)0xE000ED04u)
#define SCB_SHPR3 (*(volatile uint32_t *)0xE000ED20u)
#define ICSR_PENDSTSET (1u << 26)
#define SYST_RELOAD 0x00FFFFFFu

#define DEMCR (*(volatile uint32_t *)0xE000EDFCu)
#define DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)
#define DWT_LAR (*(volatile uint32_t *)0xE0001FB0u)

#ifdef TH_CYCLE_MARKERS
volatile uint32_t th_timer_marks[TH_MARK_SLOTS]; /* see TH_MARK in th_board.h */
#endif

static volatile uint32_t systick_wraps;
static uint32_t systick_hz;
static int64_t systick_offset; /* keeps th_timer_now() monotonic across th_timer_align() */

void SysTick_Handler(void)
{
    systick_wraps = systick_wraps + 1u;
}

void th_timer_systick_init(uint32_t core_hz)
{
    systick_hz = core_hz;
    systick_wraps = 0u;
    systick_offset = 0;
    SCB_SHPR3 &= 0x00FFFFFFu; /* highest priority: a wrap must never wait behind anything */
    SYST_RVR = SYST_RELOAD;
    SYST_CVR = 0u;
    SYST_CSR = 0x7u; /* processor clock, interrupt on wrap, enable */
    /* QEMU reads VAL as 0 until the first reload has happened; a reading before that would be off by one
     * full period. */
    while (SYST_CVR == 0u) {
    }
}

static uint64_t systick_raw(void)
{
    uint32_t w, v;
    do {
        w = systick_wraps;
        v = SYST_CVR;
    } while (w != systick_wraps);
    /* The counter reloaded but its interrupt has not run yet: count that wrap here. A large value means the
     * reload came before our read of VAL (a small one: the reload came after it, already accounted for). */
    if ((SCB_ICSR & ICSR_PENDSTSET) != 0u && v > (SYST_RELOAD / 2u)) {
        ++w;
    }
    return ((uint64_t)w << 24) + (uint64_t)(SYST_RELOAD - v);
}

uint64_t th_timer_systick_now(void)
{
    return (uint64_t)((int64_t)systick_raw() + systick_offset);
}

/* Restarts the tick period now. The host's commands arrive at arbitrary points of the 24-bit period (the guest
 * spins on the UART meanwhile), so without this a layer's count could differ by one tick between runs. After it,
 * the count of a timed region depends only on the instructions inside it. */
void th_timer_systick_align(void)
{
    uint64_t before = systick_raw();
    SYST_CVR = 0u; /* clears the counter without an interrupt; it reloads on the next clock edge */
    while (SYST_CVR == 0u) {
    }
    uint64_t after = systick_raw();
    systick_offset += (int64_t)before - (int64_t)after + 1;
}

static uint32_t dwt_last;
static uint32_t dwt_high;

void th_timer_dwt_init(void)
{
    DEMCR |= (1u << 24); /* TRCENA */
    DWT_LAR = 0xC5ACCE55u; /* Cortex-M7 locks the DWT until this key is written; ignored elsewhere */
    DWT_CYCCNT = 0u;
    DWT_CTRL |= 1u;
    dwt_last = 0u;
    dwt_high = 0u;
}

/* Extends the 32-bit counter; correct as long as reads are less than 2^32 cycles apart (8.9 s at 480 MHz). */
uint64_t th_timer_dwt_now(void)
{
    uint32_t c = DWT_CYCCNT;
    if (c < dwt_last) {
        ++dwt_high;
    }
    dwt_last = c;
    return ((uint64_t)dwt_high << 32) | c;
}

void th_timer_init(void)
{
#ifdef TH_TIMER_DWT
    th_timer_dwt_init();
#else
    th_timer_systick_init(th_core_hz());
#endif
}

uint64_t th_timer_now(void)
{
#ifdef TH_TIMER_DWT
    return th_timer_dwt_now();
#else
    return th_timer_systick_now();
#endif
}

void th_timer_align(void)
{
#ifndef TH_TIMER_DWT
    th_timer_systick_align();
#endif
}

const char *th_timer_name(void)
{
#ifdef TH_TIMER_DWT
    return "dwt-cycles";
#elif defined(TH_QEMU)
    return "qemu-icount";
#else
    return "systick";
#endif
}

uint32_t th_timer_hz(void)
{
#ifdef TH_TIMER_DWT
    return th_core_hz();
#else
    return systick_hz;
#endif
}
