/*
 * th_uart_* over several byte channels (see channels.h): the board enables the ones it has with TH_CHAN_HWUART,
 * TH_CHAN_RTT and TH_CHAN_USB. Input is polled on all of them; output goes to every channel until the host's
 * first printable byte arrives and then follows the channel the host last spoke on. RTT output never blocks
 * before that (nobody may be reading it); once RTT is the host's channel it waits for the probe to drain the ring.
 */
#include <stdint.h>

#include "channels.h"
#include "th_board.h"

#if defined(TH_CHANNELS)

enum { CH_ALL = -1, CH_HWUART = 0, CH_RTT = 1, CH_USB = 2 };

static int active = CH_ALL;

void th_uart_init(void)
{
    active = CH_ALL;
#ifdef TH_CHAN_HWUART
    th_hwuart_init();
#endif
#ifdef TH_CHAN_RTT
    th_rtt_init();
#endif
#ifdef TH_CHAN_USB
    th_usbcdc_init();
#endif
}

void th_uart_putc(char c)
{
#ifdef TH_CHAN_HWUART
    if (active == CH_ALL || active == CH_HWUART) {
        th_hwuart_putc(c);
    }
#endif
#ifdef TH_CHAN_RTT
    if (active == CH_ALL || active == CH_RTT) {
        (void)th_rtt_putc(c, active == CH_RTT);
    }
#endif
#ifdef TH_CHAN_USB
    if (active == CH_USB || (active == CH_ALL && th_usbcdc_ready())) {
        th_usbcdc_putc(c);
    }
#endif
    (void)c;
}

/* A byte from channel `ch`: passed on if it comes from the active channel; from another channel it takes over
 * only if it is printable (commands are ASCII text), so line noise on an unused UART pin cannot steal the output
 * from the channel the host really uses. Returns the byte, or -1 to drop it. */
static int take_byte(int ch, int b)
{
    if (b < 0) {
        return -1;
    }
    if (ch != active) {
        if (b < 0x20 || b > 0x7E) {
            return -1;
        }
        active = ch;
    }
    return b;
}

int th_uart_getc(void)
{
    for (;;) {
        int b = -1;
#ifdef TH_CHAN_USB
        b = take_byte(CH_USB, th_usbcdc_poll());
        if (b >= 0) {
            return b;
        }
#endif
#ifdef TH_CHAN_RTT
        b = take_byte(CH_RTT, th_rtt_poll());
        if (b >= 0) {
            return b;
        }
#endif
#ifdef TH_CHAN_HWUART
        b = take_byte(CH_HWUART, th_hwuart_poll());
        if (b >= 0) {
            return b;
        }
#endif
        (void)b;
    }
}

/* Real boards poll; no receive interrupt is ever enabled. */
void th_uart_rx_isr(void)
{
}

#endif /* TH_CHANNELS */
