/*
 * nRF52840 UARTE (UART with EasyDMA; nRF52840 Product Specification v1.x, section 6.34 "UARTE"), polled,
 * 115200 8N1, no flow control. EasyDMA only reads and writes RAM, so every byte goes through a RAM cell.
 * Registers: TASKS_STARTRX 0x000, TASKS_STARTTX 0x008, EVENTS_ENDRX 0x110, EVENTS_ENDTX 0x120,
 * EVENTS_ERROR 0x124, ERRORSRC 0x480, ENABLE 0x500 (8 = UARTE), PSEL.RTS/TXD/CTS/RXD 0x508..0x514,
 * BAUDRATE 0x524, RXD.PTR/MAXCNT 0x534/0x538, TXD.PTR/MAXCNT 0x544/0x548, CONFIG 0x56C.
 *
 * Reception restarts a one-byte transfer after each ENDRX; bytes that arrive in between wait in the UARTE's
 * RX FIFO, and the host never sends while the board is busy (one command at a time).
 */
#include <stdint.h>

#include "channels.h"
#include "nrf52_uarte.h"

#if defined(TH_CHANNELS) && defined(TH_UART_NRF52_UARTE)

#define UARTE(off) (*(volatile uint32_t *)(TH_UART_BASE + (off)))
#define TASKS_STARTRX UARTE(0x000u)
#define TASKS_STARTTX UARTE(0x008u)
#define TASKS_STOPTX UARTE(0x00Cu)
#define EVENTS_ENDRX UARTE(0x110u)
#define EVENTS_ENDTX UARTE(0x120u)
#define EVENTS_ERROR UARTE(0x124u)
#define ERRORSRC UARTE(0x480u)
#define ENABLE UARTE(0x500u)
#define PSEL_RTS UARTE(0x508u)
#define PSEL_TXD UARTE(0x50Cu)
#define PSEL_CTS UARTE(0x510u)
#define PSEL_RXD UARTE(0x514u)
#define BAUDRATE UARTE(0x524u)
#define RXD_PTR UARTE(0x534u)
#define RXD_MAXCNT UARTE(0x538u)
#define TXD_PTR UARTE(0x544u)
#define TXD_MAXCNT UARTE(0x548u)
#define CONFIG UARTE(0x56Cu)
#define ENABLE_UARTE 8u
#define PSEL_DISCONNECTED 0xFFFFFFFFu

/* GPIO (PS section 6.9): port P0 at 0x50000000, P1 at 0x50000300; OUTSET 0x508, PIN_CNF[n] 0x700 + 4n. */
#define GPIO_PORT(pin) (0x50000000u + ((pin) >= 32u ? 0x300u : 0u))
#define GPIO_OUTSET(pin) (*(volatile uint32_t *)(GPIO_PORT(pin) + 0x508u))
#define GPIO_PIN_CNF(pin) (*(volatile uint32_t *)(GPIO_PORT(pin) + 0x700u + 4u * ((pin) & 31u)))
#define PIN_CNF_OUTPUT 0x3u           /* DIR = output, INPUT = disconnected */
#define PIN_CNF_INPUT_PULLUP (3u << 2) /* DIR = input, INPUT = connected, PULL = pull-up */

static volatile uint8_t rx_cell;
static volatile uint8_t tx_cell;

/* volatile: the write below loads the value from this symbol, so the ELF holds exactly what is programmed. */
const volatile uint32_t th_nrf52_uarte_baudrate = TH_NRF52_UARTE_BAUDRATE(TH_UART_BAUD);

static void start_rx(void)
{
    RXD_PTR = (uint32_t)(uintptr_t)&rx_cell;
    RXD_MAXCNT = 1u;
    TASKS_STARTRX = 1u;
}

void th_hwuart_init(void)
{
    ENABLE = 0u;
    GPIO_OUTSET(TH_UART_TX_PIN) = 1u << (TH_UART_TX_PIN & 31u); /* idle high before the UARTE takes the pin */
    GPIO_PIN_CNF(TH_UART_TX_PIN) = PIN_CNF_OUTPUT;
    /* Pulled up: an unconnected RX pin must read as an idle line, not as noise that picks this channel. */
    GPIO_PIN_CNF(TH_UART_RX_PIN) = PIN_CNF_INPUT_PULLUP;
    PSEL_TXD = TH_UART_TX_PIN;
    PSEL_RXD = TH_UART_RX_PIN;
    PSEL_RTS = PSEL_DISCONNECTED;
    PSEL_CTS = PSEL_DISCONNECTED;
    BAUDRATE = th_nrf52_uarte_baudrate;
    CONFIG = 0u; /* no parity, no flow control, one stop bit */
    EVENTS_ENDRX = 0u;
    EVENTS_ENDTX = 0u;
    EVENTS_ERROR = 0u;
    ENABLE = ENABLE_UARTE;
    start_rx();
}

void th_hwuart_putc(char c)
{
    tx_cell = (uint8_t)c;
    TXD_PTR = (uint32_t)(uintptr_t)&tx_cell;
    TXD_MAXCNT = 1u;
    EVENTS_ENDTX = 0u;
    TASKS_STARTTX = 1u;
    while (EVENTS_ENDTX == 0u) {
    }
    EVENTS_ENDTX = 0u;
}

int th_hwuart_poll(void)
{
    if (EVENTS_ERROR != 0u) {
        EVENTS_ERROR = 0u;
        ERRORSRC = ERRORSRC; /* write-one-to-clear; a damaged byte still arrives and the host's CRC rejects it */
    }
    if (EVENTS_ENDRX == 0u) {
        return -1;
    }
    EVENTS_ENDRX = 0u;
    int b = (int)rx_cell;
    start_rx();
    return b;
}

#endif /* TH_CHANNELS && TH_UART_NRF52_UARTE */
