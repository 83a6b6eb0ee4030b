/*
 * ulp.c - the packed-field core with 8-bit fields (ULPPACK-style) for conv2d / pointwise at a2w2, a4w2 and
 * a2w4 (mm.h): one output channel x four pixels per step, four MACs per SMLAD.
 *
 * With offset values u = x + 2^(A-1) in [0, 2^A - 1] and v = w + o (o = 1 for 2-bit weights, 7 for 4-bit; v
 * in [0, 2] or [0, 14]), each 16-bit SMLAD lane carries two of each, 8 bits apart: activations (u_a << 8) + u_b
 * against weights v_a + (v_b << 8), whose product holds u_a v_a + u_b v_b in bits 8..15. One SMLAD is then four
 * MACs. The field may take F SMLADs before it would carry into bit 16 (4 products of at most 6 / 30 / 42 each:
 * F = 8 for a2w2, 2 for a4w2, 1 for a2w4), so the core starts each group of F with SMUAD (no reset needed) and
 * adds the field to a 32-bit sum with one UXTAB ROR 8. With c = 2^(A-1) + zp and K' = entries in whole words,
 *     sum (x - zp) w = sum u v - o sum u - c sum v + o c K',
 * the per-channel terms go into the bias once per call and the per-pixel sum of u is one USADA8 per word.
 * Weights come straight from the stored words: v for every field in two instructions (flip the sign bit, take
 * 1 or 1 - o from each field), then the fields k, k + 8/W, k + 16/W, k + 24/W of a word land in bytes 0..3 with
 * one shift-and-mask (lane word k = 0 .. 8/W - 1); the activation column holds the matching bytes in the order
 * 1, 0, 3, 2 (u_b, u_a per lane). Tail bytes are done exactly against the natural column.
 *
 * The columns (ulp_words, ulp_direct, ulp_sum) and the per-channel bias terms (ulp_table) are built in run.c.
 */
#include "mm.h"

#if TH_USE_SIMD

/* The instruction scheduler before register allocation hoists loads and multiplies across the unrolled field
 * loops and spills registers; the cores keep their source order. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-schedule-insns")
#endif

/* One channel x four pixels: the two pixels' fields of a flush are packed by one PKHBT and added to two 16-bit
 * lanes by one UXTAB16 ROR 8 (th_mm_prepare keeps the lane sums below 2^16). a[px]: the pixel's accumulator
 * (bias and offset terms included, unscaled). */
TH_ALWAYS_INLINE void ulp_dot(const th_mm_job_t *J, const uint8_t *w, const uint32_t *cp, const th_mm_rq_t *q,
                              int32_t *a, uint32_t m, const int ab, const int wb)
{
    /* lane words per weight word; SMLADs per flush; weight words per loop step */
    const uint32_t LW = 8u / (uint32_t)wb, F = ulp_flush_period(ab, wb), GW = F > LW ? F / LW : 1u;
    const uint32_t nw = J->nwords, tb = J->tbytes, per = 8u / (uint32_t)wb;
    const uint32_t *const cend = cp + ULP_PX * LW * nw, *const cendg = cp + ULP_PX * LW * (nw - nw % GW);
    uint32_t d01 = 0, d23 = 0;
    const uint8_t *wa = w;
    const uint32_t *c = cp;
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#define ULP_WORDS(NWORDS)                                                                                       \
    do {                                                                                                        \
        TH_UNROLL                                                                                               \
        for (uint32_t j = 0; j < (NWORDS); ++j) {                                                               \
            const uint32_t v = ulp_v(th_load32(wa + 4u * j), wb);                                               \
            TH_UNROLL                                                                                           \
            for (uint32_t k = 0; k < LW; ++k) {                                                                 \
                const uint32_t idx = j * LW + k, l = (v >> ((uint32_t)wb * k)) & m;                             \
                MM_QUAD_DECL(x0, x1, x2, x3);                                                                   \
                MM_LD4(x0, x1, x2, x3, c);                                                                      \
                if (idx % F == 0u) {                                                                            \
                    s0 = th_smuad(l, x0);                                                                       \
                    s1 = th_smuad(l, x1);                                                                       \
                    s2 = th_smuad(l, x2);                                                                       \
                    s3 = th_smuad(l, x3);                                                                       \
                } else {                                                                                        \
                    s0 = th_smlad(l, x0, s0);                                                                   \
                    s1 = th_smlad(l, x1, s1);                                                                   \
                    s2 = th_smlad(l, x2, s2);                                                                   \
                    s3 = th_smlad(l, x3, s3);                                                                   \
                }                                                                                               \
                if ((idx + 1u) % F == 0u || idx + 1u == (NWORDS) * LW) {                                        \
                    d01 = th_uxtab16_ror8(d01, th_pack_lo((uint32_t)s0, (uint32_t)s1));                         \
                    d23 = th_uxtab16_ror8(d23, th_pack_lo((uint32_t)s2, (uint32_t)s3));                         \
                }                                                                                               \
            }                                                                                                   \
        }                                                                                                       \
    } while (0)
    while (c != cendg) {
        ULP_WORDS(GW);
        wa += 4u * GW;
    }
    if (GW > 1u && c != cend) { /* GW is 2 at most */
        ULP_WORDS(1u);
        wa += 4;
    }
#undef ULP_WORDS
    a[0] = (int32_t)(d01 & 0xFFFFu) + q->b - J->sx[0];
    a[1] = (int32_t)(d01 >> 16) + q->b - J->sx[1];
    a[2] = (int32_t)(d23 & 0xFFFFu) + q->b - J->sx[2];
    a[3] = (int32_t)(d23 >> 16) + q->b - J->sx[3];
    for (uint32_t k = 0; k < tb; ++k) {
        const uint32_t b = wa[k];
        TH_UNROLL
        for (uint32_t f = 0; f < per; ++f) {
            const int32_t wv = ulp_tail_w(b, f, wb);
            TH_UNROLL
            for (uint32_t px = 0; px < ULP_PX; ++px) {
                a[px] += wv * J->t[px][per * k + f];
            }
        }
    }
}

TH_ALWAYS_INLINE void ulp_core(const th_mm_job_t *J, const uint32_t *cp, const int ab, const int wb,
                               const int rnd, const int kind, const int ob)
{
    uint32_t m = wb == 2 ? 0x03030303u : 0x0F0F0F0Fu;
    __asm("" : "+r"(m));
    MM_CHANNELS(J, 8, rnd, kind, ob, ulp_dot(J, w, cp, q, a, m, ab, wb));
}

/* The specialisations th_ulp_pick_a<A>w<W> chooses from: ulp_<A><W>_<rounding>_<full-range clamp>_<output bits>. */
#define ULP_FN(A, W, R, F, O)                                                                                   \
    static void ulp_##A##W##_##R##_##F##_##O(const th_mm_job_t *J, const uint32_t *cp)                          \
    {                                                                                                           \
        ulp_core(J, cp, A, W, R, (F) ? TH_CLAMP_FULL : TH_CLAMP_ANY, O);                                        \
    }
#define ULP_PICK(A, W)                                                                                          \
    ULP_FN(A, W, 1, 1, 8)                                                                                       \
    ULP_FN(A, W, 0, 1, 8)                                                                                       \
    ULP_FN(A, W, 0, 0, 8)                                                                                       \
    ULP_FN(A, W, 1, 1, 4)                                                                                       \
    ULP_FN(A, W, 0, 1, 4)                                                                                       \
    ULP_FN(A, W, 0, 0, 4)                                                                                       \
    ULP_FN(A, W, 1, 1, 2)                                                                                       \
    ULP_FN(A, W, 0, 1, 2)                                                                                       \
    ULP_FN(A, W, 0, 0, 2)                                                                                       \
    th_mm_fn th_ulp_pick_a##A##w##W(int rnd, int full, int ob)                                                  \
    {                                                                                                           \
        if (ob != 8) {                                                                                          \
            if (full) {                                                                                         \
                return ob == 4 ? (rnd ? ulp_##A##W##_1_1_4 : ulp_##A##W##_0_1_4)                                \
                               : (rnd ? ulp_##A##W##_1_1_2 : ulp_##A##W##_0_1_2);                               \
            }                                                                                                   \
            return ob == 4 ? ulp_##A##W##_0_0_4 : ulp_##A##W##_0_0_2;                                           \
        }                                                                                                       \
        if (full) {                                                                                             \
            return rnd ? ulp_##A##W##_1_1_8 : ulp_##A##W##_0_1_8;                                               \
        }                                                                                                       \
        return ulp_##A##W##_0_0_8;                                                                              \
    }

ULP_PICK(2, 2)
ULP_PICK(4, 2)
ULP_PICK(2, 4)

th_mm_fn th_ulp_pick_none(int rnd, int full, int ob)
{
    (void)rnd, (void)full, (void)ob;
    return 0;
}

#endif /* TH_USE_SIMD */
