/*
 * depthwise.c - depthwise convolution (channel multiplier 1), weights (Kh, Kw, C) with byte-aligned C rows.
 *
 *   3x3, stride 1 or 2, every (A, W) pair (dw3_rows): channels in chunks of TH_DW_CHUNK; per chunk the three
 *   input rows an output row needs are held in scratch as centred int16 column pairs with the padding columns
 *   zeroed (a ring of three rows: each input row is converted once per chunk; padding rows read a zero row).
 *   One channel then slides along the output row with its nine (pre-shifted) weights in five registers:
 *   SMLAD takes two horizontal taps at once, two outputs per step, so the interior needs no bounds checks;
 *   a second pass requantizes the row with th_rq2 (one SMMLAR) when th_rq_fast_ok holds for the layer.
 *   Every input precision only changes the row conversion; every weight precision only the weight setup.
 *   Other shapes, cores without DSP and layers whose requantization parameters fail the fast-path check:
 *   th_depthwise_a8w8 -> depthwise_s8_pixels (four channels per pixel in registers), other pairs ->
 *   depthwise_generic (packed fields read in place).
 *   th_depthwise_ref   plain loops, int8 only.
 *   th_depthwise_scratch_bytes: the row buffers (dw3_scratch_bytes) wherever a call may take them.
 *
 * The row-buffer core stays in this file with the pairs that inline it once per (A, W, stride) and with the
 * fallbacks the compiler specialises per pair here: in a file of its own each pair would pay a call.
 */
#include "common.h"

/* Channels per chunk of the 3x3 row buffers (scratch grows with it; a multiple of 16). */
#define TH_DW_CHUNK 16u

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

static void depthwise_s8_pixels(TH_KERNEL_ARGS)
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

static void depthwise_generic(TH_KERNEL_ARGS, const int ab, const int wb)
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


/* ---------------------------------------------------------------------------------------------------------- */
/* 3x3 row-buffer kernel
 *
 * A row buffer holds one input row of a chunk as int16 in column pairs: word (p * TH_DW_CHUNK + k) is
 * (x[2p][k], x[2p + 1][k]) for buffer columns 2p, 2p + 1 (column b = input column b - pad_l). A channel walks
 * its words TH_DW_CHUNK apart: every load is aligned, the conversion stores a pixel pair's 16 channels at
 * immediate offsets, and one SMLAD covers two horizontal taps. 8-bit inputs are stored centred (x - zp,
 * padding 0); 4- and 2-bit inputs as offset binary u = x + 2^(A-1) (one EOR turns a packed word into
 * non-negative fields, a shift and mask and a PKH put two pixels' field in a word: as cheap per element as the
 * 8-bit SXTAB16), with the padding at u = zp + 2^(A-1) (x = zp) and c * (sum of the channel's weights) taken
 * out of its bias once per chunk (c = zp + 2^(A-1)).
 *
 * Per chunk a table holds each channel's nine weights as five int16 pair words pre-shifted by its th_rq_t.ls
 * (so the accumulator is th_rq2's t), its pre-shifted bias and its requantization; per output row each channel
 * accumulates the row (dw3_acc_row), then requantizes it (dw3_rq_row: th_rq2 when the channel shifts right,
 * one SMMLAR when it does not; picked per channel, so the count does not depend on the layer's other channels).
 * 4- and 2-bit outputs go through a staging row of the chunk's 16 channels per pixel, in an order that one AND
 * per staging word and one shifted ORR pack into the output row (dw3_pos, dw3_pack): no read-modify-write. */

/* Words (pairs of int16 columns) in a row buffer: the columns the outputs read, plus one pair of slack. */
TH_ALWAYS_INLINE uint32_t dw3_pairs(const th_tensor_t *out, uint32_t stride)
{
    const uint32_t used = ((uint32_t)out->w - 1u) * stride + 3u;
    return (used + 1u) / 2u + 1u;
}

/* One channel of a chunk: five weight pair words, the pre-shifted bias, its requantization. */
typedef struct {
    uint32_t wk[5];
    int32_t b;
    th_rq_t q;
} dw3_ch_t;

/* Scratch of dw3_rows: the chunk's channel table, one row of accumulators, four row buffers of TH_DW_CHUNK
 * words per column pair (the padding row and a ring of three), and for 4/2-bit outputs a staging row of
 * TH_DW_CHUNK bytes per output pixel. */
static uint32_t dw3_scratch_bytes(const th_tensor_t *out, uint32_t stride)
{
    const uint32_t stage = out->bits == 8 ? 0u : TH_DW_CHUNK * (uint32_t)out->w;
    return (uint32_t)sizeof(dw3_ch_t) * TH_DW_CHUNK +
           4u * ((uint32_t)out->w + 4u * TH_DW_CHUNK * dw3_pairs(out, stride)) + stage;
}

#if TH_USE_SIMD
#define DW_CH TH_DW_CHUNK

/* Lane `b & 1` of column pair b / 2 of channel k. */
TH_ALWAYS_INLINE void dw3_set(uint32_t *buf, uint32_t b, uint32_t k, int32_t v)
{
    ((int16_t *)(buf + (b >> 1) * DW_CH + k))[b & 1u] = (int16_t)v;
}

/* Input row `xrow` (pixels ix < ix1) into a row buffer for channels c0 .. c0 + n - 1; `off`: what a stored value
 * is relative to x (centred: -zp; offset binary: 2^(A-1)). */
TH_ALWAYS_INLINE void dw3_convert(const uint8_t *xrow, uint32_t irb, uint32_t c0, uint32_t n, uint32_t ix1,
                                  uint32_t pad_l, int32_t off, uint32_t *buf, const int ab)
{
    uint32_t ix = 0;
    if ((pad_l & 1u) != 0u && ix1 > 0u) { /* pixel 0 sits in the high lane of pair 0 */
        for (uint32_t k = 0; k < n; ++k) {
            dw3_set(buf, pad_l, k, th_get(xrow, c0 + k, ab) + off);
        }
        ix = 1u;
    }
    if (n == DW_CH) { /* pixel pairs (ix, ix + 1) fill whole words */
        const uint8_t *src = xrow + ix * irb + (c0 * (uint32_t)ab) / 8u;
        uint32_t *d = buf + ((pad_l + ix) >> 1) * DW_CH;
        if (ab == 8) {
            const uint32_t o = ((uint32_t)off & 0xFFFFu) * 0x00010001u;
            for (; ix + 2u <= ix1; ix += 2u, src += 2u * irb, d += DW_CH) {
                TH_UNROLL
                for (uint32_t k = 0; k < DW_CH; k += 4u) {
                    const uint32_t a = th_load32(src + k), b = th_load32(src + irb + k);
                    const uint32_t ae = th_sxtab16(o, a), ao = th_sxtab16_ror8(o, a);
                    const uint32_t be = th_sxtab16(o, b), bo = th_sxtab16_ror8(o, b);
                    d[k] = th_pack_lo(ae, be);
                    d[k + 1u] = th_pack_lo(ao, bo);
                    d[k + 2u] = th_pack_hi(ae, be);
                    d[k + 3u] = th_pack_hi(ao, bo);
                }
            }
        } else {
            /* offset binary in every field at once; fields j and j + per/2 of a word land in the two 16-bit lanes
             * after one shift and mask, and one PKH pairs them with the other pixel's */
            const uint32_t flip = ab == 4 ? 0x88888888u : 0xAAAAAAAAu;
            const uint32_t per = 32u / (uint32_t)ab; /* fields per word */
            uint32_t mask = ab == 4 ? 0x000F000Fu : 0x00030003u;
            __asm("" : "+r"(mask)); /* a register: AND of a shifted register is one instruction */
            for (; ix + 2u <= ix1; ix += 2u, src += 2u * irb, d += DW_CH) {
                TH_UNROLL
                for (uint32_t q = 0; q < (uint32_t)ab / 2u; ++q) {
                    const uint32_t a = th_load32(src + 4u * q) ^ flip, b = th_load32(src + irb + 4u * q) ^ flip;
                    uint32_t *dq = d + q * per;
                    TH_UNROLL
                    for (uint32_t j = 0; j < per / 2u; ++j) {
                        const uint32_t la = (a >> (j * (uint32_t)ab)) & mask;
                        const uint32_t lb = (b >> (j * (uint32_t)ab)) & mask;
                        dq[j] = th_pack_lo(la, lb);
                        dq[j + per / 2u] = th_pack_hi(la, lb);
                        __asm("" ::: "memory"); /* one field pair at a time: hoisted shifts spill registers */
                    }
                }
            }
        }
    }
    for (; ix < ix1; ++ix) {
        const uint8_t *px = xrow + ix * irb;
        for (uint32_t k = 0; k < n; ++k) {
            dw3_set(buf, pad_l + ix, k, th_get(px, c0 + k, ab) + off);
        }
    }
}

/* Accumulators (th_rq2's t) of one channel along one output row. r0..r2: the channel's first word in the three
 * row buffers; wk: (w00,w01) (w10,w11) (w20,w21) (w02,w12) (w22,0) as int16 pairs, pre-shifted; b: the
 * pre-shifted bias. Requantization is a separate pass (dw3_rq_row): a fused loop spills registers. */
TH_ALWAYS_INLINE void dw3_acc_row(const uint32_t *r0, const uint32_t *r1, const uint32_t *r2, const uint32_t *wk,
                                  int32_t b, uint32_t ow, int32_t *acc, const int stride)
{
    const uint32_t w0 = wk[0], w1 = wk[1], w2 = wk[2], wa = wk[3], wb = wk[4];
    int32_t *const end = acc + (ow & ~1u);
    while (acc != end) {
        int32_t s0 = b, s1 = b;
        if (stride == 1) { /* outputs 2p, 2p + 1 read pairs p and p + 1: (x0,x1) (x2,x3) */
            uint32_t p01 = r0[0], p23 = r0[DW_CH];
            s0 = th_smlad(w0, p01, s0);
            s0 = th_smlabb(wa, p23, s0);
            s1 = th_smlabt(w0, p01, s1);
            s1 = th_smlatb(w0, p23, s1);
            s1 = th_smlabt(wa, p23, s1);
            p01 = r1[0], p23 = r1[DW_CH];
            s0 = th_smlad(w1, p01, s0);
            s0 = th_smlatb(wa, p23, s0);
            s1 = th_smlabt(w1, p01, s1);
            s1 = th_smlatb(w1, p23, s1);
            s1 = th_smlatt(wa, p23, s1);
            p01 = r2[0], p23 = r2[DW_CH];
            s0 = th_smlad(w2, p01, s0);
            s0 = th_smlabb(wb, p23, s0);
            s1 = th_smlabt(w2, p01, s1);
            s1 = th_smlatb(w2, p23, s1);
            s1 = th_smlabt(wb, p23, s1);
            r0 += DW_CH, r1 += DW_CH, r2 += DW_CH;
        } else { /* outputs p, p + 1 read pairs p, p + 1, p + 2 */
            uint32_t p01 = r0[0], p23 = r0[DW_CH], p45 = r0[2u * DW_CH];
            s0 = th_smlad(w0, p01, s0);
            s1 = th_smlad(w0, p23, s1);
            s0 = th_smlabb(wa, p23, s0);
            s1 = th_smlabb(wa, p45, s1);
            p01 = r1[0], p23 = r1[DW_CH], p45 = r1[2u * DW_CH];
            s0 = th_smlad(w1, p01, s0);
            s1 = th_smlad(w1, p23, s1);
            s0 = th_smlatb(wa, p23, s0);
            s1 = th_smlatb(wa, p45, s1);
            p01 = r2[0], p23 = r2[DW_CH], p45 = r2[2u * DW_CH];
            s0 = th_smlad(w2, p01, s0);
            s1 = th_smlad(w2, p23, s1);
            s0 = th_smlabb(wb, p23, s0);
            s1 = th_smlabb(wb, p45, s1);
            r0 += 2u * DW_CH, r1 += 2u * DW_CH, r2 += 2u * DW_CH;
        }
        acc[0] = s0;
        acc[1] = s1;
        acc += 2;
    }
    if (ow & 1u) {
        int32_t s0 = b;
        s0 = th_smlad(w0, r0[0], s0);
        s0 = th_smlabb(wa, r0[DW_CH], s0);
        s0 = th_smlad(w1, r1[0], s0);
        s0 = th_smlatb(wa, r1[DW_CH], s0);
        s0 = th_smlad(w2, r2[0], s0);
        s0 = th_smlabb(wb, r2[DW_CH], s0);
        acc[0] = s0;
    }
}

TH_ALWAYS_INLINE uint32_t dw3_pair(int32_t lo, int32_t hi, uint32_t ls)
{
    return (((uint32_t)lo << ls) & 0xFFFFu) | ((uint32_t)hi << (16u + ls));
}

/* The chunk's channel table: weights as five int16 pair words each (see dw3_acc_row), pre-shifted by the
 * channel's th_rq_t.ls so that the accumulator is th_rq2's t (th_rq_fast_ok's max_left keeps them int16); the
 * bias, less c times the weights' sum (offset-binary inputs), pre-shifted; the requantization. */
TH_ALWAYS_INLINE void dw3_table(const th_layer_t *L, uint32_t wrb, uint32_t c0, uint32_t n, int32_t c, int32_t ozp,
                                dw3_ch_t *tab, const int wbits)
{
    const uint8_t *w = (const uint8_t *)L->weights;
    for (uint32_t k = 0; k < n; ++k) {
        int32_t t[9], sw = 0;
        const th_rq_t q = th_rq_channel(L, c0 + k, ozp);
        const uint32_t ls = (uint32_t)q.ls;
        for (uint32_t i = 0; i < 9u; ++i) {
            t[i] = th_get(w + i * wrb, c0 + k, wbits);
            sw += t[i];
        }
        tab[k].wk[0] = dw3_pair(t[0], t[1], ls);
        tab[k].wk[1] = dw3_pair(t[3], t[4], ls);
        tab[k].wk[2] = dw3_pair(t[6], t[7], ls);
        tab[k].wk[3] = dw3_pair(t[2], t[5], ls);
        tab[k].wk[4] = dw3_pair(t[8], 0, ls);
        tab[k].b = (int32_t)((uint32_t)(L->bias[c0 + k] - c * sw) << ls);
        tab[k].q = q;
    }
}

/* Requantize n accumulators t into y[i * ystep], clamped as `kind` allows for `ob` bits: th_rq2 (shift > 0) or
 * one SMMLAR (no shift; q.r is the zero point). */
TH_ALWAYS_INLINE void dw3_rq_row(const int32_t *t, uint32_t n, th_rq_t q, int32_t lo, int32_t hi, uint8_t *y,
                                 uint32_t ystep, const int ob, const int kind, const int shifts)
{
    const int32_t *const end = t + n;
    for (; t != end; ++t, y += ystep) {
        const int32_t v = shifts ? th_rq2(*t, q.m, q.r, q.e) : th_smmlar(*t, q.m, q.r);
        *y = (uint8_t)th_clamp_as(v, lo, hi, ob, kind);
    }
}

typedef void (*dw3_rq_fn)(const int32_t *t, uint32_t n, th_rq_t q, int32_t lo, int32_t hi, uint8_t *y,
                          uint32_t ystep);

/* The requantization passes, one per (output bits, clamp, shift or not), picked per layer and channel. */
#define DW3_RQ(OB, KIND, S)                                                                                     \
    static void dw3_rq_##OB##_##KIND##_##S(const int32_t *t, uint32_t n, th_rq_t q, int32_t lo, int32_t hi,     \
                                            uint8_t *y, uint32_t ystep)                                         \
    {                                                                                                           \
        dw3_rq_row(t, n, q, lo, hi, y, ystep, OB, KIND, S);                                                     \
    }
DW3_RQ(8, 0, 0)
DW3_RQ(8, 0, 1)
DW3_RQ(8, 1, 0)
DW3_RQ(8, 1, 1)
DW3_RQ(8, 2, 0)
DW3_RQ(8, 2, 1)
DW3_RQ(4, 0, 0)
DW3_RQ(4, 0, 1)
DW3_RQ(4, 1, 0)
DW3_RQ(4, 1, 1)
DW3_RQ(4, 2, 0)
DW3_RQ(4, 2, 1)
DW3_RQ(2, 0, 0)
DW3_RQ(2, 0, 1)
DW3_RQ(2, 1, 0)
DW3_RQ(2, 1, 1)
DW3_RQ(2, 2, 0)
DW3_RQ(2, 2, 1)

/* fns[0]: no shift, fns[1]: right shift; by the clamp kind of the output bits */
static void dw3_rq_pick(const th_layer_t *L, int ob, dw3_rq_fn *fns)
{
    static const dw3_rq_fn f[3][3][2] = {
        {{dw3_rq_8_0_0, dw3_rq_8_0_1}, {dw3_rq_8_1_0, dw3_rq_8_1_1}, {dw3_rq_8_2_0, dw3_rq_8_2_1}},
        {{dw3_rq_4_0_0, dw3_rq_4_0_1}, {dw3_rq_4_1_0, dw3_rq_4_1_1}, {dw3_rq_4_2_0, dw3_rq_4_2_1}},
        {{dw3_rq_2_0_0, dw3_rq_2_0_1}, {dw3_rq_2_1_0, dw3_rq_2_1_1}, {dw3_rq_2_2_0, dw3_rq_2_2_1}}};
    const int kind = th_clamp_kind(L, ob), i = ob == 8 ? 0 : (ob == 4 ? 1 : 2);
    fns[0] = f[i][kind][0];
    fns[1] = f[i][kind][1];
}

/* Where channel k of a chunk sits in a pixel's DW_CH staging bytes for ob-bit outputs: the order in which one
 * AND and one shifted ORR per staging word pack them (dw3_pack). 2 bits: byte j of word i holds channel
 * 4 j + i; 4 bits: words (0, 1) make output word 0 and (2, 3) output word 1, byte j of the even word channel
 * 2 j (+ 8), of the odd word channel 2 j + 1 (+ 8). */
TH_ALWAYS_INLINE uint32_t dw3_pos(uint32_t k, int ob)
{
    if (ob == 2) {
        return (k % 4u) * 4u + k / 4u;
    }
    return (k / 8u) * 8u + (k % 2u) * 4u + (k % 8u) / 2u;
}

/* The staging row (ow pixels x DW_CH int8 outputs in dw3_pos order) into n channels of each output row, packed
 * at ob bits: with a full chunk one AND per staging word and one shifted ORR per pair or quad of them. */
static void dw3_pack(const uint8_t *stage, uint32_t ow, uint32_t n, uint8_t *y, uint32_t orb, int ob)
{
    for (uint32_t p = 0; p < ow; ++p, stage += DW_CH, y += orb) {
        if (n == DW_CH && ob == 4) {
            const uint32_t m = 0x0F0F0F0Fu;
            th_store32(y, (th_load32(stage) & m) | ((th_load32(stage + 4) & m) << 4));
            th_store32(y + 4, (th_load32(stage + 8) & m) | ((th_load32(stage + 12) & m) << 4));
        } else if (n == DW_CH) { /* ob == 2 */
            const uint32_t m = 0x03030303u;
            th_store32(y, (th_load32(stage) & m) | ((th_load32(stage + 4) & m) << 2) |
                              ((th_load32(stage + 8) & m) << 4) | ((th_load32(stage + 12) & m) << 6));
        } else {
            for (uint32_t k = 0; k < n; ++k) {
                th_put(y, k, ob, (int8_t)stage[dw3_pos(k, ob)]);
            }
        }
    }
}

TH_ALWAYS_INLINE void dw3_rows(TH_KERNEL_ARGS, const int ab, const int wbits, const int stride)
{
    (void)in2;
    const uint8_t *x = arena + in->offset;
    uint8_t *y = arena + out->offset;
    const uint32_t C = in->c, W = in->w, H = in->h, ow = out->w, oh = out->h;
    const int ob = out->bits;
    const uint32_t irb = th_row_bytes(C, ab), wrb = th_row_bytes(C, wbits), orb = th_row_bytes(C, ob);
    const uint32_t np = dw3_pairs(out, (uint32_t)stride);
    const uint32_t pad_l = L->pad_l;
    const int32_t zp = in->zero_point, lo = L->act_min, hi = L->act_max;
    /* stored value = x + off: centred (8 bits) or offset binary; c = what x = zp is stored as */
    const int32_t off = ab == 8 ? -zp : (1 << (ab - 1)), c = ab == 8 ? 0 : zp + off;
    const uint32_t cpair = ((uint32_t)c & 0xFFFFu) * 0x00010001u;
    /* input columns some output reads: buffer columns below 2 * (np - 1) */
    const uint32_t ix1 = W < 2u * (np - 1u) - pad_l ? W : 2u * (np - 1u) - pad_l;
    const uint32_t slot_words = np * DW_CH;
    dw3_ch_t *tab = (dw3_ch_t *)scratch;
    int32_t *acc = (int32_t *)(tab + DW_CH);
    uint32_t *pad = (uint32_t *)(acc + ow);
    uint32_t *slots = pad + slot_words;
    uint8_t *stage = (uint8_t *)(slots + 3u * slot_words);
    dw3_rq_fn rq[2];
    dw3_rq_pick(L, ob, rq);
    for (uint32_t i = 0; i < slot_words; ++i) {
        pad[i] = cpair;
    }
    for (uint32_t c0 = 0; c0 < C; c0 += DW_CH) {
        const uint32_t n = C - c0 < DW_CH ? C - c0 : DW_CH;
        int32_t held[3] = {-1, -1, -1};
        dw3_table(L, wrb, c0, n, c, out->zero_point, tab, wbits);
        for (uint32_t i = 0; i < 3u * slot_words; ++i) { /* padding columns stay at c */
            slots[i] = cpair;
        }
        for (uint32_t oy = 0; oy < oh; ++oy) {
            const uint32_t *rows[3];
            for (uint32_t i = 0; i < 3u; ++i) {
                const int32_t iy = (int32_t)(oy * (uint32_t)stride + i) - (int32_t)L->pad_t;
                if (iy < 0 || iy >= (int32_t)H) {
                    rows[i] = pad;
                    continue;
                }
                const uint32_t s = (uint32_t)iy % 3u;
                uint32_t *slot = slots + s * slot_words;
                if (held[s] != iy) {
                    dw3_convert(x + (uint32_t)iy * W * irb, irb, c0, n, ix1, pad_l, off, slot, ab);
                    held[s] = iy;
                }
                rows[i] = slot;
            }
            uint8_t *yrow = y + oy * ow * orb;
            for (uint32_t k = 0; k < n; ++k) {
                const dw3_ch_t *ch = tab + k;
                dw3_acc_row(rows[0] + k, rows[1] + k, rows[2] + k, ch->wk, ch->b, ow, acc, stride);
                if (ob == 8) {
                    rq[ch->q.e > 0](acc, ow, ch->q, lo, hi, yrow + c0 + k, orb);
                } else {
                    rq[ch->q.e > 0](acc, ow, ch->q, lo, hi, stage + dw3_pos(k, ob), DW_CH);
                }
            }
            if (ob != 8) {
                dw3_pack(stage, ow, n, yrow + (c0 * (uint32_t)ob) / 8u, orb, ob);
            }
        }
    }
}

/* The fast path applies: 3x3, stride 1 or 2, and requantization parameters fit th_rq2 (left shifts up to what
 * keeps the pre-shifted weights int16). */
static int dw3_applies(const th_layer_t *L, const th_tensor_t *in, int ab, int wb)
{
    int rnd;
    return L->kh == 3u && L->kw == 3u && (L->stride == 1u || L->stride == 2u) &&
           th_rq_fast_ok(L, in->c, 9u, ab, wb, 29, 15 - wb, &rnd);
}

#define TH_DW_PAIR(A, W, FALLBACK)                                                                              \
    void th_depthwise_a##A##w##W(TH_KERNEL_ARGS)                                                                \
    {                                                                                                           \
        if (!dw3_applies(L, in, A, W)) {                                                                        \
            FALLBACK;                                                                                           \
        } else if (L->stride == 2u) {                                                                           \
            dw3_rows(L, in, in2, out, arena, scratch, A, W, 2);                                                 \
        } else {                                                                                                \
            dw3_rows(L, in, in2, out, arena, scratch, A, W, 1);                                                 \
        }                                                                                                       \
    }
#else
#define TH_DW_PAIR(A, W, FALLBACK)                                                                              \
    void th_depthwise_a##A##w##W(TH_KERNEL_ARGS) { FALLBACK; }
#endif

TH_DW_PAIR(8, 8, depthwise_s8_pixels(L, in, in2, out, arena, scratch))
TH_DW_PAIR(8, 4, depthwise_generic(L, in, in2, out, arena, scratch, 8, 4))
TH_DW_PAIR(8, 2, depthwise_generic(L, in, in2, out, arena, scratch, 8, 2))
TH_DW_PAIR(4, 8, depthwise_generic(L, in, in2, out, arena, scratch, 4, 8))
TH_DW_PAIR(4, 4, depthwise_generic(L, in, in2, out, arena, scratch, 4, 4))
TH_DW_PAIR(4, 2, depthwise_generic(L, in, in2, out, arena, scratch, 4, 2))
TH_DW_PAIR(2, 8, depthwise_generic(L, in, in2, out, arena, scratch, 2, 8))
TH_DW_PAIR(2, 4, depthwise_generic(L, in, in2, out, arena, scratch, 2, 4))
TH_DW_PAIR(2, 2, depthwise_generic(L, in, in2, out, arena, scratch, 2, 2))

/* Scratch of every depthwise kernel: the 3x3 row buffers wherever a call may take them (the fallbacks need
 * none). */
uint32_t th_depthwise_scratch_bytes(const th_layer_t *L, const th_tensor_t *in, const th_tensor_t *out)
{
    (void)in;
    if (L->kh == 3u && L->kw == 3u && (L->stride == 1u || L->stride == 2u)) {
        return th_ru4(dw3_scratch_bytes(out, L->stride));
    }
    return 0u;
}
