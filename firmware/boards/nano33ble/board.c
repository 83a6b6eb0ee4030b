/*
 * Arduino Nano 33 BLE Sense (nRF52840, Cortex-M4F at 64 MHz), application at 0x10000 above the Arduino
 * bootloader. Bring-up: quiesce what the bootloader left running and point VTOR at our table, start the 64 MHz
 * crystal oscillator (HFXO), turn the flash instruction cache on, guard the stack with the MPU, open the host
 * channels (UARTE0 on the header pins D1/TX = P1.03 and D0/RX = P1.10, SEGGER RTT for a debug probe, and a USB
 * CDC-ACM serial port on the board's own USB connector: common/usbd_nrf52.c, which needs the HFXO started
 * here), and use the DWT cycle counter as the timer (it counts the 64 MHz CPU clock).
 *
 * Registers (nRF52840 Product Specification v1.x):
 *  - CLOCK (base 0x40000000, section "CLOCK - Clock control"): TASKS_HFCLKSTART 0x000, EVENTS_HFCLKSTARTED
 *    0x100, HFCLKSTAT 0x40C (SRC bit 0: 1 = crystal, STATE bit 16). The CPU always runs at 64 MHz; HFXO makes
 *    that 64 MHz crystal-accurate (HFINT is the RC oscillator) and is what USB and the radio need.
 *  - NVMC (base 0x4001E000, section "NVMC - Non-volatile memory controller"): ICACHECNF 0x540 (CACHEEN bit 0,
 *    CACHEPROFEN bit 8), IHIT 0x548, IMISS 0x54C. Code runs from flash through this cache; the flash has no
 *    wait-state setting to program on this chip.
 */
#include <stdint.h>

#include "armv7m_core.h"
#include "channels.h"
#include "th_board.h"

#define REG(a) (*(volatile uint32_t *)(a))

#define CLOCK_TASKS_HFCLKSTART REG(0x40000000u)
#define CLOCK_EVENTS_HFCLKSTARTED REG(0x40000100u)
#define CLOCK_HFCLKSTAT REG(0x4000040Cu)
#define HFCLKSTAT_SRC_XTAL (1u << 0)
#define HFCLKSTAT_STATE_RUNNING (1u << 16)

#define NVMC_ICACHECNF REG(0x4001E540u)
#define ICACHECNF_CACHEEN (1u << 0)

/* Loop budget for HFXO start-up: the PS gives well under a millisecond for the Nano's 32 MHz crystal; this is
 * tens of milliseconds at 64 MHz. */
#define HFXO_SPINS 2000000u

/* Register values, kept as symbols so the host test can compare them with the PS (see
 * harness/boards/regvalues.py); volatile, so the register write loads it from the symbol. */
const volatile uint32_t th_nrf52_icachecnf = ICACHECNF_CACHEEN;
volatile uint32_t th_nrf52_hfclkstat; /* HFCLKSTAT after start-up: SRC = 1 means the crystal runs */

static void hfxo_start(void)
{
    CLOCK_EVENTS_HFCLKSTARTED = 0u;
    CLOCK_TASKS_HFCLKSTART = 1u;
    for (uint32_t i = 0; i < HFXO_SPINS && CLOCK_EVENTS_HFCLKSTARTED == 0u; ++i) {
    }
    th_nrf52_hfclkstat = CLOCK_HFCLKSTAT;
}

uint32_t th_board_uart_clock_hz(void)
{
    return 16000000u; /* the UARTE's baud generator runs from a fixed 16 MHz */
}

extern uint32_t __stack_guard;

void th_board_init(void)
{
    th_core_quiesce();
    hfxo_start();
    NVMC_ICACHECNF = th_nrf52_icachecnf;
    __asm volatile("dsb\n\tisb" ::: "memory");
    (void)th_mpu_stack_guard((uint32_t)(uintptr_t)&__stack_guard, 32u);
    th_uart_init();
    th_timer_init();
    th_dwt_report(th_dwt_guard());
}
