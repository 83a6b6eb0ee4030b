/*
 * channels.h - the byte channels a real board offers the host (private to firmware/boards/).
 *
 * With TH_CHANNELS defined, channels.c implements the runtime's th_uart_* on top of every channel the board
 * enables: TH_CHAN_HWUART (a UART driver providing th_hwuart_*), TH_CHAN_RTT (SEGGER RTT in RAM, read and
 * written by a debug probe) and TH_CHAN_USBCDC (a USB CDC-ACM device, th_usbcdc_*). Until the host sends its
 * first byte, output goes to all of them; from then on only to the channel that last received a byte, so one
 * image serves a USB-serial adapter, a debug probe with RTT, or the board's own USB port.
 */
#ifndef TH_CHANNELS_H
#define TH_CHANNELS_H

#include <stdint.h>

/* Hardware UART (one per board, selected by TH_UART_STM32H7 / TH_UART_NRF52_UARTE). */
void th_hwuart_init(void);
void th_hwuart_putc(char c); /* blocks until the byte is accepted */
int th_hwuart_poll(void);    /* a received byte, or -1 when none is waiting */

/* The UART's kernel clock after the board's clock setup (boards whose UART divides a bus clock). */
uint32_t th_board_uart_clock_hz(void);

/* SEGGER RTT (rtt.c): one up buffer (target to host) and one down buffer (host to target). */
void th_rtt_init(void);
int th_rtt_putc(char c, int block); /* 1 when written; 0 when the buffer was full and block was 0 */
int th_rtt_poll(void);

/* USB CDC-ACM (usbcdc_nrf52.c). */
void th_usbcdc_init(void);
int th_usbcdc_ready(void); /* configured by the host and its port opened (DTR) */
void th_usbcdc_putc(char c);
int th_usbcdc_poll(void); /* also services the USB device state machine; call it often */

#endif /* TH_CHANNELS_H */
