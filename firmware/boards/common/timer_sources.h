/*
 * timer_sources.h - private to boards/common/timer.c: the two tick sources behind the timer API of th_board.h.
 * SysTick with a software wrap counter (what QEMU implements: under -icount shift=0 a tick is a fixed number of
 * guest instructions) and DWT CYCCNT (real silicon). timer.c picks one at build time (TH_TIMER_DWT) and
 * compiles both, so the silicon path keeps building; nothing outside it calls these.
 */
#ifndef TH_TIMER_SOURCES_H
#define TH_TIMER_SOURCES_H

#include <stdint.h>

void th_timer_systick_init(uint32_t core_hz);
uint64_t th_timer_systick_now(void);
void th_timer_systick_align(void);
void th_timer_dwt_init(void);
uint64_t th_timer_dwt_now(void);

#endif /* TH_TIMER_SOURCES_H */
