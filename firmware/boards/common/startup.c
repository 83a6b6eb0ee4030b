/*
 * Generic Cortex-M startup shared by every board: vector table, .data/.bss initialisation, FPU enable,
 * stack painting (for the high-water mark) and the v8-M stack limit. No CMSIS: register addresses are the
 * architectural ones (ARMv7-M / ARMv8-M System Control Space).
 */
#include <stdint.h>

#include "th_board.h"

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end;
extern uint32_t __stack_bottom, __stack_top;

int main(void);
void Reset_Handler(void);
void Default_Handler(void);
void HardFault_Handler(void);
void SysTick_Handler(void) __attribute__((weak, alias("Default_Handler")));
void NMI_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SVC_Handler(void) __attribute__((weak, alias("Default_Handler")));
void DebugMon_Handler(void) __attribute__((weak, alias("Default_Handler")));
void PendSV_Handler(void) __attribute__((weak, alias("Default_Handler")));

#define TH_STACK_PAINT 0xC0DEC0DEu
#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define SCB_CCR (*(volatile uint32_t *)0xE000ED14u)
#define SCB_SHCSR (*(volatile uint32_t *)0xE000ED24u)

typedef void (*th_vector_t)(void);

/* External interrupts the table covers (all enter th_irq_handler, which dispatches on IPSR). The runtime's
 * only interrupt is the UART receive wake-up; the table must be aligned to its size rounded up to a power of
 * two, which the flash base of every board satisfies. */
#define TH_NUM_IRQS 64
void th_irq_handler(void);
#define IRQ8 th_irq_handler, th_irq_handler, th_irq_handler, th_irq_handler, \
             th_irq_handler, th_irq_handler, th_irq_handler, th_irq_handler

/* QEMU and the core load the initial SP/PC from here. */
__attribute__((section(".vectors"), used)) const th_vector_t th_vectors[16 + TH_NUM_IRQS] = {
    (th_vector_t)(uintptr_t)&__stack_top,
    Reset_Handler,
    NMI_Handler,
    HardFault_Handler,
    HardFault_Handler, /* MemManage */
    HardFault_Handler, /* BusFault */
    HardFault_Handler, /* UsageFault */
    HardFault_Handler, /* SecureFault (v8-M) */
    0,
    0,
    0,
    SVC_Handler,
    DebugMon_Handler,
    0,
    PendSV_Handler,
    SysTick_Handler,
    IRQ8, IRQ8, IRQ8, IRQ8, IRQ8, IRQ8, IRQ8, IRQ8,
};

void th_irq_handler(void)
{
    uint32_t ipsr;
    __asm volatile("mrs %0, ipsr" : "=r"(ipsr));
#ifdef TH_UART_RX_IRQ
    if (ipsr == 16u + (uint32_t)TH_UART_RX_IRQ) {
        th_uart_rx_isr();
        return;
    }
#endif
    th_exit(4); /* an interrupt nobody enabled */
}

/* Paints the stack below the current frame so th_stack_used() can find the deepest write later. Must not be
 * inlined into a function that has locals below the painted range. */
static __attribute__((noinline)) void paint_stack(void)
{
    uint32_t *p = &__stack_bottom;
    uint32_t here;
    /* Keep a margin below our own frame: it is live while we paint. */
    uint32_t *limit = (uint32_t *)((uintptr_t)&here - 64u);
    while (p < limit) {
        *p++ = TH_STACK_PAINT;
    }
}

__attribute__((used)) void Reset_Handler(void)
{
    uint32_t *src = &__data_load;
    uint32_t *dst = &__data_start;
    while (dst < &__data_end) {
        *dst++ = *src++;
    }
    for (dst = &__bss_start; dst < &__bss_end; ++dst) {
        *dst = 0u;
    }
#if defined(__ARM_FP)
    /* CP10/CP11 full access; the compiler may emit VFP instructions anywhere after this. */
    SCB_CPACR |= (0xFu << 20);
    __asm volatile("dsb\n\tisb" ::: "memory");
#endif
#if defined(__ARM_ARCH_8M_MAIN__) || defined(__ARM_ARCH_8_1M_MAIN__)
    /* Hardware stack-overflow check: a push below the painted region faults instead of corrupting .bss. */
    __asm volatile("msr msplim, %0" ::"r"((uint32_t)(uintptr_t)&__stack_bottom));
#endif
    /* Trap divide-by-zero and unaligned multi-word accesses instead of silently returning garbage. */
    SCB_CCR |= (1u << 4);
    /* Route MemManage/BusFault/UsageFault to their own vectors (all enter the fault reporter). */
    SCB_SHCSR |= (7u << 16);
    paint_stack();
    (void)main();
    th_exit(0);
}

void Default_Handler(void)
{
    th_exit(4);
}

uint32_t th_stack_size(void)
{
    return (uint32_t)((uintptr_t)&__stack_top - (uintptr_t)&__stack_bottom);
}

uint32_t th_stack_used(void)
{
    const uint32_t *p = &__stack_bottom;
    while (p < &__stack_top && *p == TH_STACK_PAINT) {
        ++p;
    }
    return (uint32_t)((uintptr_t)&__stack_top - (uintptr_t)p);
}

uint32_t th_static_ram(void)
{
    return (uint32_t)((uintptr_t)&__bss_end - (uintptr_t)&__data_start);
}

const char *th_board_name(void)
{
#ifdef TH_BOARD_NAME
    return TH_BOARD_NAME;
#else
    return "unknown";
#endif
}

/* Weak: a board whose clock is decided at run time (a fallback clock) reports what it really runs at. */
__attribute__((weak)) uint32_t th_core_hz(void)
{
#ifdef TH_CORE_HZ
    return (uint32_t)TH_CORE_HZ;
#else
    return 0u;
#endif
}
