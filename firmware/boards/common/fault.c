/*
 * Fault reporter: every fault vector lands here, the runtime prints an `e-[fault...]` line the host can read,
 * and the program exits with status 3 so the QEMU driver sees a crash rather than a hang.
 */
#include <stdint.h>

#include "th_board.h"
#include "th_runtime.h"

#define SCB_CFSR (*(volatile uint32_t *)0xE000ED28u)
#define SCB_HFSR (*(volatile uint32_t *)0xE000ED2Cu)
#define SCB_ICSR (*(volatile uint32_t *)0xE000ED04u)

__attribute__((used)) void th_fault_c(const uint32_t *frame)
{
    /* Exception frame: r0 r1 r2 r3 r12 lr pc xpsr */
    th_report_fault(SCB_ICSR & 0x1FFu, frame[6], frame[5], SCB_CFSR, SCB_HFSR);
    th_exit(3);
}

__attribute__((naked)) void HardFault_Handler(void)
{
    __asm volatile("tst lr, #4\n\t"
                   "ite eq\n\t"
                   "mrseq r0, msp\n\t"
                   "mrsne r0, psp\n\t"
                   /* A stack overflow may have left no room below SP: report from the top of the stack (the
                    * frame itself sits near the bottom and is not overwritten). */
                   "ldr r1, =__stack_top\n\t"
                   "mov sp, r1\n\t"
                   "b th_fault_c\n\t");
}
