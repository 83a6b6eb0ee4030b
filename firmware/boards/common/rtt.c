/*
 * SEGGER RTT compatible channel: a control block in RAM that a debug probe finds (by the symbol _SEGGER_RTT or
 * by its ID string) and then reads and writes through the target's memory, with the core running. Layout, as
 * SEGGER's RTT and pyOCD's RTT reader define it: char acID[16]; int32 MaxNumUpBuffers, MaxNumDownBuffers; then
 * the up descriptors, then the down descriptors, each {sName, pBuffer, SizeOfBuffer, WrOff, RdOff, Flags}
 * (six 32-bit words). The writer of a ring owns WrOff, the reader owns RdOff; one byte always stays free.
 *
 * Placed in section .th_uncached: on a Cortex-M7 with the D-cache on, a probe reads memory behind the cache, so
 * the block must live in memory the cache does not hold (the H743's DTCM); boards without a cache put it in RAM.
 */
#include <stdint.h>

#include "channels.h"

#if defined(TH_CHANNELS) && defined(TH_CHAN_RTT)

#ifndef TH_RTT_UP_BYTES
#define TH_RTT_UP_BYTES 2048u
#endif
#ifndef TH_RTT_DOWN_BYTES
#define TH_RTT_DOWN_BYTES 1024u
#endif

#define RTT_MODE_NO_BLOCK_SKIP 0u
#define RTT_MODE_BLOCK_IF_FULL 2u

typedef struct {
    const char *name;
    char *buffer;
    uint32_t size;
    volatile uint32_t wr_off;
    volatile uint32_t rd_off;
    uint32_t flags;
} rtt_ring_t;

typedef struct {
    volatile char id[16];
    int32_t max_up;
    int32_t max_down;
    rtt_ring_t up[1];
    rtt_ring_t down[1];
} rtt_cb_t;

__attribute__((section(".th_uncached"), used)) rtt_cb_t _SEGGER_RTT;
__attribute__((section(".th_uncached"))) static char rtt_up_buf[TH_RTT_UP_BYTES];
__attribute__((section(".th_uncached"))) static char rtt_down_buf[TH_RTT_DOWN_BYTES];

static inline void dmb(void)
{
    __asm volatile("dmb" ::: "memory");
}

void th_rtt_init(void)
{
    static const char name[] = "tinyhil";
    rtt_cb_t *cb = &_SEGGER_RTT;
    cb->max_up = 1;
    cb->max_down = 1;
    cb->up[0] = (rtt_ring_t){name, rtt_up_buf, TH_RTT_UP_BYTES, 0u, 0u, RTT_MODE_NO_BLOCK_SKIP};
    cb->down[0] = (rtt_ring_t){name, rtt_down_buf, TH_RTT_DOWN_BYTES, 0u, 0u, RTT_MODE_NO_BLOCK_SKIP};
    /* The ID goes in last, first byte last, so a probe scanning RAM never finds a half-made block (and the ID
     * string never sits whole in RAM anywhere else). */
    static const char tail[] = "EGGER RTT";
    for (uint32_t i = 0; i < 16u; ++i) {
        cb->id[i] = 0;
    }
    for (uint32_t i = 0; i < sizeof(tail) - 1u; ++i) {
        cb->id[1u + i] = tail[i];
    }
    dmb();
    cb->id[0] = 'S';
    dmb();
}

int th_rtt_putc(char c, int block)
{
    rtt_ring_t *r = &_SEGGER_RTT.up[0];
    r->flags = block ? RTT_MODE_BLOCK_IF_FULL : RTT_MODE_NO_BLOCK_SKIP;
    uint32_t wr = r->wr_off;
    uint32_t next = wr + 1u == r->size ? 0u : wr + 1u;
    while (next == r->rd_off) { /* full: the host has not drained it yet */
        if (!block) {
            return 0;
        }
    }
    r->buffer[wr] = c;
    dmb(); /* the byte is in memory before the host can see the new write offset */
    r->wr_off = next;
    return 1;
}

int th_rtt_poll(void)
{
    rtt_ring_t *r = &_SEGGER_RTT.down[0];
    uint32_t rd = r->rd_off;
    if (rd == r->wr_off) {
        return -1;
    }
    dmb(); /* read the byte only after seeing the host's write offset */
    int b = (int)(uint8_t)r->buffer[rd];
    r->rd_off = rd + 1u == r->size ? 0u : rd + 1u;
    return b;
}

#endif /* TH_CHANNELS && TH_CHAN_RTT */
