/*
 * packed_mm.c - the lane matrix core behind conv2d, pointwise and fc at every (A, W) pair (DSP cores).
 *
 * Weights stay packed as stored (rows of `wrow` bytes, w_bits each). One 32-bit weight word holds G = 32/wb
 * weights; masking one field per byte to the top of the byte and SXTB16 (plain or ROR 8) turn it into G/2
 * "lane words" of two int16 weights, scaled by 2^(8-wb) (th_mm_lane: 0 shifts for 8-bit weights, a shift-and-
 * mask for 4 and 2 bits). Lane word s of a weight word holds the weights at entries
 *     e0(s) = (s % 2) * per + s / 2   and   e0(s) + 2 * per        (per = 8 / wb weights per byte),
 * so the activations are stored in that order ("lane order") as centred int16, once per pixel, and each SMLAD
 * then does two MACs with no per-MAC unpacking. The core blocks 2 output channels x 2 pixels; the two pixels'
 * columns are interleaved word by word so one pointer walks both. The K % 32 bits tail of a weight row (whole
 * bytes that do not fill a word) is done byte by byte against a plain int16 tail.
 *
 * Accumulators start at bias * 2^(8-wb) and are turned into th_rq2's t by one shift per output; the fast
 * requantization holds when th_rq_fast_ok does for the layer (the kernels check, and fall back otherwise).
 */
#include "th_kernels.h"

#if TH_USE_SIMD

/* The instruction scheduler before register allocation hoists loads and multiplies across the unrolled field
 * loops and spills registers; the cores keep their source order. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-schedule-insns")
#endif

/* log2 of the weight scale of a lane word: 0 (8-bit), 4 (4-bit), 6 (2-bit). */
#define MM_G(wb) ((wb) == 8 ? 0 : ((wb) == 4 ? 4 : 6))

/* ---------------------------------------------------------------------------------------------------------- */
/* Requantization table */

void th_mm_rq_table(const th_layer_t *L, const th_tensor_t *out, uint32_t c0, uint32_t n, int wb, int rnd,
                    th_mm_rq_t *tab)
{
    const int g = MM_G(wb);
    for (uint32_t i = 0; i < n; ++i) {
        const th_rq_t q = th_rq_channel(L, c0 + i, out->zero_point);
        const int32_t sh = wb == 8 ? q.ls : g - q.ls;
        tab[i].b = (int32_t)((uint32_t)L->bias[c0 + i] << g);
        tab[i].m = q.m;
        tab[i].r = q.r;
        tab[i].e = q.e;
        tab[i].sh = rnd ? 0 : sh;
        tab[i].sc = q.e > 0 ? 31 : 32;
    }
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Columns */

/* n centred activations of a packed row (from element 0) as natural-order int16. */
static void col_natural(const uint8_t *src, uint32_t n, int ab, int32_t zp, int16_t *dst)
{
    uint32_t j = 0;
    if (ab == 8) {
        const uint32_t off = ((uint32_t)(-zp) & 0xFFFFu) * 0x00010001u;
        for (; j + 4u <= n; j += 4u) {
            const uint32_t v = th_load32(src + j);
            const uint32_t e = th_sxtab16(off, v), o = th_sxtab16_ror8(off, v);
            th_store32(dst + j, th_pack_lo(e, o));
            th_store32(dst + j + 2u, th_pack_hi(e, o));
        }
    } else if (ab == 4) {
        const uint32_t sub = ((uint32_t)(8 + zp) & 0xFFFFu) * 0x00010001u;
        for (; j + 8u <= n; j += 8u) {
            const uint32_t v = th_load32(src + j / 2u) ^ 0x88888888u;
            const uint32_t l0 = th_ssub16(v & 0x000F000Fu, sub), l1 = th_ssub16((v >> 4) & 0x000F000Fu, sub);
            const uint32_t l2 = th_ssub16((v >> 8) & 0x000F000Fu, sub), l3 = th_ssub16((v >> 12) & 0x000F000Fu, sub);
            th_store32(dst + j, th_pack_lo(l0, l1));
            th_store32(dst + j + 2u, th_pack_lo(l2, l3));
            th_store32(dst + j + 4u, th_pack_hi(l0, l1));
            th_store32(dst + j + 6u, th_pack_hi(l2, l3));
        }
    } else {
        const uint32_t sub = ((uint32_t)(2 + zp) & 0xFFFFu) * 0x00010001u;
        for (; j + 16u <= n; j += 16u) {
            const uint32_t v = th_load32(src + j / 4u) ^ 0xAAAAAAAAu;
            TH_UNROLL
            for (uint32_t i = 0; i < 4u; ++i) {
                const uint32_t a = th_ssub16((v >> (4u * i)) & 0x00030003u, sub);
                const uint32_t b = th_ssub16((v >> (4u * i + 2u)) & 0x00030003u, sub);
                th_store32(dst + j + 2u * i, th_pack_lo(a, b));
                th_store32(dst + j + 8u + 2u * i, th_pack_hi(a, b));
            }
        }
    }
    for (; j < n; ++j) {
        dst[j] = (int16_t)(th_get(src, j, ab) - zp);
    }
}

/* Lane words of `nw` weight words from a natural column into dst[0], dst[st], dst[2 st], ... (st = 2 in a column
 * pair, where the caller offsets dst by the pixel; st = 1 in a single column). */
TH_ALWAYS_INLINE void col_permute_w(const int16_t *nat, uint32_t nw, uint32_t *dst, const int wb, const uint32_t st)
{
    const uint32_t per = 8u / (uint32_t)wb, G = 32u / (uint32_t)wb;
    for (uint32_t j = 0; j < nw; ++j, nat += G, dst += st * (G / 2u)) {
        uint32_t W[8];
        TH_UNROLL
        for (uint32_t i = 0; i < G / 2u; ++i) {
            W[i] = th_load32(nat + 2u * i);
        }
        TH_UNROLL
        for (uint32_t s = 0; s < G / 2u; ++s) {
            const uint32_t e0 = (s & 1u) * per + s / 2u;
            const uint32_t a = W[e0 >> 1], b = W[(e0 >> 1) + per];
            dst[st * s] = (e0 & 1u) ? th_pack_hi(a, b) : th_pack_lo(a, b);
        }
    }
}

static void col_permute(const int16_t *nat, uint32_t nw, uint32_t *dst, int wb, uint32_t st)
{
    if (st == 1u) {
        if (wb == 8) {
            col_permute_w(nat, nw, dst, 8, 1u);
        } else if (wb == 4) {
            col_permute_w(nat, nw, dst, 4, 1u);
        } else {
            col_permute_w(nat, nw, dst, 2, 1u);
        }
    } else if (wb == 8) {
        col_permute_w(nat, nw, dst, 8, 2u);
    } else if (wb == 4) {
        col_permute_w(nat, nw, dst, 4, 2u);
    } else {
        col_permute_w(nat, nw, dst, 2, 2u);
    }
}

/* Direct lane words when the activation word and the weight word hold the same entries (A == W, whole words),
 * n a multiple of G: 8 bits by SXTAB16, 4 and 2 bits by offset-binary fields. Words st apart (see above). */
TH_ALWAYS_INLINE void col_direct_st(const uint8_t *src, uint32_t n, int ab, int32_t zp, uint32_t *dst,
                                    const uint32_t st)
{
    if (ab == 8) {
        const uint32_t off = ((uint32_t)(-zp) & 0xFFFFu) * 0x00010001u;
        uint32_t j = 0;
        for (; j + 16u <= n; j += 16u, dst += 8u * st) {
            TH_UNROLL
            for (uint32_t i = 0; i < 4u; ++i) {
                const uint32_t v = th_load32(src + j + 4u * i);
                dst[2u * i * st] = th_sxtab16(off, v);
                dst[(2u * i + 1u) * st] = th_sxtab16_ror8(off, v);
            }
        }
        for (; j < n; j += 4u, dst += 2u * st) {
            const uint32_t v = th_load32(src + j);
            dst[0] = th_sxtab16(off, v);
            dst[st] = th_sxtab16_ror8(off, v);
        }
    } else if (ab == 4) { /* fields (j, j + 4) of a word: lane words s = 0..3 are fields 0, 2, 1, 3 */
        const uint32_t sub = ((uint32_t)(8 + zp) & 0xFFFFu) * 0x00010001u;
        for (uint32_t j = 0; j < n; j += 8u, dst += 4u * st) {
            const uint32_t v = th_load32(src + j / 2u) ^ 0x88888888u;
            dst[0] = th_ssub16(v & 0x000F000Fu, sub);
            dst[2u * st] = th_ssub16((v >> 4) & 0x000F000Fu, sub);
            dst[st] = th_ssub16((v >> 8) & 0x000F000Fu, sub);
            dst[3u * st] = th_ssub16((v >> 12) & 0x000F000Fu, sub);
        }
    } else { /* fields (j, j + 8): lane words s = 0..7 are fields 0, 4, 1, 5, 2, 6, 3, 7 */
        const uint32_t sub = ((uint32_t)(2 + zp) & 0xFFFFu) * 0x00010001u;
        for (uint32_t j = 0; j < n; j += 16u, dst += 8u * st) {
            const uint32_t v = th_load32(src + j / 4u) ^ 0xAAAAAAAAu;
            TH_UNROLL
            for (uint32_t f = 0; f < 8u; ++f) {
                const uint32_t s = (f & 3u) * 2u + (f >> 2);
                dst[st * s] = th_ssub16((v >> (2u * f)) & 0x00030003u, sub);
            }
        }
    }
}

static void col_direct(const uint8_t *src, uint32_t n, int ab, int32_t zp, uint32_t *dst)
{
    col_direct_st(src, n, ab, zp, dst, 2u);
}

static void col_direct1(const uint8_t *src, uint32_t n, int ab, int32_t zp, uint32_t *dst)
{
    col_direct_st(src, n, ab, zp, dst, 1u);
}

/* ---------------------------------------------------------------------------------------------------------- */
/* The core */

/* Lane word s (0 .. 16/wb - 1) of weight word v, scaled by 2^MM_G(wb). */
TH_ALWAYS_INLINE uint32_t mm_lane(uint32_t v, uint32_t s, uint32_t m, const int wb)
{
    const uint32_t per = 8u / (uint32_t)wb;
    const uint32_t f = s / 2u;
    const uint32_t fv = wb == 8 ? v : (v << ((per - 1u - f) * (uint32_t)wb)) & m;
    return (s & 1u) ? th_sxtb16_ror8(fv) : th_sxtb16(fv);
}

/* Weight `f` of tail byte b, scaled like the lane words. */
TH_ALWAYS_INLINE int32_t mm_tail_w(uint32_t b, uint32_t f, const int wb)
{
    const uint32_t per = 8u / (uint32_t)wb;
    return (int32_t)(int8_t)(uint8_t)((b << ((per - 1u - f) * (uint32_t)wb)) & (0xFFu << (8 - wb)));
}

TH_ALWAYS_INLINE int32_t mm_t(int32_t acc, const th_mm_rq_t *q, const int wb, const int rnd)
{
    const int g = MM_G(wb);
    if (rnd) {
        return wb == 8 ? (int32_t)((uint32_t)acc << 1) : acc >> (g - 1);
    }
    return wb == 8 ? (int32_t)((uint32_t)acc << q->sh) : acc >> q->sh;
}

TH_ALWAYS_INLINE int32_t mm_out(int32_t t, const th_mm_rq_t *q, int32_t lo, int32_t hi, const int rnd,
                                const int kind, const int ob)
{
    int32_t v;
    if (rnd) {
        v = th_rq2(t, q->m, q->r, q->e);
    } else { /* the sign correction is 1 for negative t when e > 0 (sc = 31), never when e == 0 (sc = 32) */
        v = (th_smmlar(t, q->m, q->r) - (int32_t)th_lsr(t, q->sc)) >> q->e;
    }
    return th_clamp_as(v, lo, hi, ob, kind);
}

TH_ALWAYS_INLINE void mm_store(uint8_t *y, uint32_t c, int32_t v, const int ob, int ob_rt)
{
    if (ob == 8) {
        y[c] = (uint8_t)v;
    } else {
        th_put(y, c, ob_rt, v);
    }
}

/* The per-call fields of a job: weight row geometry, requantization table, clamp and output bits. */
TH_ALWAYS_INLINE void mm_job_init(th_mm_job_t *J, const th_mm_plan_t *P, const th_layer_t *L,
                                  const th_tensor_t *out, const th_mm_rq_t *tab)
{
    J->wrow = P->wrow;
    J->nwords = P->nwords;
    J->tbytes = P->tbytes;
    J->rq = tab;
    J->lo = L->act_min;
    J->hi = L->act_max;
    J->ob = out->bits;
}

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

#define MM_FN(WB, RND, KIND, OB)                                                                                \
    static void mm_##WB##_##RND##_##KIND##_##OB(const th_mm_job_t *J, const uint32_t *cp, const int16_t *t0,   \
                                                 const int16_t *t1, uint8_t *y0, uint8_t *y1)                   \
    {                                                                                                           \
        mm_core(J, cp, t0, t1, y0, y1, WB, RND, KIND, OB);                                                      \
    }
#define MM_FNS(WB)                                                                                              \
    MM_FN(WB, 1, 1, 8)                                                                                          \
    MM_FN(WB, 1, 0, 8)                                                                                          \
    MM_FN(WB, 0, 1, 8)                                                                                          \
    MM_FN(WB, 0, 0, 8)                                                                                          \
    MM_FN(WB, 0, 0, 0)                                                                                          \
    th_mm_fn th_mm_pick_w##WB(int rnd, int full, int ob)                                                        \
    {                                                                                                           \
        if (ob != 8) {                                                                                          \
            return mm_##WB##_0_0_0;                                                                             \
        }                                                                                                       \
        if (rnd) {                                                                                              \
            return full ? mm_##WB##_1_1_8 : mm_##WB##_1_0_8;                                                    \
        }                                                                                                       \
        return full ? mm_##WB##_0_1_8 : mm_##WB##_0_0_8;                                                        \
    }
MM_FNS(8)
MM_FNS(4)
MM_FNS(2)

/* ---------------------------------------------------------------------------------------------------------- */
/* a2w2, a4w2, a2w4: the packed-field core (ULPPACK-style)
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
 * 1, 0, 3, 2 (u_b, u_a per lane). Tail bytes are done exactly against the natural column. */

#define ULP_WV(wb) ((wb) == 2 ? 1 : 7) /* weight offset o */

/* fields of an offset-binary weight word minus 1 (2-bit: w + 1) or 1 each (4-bit: w + 7) */
TH_ALWAYS_INLINE uint32_t ulp_v(uint32_t w, const int wb)
{
    return wb == 2 ? (w ^ 0xAAAAAAAAu) - 0x55555555u : (w ^ 0x88888888u) - 0x11111111u;
}

/* The packed-field core works on four pixels at once: their columns interleave word by word. */
#define ULP_PX 4u

/* Lane words of one weight word's group (32/W entries) from a natural centred column (u = nat + c), st words
 * apart (ULP_PX in the four-pixel columns of conv2d/pointwise, 1 in fc's single column). */
TH_ALWAYS_INLINE void ulp_words(const int16_t *nat, int32_t c, uint32_t *dst, const int wb, uint32_t st)
{
    const uint32_t per = 8u / (uint32_t)wb; /* lane words per weight word = entries between bytes */
    TH_UNROLL
    for (uint32_t k = 0; k < per; ++k) {
        const uint32_t b0 = (uint32_t)(nat[k + per] + c), b1 = (uint32_t)(nat[k] + c);
        const uint32_t b2 = (uint32_t)(nat[k + 3u * per] + c), b3 = (uint32_t)(nat[k + 2u * per] + c);
        dst[st * k] = b0 | (b1 << 8) | (b2 << 16) | (b3 << 24);
    }
}

static void ulp_words_n(const int16_t *nat, uint32_t nw, int32_t c, uint32_t *dst, int wb, uint32_t st)
{
    if (wb == 2) {
        for (uint32_t j = 0; j < nw; ++j) {
            ulp_words(nat + 16u * j, c, dst + 4u * st * j, 2, st);
        }
    } else {
        for (uint32_t j = 0; j < nw; ++j) {
            ulp_words(nat + 8u * j, c, dst + 2u * st * j, 4, st);
        }
    }
}

/* a2w2 lane words straight from n (a multiple of 16) 2-bit activations: u = x + 2 is the field with its top
 * bit flipped; fields k, k+4, k+8, k+12 after one shift and mask, REV16 puts them in the lane order. */
TH_ALWAYS_INLINE void ulp_direct(const uint8_t *src, uint32_t n, uint32_t *dst, uint32_t st)
{
    uint32_t m = 0x03030303u;
    __asm("" : "+r"(m));
    for (uint32_t j = 0; j < n; j += 16u, dst += 4u * st) {
        const uint32_t v = th_load32(src + j / 4u) ^ 0xAAAAAAAAu;
        dst[0] = th_rev16(v & m);
        dst[st] = th_rev16((v >> 2) & m);
        dst[2u * st] = th_rev16((v >> 4) & m);
        dst[3u * st] = th_rev16((v >> 6) & m);
    }
}

/* a4w2 lane words straight from n (a multiple of 16) 4-bit activations: u = x + 8 is the nibble with its top
 * bit flipped; (u_k, u_{k+4}) and (u_{k+8}, u_{k+12}) come out of the two words by one shift and mask each, two
 * PKHs and one shifted OR give the lane order u_{k+4}, u_k, u_{k+12}, u_{k+8}. */
TH_ALWAYS_INLINE void ulp_direct4(const uint8_t *src, uint32_t n, uint32_t *dst, uint32_t st)
{
    uint32_t m = 0x000F000Fu;
    __asm("" : "+r"(m));
    for (uint32_t j = 0; j < n; j += 16u, dst += 4u * st) {
        const uint32_t a = th_load32(src + j / 2u) ^ 0x88888888u, b = th_load32(src + j / 2u + 4u) ^ 0x88888888u;
        TH_UNROLL
        for (uint32_t k = 0; k < 4u; ++k) {
            const uint32_t ak = (a >> (4u * k)) & m, bk = (b >> (4u * k)) & m;
            dst[st * k] = th_pack_hi(ak, bk) | (th_pack_lo(ak, bk) << 8);
        }
    }
}

static void ulp_direct_a(const uint8_t *src, uint32_t n, uint32_t *dst, int ab, uint32_t st)
{
    if (ab == 2) {
        ulp_direct(src, n, dst, st);
    } else {
        ulp_direct4(src, n, dst, st);
    }
}

/* o * (sum of u) over one pixel's lane words (nl of them, st apart) */
TH_ALWAYS_INLINE int32_t ulp_sum(const uint32_t *cp, uint32_t nl, int32_t o, uint32_t st)
{
    uint32_t s = 0;
    for (uint32_t i = 0; i < nl; ++i) {
        s = th_usada8(cp[st * i], 0u, s);
    }
    return o * (int32_t)s;
}

/* The fields of v summed into its four bytes (at most 8 or 28 each). */
TH_ALWAYS_INLINE uint32_t ulp_vsum(uint32_t v, const int wb)
{
    if (wb == 2) {
        v = (v & 0x33333333u) + ((v >> 2) & 0x33333333u);
    }
    return (v & 0x0F0F0F0Fu) + ((v >> 4) & 0x0F0F0F0Fu);
}

/* Per-channel bias terms: b += c * (o K' - sum v) over the whole words of each weight row (nothing to add
 * when c == 0, i.e. the input zero point is the bottom of its range, as after a ReLU). */
TH_ALWAYS_INLINE void ulp_table_w(const th_mm_plan_t *P, const uint8_t *w, uint32_t n, int32_t c, th_mm_rq_t *tab,
                                  const int wb)
{
    const int32_t kw = (int32_t)(P->nwords * (32u / (uint32_t)wb)) * ULP_WV(wb);
    for (uint32_t i = 0; i < n; ++i, w += P->wrow) {
        uint32_t sv = 0;
        for (uint32_t j = 0; j < P->nwords; ++j) {
            sv = th_usada8(ulp_vsum(ulp_v(th_load32(w + 4u * j), wb), wb), 0u, sv);
        }
        tab[i].b += c * (kw - (int32_t)sv);
    }
}

static void ulp_table(const th_mm_plan_t *P, const uint8_t *w, uint32_t n, int32_t c, th_mm_rq_t *tab)
{
    if (c == 0) {
        return;
    }
    if (P->wb == 2) {
        ulp_table_w(P, w, n, c, tab, 2);
    } else {
        ulp_table_w(P, w, n, c, tab, 4);
    }
}

/* Weight f of a tail byte, sign-extended. */
TH_ALWAYS_INLINE int32_t ulp_tail_w(uint32_t b, uint32_t f, const int wb)
{
    return (int32_t)(b << (32u - (uint32_t)wb * (f + 1u))) >> (32 - wb);
}

/* Field sums that fit the core's 16-bit lanes, and the flush period F (see above). */
TH_ALWAYS_INLINE uint32_t ulp_flush_period(int ab, int wb)
{
    return ab == 2 ? (wb == 2 ? 8u : 1u) : 2u;
}

/* One channel x four pixels: the two pixels' fields of a flush are packed by one PKHBT and added to two 16-bit
 * lanes by one UXTAB16 ROR 8 (th_mm_prepare keeps the lane sums below 2^16). */
TH_ALWAYS_INLINE void ulp_core(const th_mm_job_t *J, const uint32_t *cp, const int ab, const int wb,
                               const int rnd, const int kind, const int ob)
{
    /* lane words per weight word; SMLADs per flush; weight words per loop step */
    const uint32_t LW = 8u / (uint32_t)wb, F = ulp_flush_period(ab, wb), GW = F > LW ? F / LW : 1u;
    const uint32_t wrow = J->wrow, nw = J->nwords, tb = J->tbytes, n = J->n, c0 = J->c0, per = 8u / (uint32_t)wb;
    const int32_t lo = J->lo, hi = J->hi;
    const int obr = J->ob;
    const th_mm_rq_t *q = J->rq;
    const uint8_t *w = J->w;
    const uint32_t *const cend = cp + ULP_PX * LW * nw, *const cendg = cp + ULP_PX * LW * (nw - nw % GW);
    uint32_t m = wb == 2 ? 0x03030303u : 0x0F0F0F0Fu;
    __asm("" : "+r"(m));
    for (uint32_t i = 0; i < n; ++i, w += wrow, ++q) {
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
                const uint32_t *cc = c + ULP_PX * idx;                                                          \
                if (idx % F == 0u) {                                                                            \
                    s0 = th_smuad(l, cc[0]);                                                                    \
                    s1 = th_smuad(l, cc[1]);                                                                    \
                    s2 = th_smuad(l, cc[2]);                                                                    \
                    s3 = th_smuad(l, cc[3]);                                                                    \
                } else {                                                                                        \
                    s0 = th_smlad(l, cc[0], s0);                                                                \
                    s1 = th_smlad(l, cc[1], s1);                                                                \
                    s2 = th_smlad(l, cc[2], s2);                                                                \
                    s3 = th_smlad(l, cc[3], s3);                                                                \
                }                                                                                               \
                if ((idx + 1u) % F == 0u || idx + 1u == (NWORDS) * LW) {                                        \
                    d01 = th_uxtab16_ror8(d01, th_pack_lo((uint32_t)s0, (uint32_t)s1));                         \
                    d23 = th_uxtab16_ror8(d23, th_pack_lo((uint32_t)s2, (uint32_t)s3));                         \
                }                                                                                               \
            }                                                                                                   \
        }                                                                                                       \
    } while (0)
        for (; c != cendg; c += ULP_PX * LW * GW, wa += 4u * GW) {
            ULP_WORDS(GW);
        }
        if (GW > 1u && c != cend) { /* GW is 2 at most */
            ULP_WORDS(1u);
            wa += 4;
        }
#undef ULP_WORDS
        int32_t a[ULP_PX];
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
        {
            int32_t v[ULP_PX];
            TH_UNROLL
            for (uint32_t px = 0; px < ULP_PX; ++px) {
                v[px] = mm_out(mm_t(a[px], q, 8, rnd), q, lo, hi, rnd, kind, ob);
            }
            TH_UNROLL
            for (uint32_t px = 0; px < ULP_PX; ++px) {
                if (J->y[px] != 0) {
                    mm_store(J->y[px], c0 + i, v[px], ob, obr);
                }
            }
        }
    }
}

#define ULP_FN(A, W, RND, KIND, OB)                                                                             \
    static void ulp_##A##W##_##RND##_##KIND##_##OB(const th_mm_job_t *J, const uint32_t *cp, const int16_t *t0, \
                                                    const int16_t *t1, uint8_t *y0, uint8_t *y1)                \
    {                                                                                                           \
        (void)t0, (void)t1, (void)y0, (void)y1; /* four pixels: tails and rows in J */                          \
        ulp_core(J, cp, A, W, RND, KIND, OB);                                                                   \
    }
#define ULP_FNS(A, W)                                                                                           \
    ULP_FN(A, W, 1, 1, 8)                                                                                       \
    ULP_FN(A, W, 0, 1, 8)                                                                                       \
    ULP_FN(A, W, 0, 0, 0)                                                                                       \
    th_mm_fn th_ulp_pick_a##A##w##W(int rnd, int full, int ob)                                                  \
    {                                                                                                           \
        if (ob == 8 && full) {                                                                                  \
            return rnd ? ulp_##A##W##_1_1_8 : ulp_##A##W##_0_1_8;                                               \
        }                                                                                                       \
        return ulp_##A##W##_0_0_0;                                                                              \
    }
ULP_FNS(2, 2)
ULP_FNS(4, 2)
ULP_FNS(2, 4)

th_mm_fn th_ulp_pick_none(int rnd, int full, int ob)
{
    (void)rnd, (void)full, (void)ob;
    return 0;
}

/* ---------------------------------------------------------------------------------------------------------- */
/* a4w4: the packed-field core with 11-bit fields
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
 * bias and a per-pixel sum exactly as in the core above (o = 8, c = 8 + zp):
 *     sum (x - zp) w = sum u v - 8 sum u - c sum v + 8 c K'. */

#define U44_S 11u /* field spacing */

/* Two activation lane words from 8 natural centred entries (u = nat + c). */
TH_ALWAYS_INLINE void u44_words(const int16_t *nat, int32_t c, uint32_t *dst)
{
    uint32_t u[8];
    TH_UNROLL
    for (uint32_t k = 0; k < 8u; ++k) {
        u[k] = (uint32_t)(nat[k] + c);
    }
    dst[0] = u[1] | (u[0] << U44_S) | (u[5] << 16) | (u[4] << (16u + U44_S));
    dst[1] = u[3] | (u[2] << U44_S) | (u[7] << 16) | (u[6] << (16u + U44_S));
}

/* nw weight words' lane words from a natural column into dst[8 j], dst[8 j + 1] */
static void u44_words_n(const int16_t *nat, uint32_t nw, int32_t c, uint32_t *dst)
{
    for (uint32_t j = 0; j < nw; ++j) {
        u44_words(nat + 8u * j, c, dst + 8u * j);
    }
}

/* Lane words straight from n (a multiple of 8) packed 4-bit activations: u = the nibble with its top bit flipped. */
TH_ALWAYS_INLINE void u44_direct_st(const uint8_t *src, uint32_t n, uint32_t *dst, const uint32_t st)
{
    uint32_t m = 0x000F000Fu;
    __asm("" : "+r"(m));
    for (uint32_t j = 0; j < n; j += 8u, dst += st) {
        const uint32_t a = th_load32(src + j / 2u) ^ 0x88888888u;
        dst[0] = ((a >> 4) & m) | ((a & m) << U44_S);
        dst[1] = ((a >> 12) & m) | (((a >> 8) & m) << U44_S);
    }
}

static void u44_direct(const uint8_t *src, uint32_t n, uint32_t *dst)
{
    u44_direct_st(src, n, dst, 8u);
}

/* 8 * (sum of u) over nw weight words' lane words (dst[st j], dst[st j + 1]): an SMLAD with ones in both fields
 * of both lanes puts the four u of a word in bits 11..21 (at most 60; the low field at most 30): flushed every
 * 16 SMLADs (960 and 480 < 2^11). */
TH_ALWAYS_INLINE int32_t u44_sum(const uint32_t *cp, uint32_t nw, uint32_t st)
{
    const uint32_t ones = 0x00010001u | (0x00010001u << U44_S);
    uint32_t s = 0;
    for (uint32_t j = 0; j < nw;) {
        int32_t f = 0;
        for (uint32_t e = j + 8u < nw ? j + 8u : nw; j < e; ++j) {
            f = th_smlad(cp[st * j], ones, f);
            f = th_smlad(cp[st * j + 1u], ones, f);
        }
        s += ((uint32_t)f >> U44_S) & 0x7FFu;
    }
    return 8 * (int32_t)s;
}

/* Per-channel bias terms: b += c * (8 K' - sum v) over the whole words of each weight row. */
static void u44_table(const th_mm_plan_t *P, const uint8_t *w, uint32_t n, int32_t c, th_mm_rq_t *tab)
{
    const int32_t k8 = (int32_t)(P->nwords * 8u) * 8;
    if (c == 0) {
        return;
    }
    for (uint32_t i = 0; i < n; ++i, w += P->wrow) {
        uint32_t sv = 0;
        for (uint32_t j = 0; j < P->nwords; ++j) {
            sv = th_usada8(ulp_vsum(th_load32(w + 4u * j) ^ 0x88888888u, 4), 0u, sv);
        }
        tab[i].b += c * (k8 - (int32_t)sv);
    }
}

/* The two lane words of pixel column words p[o], p[o + 1] (one LDRD) */
typedef struct {
    uint32_t w[2];
} u44_pair_t;
#if defined(__ARM_FEATURE_DSP) && !defined(TH_NO_DSP)
#define U44_LD2(x0, x1, p, o)                                                                                   \
    __asm("ldrd %0, %1, [%2, #%c3]"                                                                             \
          : "=r"(x0), "=r"(x1)                                                                                  \
          : "r"(p), "i"(4u * (o)), "m"(*(const u44_pair_t *)(const void *)((p) + (o))))
#else
#define U44_LD2(x0, x1, p, o) ((x0) = (p)[o], (x1) = (p)[(o) + 1u])
#endif

/* One channel x four pixels. */
TH_ALWAYS_INLINE void u44_core(const th_mm_job_t *J, const uint32_t *cp, const int rnd, const int kind,
                               const int ob)
{
    const uint32_t wrow = J->wrow, nw = J->nwords, tb = J->tbytes, n = J->n, c0 = J->c0;
    const int32_t lo = J->lo, hi = J->hi;
    const int obr = J->ob;
    const th_mm_rq_t *q = J->rq;
    const uint8_t *w = J->w;
    const uint32_t *const cend = cp + 8u * nw, *const cend2 = cp + 8u * (nw & ~1u);
    uint32_t m = 0x000F000Fu;
    __asm("" : "+r"(m));
    for (uint32_t i = 0; i < n; ++i, w += wrow, ++q) {
        uint32_t d0 = 0, d1 = 0, d2 = 0, d3 = 0;
        const uint8_t *wa = w;
        const uint32_t *c = cp;
#define U44_PX(D, OFF, PX)                                                                                      \
    do {                                                                                                        \
        uint32_t x0, x1;                                                                                        \
        U44_LD2(x0, x1, c, 8u * (OFF) + 2u * (PX));                                                             \
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
        int32_t a[ULP_PX];
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
        {
            int32_t v[ULP_PX];
            TH_UNROLL
            for (uint32_t px = 0; px < ULP_PX; ++px) {
                v[px] = mm_out(mm_t(a[px], q, 8, rnd), q, lo, hi, rnd, kind, ob);
            }
            TH_UNROLL
            for (uint32_t px = 0; px < ULP_PX; ++px) { /* u44_run: every row a real one */
                mm_store(J->y[px], c0 + i, v[px], ob, obr);
            }
        }
    }
}

#define U44_FN(RND, KIND, OB)                                                                                   \
    static void u44_##RND##_##KIND##_##OB(const th_mm_job_t *J, const uint32_t *cp, const int16_t *t0,          \
                                          const int16_t *t1, uint8_t *y0, uint8_t *y1)                          \
    {                                                                                                           \
        (void)t0, (void)t1, (void)y0, (void)y1;                                                                 \
        u44_core(J, cp, RND, KIND, OB);                                                                         \
    }
U44_FN(1, 1, 8)
U44_FN(1, 0, 8)
U44_FN(0, 1, 8)
U44_FN(0, 0, 8)
U44_FN(0, 0, 0)

/* 8-bit outputs with any clamp have their own cores (as the lane core's), unlike the other packed-field pairs */
th_mm_fn th_ulp_pick_a4w4(int rnd, int full, int ob)
{
    if (ob != 8) {
        return u44_0_0_0;
    }
    if (rnd) {
        return full ? u44_1_1_8 : u44_1_0_8;
    }
    return full ? u44_0_1_8 : u44_0_0_8;
}

/* fc: one channel x one pixel over a single column (words 1 apart), a 32-bit field sum (one UXTAB ROR 8). */
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

#define FCU_FN(A, W, RND, KIND, OB)                                                                             \
    static void fcu_##A##W##_##RND##_##KIND##_##OB(const th_mm_job_t *J, const uint32_t *col,                   \
                                                    const int16_t *tail, uint8_t *y)                            \
    {                                                                                                           \
        fcu_core(J, col, tail, y, A, W, RND, KIND, OB);                                                         \
    }
#define FCU_FNS(A, W)                                                                                           \
    FCU_FN(A, W, 1, 1, 8)                                                                                       \
    FCU_FN(A, W, 0, 1, 8)                                                                                       \
    FCU_FN(A, W, 0, 0, 0)                                                                                       \
    th_fc_fn th_fcu_pick_a##A##w##W(int rnd, int full, int ob)                                                  \
    {                                                                                                           \
        if (ob == 8 && full) {                                                                                  \
            return rnd ? fcu_##A##W##_1_1_8 : fcu_##A##W##_0_1_8;                                               \
        }                                                                                                       \
        return fcu_##A##W##_0_0_0;                                                                              \
    }
FCU_FNS(2, 2)
FCU_FNS(4, 2)
FCU_FNS(2, 4)

th_fc_fn th_fcu_pick_none(int rnd, int full, int ob)
{
    (void)rnd, (void)full, (void)ob;
    return 0;
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Public entry points */

int th_mm_prepare(const th_layer_t *L, const th_tensor_t *out, uint32_t taps, int ab, int wb, uint32_t cin,
                  int ulp_ok, th_mm_plan_t *P)
{
    int rnd;
    const uint32_t wrow = taps * th_row_bytes(cin, wb);
    /* a2w2 takes the packed-field core (unscaled accumulators) when its 16-bit field sums cannot overflow */
    /* the core's 16-bit lane sums: (flushes per row) x (largest field at a flush) < 2^16 */
    const uint32_t nflush = ab == 2 && wb == 2 ? (wrow / 4u + 1u) / 2u : 2u * (wrow / 4u);
    const uint32_t fmax = ab == 2 ? (wb == 2 ? 192u : 168u) : 240u;
    /* a4w4 (u44_core): 32-bit field sums, nothing to bound beyond the fast requantization's own check */
    const int ulp = ulp_ok && wrow >= 4u && ((ab + wb <= 6 && wb < 8 && nflush * fmax < 65536u) || (ab == 4 && wb == 4));
    const int g = ulp ? 0 : MM_G(wb);
    /* scaled accumulators stay below 2^31; ls <= g keeps t an exact right shift of them */
    const int lim = 29 < 31 - g ? 29 : 31 - g;
    if (!th_rq_fast_ok(L, out->c, taps * cin, ab, wb, lim, g == 0 ? 31 : g - 1, &rnd)) {
        return 0;
    }
    P->wb = wb;
    P->ab = ab;
    P->ulp = ulp;
    P->rnd = out->bits == 8 ? rnd : 0; /* the core for 2/4-bit outputs takes the per-channel shifts */
    P->wrow = wrow; /* conv: taps rows of whole bytes; pointwise/fc: one row */
    P->tap_bytes = th_row_bytes(cin, wb);
    P->nwords = P->wrow / 4u;
    P->tbytes = P->wrow % 4u;
    P->kp = P->wrow * (8u / (uint32_t)wb);
    P->tail = P->tbytes * (8u / (uint32_t)wb);
    P->full = out->bits == 8 && th_clamp_kind(L, 8) == TH_CLAMP_FULL;
    if (ulp && !P->full && !(ab == 4 && wb == 4)) {
        P->rnd = 0; /* its cores: (rnd, full) 8-bit, or the general one (a4w4: th_ulp_pick_a4w4) */
    }
    P->fn = 0; /* picked by the pair (TH_MM_PAIR), so that a firmware links only the cores it uses */
    P->ffn = 0;
    return 1;
}

void th_mm_col_finish(const th_mm_plan_t *P, const int16_t *nat, uint32_t *cp, int16_t *tail, uint32_t px)
{
    col_permute(nat, P->nwords, cp + px, P->wb, 2u);
    memcpy(tail, nat + P->nwords * (32u / (uint32_t)P->wb), P->tail * sizeof(int16_t));
}

void th_mm_col_natural(const uint8_t *src, uint32_t n, int ab, int32_t zp, int16_t *dst)
{
    col_natural(src, n, ab, zp, dst);
}

void th_mm_col_direct(const uint8_t *src, uint32_t n, int ab, int32_t zp, uint32_t *dst)
{
    col_direct(src, n, ab, zp, dst);
}

/* Input pixel of tap (i, j) for output (oy, ox), or NULL when the tap falls in the padding. */
TH_ALWAYS_INLINE const uint8_t *mm_tap(const th_layer_t *L, const th_tensor_t *in, const uint8_t *x, uint32_t irb,
                                       uint32_t oy, uint32_t ox, uint32_t i, uint32_t j)
{
    const int32_t yy = (int32_t)(oy * L->stride + i) - (int32_t)L->pad_t;
    const int32_t xx = (int32_t)(ox * L->stride + j) - (int32_t)L->pad_l;
    if (yy < 0 || xx < 0 || yy >= (int32_t)in->h || xx >= (int32_t)in->w) {
        return 0;
    }
    return x + ((uint32_t)yy * in->w + (uint32_t)xx) * irb;
}

/* The four-pixel column of a4w4's packed-field core for output pixel q (words 2 px + k of each group of 8, dst
 * offset by the pixel), its tail (natural centred) and its 8 * (sum of u). Lane words come straight from the
 * packed activations when every tap holds whole weight words (cin % 8 == 0), else through the natural column. */
#if defined(__GNUC__)
__attribute__((noinline)) /* out of th_mm_run's pixel loop, whose registers the other pairs need */
#endif
static int32_t u44_column(const th_layer_t *L, const th_tensor_t *in, const uint8_t *x, const th_mm_plan_t *P,
                          uint32_t ow, uint32_t q, int32_t uc, uint32_t *dst, int16_t *nat, int16_t *tail)
{
    const uint32_t cin = in->c, kh = L->kh, kw = L->kw;
    const uint32_t irb = th_row_bytes(cin, 4), cinp = P->tap_bytes * 2u;
    const uint32_t oy = q / ow, ox = q % ow;
    const int32_t zp = in->zero_point;
    const int32_t ix0 = (int32_t)(ox * L->stride) - (int32_t)L->pad_l;
    const int xin = ix0 >= 0 && ix0 + (int32_t)kw <= (int32_t)in->w;
    const uint32_t upad = (uint32_t)uc * (0x00010001u | (0x00010001u << U44_S)); /* x = zp: u = zp + 8 */
    uint32_t t = 0;
    if (cin % 8u == 0u) {
        for (uint32_t i = 0; i < kh; ++i) {
            const int32_t iy = (int32_t)(oy * L->stride + i) - (int32_t)L->pad_t;
            if (xin && iy >= 0 && iy < (int32_t)in->h) { /* kw * cin consecutive elements */
                u44_direct(x + ((uint32_t)iy * in->w + (uint32_t)ix0) * irb, kw * cin, dst + t * cin);
                t += kw;
                continue;
            }
            for (uint32_t j = 0; j < kw; ++j, ++t) {
                const uint8_t *src = mm_tap(L, in, x, irb, oy, ox, i, j);
                uint32_t *d = dst + t * cin;
                if (src != 0) {
                    u44_direct(src, cin, d);
                } else {
                    for (uint32_t k = 0; k < cin; k += 8u) {
                        d[k] = upad;
                        d[k + 1u] = upad;
                    }
                }
            }
        }
    } else {
        for (uint32_t i = 0; i < kh; ++i) {
            for (uint32_t j = 0; j < kw; ++j, ++t) {
                const uint8_t *src = mm_tap(L, in, x, irb, oy, ox, i, j);
                int16_t *seg = nat + t * cinp;
                if (src != 0) {
                    col_natural(src, cin, 4, zp, seg);
                } else {
                    memset(seg, 0, cin * sizeof(int16_t));
                }
                memset(seg + cin, 0, (cinp - cin) * sizeof(int16_t));
            }
        }
        u44_words_n(nat, P->nwords, uc, dst);
        memcpy(tail, nat + P->nwords * 8u, P->tail * sizeof(int16_t));
    }
    return u44_sum(dst, P->nwords, 8u);
}

uint32_t th_mm_scratch_bytes(const th_mm_plan_t *P, uint32_t cout)
{
    const uint32_t cb = cout < TH_MM_CB ? cout : TH_MM_CB;
    return 24u * cb + 4u * P->nwords * (32u / (uint32_t)P->wb) + 4u * th_ru4(2u * P->tail) + th_ru4(2u * P->kp);
}

/* a4w4's packed-field core: th_mm_run's job loop with u44_column's four-pixel columns (same scratch layout) */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void u44_run(TH_KERNEL_ARGS, const th_mm_plan_t *P)
{
    (void)in2;
    const uint8_t *x = arena + in->offset;
    uint8_t *y = arena + out->offset;
    const uint32_t cout = out->c, ow = out->w, orb = th_row_bytes(cout, out->bits);
    const uint32_t npix = (uint32_t)out->h * ow, tl = th_ru4(2u * P->tail) / 2u;
    const int32_t uc = 8 + in->zero_point; /* u = (x - zp) + uc */
    const uint32_t cb = cout < TH_MM_CB ? cout : TH_MM_CB;
    th_mm_rq_t *tab = (th_mm_rq_t *)scratch;
    uint32_t *cp = (uint32_t *)(tab + cb);
    int16_t *tails = (int16_t *)(cp + P->nwords * 8u);
    int16_t *nat = tails + 4u * tl;
    th_mm_job_t J;
    for (uint32_t px = 0; px < ULP_PX; ++px) {
        J.t[px] = tails + px * tl;
    }
    mm_job_init(&J, P, L, out, tab);
    for (uint32_t c0 = 0; c0 < cout; c0 += TH_MM_CB) {
        J.c0 = c0;
        J.n = cout - c0 < TH_MM_CB ? cout - c0 : TH_MM_CB;
        J.w = (const uint8_t *)L->weights + c0 * P->wrow;
        th_mm_rq_table(L, out, c0, J.n, 8, P->rnd, tab);
        u44_table(P, J.w, J.n, uc, tab);
        for (uint32_t p = 0; p < npix; p += ULP_PX) {
            for (uint32_t px = 0; px < ULP_PX; ++px) {
                /* a pixel past the end repeats pixel p: the same column, so the same outputs written again
                 * (idempotent for packed rows too: the same byte, or the same bits ORed in) */
                const uint32_t q = p + px < npix ? p + px : p;
                J.sx[px] = u44_column(L, in, x, P, ow, q, uc, cp + 2u * px, nat, J.t[px]);
                J.y[px] = y + q * orb;
            }
            P->fn(&J, cp, J.t[0], J.t[1], J.y[0], J.y[1]);
        }
    }
}

void th_mm_run(TH_KERNEL_ARGS, const th_mm_plan_t *P)
{
    if (P->ulp && P->ab == 4 && P->wb == 4) {
        u44_run(L, in, in2, out, arena, scratch, P);
        return;
    }
    (void)in2;
    const uint8_t *x = arena + in->offset;
    uint8_t *y = arena + out->offset;
    const int ab = P->ab, wb = P->wb;
    const uint32_t cin = in->c, cout = out->c, kh = L->kh, kw = L->kw, ow = out->w;
    const uint32_t irb = th_row_bytes(cin, ab), orb = th_row_bytes(cout, out->bits);
    const uint32_t npix = (uint32_t)out->h * ow;
    const uint32_t G = 32u / (uint32_t)wb, cinp = P->tap_bytes * (8u / (uint32_t)wb);
    const int ulp = P->ulp;
    /* lane words straight from the packed activations: equal bits and whole words per tap, or a4w2 in groups
     * of 16 (the packed-field core's lane words hold 4 entries: cin / 4 words per tap either way for w2) */
    const int direct = ulp ? wb == 2 && cin % 16u == 0u : ab == wb && cin % G == 0u;
    const int32_t uc = (1 << (ab - 1)) + in->zero_point; /* packed-field core: u = (x - zp) + uc */
    const uint32_t upad = (uint32_t)uc * 0x01010101u;
    /* a kernel row inside the input is one run of kw * cin elements when pixels hold whole bytes of them */
    const int row_run = (cin * (uint32_t)ab) % 8u == 0u;
    const int32_t zp = in->zero_point;
    const uint32_t cb = cout < TH_MM_CB ? cout : TH_MM_CB;
    /* pixels per step and word stride of their interleaved columns */
    const uint32_t npx = ulp ? ULP_PX : 2u;
    th_mm_rq_t *tab = (th_mm_rq_t *)scratch;
    uint32_t *cp = (uint32_t *)(tab + cb);
    int16_t *tails = (int16_t *)(cp + P->nwords * G);
    int16_t *nat = tails + 4u * (th_ru4(2u * P->tail) / 2u);
    th_mm_job_t J;
    for (uint32_t px = 0; px < 4u; ++px) {
        J.t[px] = tails + px * (th_ru4(2u * P->tail) / 2u);
    }
    mm_job_init(&J, P, L, out, tab);
    for (uint32_t c0 = 0; c0 < cout; c0 += TH_MM_CB) {
        J.c0 = c0;
        J.n = cout - c0 < TH_MM_CB ? cout - c0 : TH_MM_CB;
        J.w = (const uint8_t *)L->weights + c0 * P->wrow;
        th_mm_rq_table(L, out, c0, J.n, ulp ? 8 : wb, P->rnd, tab);
        if (ulp) {
            ulp_table(P, J.w, J.n, uc, tab);
        }
        for (uint32_t p = 0; p < npix; p += npx) {
            for (uint32_t px = 0; px < npx; ++px) {
                const uint32_t q = p + px < npix ? p + px : p;
                const uint32_t oy = q / ow, ox = q % ow;
                const int32_t ix0 = (int32_t)(ox * L->stride) - (int32_t)L->pad_l;
                const int xin = ix0 >= 0 && ix0 + (int32_t)kw <= (int32_t)in->w;
                uint32_t t = 0;
                for (uint32_t i = 0; i < kh; ++i) {
                    const int32_t iy = (int32_t)(oy * L->stride + i) - (int32_t)L->pad_t;
                    if (row_run && xin && iy >= 0 && iy < (int32_t)in->h) {
                        /* the kw taps of this kernel row are kw * cin consecutive elements */
                        const uint8_t *src = x + ((uint32_t)iy * in->w + (uint32_t)ix0) * irb;
                        if (direct && ulp) { /* a2w2, a4w2: cin / 4 lane words per tap */
                            ulp_direct_a(src, kw * cin, cp + px + t * cin, ab, ULP_PX);
                        } else if (direct) {
                            col_direct(src, kw * cin, ab, zp, cp + px + t * cin);
                        } else {
                            int16_t *seg = nat + t * cinp;
                            col_natural(src, kw * cin, ab, zp, seg);
                            if (cinp > cin) { /* spread the taps to their padded places, last first */
                                for (uint32_t j = kw; j-- > 0u;) {
                                    for (uint32_t k = cinp; k-- > cin;) {
                                        seg[j * cinp + k] = 0;
                                    }
                                    for (uint32_t k = cin; j > 0u && k-- > 0u;) {
                                        seg[j * cinp + k] = seg[j * cin + k];
                                    }
                                }
                            }
                        }
                        t += kw;
                        continue;
                    }
                    for (uint32_t j = 0; j < kw; ++j, ++t) {
                        const uint8_t *src = mm_tap(L, in, x, irb, oy, ox, i, j);
                        if (direct && ulp) {
                            uint32_t *d = cp + px + t * cin;
                            if (src != 0) {
                                ulp_direct_a(src, cin, d, ab, ULP_PX);
                            } else {
                                for (uint32_t k = 0; k < cin; k += ULP_PX) {
                                    d[k] = upad; /* x = zp: u = zp + 2^(A-1) */
                                }
                            }
                        } else if (direct) {
                            uint32_t *d = cp + px + t * cin;
                            if (src != 0) {
                                col_direct(src, cin, ab, zp, d);
                            } else {
                                for (uint32_t k = 0; k < cin; k += 2u) {
                                    d[k] = 0;
                                }
                            }
                        } else {
                            int16_t *seg = nat + t * cinp;
                            if (src != 0) {
                                col_natural(src, cin, ab, zp, seg);
                            } else {
                                memset(seg, 0, cin * sizeof(int16_t));
                            }
                            if (cinp > cin) {
                                memset(seg + cin, 0, (cinp - cin) * sizeof(int16_t));
                            }
                        }
                    }
                }
                if (!direct) {
                    if (ulp) {
                        ulp_words_n(nat, P->nwords, uc, cp + px, wb, ULP_PX);
                        memcpy(J.t[px], nat + P->nwords * G, P->tail * sizeof(int16_t));
                    } else {
                        th_mm_col_finish(P, nat, cp, J.t[px], px);
                    }
                }
                if (ulp) {
                    J.sx[px] = ulp_sum(cp + px, P->nwords * (8u / (uint32_t)wb), ULP_WV(wb), ULP_PX);
                }
                J.y[px] = p + px < npix ? y + (p + px) * orb : 0;
            }
            P->fn(&J, cp, J.t[0], J.t[1], J.y[0], J.y[1]);
        }
    }
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Fully connected: the scheduler helps this one (two accumulators leave registers to spare) */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("schedule-insns")
#endif
/* Fully connected: one pixel, two output channels per step (a single column in lane order, words 1 apart) */

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


#define FC_FN(WB, RND, KIND, OB)                                                                                \
    static void fc_##WB##_##RND##_##KIND##_##OB(const th_mm_job_t *J, const uint32_t *col, const int16_t *tail, \
                                                 uint8_t *y)                                                    \
    {                                                                                                           \
        fc_core(J, col, tail, y, WB, RND, KIND, OB);                                                            \
    }
#define FC_FNS(WB)                                                                                              \
    FC_FN(WB, 1, 1, 8)                                                                                          \
    FC_FN(WB, 0, 1, 8)                                                                                          \
    FC_FN(WB, 0, 0, 0)                                                                                          \
    th_fc_fn th_fc_pick_w##WB(int rnd, int full, int ob)                                                        \
    {                                                                                                           \
        if (ob == 8 && full) {                                                                                  \
            return rnd ? fc_##WB##_1_1_8 : fc_##WB##_0_1_8;                                                     \
        }                                                                                                       \
        return fc_##WB##_0_0_0;                                                                                 \
    }
FC_FNS(8)
FC_FNS(4)
FC_FNS(2)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

uint32_t th_fc_scratch_bytes(const th_mm_plan_t *P, uint32_t cout)
{
    const uint32_t cb = cout < TH_MM_CB ? cout : TH_MM_CB;
    return 24u * cb + 2u * P->nwords * (32u / (uint32_t)P->wb) + th_ru4(2u * P->tail) + th_ru4(2u * P->kp);
}

void th_fc_run(TH_KERNEL_ARGS, const th_mm_plan_t *P)
{
    (void)in2;
    const uint8_t *x = arena + in->offset;
    uint8_t *y = arena + out->offset;
    const int ab = P->ab, wb = P->wb;
    const uint32_t cin = in->c, cout = out->c, G = 32u / (uint32_t)wb;
    const uint32_t cb = cout < TH_MM_CB ? cout : TH_MM_CB;
    /* rnd is only taken with a full-range 8-bit output (the other cases share one core) */
    const int rnd = P->full && P->rnd;
    const th_fc_fn fn = P->ffn;
    th_mm_rq_t *tab = (th_mm_rq_t *)scratch;
    uint32_t *col = (uint32_t *)(tab + cb);
    int16_t *tail = (int16_t *)(col + P->nwords * (G / 2u));
    int16_t *nat = tail + th_ru4(2u * P->tail) / 2u;
    th_mm_job_t J;
    const int32_t uc = (1 << (ab - 1)) + in->zero_point; /* packed-field core: u = (x - zp) + uc */
    if (P->ulp) {
        if (wb == 2 && cin % 16u == 0u) {
            ulp_direct_a(x, cin, col, ab, 1u);
        } else {
            col_natural(x, cin, ab, in->zero_point, nat);
            memset(nat + cin, 0, (P->kp - cin) * sizeof(int16_t));
            ulp_words_n(nat, P->nwords, uc, col, wb, 1u);
            memcpy(tail, nat + P->nwords * G, P->tail * sizeof(int16_t));
        }
        J.sx[0] = ulp_sum(col, P->nwords * (8u / (uint32_t)wb), ULP_WV(wb), 1u);
    } else if (ab == wb && cin % G == 0u) {
        col_direct1(x, cin, ab, in->zero_point, col);
    } else {
        col_natural(x, cin, ab, in->zero_point, nat);
        memset(nat + cin, 0, (P->kp - cin) * sizeof(int16_t));
        col_permute(nat, P->nwords, col, wb, 1u);
        memcpy(tail, nat + P->nwords * G, P->tail * sizeof(int16_t));
    }
    mm_job_init(&J, P, L, out, tab);
    for (uint32_t c0 = 0; c0 < cout; c0 += TH_MM_CB) {
        J.c0 = c0;
        J.n = cout - c0 < TH_MM_CB ? cout - c0 : TH_MM_CB;
        J.w = (const uint8_t *)L->weights + c0 * P->wrow;
        th_mm_rq_table(L, out, c0, J.n, P->ulp ? 8 : wb, rnd, tab);
        if (P->ulp) {
            ulp_table(P, J.w, J.n, uc, tab);
        }
        fn(&J, col, tail, y);
    }
}

#endif /* TH_USE_SIMD */
