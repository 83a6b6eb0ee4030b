/*
 * UARTE BAUDRATE register value (nRF52840 PS, UARTE BAUDRATE register): the peripheral divides its 16 MHz clock
 * by a 32-bit fraction, baud = BAUDRATE * 16 MHz / 2^32, and ignores the low 12 bits. This rounds the exact
 * fraction to the nearest step of 2^12, which reproduces the table in the PS (115200 -> 0x01D7E000,
 * 9600 -> 0x00275000, 1000000 -> 0x10000000).
 */
#ifndef TH_NRF52_UARTE_H
#define TH_NRF52_UARTE_H

#ifndef TH_UART_BAUD
#define TH_UART_BAUD 115200u
#endif

#define TH_NRF52_UARTE_BAUDRATE(baud)                                                                          \
    ((uint32_t)((((((uint64_t)(baud) << 32) + 8000000u) / 16000000u) + 0x800u) & 0xFFFFF000u))

#endif /* TH_NRF52_UARTE_H */
