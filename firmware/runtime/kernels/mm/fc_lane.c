/*
 * fc_lane.c - the lane core of fc (mm.h): one pixel, two output channels per step over a single column in lane
 * order (words 1 apart), weights unpacked in registers (mm_lane).
 */
#include "mm.h"

#if TH_USE_SIMD

/* Unlike the other cores' files, this one keeps GCC's instruction scheduler before register allocation: two
 * accumulators leave registers to spare. */

/* Channels [J->c0, J->c0 + J->n) of the one pixel, two per step. */
TH_ALWAYS_INLINE void fc_core(const th_mm_job_t *J, const uint32_t *col, const int16_t *tail, uint8_t *y,
                              const int wb, const int rnd, const int kind, const int ob)
{
    const uint32_t G = 32u / (uint32_t)wb, per = 8u / (uint32_t)wb;
    const uint32_t wrow = J->wrow, nw = J->nwords, tb = J->tbytes, n = J->n, c0 = J->c0;
    const int32_t lo = J->lo, hi = J->hi;
    const int obr = J->ob;
    const th_mm_rq_t *q = J->rq;
    const uint8_t *w = J->w;
    const uint32_t *const cend = col + nw * (G / 2u);
    uint32_t m = wb == 4 ? 0xF0F0F0F0u : 0xC0C0C0C0u;
    uint32_t i = 0;
    __asm("" : "+r"(m));
    const uint32_t *const cend4 = col + (nw & ~3u) * (G / 2u);
    /* two channels per step: four would share each activation load with more rows, but spill registers */
    for (; i + 2u <= n; i += 2u, w += 2u * wrow, q += 2) {
        int32_t a0 = q[0].b, a1 = q[1].b;
        const uint8_t *w0 = w, *w1 = w + wrow;
        const uint32_t *c = col;
#define FC_WORD2(OFF)                                                                                           \
    do {                                                                                                        \
        const uint32_t v0 = th_load32(w0 + 4u * (OFF)), v1 = th_load32(w1 + 4u * (OFF));                        \
        TH_UNROLL                                                                                               \
        for (uint32_t s = 0; s < G / 2u; ++s) {                                                                 \
            const uint32_t x = c[(OFF) * (G / 2u) + s];                                                         \
            a0 = th_smlad(mm_lane(v0, s, m, wb), x, a0);                                                        \
            a1 = th_smlad(mm_lane(v1, s, m, wb), x, a1);                                                        \
        }                                                                                                       \
    } while (0)
        for (; c != cend4; c += 2u * G, w0 += 16, w1 += 16) { /* four words a step: less loop overhead */
            FC_WORD2(0u);
            FC_WORD2(1u);
            FC_WORD2(2u);
            FC_WORD2(3u);
        }
        for (; c != cend; c += G / 2u, w0 += 4, w1 += 4) {
            FC_WORD2(0u);
        }
#undef FC_WORD2
        for (uint32_t k = 0; k < tb; ++k) {
            TH_UNROLL
            for (uint32_t f = 0; f < per; ++f) {
                const int32_t xv = tail[k * per + f];
                a0 += mm_tail_w(w0[k], f, wb) * xv;
                a1 += mm_tail_w(w1[k], f, wb) * xv;
            }
        }
        {
            const int32_t v0 = mm_out(mm_t(a0, q, wb, rnd), q, lo, hi, rnd, kind, ob);
            const int32_t v1 = mm_out(mm_t(a1, q + 1, wb, rnd), q + 1, lo, hi, rnd, kind, ob);
            mm_store(y, c0 + i, v0, ob, obr);
            mm_store(y, c0 + i + 1u, v1, ob, obr);
        }
    }
    if (i < n) {
        int32_t a0 = q[0].b;
        const uint8_t *w0 = w;
        for (const uint32_t *c = col; c != cend; c += G / 2u, w0 += 4) {
            const uint32_t v0 = th_load32(w0);
            TH_UNROLL
            for (uint32_t s = 0; s < G / 2u; ++s) {
                a0 = th_smlad(mm_lane(v0, s, m, wb), c[s], a0);
            }
        }
        for (uint32_t k = 0; k < tb; ++k) {
            TH_UNROLL
            for (uint32_t f = 0; f < per; ++f) {
                a0 += mm_tail_w(w0[k], f, wb) * tail[k * per + f];
            }
        }
        mm_store(y, c0 + i, mm_out(mm_t(a0, q, wb, rnd), q, lo, hi, rnd, kind, ob), ob, obr);
    }
}


/* The specialisations th_fc_pick_w<W> chooses from: fc_<W>_<rounding>_<full-range clamp>_<output bits>. */

static void fc_8_1_1_8(const th_mm_job_t *J, const uint32_t *col, const int16_t *tail, uint8_t *y)
{
    fc_core(J, col, tail, y, 8, 1, TH_CLAMP_FULL, 8);
}

static void fc_8_0_1_8(const th_mm_job_t *J, const uint32_t *col, const int16_t *tail, uint8_t *y)
{
    fc_core(J, col, tail, y, 8, 0, TH_CLAMP_FULL, 8);
}

static void fc_8_0_0_0(const th_mm_job_t *J, const uint32_t *col, const int16_t *tail, uint8_t *y)
{
    fc_core(J, col, tail, y, 8, 0, TH_CLAMP_ANY, 0);
}

th_fc_fn th_fc_pick_w8(int rnd, int full, int ob)
{
    if (ob == 8 && full) {
        return rnd ? fc_8_1_1_8 : fc_8_0_1_8;
    }
    return fc_8_0_0_0;
}

static void fc_4_1_1_8(const th_mm_job_t *J, const uint32_t *col, const int16_t *tail, uint8_t *y)
{
    fc_core(J, col, tail, y, 4, 1, TH_CLAMP_FULL, 8);
}

static void fc_4_0_1_8(const th_mm_job_t *J, const uint32_t *col, const int16_t *tail, uint8_t *y)
{
    fc_core(J, col, tail, y, 4, 0, TH_CLAMP_FULL, 8);
}

static void fc_4_0_0_0(const th_mm_job_t *J, const uint32_t *col, const int16_t *tail, uint8_t *y)
{
    fc_core(J, col, tail, y, 4, 0, TH_CLAMP_ANY, 0);
}

th_fc_fn th_fc_pick_w4(int rnd, int full, int ob)
{
    if (ob == 8 && full) {
        return rnd ? fc_4_1_1_8 : fc_4_0_1_8;
    }
    return fc_4_0_0_0;
}

static void fc_2_1_1_8(const th_mm_job_t *J, const uint32_t *col, const int16_t *tail, uint8_t *y)
{
    fc_core(J, col, tail, y, 2, 1, TH_CLAMP_FULL, 8);
}

static void fc_2_0_1_8(const th_mm_job_t *J, const uint32_t *col, const int16_t *tail, uint8_t *y)
{
    fc_core(J, col, tail, y, 2, 0, TH_CLAMP_FULL, 8);
}

static void fc_2_0_0_0(const th_mm_job_t *J, const uint32_t *col, const int16_t *tail, uint8_t *y)
{
    fc_core(J, col, tail, y, 2, 0, TH_CLAMP_ANY, 0);
}

th_fc_fn th_fc_pick_w2(int rnd, int full, int ob)
{
    if (ob == 8 && full) {
        return rnd ? fc_2_1_1_8 : fc_2_0_1_8;
    }
    return fc_2_0_0_0;
}

#endif /* TH_USE_SIMD */
