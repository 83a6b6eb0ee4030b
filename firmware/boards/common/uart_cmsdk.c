/*
 * Arm CMSDK APB UART (MPS2/MPS3 FPGA images), polled. The board folder sets TH_UART_BASE through its build
 * flags; nothing else differs between the boards that use it.
 */
#include <stdint.h>

#include "th_board.h"
#include "uart_wait.h"

#if defined(TH_UART_CMSDK)

#define UART_DATA (*(volatile uint32_t *)(TH_UART_BASE + 0x00u))
#define UART_STATE (*(volatile uint32_t *)(TH_UART_BASE + 0x04u))
#define UART_CTRL (*(volatile uint32_t *)(TH_UART_BASE + 0x08u))
#define UART_INTCLEAR (*(volatile uint32_t *)(TH_UART_BASE + 0x0Cu))
#define UART_BAUDDIV (*(volatile uint32_t *)(TH_UART_BASE + 0x10u))
#define CTRL_RX_INTEN (1u << 3)
#define INT_RX (1u << 1)
#define STATE_TX_FULL (1u << 0)
#define STATE_RX_FULL (1u << 1)

void th_uart_init(void)
{
    /* 115200 baud at the board clock on silicon; QEMU ignores the rate but needs a legal divider (>= 16). */
    uint32_t div = th_core_hz() / 115200u;
    UART_BAUDDIV = div < 16u ? 16u : div;
    UART_CTRL = 0x3u; /* TX and RX enable, no interrupts */
}

void th_uart_putc(char c)
{
    while ((UART_STATE & STATE_TX_FULL) != 0u) {
    }
    UART_DATA = (uint32_t)(uint8_t)c;
}

int th_uart_getc(void)
{
    TH_UART_WAIT((UART_STATE & STATE_RX_FULL) != 0u, UART_CTRL |= CTRL_RX_INTEN);
    return (int)(UART_DATA & 0xFFu);
}

void th_uart_rx_isr(void)
{
    UART_CTRL &= ~CTRL_RX_INTEN;
    UART_INTCLEAR = INT_RX;
    TH_UART_RX_DONE();
}

#endif /* TH_UART_CMSDK */
