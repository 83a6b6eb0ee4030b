/*
 * fc_ulp.c - the packed-field core of fc at a2w2 and a4w2 (mm.h): one output channel x one pixel per step over
 * a single column (words 1 apart), the 8-bit fields of ulp.c summed into one 32-bit sum (one UXTAB ROR 8). fc
 * takes it only for post-ReLU inputs (TH_FC_PAIR): otherwise the per-channel correction costs as much as the
 * MACs it saves.
 */
#include "mm.h"

#if TH_USE_SIMD

/* The instruction scheduler before register allocation hoists loads and multiplies across the unrolled field
 * loops and spills registers; the cores keep their source order. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-schedule-insns")
#endif

TH_ALWAYS_INLINE void fcu_core(const th_mm_job_t *J, const uint32_t *col, const int16_t *tail, uint8_t *y,
                               const int ab, const int wb, const int rnd, const int kind, const int ob)
{
    const uint32_t LW = 8u / (uint32_t)wb, F = ulp_flush_period(ab, wb), GW = F > LW ? F / LW : 1u;
    const uint32_t wrow = J->wrow, nw = J->nwords, tb = J->tbytes, n = J->n, c0 = J->c0, per = 8u / (uint32_t)wb;
    const int32_t lo = J->lo, hi = J->hi, sx = J->sx[0];
    const int obr = J->ob;
    const th_mm_rq_t *q = J->rq;
    const uint8_t *w = J->w;
    const uint32_t *const cend = col + LW * nw, *const cendg = col + LW * (nw - nw % GW);
    uint32_t m = wb == 2 ? 0x03030303u : 0x0F0F0F0Fu;
    __asm("" : "+r"(m));
    for (uint32_t i = 0; i < n; ++i, w += wrow, ++q) {
        uint32_t d = 0;
        const uint8_t *wa = w;
        const uint32_t *c = col;
        int32_t s0 = 0;
#define FCU_WORDS(NWORDS)                                                                                       \
    do {                                                                                                        \
        TH_UNROLL                                                                                               \
        for (uint32_t j = 0; j < (NWORDS); ++j) {                                                               \
            const uint32_t v = ulp_v(th_load32(wa + 4u * j), wb);                                               \
            TH_UNROLL                                                                                           \
            for (uint32_t k = 0; k < LW; ++k) {                                                                 \
                const uint32_t idx = j * LW + k, l = (v >> ((uint32_t)wb * k)) & m;                             \
                s0 = idx % F == 0u ? th_smuad(l, c[idx]) : th_smlad(l, c[idx], s0);                             \
                if ((idx + 1u) % F == 0u || idx + 1u == (NWORDS) * LW) {                                        \
                    d = th_uxtab_ror8(d, (uint32_t)s0);                                                         \
                }                                                                                               \
            }                                                                                                   \
        }                                                                                                       \
    } while (0)
        for (; c != cendg; c += LW * GW, wa += 4u * GW) {
            FCU_WORDS(GW);
        }
        if (GW > 1u && c != cend) {
            FCU_WORDS(1u);
            wa += 4;
        }
#undef FCU_WORDS
        int32_t a0 = (int32_t)d + q->b - sx;
        for (uint32_t k = 0; k < tb; ++k) {
            const uint32_t b = wa[k];
            TH_UNROLL
            for (uint32_t f = 0; f < per; ++f) {
                a0 += ulp_tail_w(b, f, wb) * tail[per * k + f];
            }
        }
        mm_store(y, c0 + i, mm_out(mm_t(a0, q, 8, rnd), q, lo, hi, rnd, kind, ob), ob, obr);
    }
}

/* The specialisations th_fcu_pick_a<A>w<W> chooses from: fcu_<A><W>_<rounding>_<full-range clamp>_<output bits>. */

static void fcu_22_1_1_8(const th_mm_job_t *J, const uint32_t *col, const int16_t *tail, uint8_t *y)
{
    fcu_core(J, col, tail, y, 2, 2, 1, TH_CLAMP_FULL, 8);
}

static void fcu_22_0_1_8(const th_mm_job_t *J, const uint32_t *col, const int16_t *tail, uint8_t *y)
{
    fcu_core(J, col, tail, y, 2, 2, 0, TH_CLAMP_FULL, 8);
}

static void fcu_22_0_0_0(const th_mm_job_t *J, const uint32_t *col, const int16_t *tail, uint8_t *y)
{
    fcu_core(J, col, tail, y, 2, 2, 0, TH_CLAMP_ANY, 0);
}

th_fc_fn th_fcu_pick_a2w2(int rnd, int full, int ob)
{
    if (ob == 8 && full) {
        return rnd ? fcu_22_1_1_8 : fcu_22_0_1_8;
    }
    return fcu_22_0_0_0;
}

static void fcu_42_1_1_8(const th_mm_job_t *J, const uint32_t *col, const int16_t *tail, uint8_t *y)
{
    fcu_core(J, col, tail, y, 4, 2, 1, TH_CLAMP_FULL, 8);
}

static void fcu_42_0_1_8(const th_mm_job_t *J, const uint32_t *col, const int16_t *tail, uint8_t *y)
{
    fcu_core(J, col, tail, y, 4, 2, 0, TH_CLAMP_FULL, 8);
}

static void fcu_42_0_0_0(const th_mm_job_t *J, const uint32_t *col, const int16_t *tail, uint8_t *y)
{
    fcu_core(J, col, tail, y, 4, 2, 0, TH_CLAMP_ANY, 0);
}

th_fc_fn th_fcu_pick_a4w2(int rnd, int full, int ob)
{
    if (ob == 8 && full) {
        return rnd ? fcu_42_1_1_8 : fcu_42_0_1_8;
    }
    return fcu_42_0_0_0;
}

th_fc_fn th_fcu_pick_none(int rnd, int full, int ob)
{
    (void)rnd, (void)full, (void)ob;
    return 0;
}

#endif /* TH_USE_SIMD */
