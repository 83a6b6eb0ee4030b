/*
 * QEMU netduinoplus2: STM32F405, USART1 at 0x40011000. QEMU models no RCC or GPIO here, and SysTick runs at
 * the 168 MHz core clock, so bring-up is only the UART and the timer. A real F405 would need RCC/PLL setup.
 */
#include "th_board.h"

void th_board_init(void)
{
    th_uart_init();
    th_timer_init();
}
