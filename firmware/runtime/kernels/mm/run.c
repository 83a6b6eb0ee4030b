/*
 * run.c - the job loops of the matrix cores (mm.h): th_mm_run (conv2d / pointwise) and th_fc_run (fc) build
 * each pixel's column in the layout of the layer's core, fill the requantization table of each job of up to
 * TH_MM_CB output channels, and call the core (P->fn, P->ffn) per step; and the scratch they need.
 *
 * Columns: per pixel, the K centred inputs (lane core: int16 in the weights' lane order; packed-field cores:
 * offset-binary bytes or 11-bit fields, ulp.c and u44.c), the pixels of a step interleaved word by word, and
 * the K % (32 / wb) tail in natural order beside. The column builders are here, with the loops that call them,
 * not beside their cores: across calls inside one file the compiler keeps values in the registers the callee
 * leaves alone, and that register allocation is part of every measured instruction count.
 */
#include "mm.h"

/* The lane core's column modes (lane_column) and the buffers its job loop needs (lane_run, and the scratch
 * function at the end of this file, which is compiled without the DSP extension too). */
#define LANE_DIRECT 0  /* whole weight words per tap, equal or 8-bit activations: straight from the input */
#define LANE_WINDOW 1  /* 8-bit activations: through the window bytes */
#define LANE_NATURAL 2 /* 4/2-bit activations: through the natural centred column */

/* What lane_run carves out of the scratch after the table: the column (words), the window bytes or natural
 * column (bytes; none when the column comes straight from the input), the widened weights (bytes). */
typedef struct {
    uint32_t col_words, buf_bytes, wide_bytes;
    int mode;
} lane_need_t;

static lane_need_t lane_need(uint32_t taps, uint32_t cin, uint32_t cb, int ab, int wsrc, int wb)
{
    const uint32_t G = 32u / (uint32_t)wb, nwc = (taps * th_row_bytes(cin, wb) + 3u) / 4u;
    lane_need_t n;
    n.mode = (ab == wb || ab == 8) && cin % G == 0u ? LANE_DIRECT : (ab == 8 ? LANE_WINDOW : LANE_NATURAL);
    n.col_words = 2u * nwc * G;
    n.buf_bytes = n.mode == LANE_DIRECT ? 0u : (n.mode == LANE_WINDOW ? th_ru4(nwc * G) : 2u * nwc * G);
    n.wide_bytes = wsrc != wb ? th_ru4(cb * taps * cin) : 0u;
    return n;
}


#if TH_USE_SIMD

/* The instruction scheduler before register allocation hoists loads and multiplies across the unrolled field
 * loops and spills registers; the loops keep their source order. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-schedule-insns")
#endif

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
void th_mm_col_natural(const uint8_t *src, uint32_t n, int ab, int32_t zp, int16_t *dst)
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

/* Lane words of `nw` weight words from a natural column into dst[0], dst[st], dst[2 st], ... (st = 4 in a
 * four-pixel column, where the caller offsets dst by the pixel; st = 1 in a single column). */
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
        col_permute_w(nat, nw, dst, 8, 4u);
    } else if (wb == 4) {
        col_permute_w(nat, nw, dst, 4, 4u);
    } else {
        col_permute_w(nat, nw, dst, 2, 4u);
    }
}

/* Direct lane words (n a multiple of 32 / wb) when the activation word and the weight word hold the same entries
 * (A == W: 8 bits by SXTAB16, 4 and 2 bits by offset-binary fields), or from 8-bit activations for 4- and 2-bit
 * weights (SXTAB16 pairs recombined by PKHBT / PKHTB into the weights' lane order). Words st apart (see above). */
TH_ALWAYS_INLINE void col_direct_st(const uint8_t *src, uint32_t n, int ab, int wb, int32_t zp, uint32_t *dst,
                                    const uint32_t st)
{
    if (ab == 8 && wb == 4) { /* lane words (x0,x4) (x2,x6) (x1,x5) (x3,x7) */
        const uint32_t off = ((uint32_t)(-zp) & 0xFFFFu) * 0x00010001u;
        for (uint32_t j = 0; j < n; j += 8u, dst += 4u * st) {
            const uint32_t va = th_load32(src + j), vb = th_load32(src + j + 4u);
            const uint32_t ea = th_sxtab16(off, va), eb = th_sxtab16(off, vb);
            const uint32_t oa = th_sxtab16_ror8(off, va), ob = th_sxtab16_ror8(off, vb);
            dst[0] = th_pack_lo(ea, eb);
            dst[st] = th_pack_hi(ea, eb);
            dst[2u * st] = th_pack_lo(oa, ob);
            dst[3u * st] = th_pack_hi(oa, ob);
        }
    } else if (ab == 8 && wb == 2) { /* lane word s = (e0, e0 + 8), e0 = (s % 2) * 4 + s / 2 */
        const uint32_t off = ((uint32_t)(-zp) & 0xFFFFu) * 0x00010001u;
        for (uint32_t j = 0; j < n; j += 16u, dst += 8u * st) {
            TH_UNROLL
            for (uint32_t h = 0; h < 2u; ++h) { /* words h (entries 4h..4h+3) and h + 2 (8 + 4h ..) */
                const uint32_t va = th_load32(src + j + 4u * h), vb = th_load32(src + j + 8u + 4u * h);
                const uint32_t ea = th_sxtab16(off, va), eb = th_sxtab16(off, vb);
                const uint32_t oa = th_sxtab16_ror8(off, va), ob = th_sxtab16_ror8(off, vb);
                dst[st * (h + 0u)] = th_pack_lo(ea, eb); /* (4h, 4h+8): s = h */
                dst[st * (h + 4u)] = th_pack_hi(ea, eb); /* (4h+2, 4h+10): s = 4 + h */
                dst[st * (h + 2u)] = th_pack_lo(oa, ob); /* (4h+1, 4h+9): s = 2 + h */
                dst[st * (h + 6u)] = th_pack_hi(oa, ob); /* (4h+3, 4h+11): s = 6 + h */
            }
        }
    } else if (ab == 8) {
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

static void col_direct(const uint8_t *src, uint32_t n, int ab, int wb, int32_t zp, uint32_t *dst)
{
    col_direct_st(src, n, ab, wb, zp, dst, 4u);
}

static void col_direct1(const uint8_t *src, uint32_t n, int ab, int wb, int32_t zp, uint32_t *dst)
{
    col_direct_st(src, n, ab, wb, zp, dst, 1u);
}
/* ---------------------------------------------------------------------------------------------------------- */
/* The lane core's job */

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


/* ---------------------------------------------------------------------------------------------------------- */
/* Columns of the packed-field cores with 8-bit fields (ulp.c, fc_ulp.c) */

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

/* ---------------------------------------------------------------------------------------------------------- */
/* Columns of the packed-field core with 11-bit fields (u44.c) */


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

/* ---------------------------------------------------------------------------------------------------------- */
/* Job loops */

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
                    th_mm_col_natural(src, cin, 4, zp, seg);
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
            P->fn(&J, cp);
        }
    }
}

/* ---------------------------------------------------------------------------------------------------------- */
/* The lane core's job loop (lane.c): four-pixel columns of lane words, the last weight word partial (its missing
 * entries are zero weights against zero activations) */

/* The geometry lane_column reads, computed once per call. */
typedef struct {
    const th_layer_t *L;
    const th_tensor_t *in;
    const uint8_t *x;
    uint32_t irb, cin, cinp, tapw, nent, kh, kw, stride, zb;
    int32_t zp;
    int ab, wb, mode; /* LANE_DIRECT, LANE_WINDOW, LANE_NATURAL */
    uint32_t nwc;
} lane_geo_t;

/* n bytes from s to d (unaligned word accesses: single LDR / STR on the cores with DSP). */
TH_ALWAYS_INLINE uint8_t *win_copy(uint8_t *d, const uint8_t *s, uint32_t n)
{
    for (; n >= 4u; n -= 4u, d += 4, s += 4) {
        th_store32(d, th_load32(s));
    }
    for (; n > 0u; --n) {
        *d++ = *s++;
    }
    return d;
}

TH_ALWAYS_INLINE uint8_t *win_fill(uint8_t *d, uint32_t zb, uint32_t n)
{
    for (; n > 0u; --n) {
        *d++ = (uint8_t)zb;
    }
    return d;
}

/* The four-pixel column of output pixel (oy, ox) for the lane core: words px, px + 4, ... of dst (offset by the
 * pixel) hold its lane words for the P->nwc weight words (the last one padded with zeros). Straight from the
 * packed input when every tap holds whole weight words of equal (or 8-bit) activations; 8-bit activations
 * otherwise through `win`, the window bytes laid out as the weight row (taps padded to whole weight bytes, the
 * end to a whole word) with the zero point in every padding place; 4/2-bit activations through a natural
 * centred column `nat`. */
static void lane_column(const lane_geo_t *g, uint32_t oy, uint32_t ox, uint8_t *win, int16_t *nat, uint32_t *dst)
{
    const th_layer_t *L = g->L;
    const th_tensor_t *in = g->in;
    const uint32_t kh = g->kh, kw = g->kw, cin = g->cin, cinp = g->cinp, irb = g->irb;
    const int32_t iy0 = (int32_t)(oy * g->stride) - (int32_t)L->pad_t;
    const int32_t ix0 = (int32_t)(ox * g->stride) - (int32_t)L->pad_l;
    const int xin = ix0 >= 0 && ix0 + (int32_t)kw <= (int32_t)in->w;
    const uint8_t *row = g->x + ((int32_t)iy0 * (int32_t)in->w + ix0) * (int32_t)irb; /* tap (0, 0), maybe outside */
    if (g->mode == LANE_DIRECT) {
        uint32_t t = 0;
        for (uint32_t i = 0; i < kh; ++i, row += in->w * irb) {
            const int32_t iy = iy0 + (int32_t)i;
            if (xin && iy >= 0 && iy < (int32_t)in->h) { /* the kw taps of this kernel row: kw * cin elements */
                col_direct(row, kw * cin, g->ab, g->wb, g->zp, dst + t * g->tapw);
                t += kw;
                continue;
            }
            for (uint32_t j = 0; j < kw; ++j, ++t) {
                const uint8_t *src = mm_tap(L, in, g->x, irb, oy, ox, i, j);
                uint32_t *d = dst + t * g->tapw;
                if (src != 0) {
                    col_direct(src, cin, g->ab, g->wb, g->zp, d);
                } else {
                    for (uint32_t k = 0; k < g->tapw; k += ULP_PX) {
                        d[k] = 0;
                    }
                }
            }
        }
        return;
    }
    if (g->mode == LANE_WINDOW) {
        uint8_t *d = win;
        for (uint32_t i = 0; i < kh; ++i, row += in->w * cin) {
            const int32_t iy = iy0 + (int32_t)i;
            const int yin = iy >= 0 && iy < (int32_t)in->h;
            if (cinp == cin && xin && yin) { /* one run of kw * cin bytes */
                d = win_copy(d, row, kw * cin);
                continue;
            }
            for (uint32_t j = 0; j < kw; ++j) {
                const int32_t ix = ix0 + (int32_t)j;
                if (yin && ix >= 0 && ix < (int32_t)in->w) {
                    d = win_fill(win_copy(d, row + j * cin, cin), g->zb, cinp - cin);
                } else {
                    d = win_fill(d, g->zb, cinp);
                }
            }
        }
        win_fill(d, g->zb, (uint32_t)(win + g->nent - d));
        col_direct(win, g->nent, 8, g->wb, g->zp, dst);
        return;
    }
    for (uint32_t i = 0, t = 0; i < kh; ++i) {
        for (uint32_t j = 0; j < kw; ++j, ++t) {
            const uint8_t *src = mm_tap(L, in, g->x, irb, oy, ox, i, j);
            int16_t *seg = nat + t * cinp;
            if (src != 0) {
                th_mm_col_natural(src, cin, g->ab, g->zp, seg);
            } else {
                memset(seg, 0, cin * sizeof(int16_t));
            }
            memset(seg + cin, 0, (cinp - cin) * sizeof(int16_t));
        }
    }
    memset(nat + kh * kw * cinp, 0, (g->nent - kh * kw * cinp) * sizeof(int16_t));
    col_permute(nat, g->nwc, dst, g->wb, ULP_PX);
}

#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void lane_run(TH_KERNEL_ARGS, const th_mm_plan_t *P)
{
    (void)in2;
    uint8_t *y = arena + out->offset;
    const uint32_t cout = out->c, ow = out->w, orb = th_row_bytes(cout, out->bits);
    const uint32_t npix = (uint32_t)out->h * ow, G = 32u / (uint32_t)P->wb;
    const uint32_t cb = cout < TH_MM_CB ? cout : TH_MM_CB;
    lane_geo_t g;
    g.L = L;
    g.in = in;
    g.x = arena + in->offset;
    g.ab = P->ab;
    g.wb = P->wb;
    g.cin = in->c;
    g.irb = th_row_bytes(in->c, P->ab);
    g.cinp = P->tap_bytes * (8u / (uint32_t)P->wb);
    g.tapw = 2u * in->c;
    g.nwc = P->nwc;
    g.nent = P->nwc * G;
    g.kh = L->kh;
    g.kw = L->kw;
    g.stride = L->stride;
    g.zp = in->zero_point;
    g.zb = (uint32_t)(uint8_t)in->zero_point;
    const uint32_t taps = (uint32_t)L->kh * L->kw, srow = taps * th_row_bytes(in->c, P->wsrc);
    const lane_need_t need = lane_need(taps, in->c, cb, P->ab, P->wsrc, P->wb);
    g.mode = need.mode;
    th_mm_rq_t *tab = (th_mm_rq_t *)scratch;
    uint32_t *cp = (uint32_t *)(tab + cb);
    int16_t *nat = (int16_t *)(cp + need.col_words); /* or the window bytes */
    int8_t *wide = (int8_t *)nat + need.buf_bytes;    /* widened weights (th_mm_widen) */
    th_mm_job_t J;
    mm_job_init(&J, P, L, out, tab);
    for (uint32_t c0 = 0; c0 < cout; c0 += TH_MM_CB) {
        J.c0 = c0;
        J.n = cout - c0 < TH_MM_CB ? cout - c0 : TH_MM_CB;
        J.w = (const uint8_t *)L->weights + c0 * srow;
        if (P->wsrc != P->wb) { /* each tap's cin weights as int8, without the padding of the packed rows */
            const uint32_t tb = th_row_bytes(in->c, P->wsrc);
            int8_t *d = wide;
            for (uint32_t i = 0; i < J.n * taps; ++i) {
                for (uint32_t k = 0; k < in->c; ++k) {
                    *d++ = (int8_t)th_get(J.w + i * tb, k, P->wsrc);
                }
            }
            J.w = (const uint8_t *)wide;
        }
        th_mm_rq_table(L, out, c0, J.n, P->wb, P->rnd, tab);
        uint32_t oy = 0, ox = 0;
        for (uint32_t p = 0; p < npix; p += ULP_PX) {
            const uint32_t oy0 = oy, ox0 = ox;
            for (uint32_t px = 0; px < ULP_PX; ++px) {
                /* a pixel past the end repeats pixel p: the same column, the same outputs written again */
                if (p + px < npix) {
                    lane_column(&g, oy, ox, (uint8_t *)nat, nat, cp + px);
                    J.y[px] = y + (p + px) * orb;
                    if (++ox == ow) {
                        ox = 0, ++oy;
                    }
                } else {
                    lane_column(&g, oy0, ox0, (uint8_t *)nat, nat, cp + px);
                    J.y[px] = y + p * orb;
                }
            }
            P->fn(&J, cp);
        }
    }
}

/* The job loop of the packed-field core with 8-bit fields (ulp.c): four-pixel columns of offset-binary bytes
 * (straight from the packed input for a2w2 / a4w2 taps of 16 whole entries, else through the natural column),
 * each pixel's natural tail, and its offset sum. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void ulp_run(TH_KERNEL_ARGS, const th_mm_plan_t *P)
{
    (void)in2;
    const uint8_t *x = arena + in->offset;
    uint8_t *y = arena + out->offset;
    const int ab = P->ab, wb = P->wb;
    const uint32_t cin = in->c, cout = out->c, kh = L->kh, kw = L->kw, ow = out->w;
    const uint32_t irb = th_row_bytes(cin, ab), orb = th_row_bytes(cout, out->bits);
    const uint32_t npix = (uint32_t)out->h * ow;
    const uint32_t G = 32u / (uint32_t)wb, cinp = P->tap_bytes * (8u / (uint32_t)wb);
    /* lane words straight from the packed activations: a2w2 / a4w2 taps of 16 entries (cin / 4 words per tap) */
    const int direct = wb == 2 && cin % 16u == 0u;
    const int32_t uc = (1 << (ab - 1)) + in->zero_point; /* u = (x - zp) + uc */
    const uint32_t upad = (uint32_t)uc * 0x01010101u;
    /* a kernel row inside the input is one run of kw * cin elements when pixels hold whole bytes of them */
    const int row_run = (cin * (uint32_t)ab) % 8u == 0u;
    const int32_t zp = in->zero_point;
    const uint32_t cb = cout < TH_MM_CB ? cout : TH_MM_CB, tl = th_ru4(2u * P->tail) / 2u;
    th_mm_rq_t *tab = (th_mm_rq_t *)scratch;
    uint32_t *cp = (uint32_t *)(tab + cb);
    int16_t *tails = (int16_t *)(cp + P->nwords * G);
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
        ulp_table(P, J.w, J.n, uc, tab);
        for (uint32_t p = 0; p < npix; p += ULP_PX) {
            for (uint32_t px = 0; px < ULP_PX; ++px) {
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
                        if (direct) {
                            ulp_direct_a(src, kw * cin, cp + px + t * cin, ab, ULP_PX);
                        } else {
                            int16_t *seg = nat + t * cinp;
                            th_mm_col_natural(src, kw * cin, ab, zp, seg);
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
                        if (direct) {
                            uint32_t *d = cp + px + t * cin;
                            if (src != 0) {
                                ulp_direct_a(src, cin, d, ab, ULP_PX);
                            } else {
                                for (uint32_t k = 0; k < cin; k += ULP_PX) {
                                    d[k] = upad; /* x = zp: u = zp + 2^(A-1) */
                                }
                            }
                        } else {
                            int16_t *seg = nat + t * cinp;
                            if (src != 0) {
                                th_mm_col_natural(src, cin, ab, zp, seg);
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
                    ulp_words_n(nat, P->nwords, uc, cp + px, wb, ULP_PX);
                    memcpy(J.t[px], nat + P->nwords * G, P->tail * sizeof(int16_t));
                }
                J.sx[px] = ulp_sum(cp + px, P->nwords * (8u / (uint32_t)wb), ULP_WV(wb), ULP_PX);
                J.y[px] = y + q * orb;
            }
            P->fn(&J, cp);
        }
    }
}

void th_mm_run(TH_KERNEL_ARGS, const th_mm_plan_t *P)
{
    if (!P->ulp) {
        lane_run(L, in, in2, out, arena, scratch, P);
    } else if (P->ab == 4 && P->wb == 4) {
        u44_run(L, in, in2, out, arena, scratch, P);
    } else {
        ulp_run(L, in, in2, out, arena, scratch, P);
    }
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
    const int rnd = out->bits == 8 && P->full && P->rnd;
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
            th_mm_col_natural(x, cin, ab, in->zero_point, nat);
            memset(nat + cin, 0, (P->kp - cin) * sizeof(int16_t));
            ulp_words_n(nat, P->nwords, uc, col, wb, 1u);
            memcpy(tail, nat + P->nwords * G, P->tail * sizeof(int16_t));
        }
        J.sx[0] = ulp_sum(col, P->nwords * (8u / (uint32_t)wb), ULP_WV(wb), 1u);
    } else if ((ab == wb || ab == 8) && cin % G == 0u) {
        col_direct1(x, cin, ab, wb, in->zero_point, col);
    } else {
        th_mm_col_natural(x, cin, ab, in->zero_point, nat);
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

/* ---------------------------------------------------------------------------------------------------------- */
/* Scratch: what th_mm_run and th_fc_run carve out of `scratch`. Outside TH_USE_SIMD: the host plans the
 * firmware's scratch buffer with these (through the op's th_<op>_scratch_bytes) on any compiler. */

uint32_t th_mm_run_scratch_bytes(uint32_t taps, uint32_t cin, uint32_t cout, int ab, int wb)
{
    const uint32_t wrow = taps * th_row_bytes(cin, wb), per = 8u / (uint32_t)wb, G = 32u / (uint32_t)wb;
    const uint32_t cb = cout < TH_MM_CB ? cout : TH_MM_CB, table = (uint32_t)sizeof(th_mm_rq_t) * cb;
    if (th_mm_takes_ulp(ab, wb, wrow)) { /* ulp_run, u44_run: column of four pixels | four tails | natural column */
        return table + 4u * (wrow / 4u) * G + 4u * th_ru4(2u * (wrow % 4u) * per) + th_ru4(2u * wrow * per);
    }
    const int core = ab == 8 && th_mm_widen(taps, cin, cout, wb) ? 8 : wb;
    const lane_need_t n = lane_need(taps, cin, cb, ab, wb, core);
    return table + 4u * n.col_words + n.buf_bytes + n.wide_bytes;
}

uint32_t th_fc_run_scratch_bytes(uint32_t cin, uint32_t cout, int wb)
{
    const uint32_t wrow = th_row_bytes(cin, wb), per = 8u / (uint32_t)wb;
    const uint32_t cb = cout < TH_MM_CB ? cout : TH_MM_CB;
    /* table | one column of nwords * 16 / wb words | its tail | the natural column */
    return (uint32_t)sizeof(th_mm_rq_t) * cb + 2u * (wrow / 4u) * (32u / (uint32_t)wb) +
           th_ru4(2u * (wrow % 4u) * per) + th_ru4(2u * wrow * per);
}
