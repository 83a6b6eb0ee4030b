/*
 * STM32H7 USART (RM0433, USART chapter: CR1 0x00, BRR 0x0C, ISR 0x1C, ICR 0x20, RDR 0x24,
 * TDR 0x28), polled, 115200 8N1, FIFO off. The board has enabled the GPIO port and USART clocks and routed the
 * pins (TH_UART_BASE is USART3 on the NUCLEO-H743ZI: PD8/PD9, AF7, wired to the ST-LINK virtual COM port).
 */
#include <stdint.h>

#include "channels.h"
#include "stm32h7_usart.h"

#if defined(TH_CHANNELS) && defined(TH_UART_STM32H7)

#define USART_CR1 (*(volatile uint32_t *)(TH_UART_BASE + 0x00u))
#define USART_BRR (*(volatile uint32_t *)(TH_UART_BASE + 0x0Cu))
#define USART_ISR (*(volatile uint32_t *)(TH_UART_BASE + 0x1Cu))
#define USART_ICR (*(volatile uint32_t *)(TH_UART_BASE + 0x20u))
#define USART_RDR (*(volatile uint32_t *)(TH_UART_BASE + 0x24u))
#define USART_TDR (*(volatile uint32_t *)(TH_UART_BASE + 0x28u))
#define CR1_UE (1u << 0)
#define CR1_RE (1u << 2)
#define CR1_TE (1u << 3)
#define ISR_ORE (1u << 3)
#define ISR_RXNE (1u << 5) /* RXFNE with the FIFO off */
#define ISR_TXE (1u << 7)  /* TXFNF with the FIFO off */
#define ICR_ALL_ERRORS 0x0Fu /* PECF | FECF | NECF | ORECF */

void th_hwuart_init(void)
{
    USART_CR1 = 0u; /* BRR may only be written with the USART disabled */
    USART_BRR = TH_USART_BRR(th_board_uart_clock_hz(), TH_UART_BAUD);
    USART_CR1 = CR1_TE | CR1_RE | CR1_UE;
}

void th_hwuart_putc(char c)
{
    while ((USART_ISR & ISR_TXE) == 0u) {
    }
    USART_TDR = (uint32_t)(uint8_t)c;
}

int th_hwuart_poll(void)
{
    uint32_t isr = USART_ISR;
    if ((isr & ISR_ORE) != 0u) {
        USART_ICR = ICR_ALL_ERRORS; /* an overrun stops reception until cleared; the host's CRC catches the loss */
    }
    if ((isr & ISR_RXNE) != 0u) {
        return (int)(USART_RDR & 0xFFu);
    }
    return -1;
}

#endif /* TH_CHANNELS && TH_UART_STM32H7 */
