/*
 * lane.c - the lane core of conv2d / pointwise (mm.h): 2 output channels x 2 pixels per step, weights
 * unpacked in registers (mm_lane), two MACs per SMLAD. The two pixels' columns are interleaved word by word so
 * one pointer walks both (th_mm_run builds them, run.c).
 */
#include "mm.h"

#if TH_USE_SIMD

/* The instruction scheduler before register allocation hoists loads and multiplies across the unrolled field
 * loops and spills registers; the cores keep their source order. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-schedule-insns")
#endif

/* Channels [J->c0, J->c0 + J->n) of two pixels (y1 == NULL: the second column is a copy, not stored). */
TH_ALWAYS_INLINE void mm_core(const th_mm_job_t *J, const uint32_t *cp, const int16_t *t0, const int16_t *t1,
                              uint8_t *y0, uint8_t *y1, const int wb, const int rnd, const int kind, const int ob)
{
    const uint32_t G = 32u / (uint32_t)wb, per = 8u / (uint32_t)wb;
    const uint32_t wrow = J->wrow, nw = J->nwords, tb = J->tbytes, n = J->n, c0 = J->c0;
    const int32_t lo = J->lo, hi = J->hi;
    const int obr = J->ob;
    const th_mm_rq_t *q = J->rq;
    const uint8_t *w = J->w;
    const uint32_t *const cend = cp + nw * G;
    const uint32_t *const cend2 = cp + (nw & ~1u) * G;
    uint32_t m = wb == 4 ? 0xF0F0F0F0u : 0xC0C0C0C0u;
    uint32_t i = 0;
    __asm("" : "+r"(m)); /* a register operand: AND with a shifted register is one instruction */
    for (; i + 2u <= n; i += 2u, w += 2u * wrow, q += 2) {
        int32_t a00 = q[0].b, a01 = a00, a10 = q[1].b, a11 = a10;
        const uint8_t *wa = w, *wb2 = w + wrow;
        const uint32_t *c = cp;
#define MM_WORD2(OFF)                                                                                           \
    do {                                                                                                        \
        const uint32_t va = th_load32(wa + 4u * (OFF)), vb = th_load32(wb2 + 4u * (OFF));                       \
        TH_UNROLL                                                                                               \
        for (uint32_t s = 0; s < G / 2u; ++s) {                                                                 \
            const uint32_t la = mm_lane(va, s, m, wb), lb = mm_lane(vb, s, m, wb);                              \
            const uint32_t p0 = c[(OFF) * G + 2u * s], p1 = c[(OFF) * G + 2u * s + 1u];                         \
            a00 = th_smlad(la, p0, a00);                                                                        \
            a01 = th_smlad(la, p1, a01);                                                                        \
            a10 = th_smlad(lb, p0, a10);                                                                        \
            a11 = th_smlad(lb, p1, a11);                                                                        \
        }                                                                                                       \
    } while (0)
        for (; c != cend2; c += 2u * G, wa += 8, wb2 += 8) {
            MM_WORD2(0u);
            MM_WORD2(1u);
        }
        if (c != cend) {
            MM_WORD2(0u);
            wa += 4, wb2 += 4;
        }
#undef MM_WORD2
        for (uint32_t k = 0; k < tb; ++k) {
            const uint32_t ba = wa[k], bb = wb2[k];
            TH_UNROLL
            for (uint32_t f = 0; f < per; ++f) {
                const int32_t xa = t0[k * per + f], xb = t1[k * per + f];
                const int32_t wva = mm_tail_w(ba, f, wb), wvb = mm_tail_w(bb, f, wb);
                a00 += wva * xa;
                a01 += wva * xb;
                a10 += wvb * xa;
                a11 += wvb * xb;
            }
        }
        { /* every output before any store: byte stores may alias the table, which would be reloaded */
            const int32_t v00 = mm_out(mm_t(a00, q, wb, rnd), q, lo, hi, rnd, kind, ob);
            const int32_t v10 = mm_out(mm_t(a10, q + 1, wb, rnd), q + 1, lo, hi, rnd, kind, ob);
            const int32_t v01 = mm_out(mm_t(a01, q, wb, rnd), q, lo, hi, rnd, kind, ob);
            const int32_t v11 = mm_out(mm_t(a11, q + 1, wb, rnd), q + 1, lo, hi, rnd, kind, ob);
            mm_store(y0, c0 + i, v00, ob, obr);
            mm_store(y0, c0 + i + 1u, v10, ob, obr);
            if (y1 != 0) {
                mm_store(y1, c0 + i, v01, ob, obr);
                mm_store(y1, c0 + i + 1u, v11, ob, obr);
            }
        }
    }
    if (i < n) {
        int32_t a00 = q[0].b, a01 = a00;
        const uint8_t *wa = w;
        for (const uint32_t *c = cp; c != cend; c += G, wa += 4) {
            const uint32_t va = th_load32(wa);
            TH_UNROLL
            for (uint32_t s = 0; s < G / 2u; ++s) {
                const uint32_t la = mm_lane(va, s, m, wb);
                a00 = th_smlad(la, c[2u * s], a00);
                a01 = th_smlad(la, c[2u * s + 1u], a01);
            }
        }
        for (uint32_t k = 0; k < tb; ++k) {
            const uint32_t ba = wa[k];
            TH_UNROLL
            for (uint32_t f = 0; f < per; ++f) {
                const int32_t wva = mm_tail_w(ba, f, wb);
                a00 += wva * t0[k * per + f];
                a01 += wva * t1[k * per + f];
            }
        }
        {
            const int32_t v00 = mm_out(mm_t(a00, q, wb, rnd), q, lo, hi, rnd, kind, ob);
            const int32_t v01 = mm_out(mm_t(a01, q, wb, rnd), q, lo, hi, rnd, kind, ob);
            mm_store(y0, c0 + i, v00, ob, obr);
            if (y1 != 0) {
                mm_store(y1, c0 + i, v01, ob, obr);
            }
        }
    }
}

/* The specialisations th_mm_pick_w<W> chooses from: mm_<W>_<rounding>_<full-range clamp>_<output bits> (0: any). */

static void mm_8_1_1_8(const th_mm_job_t *J, const uint32_t *cp, const int16_t *t0, const int16_t *t1,
                       uint8_t *y0, uint8_t *y1)
{
    mm_core(J, cp, t0, t1, y0, y1, 8, 1, TH_CLAMP_FULL, 8);
}

static void mm_8_1_0_8(const th_mm_job_t *J, const uint32_t *cp, const int16_t *t0, const int16_t *t1,
                       uint8_t *y0, uint8_t *y1)
{
    mm_core(J, cp, t0, t1, y0, y1, 8, 1, TH_CLAMP_ANY, 8);
}

static void mm_8_0_1_8(const th_mm_job_t *J, const uint32_t *cp, const int16_t *t0, const int16_t *t1,
                       uint8_t *y0, uint8_t *y1)
{
    mm_core(J, cp, t0, t1, y0, y1, 8, 0, TH_CLAMP_FULL, 8);
}

static void mm_8_0_0_8(const th_mm_job_t *J, const uint32_t *cp, const int16_t *t0, const int16_t *t1,
                       uint8_t *y0, uint8_t *y1)
{
    mm_core(J, cp, t0, t1, y0, y1, 8, 0, TH_CLAMP_ANY, 8);
}

static void mm_8_0_0_0(const th_mm_job_t *J, const uint32_t *cp, const int16_t *t0, const int16_t *t1,
                       uint8_t *y0, uint8_t *y1)
{
    mm_core(J, cp, t0, t1, y0, y1, 8, 0, TH_CLAMP_ANY, 0);
}

th_mm_fn th_mm_pick_w8(int rnd, int full, int ob)
{
    if (ob != 8) {
        return mm_8_0_0_0;
    }
    if (rnd) {
        return full ? mm_8_1_1_8 : mm_8_1_0_8;
    }
    return full ? mm_8_0_1_8 : mm_8_0_0_8;
}

static void mm_4_1_1_8(const th_mm_job_t *J, const uint32_t *cp, const int16_t *t0, const int16_t *t1,
                       uint8_t *y0, uint8_t *y1)
{
    mm_core(J, cp, t0, t1, y0, y1, 4, 1, TH_CLAMP_FULL, 8);
}

static void mm_4_1_0_8(const th_mm_job_t *J, const uint32_t *cp, const int16_t *t0, const int16_t *t1,
                       uint8_t *y0, uint8_t *y1)
{
    mm_core(J, cp, t0, t1, y0, y1, 4, 1, TH_CLAMP_ANY, 8);
}

static void mm_4_0_1_8(const th_mm_job_t *J, const uint32_t *cp, const int16_t *t0, const int16_t *t1,
                       uint8_t *y0, uint8_t *y1)
{
    mm_core(J, cp, t0, t1, y0, y1, 4, 0, TH_CLAMP_FULL, 8);
}

static void mm_4_0_0_8(const th_mm_job_t *J, const uint32_t *cp, const int16_t *t0, const int16_t *t1,
                       uint8_t *y0, uint8_t *y1)
{
    mm_core(J, cp, t0, t1, y0, y1, 4, 0, TH_CLAMP_ANY, 8);
}

static void mm_4_0_0_0(const th_mm_job_t *J, const uint32_t *cp, const int16_t *t0, const int16_t *t1,
                       uint8_t *y0, uint8_t *y1)
{
    mm_core(J, cp, t0, t1, y0, y1, 4, 0, TH_CLAMP_ANY, 0);
}

th_mm_fn th_mm_pick_w4(int rnd, int full, int ob)
{
    if (ob != 8) {
        return mm_4_0_0_0;
    }
    if (rnd) {
        return full ? mm_4_1_1_8 : mm_4_1_0_8;
    }
    return full ? mm_4_0_1_8 : mm_4_0_0_8;
}

static void mm_2_1_1_8(const th_mm_job_t *J, const uint32_t *cp, const int16_t *t0, const int16_t *t1,
                       uint8_t *y0, uint8_t *y1)
{
    mm_core(J, cp, t0, t1, y0, y1, 2, 1, TH_CLAMP_FULL, 8);
}

static void mm_2_1_0_8(const th_mm_job_t *J, const uint32_t *cp, const int16_t *t0, const int16_t *t1,
                       uint8_t *y0, uint8_t *y1)
{
    mm_core(J, cp, t0, t1, y0, y1, 2, 1, TH_CLAMP_ANY, 8);
}

static void mm_2_0_1_8(const th_mm_job_t *J, const uint32_t *cp, const int16_t *t0, const int16_t *t1,
                       uint8_t *y0, uint8_t *y1)
{
    mm_core(J, cp, t0, t1, y0, y1, 2, 0, TH_CLAMP_FULL, 8);
}

static void mm_2_0_0_8(const th_mm_job_t *J, const uint32_t *cp, const int16_t *t0, const int16_t *t1,
                       uint8_t *y0, uint8_t *y1)
{
    mm_core(J, cp, t0, t1, y0, y1, 2, 0, TH_CLAMP_ANY, 8);
}

static void mm_2_0_0_0(const th_mm_job_t *J, const uint32_t *cp, const int16_t *t0, const int16_t *t1,
                       uint8_t *y0, uint8_t *y1)
{
    mm_core(J, cp, t0, t1, y0, y1, 2, 0, TH_CLAMP_ANY, 0);
}

th_mm_fn th_mm_pick_w2(int rnd, int full, int ob)
{
    if (ob != 8) {
        return mm_2_0_0_0;
    }
    if (rnd) {
        return full ? mm_2_1_1_8 : mm_2_1_0_8;
    }
    return full ? mm_2_0_1_8 : mm_2_0_0_8;
}

#endif /* TH_USE_SIMD */
