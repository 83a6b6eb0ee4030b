/*
 * channels.h - the byte channels a real board offers the host (private to firmware/boards/).
 *
 * With TH_CHANNELS defined, channels.c implements the runtime's th_uart_* on top of every channel the board
 * enables: TH_CHAN_HWUART (a UART driver providing th_hwuart_*), TH_CHAN_RTT (SEGGER RTT in RAM, read and
 * written by a debug probe) and TH_CHAN_USB (a USB CDC-ACM device on the board's own USB port, th_usbcdc_*).
 * Until the host sends its first byte, output goes to all of them; from then on only to the channel that last
 * received a byte, so one image serves a USB-serial adapter, a debug probe with RTT, or the board's own USB port.
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

/* USB CDC-ACM (usbd_nrf52.c with TH_USBD_NRF52; descriptors and requests in usb_cdc_desc.c, usb_cdc_ctrl.c).
 * Polled: every call services the USB device, so the host is answered while the firmware waits or writes. */
void th_usbcdc_init(void);
int th_usbcdc_ready(void);   /* configured by the host and its port open (DTR set) */
void th_usbcdc_putc(char c); /* blocks while the host reads slower; drops the byte when the port is closed */
int th_usbcdc_poll(void);    /* a received byte, or -1; call it often */

#endif /* TH_CHANNELS_H */
