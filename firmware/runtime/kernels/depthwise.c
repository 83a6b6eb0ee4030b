/*
 * depthwise.c - depthwise convolution (channel multiplier 1), weights (Kh, Kw, C) with byte-aligned C rows.
 *
 *   th_depthwise_a8w8  per output pixel, four channels at a time held in registers across the valid taps (the
 *                      window is clipped once per pixel, so no per-tap bounds checks); with DSP the four
 *                      products come from SXTAB16/SXTB16 + SMLABB/SMLATT on one input and one weight word.
 *   th_depthwise_ref   plain loops, int8 only.
 *   other pairs        depthwise_generic specialised per (A, W): packed fields read in place, no scratch.
 */
#include "th_kernels.h"

/* Valid kernel rows [*i0, *i1) and columns [*j0, *j1) of output pixel (oy, ox). */
TH_ALWAYS_INLINE void clip_window(const th_layer_t *L, const th_tensor_t *in, uint32_t oy, uint32_t ox, int32_t *i0,
                                  int32_t *i1, int32_t *j0, int32_t *j1)
{
    const int32_t y0 = (int32_t)(oy * L->stride) - (int32_t)L->pad_t;
    const int32_t x0 = (int32_t)(ox * L->stride) - (int32_t)L->pad_l;
    *i0 = y0 < 0 ? -y0 : 0;
    *j0 = x0 < 0 ? -x0 : 0;
    *i1 = (int32_t)in->h - y0 < (int32_t)L->kh ? (int32_t)in->h - y0 : (int32_t)L->kh;
    *j1 = (int32_t)in->w - x0 < (int32_t)L->kw ? (int32_t)in->w - x0 : (int32_t)L->kw;
}

#if TH_USE_SIMD
#define OFFSET_ARG off
#else
#define OFFSET_ARG zp
#endif

/* Four channels over an nh x nw window: x rows `xstride` bytes apart, weight rows `wstride`, taps `C` apart.
 * `k` is the packed (-zp, -zp) SXTAB16 offset with SIMD, else the zero point. */
TH_ALWAYS_INLINE void dw_group4(const int8_t *xp0, const int8_t *wp0, uint32_t xstride, uint32_t wstride, uint32_t C,
                                uint32_t nh, uint32_t nw, uint32_t k, int32_t *acc)
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    for (uint32_t i = 0; i < nh; ++i) {
        const int8_t *xp = xp0 + i * xstride;
        const int8_t *wp = wp0 + i * wstride;
        for (uint32_t j = 0; j < nw; ++j, xp += C, wp += C) {
#if TH_USE_SIMD
            const uint32_t xv = th_load32(xp), wv = th_load32(wp);
            const uint32_t xe = th_sxtab16(k, xv), xo = th_sxtab16_ror8(k, xv);
            const uint32_t we = th_sxtb16(wv), wo = th_sxtb16_ror8(wv);
            a0 = th_smlabb(xe, we, a0);
            a2 = th_smlatt(xe, we, a2);
            a1 = th_smlabb(xo, wo, a1);
            a3 = th_smlatt(xo, wo, a3);
#else
            const int32_t zp = (int32_t)k;
            a0 += (xp[0] - zp) * wp[0];
            a1 += (xp[1] - zp) * wp[1];
            a2 += (xp[2] - zp) * wp[2];
            a3 += (xp[3] - zp) * wp[3];
#endif
        }
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

void th_depthwise_a8w8(TH_KERNEL_ARGS)
{
    (void)in2;
    (void)scratch;
    const int8_t *x = (const int8_t *)(arena + in->offset);
    const int8_t *w = (const int8_t *)L->weights;
    uint8_t *y = arena + out->offset;
    const uint32_t C = in->c, kw = L->kw;
    const int32_t zp = in->zero_point;
    const int ob = out->bits;
    const uint32_t orb = th_row_bytes(C, ob);
#if TH_USE_SIMD
    const uint32_t off = ((uint32_t)(-zp) & 0xFFFFu) * 0x00010001u;
#endif
    for (uint32_t oy = 0; oy < out->h; ++oy) {
        for (uint32_t ox = 0; ox < out->w; ++ox) {
            int32_t i0, i1, j0, j1;
            clip_window(L, in, oy, ox, &i0, &i1, &j0, &j1);
            /* first valid input pixel of the window; pointers never leave the tensor */
            const int32_t y0 = (int32_t)(oy * L->stride) - (int32_t)L->pad_t + i0;
            const int32_t x0 = (int32_t)(ox * L->stride) - (int32_t)L->pad_l + j0;
            const int8_t *xbase = x + ((uint32_t)y0 * in->w + (uint32_t)x0) * C;
            const int8_t *wbase = w + ((uint32_t)i0 * kw + (uint32_t)j0) * C;
            const uint32_t nh = (uint32_t)(i1 - i0), nw = (uint32_t)(j1 - j0);
            uint8_t *yrow = y + (oy * out->w + ox) * orb;
            uint32_t c = 0;
            for (; c + 4u <= C; c += 4u) {
                int32_t a[4] = {L->bias[c], L->bias[c + 1], L->bias[c + 2], L->bias[c + 3]};
                if (nh == 3u && nw == 3u) { /* the common full 3x3 window: constant trip counts unroll */
                    dw_group4(xbase + c, wbase + c, in->w * C, kw * C, C, 3u, 3u, OFFSET_ARG, a);
                } else {
                    dw_group4(xbase + c, wbase + c, in->w * C, kw * C, C, nh, nw, OFFSET_ARG, a);
                }
                const int32_t a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
                th_put(yrow, c, ob, th_requant_clamp(a0, L->mult[c], L->shift[c], out->zero_point, L->act_min, L->act_max));
                th_put(yrow, c + 1u, ob,
                       th_requant_clamp(a1, L->mult[c + 1], L->shift[c + 1], out->zero_point, L->act_min, L->act_max));
                th_put(yrow, c + 2u, ob,
                       th_requant_clamp(a2, L->mult[c + 2], L->shift[c + 2], out->zero_point, L->act_min, L->act_max));
                th_put(yrow, c + 3u, ob,
                       th_requant_clamp(a3, L->mult[c + 3], L->shift[c + 3], out->zero_point, L->act_min, L->act_max));
            }
            for (; c < C; ++c) {
                int32_t acc = L->bias[c];
                for (uint32_t i = 0; i < nh; ++i) {
                    for (uint32_t j = 0; j < nw; ++j) {
                        acc += (xbase[(i * in->w + j) * C + c] - zp) * wbase[(i * kw + j) * C + c];
                    }
                }
                th_put(yrow, c, ob, th_requant_clamp(acc, L->mult[c], L->shift[c], out->zero_point, L->act_min, L->act_max));
            }
        }
    }
}

void th_depthwise_ref(TH_KERNEL_ARGS)
{
    (void)in2;
    (void)scratch;
    const int8_t *x = (const int8_t *)(arena + in->offset);
    const int8_t *w = (const int8_t *)L->weights;
    uint8_t *y = arena + out->offset;
    const int32_t C = in->c, zp = in->zero_point;
    const uint32_t orb = th_row_bytes(out->c, out->bits);
    for (int32_t oy = 0; oy < out->h; ++oy) {
        for (int32_t ox = 0; ox < out->w; ++ox) {
            for (int32_t c = 0; c < C; ++c) {
                int32_t acc = L->bias[c];
                for (int32_t i = 0; i < L->kh; ++i) {
                    const int32_t iy = oy * L->stride + i - L->pad_t;
                    for (int32_t j = 0; j < L->kw; ++j) {
                        const int32_t ix = ox * L->stride + j - L->pad_l;
                        if (iy < 0 || iy >= in->h || ix < 0 || ix >= in->w) {
                            continue;
                        }
                        acc += (x[(iy * in->w + ix) * C + c] - zp) * w[(i * L->kw + j) * C + c];
                    }
                }
                th_put(y + ((uint32_t)oy * out->w + (uint32_t)ox) * orb, (uint32_t)c, out->bits,
                       th_requant_clamp(acc, L->mult[c], L->shift[c], out->zero_point, L->act_min, L->act_max));
            }
        }
    }
}

TH_ALWAYS_INLINE void depthwise_generic(TH_KERNEL_ARGS, const int ab, const int wb)
{
    (void)in2;
    (void)scratch;
    const uint8_t *x = arena + in->offset;
    const uint8_t *w = (const uint8_t *)L->weights;
    uint8_t *y = arena + out->offset;
    const uint32_t C = in->c;
    const uint32_t irb = th_row_bytes(C, ab), wrb = th_row_bytes(C, wb), orb = th_row_bytes(C, out->bits);
    const int32_t zp = in->zero_point;
    for (uint32_t oy = 0; oy < out->h; ++oy) {
        for (uint32_t ox = 0; ox < out->w; ++ox) {
            int32_t i0, i1, j0, j1;
            clip_window(L, in, oy, ox, &i0, &i1, &j0, &j1);
            const int32_t y0 = (int32_t)(oy * L->stride) - (int32_t)L->pad_t;
            const int32_t x0 = (int32_t)(ox * L->stride) - (int32_t)L->pad_l;
            uint8_t *yrow = y + (oy * out->w + ox) * orb;
            for (uint32_t c = 0; c < C; ++c) {
                int32_t acc = L->bias[c];
                for (int32_t i = i0; i < i1; ++i) {
                    for (int32_t j = j0; j < j1; ++j) {
                        const uint8_t *xr = x + (uint32_t)((y0 + i) * (int32_t)in->w + x0 + j) * irb;
                        const uint8_t *wr = w + ((uint32_t)i * L->kw + (uint32_t)j) * wrb;
                        acc += (th_get(xr, c, ab) - zp) * th_get(wr, c, wb);
                    }
                }
                th_put(yrow, c, out->bits,
                       th_requant_clamp(acc, L->mult[c], L->shift[c], out->zero_point, L->act_min, L->act_max));
            }
        }
    }
}

TH_GENERIC_PAIR(depthwise, depthwise_generic, 2, 2)
TH_GENERIC_PAIR(depthwise, depthwise_generic, 2, 4)
TH_GENERIC_PAIR(depthwise, depthwise_generic, 2, 8)
TH_GENERIC_PAIR(depthwise, depthwise_generic, 4, 2)
TH_GENERIC_PAIR(depthwise, depthwise_generic, 4, 4)
TH_GENERIC_PAIR(depthwise, depthwise_generic, 4, 8)
TH_GENERIC_PAIR(depthwise, depthwise_generic, 8, 2)
TH_GENERIC_PAIR(depthwise, depthwise_generic, 8, 4)
