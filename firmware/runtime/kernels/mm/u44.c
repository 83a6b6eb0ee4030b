/*
 * u44.c - the packed-field core with 11-bit fields for conv2d / pointwise at a4w4 (mm.h): one output channel x
 * four pixels per step, eight MACs per SMUAD + SMLAD pair.
 *
 * Two 4-bit offset values per signed 16-bit lane, 11 bits apart: u = x + 8 and v = w + 8, both in [0, 15], so a
 * lane holds at most 15 + (15 << 11) = 30735 < 2^15 (SMLAD's signed lanes see them as positive). Weight lanes
 * come straight from a stored word (nibbles n0..n7, low first, after flipping the sign bits): lane word 0 is
 * (n0 + (n1 << 11), n4 + (n5 << 11)), lane word 1 (n2 + (n3 << 11), n6 + (n7 << 11)), three instructions each
 * (AND, AND of a shifted register, ORR of a shifted register). The activation lane words hold the matching
 * entries swapped, (u1 + (u0 << 11), u5 + (u4 << 11)) and (u3 + (u2 << 11), u7 + (u6 << 11)), so one lane's
 * product is u1 n0 + (u0 n0 + u1 n1) << 11 + u0 n1 << 22. One SMUAD + one SMLAD (the word's two lane words)
 * then leave 8 products in bits 11..21 (at most 8 * 225 = 1800 < 2^11) above a low field of 4 products (at most
 * 900 < 2^11, so it never carries into them); whatever lands at bit 22 and up may wrap past bit 31 (SMLAD's
 * sum is modulo 2^32, a SMUAD of two lane products is at most 2 * 30735^2 < 2^31), which leaves bits 0..21
 * alone. One UBFX and one ADD per weight word and pixel take the field into a 32-bit sum: 8 MACs in SMUAD,
 * SMLAD, UBFX, ADD and one LDRD of the pixel's two lane words (which lie side by side: the columns of the four
 * pixels interleave in pairs of words, word 2 px + k of each weight word's group of 8). The offsets go into the
 * bias and a per-pixel sum exactly as in the 8-bit field core (ulp.c; o = 8, c = 8 + zp):
 *     sum (x - zp) w = sum u v - 8 sum u - c sum v + 8 c K'.
 *
 * The columns (u44_words, u44_direct, u44_sum), the bias terms (u44_table) and the job loop (u44_run) are in
 * run.c.
 */
#include "mm.h"

#if TH_USE_SIMD

/* The instruction scheduler before register allocation hoists loads and multiplies across the unrolled field
 * loops and spills registers; the cores keep their source order. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-schedule-insns")
#endif


/* One channel x four pixels: a[px] the pixel's accumulator (bias and offset terms included, unscaled). */
TH_ALWAYS_INLINE void u44_dot(const th_mm_job_t *J, const uint8_t *w, const uint32_t *cp, const th_mm_rq_t *q,
                              int32_t *a, uint32_t m)
{
    const uint32_t nw = J->nwords, tb = J->tbytes;
    const uint32_t *const cend = cp + 8u * nw, *const cend2 = cp + 8u * (nw & ~1u);
    uint32_t d0 = 0, d1 = 0, d2 = 0, d3 = 0;
    const uint8_t *wa = w;
    const uint32_t *c = cp;
#define U44_PX(D, OFF, PX)                                                                                      \
    do {                                                                                                        \
        uint32_t x0, x1;                                                                                        \
        MM_LD2(x0, x1, c, 8u * (OFF) + 2u * (PX));                                                              \
        const int32_t s = th_smlad(l1, x1, th_smuad(l0, x0));                                                   \
        D += ((uint32_t)s >> U44_S) & 0x7FFu;                                                                   \
        __asm("" : "+r"(D)); /* in source order: reassociated sums spill registers */                           \
    } while (0)
#define U44_WORD(OFF)                                                                                           \
    do {                                                                                                        \
        const uint32_t v = th_load32(wa + 4u * (OFF)) ^ 0x88888888u;                                            \
        const uint32_t l0 = (v & m) | (((v >> 4) & m) << U44_S);                                                \
        const uint32_t l1 = ((v >> 8) & m) | (((v >> 12) & m) << U44_S);                                        \
        U44_PX(d0, OFF, 0u);                                                                                    \
        U44_PX(d1, OFF, 1u);                                                                                    \
        U44_PX(d2, OFF, 2u);                                                                                    \
        U44_PX(d3, OFF, 3u);                                                                                    \
    } while (0)
    for (; c != cend2; c += 16u, wa += 8) {
        U44_WORD(0u);
        U44_WORD(1u);
    }
    if (c != cend) {
        U44_WORD(0u);
        wa += 4;
    }
#undef U44_WORD
#undef U44_PX
    a[0] = (int32_t)(d0 + (uint32_t)q->b - (uint32_t)J->sx[0]);
    a[1] = (int32_t)(d1 + (uint32_t)q->b - (uint32_t)J->sx[1]);
    a[2] = (int32_t)(d2 + (uint32_t)q->b - (uint32_t)J->sx[2]);
    a[3] = (int32_t)(d3 + (uint32_t)q->b - (uint32_t)J->sx[3]);
    for (uint32_t k = 0; k < tb; ++k) {
        const uint32_t b = wa[k];
        TH_UNROLL
        for (uint32_t f = 0; f < 2u; ++f) {
            const int32_t wv = ulp_tail_w(b, f, 4);
            TH_UNROLL
            for (uint32_t px = 0; px < ULP_PX; ++px) {
                a[px] += wv * J->t[px][2u * k + f];
            }
        }
    }
}

/* The specialisations th_ulp_pick_a4w4 chooses from: u44_<rounding>_<full-range clamp>_<output bits>. */
#define U44_FN(R, F, O)                                                                                         \
    static void u44_##R##_##F##_##O(const th_mm_job_t *J, const uint32_t *cp)                                   \
    {                                                                                                           \
        uint32_t m = 0x000F000Fu;                                                                               \
        __asm("" : "+r"(m));                                                                                    \
        MM_CHANNELS(J, 8, R, (F) ? TH_CLAMP_FULL : TH_CLAMP_ANY, O, u44_dot(J, w, cp, q, a, m));                \
    }
U44_FN(1, 1, 8)
U44_FN(1, 0, 8)
U44_FN(0, 1, 8)
U44_FN(0, 0, 8)
U44_FN(1, 1, 4)
U44_FN(0, 1, 4)
U44_FN(0, 0, 4)
U44_FN(1, 1, 2)
U44_FN(0, 1, 2)
U44_FN(0, 0, 2)

/* 8-bit outputs with any clamp have their own cores (as the lane core's), unlike the other packed-field pairs */
th_mm_fn th_ulp_pick_a4w4(int rnd, int full, int ob)
{
    if (ob != 8) {
        if (full) {
            return ob == 4 ? (rnd ? u44_1_1_4 : u44_0_1_4) : (rnd ? u44_1_1_2 : u44_0_1_2);
        }
        return ob == 4 ? u44_0_0_4 : u44_0_0_2;
    }
    if (rnd) {
        return full ? u44_1_1_8 : u44_1_0_8;
    }
    return full ? u44_0_1_8 : u44_0_0_8;
}

#endif /* TH_USE_SIMD */
