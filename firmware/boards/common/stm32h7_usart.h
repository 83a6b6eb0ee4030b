/*
 * USART baud divider (RM0433, USART chapter, "USART baud rate generation"): with 16x oversampling (OVER8 = 0),
 * baud = usart_ker_ck / USARTDIV and BRR = USARTDIV, rounded to the nearest integer here.
 */
#ifndef TH_STM32H7_USART_H
#define TH_STM32H7_USART_H

#ifndef TH_UART_BAUD
#define TH_UART_BAUD 115200u
#endif

#define TH_USART_BRR(ker_hz, baud) (((ker_hz) + (baud) / 2u) / (baud))

#endif /* TH_STM32H7_USART_H */
