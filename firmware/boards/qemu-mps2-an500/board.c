/* QEMU mps2-an500: Cortex-M7 (FPv5), 25 MHz, CMSDK UART0 at 0x40004000 (see build flags in the platform board). */
#include "th_board.h"

void th_board_init(void)
{
    th_uart_init();
    th_timer_init();
}
