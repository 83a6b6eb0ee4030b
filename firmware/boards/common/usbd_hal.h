/*
 * usbd_hal.h - the only way the nRF52840 USB driver (usbd_nrf52.c) reaches hardware: 32-bit register reads and
 * writes at absolute addresses, an EasyDMA pointer write, and a system reset. On the chip these are plain
 * volatile accesses. A host build (-DTH_USBD_HOST_MODEL, tests/fixtures/usbd_model.c) links a model of the
 * peripheral registers instead, so the driver's logic runs unchanged on the host.
 */
#ifndef TH_USBD_HAL_H
#define TH_USBD_HAL_H

#include <stdint.h>

#ifdef TH_USBD_HOST_MODEL

uint32_t th_hal_rd(uint32_t addr);
void th_hal_wr(uint32_t addr, uint32_t value);
/* An EasyDMA PTR register: the model keeps the host pointer (wider than the 32-bit register). */
void th_hal_wr_ptr(uint32_t addr, volatile void *p);
/* SCB AIRCR.SYSRESETREQ: the model records it and returns. */
void th_hal_system_reset(void);
#define th_hal_dsb() ((void)0)

#else

static inline uint32_t th_hal_rd(uint32_t addr)
{
    return *(volatile uint32_t *)(uintptr_t)addr;
}

static inline void th_hal_wr(uint32_t addr, uint32_t value)
{
    *(volatile uint32_t *)(uintptr_t)addr = value;
}

static inline void th_hal_wr_ptr(uint32_t addr, volatile void *p)
{
    th_hal_wr(addr, (uint32_t)(uintptr_t)p);
}

static inline void th_hal_dsb(void)
{
    __asm volatile("dsb" ::: "memory");
}

/* ARMv7-M ARM B3.2.6: AIRCR = VECTKEY 0x05FA | SYSRESETREQ (bit 2), keeping PRIGROUP. Never returns. */
static inline void th_hal_system_reset(void)
{
    volatile uint32_t *aircr = (volatile uint32_t *)0xE000ED0Cu;
    th_hal_dsb();
    *aircr = (0x05FAu << 16) | (*aircr & 0x700u) | (1u << 2);
    th_hal_dsb();
    for (;;) {
    }
}

#endif

#endif /* TH_USBD_HAL_H */
