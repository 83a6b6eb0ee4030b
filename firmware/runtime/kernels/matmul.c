/*
 * matmul.c - the int8 x q15 core shared by the a8w8 conv2d, pointwise and fc kernels (see th_kernels.h for the
 * interleaved column layout). 2 output channels x 2 pixels per block: each 32-bit weight load feeds two pixels
 * and each column load two channels, so a step of four inputs costs 6 loads, 4 SXTB16 and 8 SMLAD for 16 MACs.
 */
#include "common.h"

void th_q15_column_s8(const int8_t *x, uint32_t n, int32_t zp, int16_t *dst)
{
    uint32_t k = 0;
#if TH_USE_SIMD
    /* SXTAB16 adds the sign-extended bytes 0 and 2 (1 and 3 after ROR 8) to two 16-bit offsets: the interleaved
     * pairs (x0-zp, x2-zp) and (x1-zp, x3-zp) come out ready to store */
    const uint32_t off = ((uint32_t)(-zp) & 0xFFFFu) * 0x00010001u;
    for (; k + 4u <= n; k += 4u) {
        uint32_t v = th_load32(x + k);
        uint32_t a = th_sxtab16(off, v);
        uint32_t b = th_sxtab16_ror8(off, v);
        memcpy(dst + k, &a, 4);
        memcpy(dst + k + 2, &b, 4);
    }
#else
    for (; k + 4u <= n; k += 4u) {
        dst[k + 0] = (int16_t)(x[k + 0] - zp);
        dst[k + 1] = (int16_t)(x[k + 2] - zp);
        dst[k + 2] = (int16_t)(x[k + 1] - zp);
        dst[k + 3] = (int16_t)(x[k + 3] - zp);
    }
#endif
    for (; k < n; ++k) {
        dst[k] = (int16_t)(x[k] - zp);
    }
}

void th_q15_interleave(int16_t *col, uint32_t k)
{
    for (uint32_t i = 0; i + 4u <= k; i += 4u) {
        int16_t t = col[i + 1];
        col[i + 1] = col[i + 2];
        col[i + 2] = t;
    }
}

/* Dot products of weight rows wa, wb (K int8) with interleaved columns c0, c1 (c1 may be NULL). */
TH_ALWAYS_INLINE void mm_block(const int8_t *wa, const int8_t *wb, const int16_t *c0, const int16_t *c1, uint32_t k,
                               int32_t *a00, int32_t *a01, int32_t *a10, int32_t *a11, const int two_rows,
                               const int two_cols)
{
    int32_t s00 = *a00, s01 = *a01, s10 = *a10, s11 = *a11;
    uint32_t i = 0;
#if TH_USE_SIMD
    for (; i + 4u <= k; i += 4u) {
        const uint32_t w0 = th_load32(wa + i);
        const uint32_t w0e = th_sxtb16(w0), w0o = th_sxtb16_ror8(w0);
        const uint32_t p0e = th_load32(c0 + i), p0o = th_load32(c0 + i + 2);
        s00 = th_smlad(w0e, p0e, s00);
        s00 = th_smlad(w0o, p0o, s00);
        if (two_cols) {
            const uint32_t p1e = th_load32(c1 + i), p1o = th_load32(c1 + i + 2);
            s01 = th_smlad(w0e, p1e, s01);
            s01 = th_smlad(w0o, p1o, s01);
            if (two_rows) {
                const uint32_t w1 = th_load32(wb + i);
                const uint32_t w1e = th_sxtb16(w1), w1o = th_sxtb16_ror8(w1);
                s10 = th_smlad(w1e, p0e, s10);
                s10 = th_smlad(w1o, p0o, s10);
                s11 = th_smlad(w1e, p1e, s11);
                s11 = th_smlad(w1o, p1o, s11);
            }
        } else if (two_rows) {
            const uint32_t w1 = th_load32(wb + i);
            s10 = th_smlad(th_sxtb16(w1), p0e, s10);
            s10 = th_smlad(th_sxtb16_ror8(w1), p0o, s10);
        }
    }
#else
    for (; i + 4u <= k; i += 4u) {
        const int32_t x00 = c0[i], x02 = c0[i + 1], x01 = c0[i + 2], x03 = c0[i + 3];
        s00 += wa[i] * x00 + wa[i + 1] * x01 + wa[i + 2] * x02 + wa[i + 3] * x03;
        if (two_rows) {
            s10 += wb[i] * x00 + wb[i + 1] * x01 + wb[i + 2] * x02 + wb[i + 3] * x03;
        }
        if (two_cols) {
            const int32_t x10 = c1[i], x12 = c1[i + 1], x11 = c1[i + 2], x13 = c1[i + 3];
            s01 += wa[i] * x10 + wa[i + 1] * x11 + wa[i + 2] * x12 + wa[i + 3] * x13;
            if (two_rows) {
                s11 += wb[i] * x10 + wb[i + 1] * x11 + wb[i + 2] * x12 + wb[i + 3] * x13;
            }
        }
    }
#endif
    for (; i < k; ++i) { /* tail, stored in order */
        s00 += wa[i] * c0[i];
        if (two_rows) {
            s10 += wb[i] * c0[i];
        }
        if (two_cols) {
            s01 += wa[i] * c1[i];
            if (two_rows) {
                s11 += wb[i] * c1[i];
            }
        }
    }
    *a00 = s00;
    *a01 = s01;
    *a10 = s10;
    *a11 = s11;
}

TH_ALWAYS_INLINE int32_t rq(const th_layer_t *L, const th_tensor_t *out, uint32_t o, int32_t acc)
{
    return th_requant_clamp(acc, L->mult[o], L->shift[o], out->zero_point, L->act_min, L->act_max);
}

void th_mm_s8_q15(const th_layer_t *L, const th_tensor_t *out, const int8_t *w, uint32_t k, uint32_t cout,
                  const int16_t *col0, const int16_t *col1, uint8_t *y0, uint8_t *y1)
{
    const int ob = out->bits;
    uint32_t o = 0;
    if (col1 != 0) {
        for (; o + 2u <= cout; o += 2u) {
            int32_t a00 = L->bias[o], a01 = L->bias[o], a10 = L->bias[o + 1], a11 = L->bias[o + 1];
            mm_block(w + o * k, w + (o + 1u) * k, col0, col1, k, &a00, &a01, &a10, &a11, 1, 1);
            th_put(y0, o, ob, rq(L, out, o, a00));
            th_put(y0, o + 1u, ob, rq(L, out, o + 1u, a10));
            th_put(y1, o, ob, rq(L, out, o, a01));
            th_put(y1, o + 1u, ob, rq(L, out, o + 1u, a11));
        }
        if (o < cout) {
            int32_t a00 = L->bias[o], a01 = L->bias[o], a10 = 0, a11 = 0;
            mm_block(w + o * k, 0, col0, col1, k, &a00, &a01, &a10, &a11, 0, 1);
            th_put(y0, o, ob, rq(L, out, o, a00));
            th_put(y1, o, ob, rq(L, out, o, a01));
        }
    } else {
        for (; o + 2u <= cout; o += 2u) {
            int32_t a00 = L->bias[o], a01 = 0, a10 = L->bias[o + 1], a11 = 0;
            mm_block(w + o * k, w + (o + 1u) * k, col0, 0, k, &a00, &a01, &a10, &a11, 1, 0);
            th_put(y0, o, ob, rq(L, out, o, a00));
            th_put(y0, o + 1u, ob, rq(L, out, o + 1u, a10));
        }
        if (o < cout) {
            int32_t a00 = L->bias[o], a01 = 0, a10 = 0, a11 = 0;
            mm_block(w + o * k, 0, col0, 0, k, &a00, &a01, &a10, &a11, 0, 0);
            th_put(y0, o, ob, rq(L, out, o, a00));
        }
    }
}
