/*
 * Arm CMSDK APB UART (MPS2/MPS3 FPGA images), polled. The board folder sets TH_UART_BASE through its build
 * flags; nothing else differs between the boards that use it.
 */
#include <stdint.h>

#include "th_board.h"

#if defined(TH_UART_CMSDK)

#define UART_DATA (*(volatile uint32_t *)(TH_UART_BASE + 0x00u))
#define UART_STATE (*(volatile uint32_t *)(TH_UART_BASE + 0x04u))
#define UART_CTRL (*(volatile uint32_t *)(TH_UART_BASE + 0x08u))
#define UART_BAUDDIV (*(volatile uint32_t *)(TH_UART_BASE + 0x10u))
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
    while ((UART_STATE & STATE_RX_FULL) == 0u) {
    }
    return (int)(UART_DATA & 0xFFu);
}

#endif /* TH_UART_CMSDK */
