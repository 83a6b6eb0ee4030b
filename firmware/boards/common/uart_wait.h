/*
 * Sleeping wait for a UART byte, shared by the UART drivers. With interrupts masked, arm the receive interrupt,
 * re-check, and WFI: a byte that arrived before arming is seen by the re-check, one that arrives after it makes
 * the interrupt pending, which ends WFI even while masked. Unmasking then runs th_uart_rx_isr, which disables
 * the interrupt in the NVIC (some UARTs, e.g. the STM32 USART, keep their line high until the data register is
 * read, which would re-enter the handler forever) and the next wait enables it again.
 */
#ifndef TH_UART_WAIT_H
#define TH_UART_WAIT_H

#include <stdint.h>

#define TH_NVIC_ISER(n) (*(volatile uint32_t *)(0xE000E100u + 4u * (n)))
#define TH_NVIC_ICER(n) (*(volatile uint32_t *)(0xE000E180u + 4u * (n)))
#define TH_NVIC_ICPR(n) (*(volatile uint32_t *)(0xE000E280u + 4u * (n)))

#ifdef TH_UART_RX_IRQ
#define TH_UART_WAIT(has_byte, arm)                                                                          \
    do {                                                                                                     \
        while (!(has_byte)) {                                                                                \
            __asm volatile("cpsid i" ::: "memory");                                                          \
            arm;                                                                                             \
            TH_NVIC_ICPR((TH_UART_RX_IRQ) / 32u) = 1u << ((TH_UART_RX_IRQ) % 32u);                           \
            TH_NVIC_ISER((TH_UART_RX_IRQ) / 32u) = 1u << ((TH_UART_RX_IRQ) % 32u);                           \
            if (!(has_byte)) {                                                                               \
                __asm volatile("dsb\n\twfi" ::: "memory");                                                   \
            }                                                                                                \
            __asm volatile("cpsie i" ::: "memory");                                                          \
        }                                                                                                    \
    } while (0)
#define TH_UART_RX_DONE()                                                                                    \
    do {                                                                                                     \
        TH_NVIC_ICER((TH_UART_RX_IRQ) / 32u) = 1u << ((TH_UART_RX_IRQ) % 32u);                               \
        TH_NVIC_ICPR((TH_UART_RX_IRQ) / 32u) = 1u << ((TH_UART_RX_IRQ) % 32u);                               \
    } while (0)
#else
#define TH_UART_WAIT(has_byte, arm)                                                                          \
    do {                                                                                                     \
        while (!(has_byte)) {                                                                                \
        }                                                                                                    \
    } while (0)
#define TH_UART_RX_DONE() ((void)0)
#endif

#endif /* TH_UART_WAIT_H */
