/*
 * armv7m_core.h - core-generic helpers for the real-silicon boards (private to firmware/boards/).
 *
 * Everything here uses only architectural registers (ARMv7-M Architecture Reference Manual, DDI 0403E,
 * chapter B3 "System Address Map": SCB, MPU, DWT) and the Cortex-M7 TRM's cache registers, so it runs on any
 * ARMv7-M core, real or emulated (QEMU mps2-an500 models a Cortex-M7 without caches or a cycle counter).
 */
#ifndef TH_ARMV7M_CORE_H
#define TH_ARMV7M_CORE_H

#include <stdint.h>

/* Masks and clears every NVIC interrupt and stops SysTick: a bootloader that ran before us (the Nano's Arduino
 * bootloader) may have left peripherals interrupting, and the runtime treats any interrupt it did not enable as
 * fatal. Also points VTOR at our vector table (an application linked above a bootloader must). */
void th_core_quiesce(void);

/* Cortex-M7 L1 caches. th_cm7_caches_present() reads CLIDR (0 on cores without caches, and on QEMU);
 * the enable functions invalidate, then set CCR.IC / CCR.DC, each a no-op where no cache exists. */
int th_cm7_caches_present(void);
void th_cm7_icache_enable(void);
/* Invalidation alone (what the enable functions do first): ICIALLU, and DCISW over every set and way that CCSIDR
 * reports for the L1 data cache. Harmless on a core without caches. */
void th_cm7_icache_invalidate(void);
void th_cm7_dcache_invalidate(void);
void th_cm7_dcache_enable(void);
/* CCR.IC and CCR.DC as they read back (bit 0: I-cache on, bit 1: D-cache on). */
uint32_t th_cm7_cache_state(void);

/* MPU stack guard: a no-access, execute-never region of `size` bytes (a power of two >= 32, `base` aligned to
 * it) in the highest-priority MPU region, the default memory map everywhere else (PRIVDEFENA). A stack that
 * grows into it takes a MemManage fault instead of silently overwriting the data below. Returns 0, or -1 when
 * the core has no MPU (MPU_TYPE.DREGION == 0). */
int th_mpu_stack_guard(uint32_t base, uint32_t size);

/* DWT cycle counter check, after th_timer_init(): the counter must exist (DWT_CTRL.NOCYCCNT == 0) and advance
 * over a short busy loop. Never waits for the counter, so it cannot hang on a core (or emulator) where it
 * reads 0. Returns TH_DWT_OK, TH_DWT_ABSENT or TH_DWT_STUCK. */
#define TH_DWT_OK 0
#define TH_DWT_ABSENT (-1)
#define TH_DWT_STUCK (-2)
int th_dwt_guard(void);
/* The last th_dwt_guard() result (kept for a debugger or a test image to read). */
extern volatile int32_t th_dwt_status;

/* One protocol error line at boot when the guard fails (the runtime's own line writer, so it is framed and
 * checksummed like every other line). */
void th_dwt_report(int status);

#endif /* TH_ARMV7M_CORE_H */
