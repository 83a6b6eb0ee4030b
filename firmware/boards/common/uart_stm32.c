/*
 * STM32 F2/F4 USART (SR/DR/BRR/CR1 layout), polled. QEMU's stm32f2xx_usart only moves bytes once CR1 has
 * UE, TE and RE set. On silicon the board file must also have enabled the peripheral and pin clocks.
 */
#include <stdint.h>

#include "th_board.h"
#include "uart_wait.h"

#if defined(TH_UART_STM32F4)

#define USART_SR (*(volatile uint32_t *)(TH_UART_BASE + 0x00u))
#define USART_DR (*(volatile uint32_t *)(TH_UART_BASE + 0x04u))
#define USART_BRR (*(volatile uint32_t *)(TH_UART_BASE + 0x08u))
#define USART_CR1 (*(volatile uint32_t *)(TH_UART_BASE + 0x0Cu))
#define SR_RXNE (1u << 5)
#define SR_TXE (1u << 7)
#define CR1_UE (1u << 13)
#define CR1_TE (1u << 3)
#define CR1_RE (1u << 2)
#define CR1_RXNEIE (1u << 5)

void th_uart_init(void)
{
    USART_BRR = TH_UART_CLOCK_HZ / 115200u;
    USART_CR1 = CR1_UE | CR1_TE | CR1_RE;
}

void th_uart_putc(char c)
{
    while ((USART_SR & SR_TXE) == 0u) {
    }
    USART_DR = (uint32_t)(uint8_t)c;
}

int th_uart_getc(void)
{
    TH_UART_WAIT((USART_SR & SR_RXNE) != 0u, USART_CR1 |= CR1_RXNEIE);
    return (int)(USART_DR & 0xFFu);
}

void th_uart_rx_isr(void)
{
    USART_CR1 &= ~CR1_RXNEIE; /* RXNE stays set until DR is read: only disarm */
    TH_UART_RX_DONE();
}

#endif /* TH_UART_STM32F4 */
