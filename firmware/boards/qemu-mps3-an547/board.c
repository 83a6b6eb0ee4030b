/* QEMU mps3-an547: Cortex-M55 (Secure), 32 MHz, CMSDK UART0 at 0x49303000 (see the platform board). */
#include "th_board.h"

void th_board_init(void)
{
    th_uart_init();
    th_timer_init();
}
