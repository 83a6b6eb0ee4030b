/*
 * conv2d.c - standard convolution, weights (Cout, Kh, Kw, Cin) packed at w_bits with byte-aligned Cin rows.
 *
 *   every (A, W) pair  a matrix core of kernels/mm/ (th_mm_run: im2col of two or four output pixels into the
 *                      core's column layout) when th_mm_prepare accepts the layer; which core: mm/mm.h.
 *   fallbacks          (no DSP, requantization outside the fast path) a8w8 -> conv2d_s8: im2col into q15
 *                      columns and the 2x2 core of matmul.c; other pairs -> conv2d_generic: one centred int16
 *                      column per output pixel, each tap padded to whole weight bytes, dotted byte by byte.
 *   th_conv2d_ref      plain loops, int8 only: the baseline the benchmark compares a8w8 with.
 */
#include "mm/mm.h"

/* Input pixel of tap (i, j) for output (oy, ox), or NULL when the tap falls in the padding. */
TH_ALWAYS_INLINE const uint8_t *tap_row(const th_layer_t *L, const th_tensor_t *in, const uint8_t *x, uint32_t irb,
                                        uint32_t oy, uint32_t ox, uint32_t i, uint32_t j)
{
    const int32_t y = (int32_t)(oy * L->stride + i) - (int32_t)L->pad_t;
    const int32_t xx = (int32_t)(ox * L->stride + j) - (int32_t)L->pad_l;
    if (y < 0 || xx < 0 || y >= (int32_t)in->h || xx >= (int32_t)in->w) {
        return 0;
    }
    return x + ((uint32_t)y * in->w + (uint32_t)xx) * irb;
}

static void im2col_s8(const th_layer_t *L, const th_tensor_t *in, const uint8_t *x, uint32_t p, uint32_t ow,
                      int16_t *col)
{
    const uint32_t cin = in->c, oy = p / ow, ox = p % ow;
    const int aligned = (cin & 3u) == 0u; /* every tap segment starts a group of four: interleave per tap */
    int16_t *seg = col;
    for (uint32_t i = 0; i < L->kh; ++i) {
        for (uint32_t j = 0; j < L->kw; ++j, seg += cin) {
            const uint8_t *src = tap_row(L, in, x, cin, oy, ox, i, j);
            if (src == 0) {
                memset(seg, 0, cin * sizeof(int16_t));
            } else if (aligned) {
                th_q15_column_s8((const int8_t *)src, cin, in->zero_point, seg);
            } else {
                th_unpack_centered(src, cin, 8, in->zero_point, seg, cin);
            }
        }
    }
    if (!aligned) {
        th_q15_interleave(col, (uint32_t)L->kh * L->kw * cin);
    }
}

static void conv2d_s8(TH_KERNEL_ARGS)
{
    (void)in2;
    const uint8_t *x = arena + in->offset;
    uint8_t *y = arena + out->offset;
    const uint32_t k = (uint32_t)L->kh * L->kw * in->c;
    const uint32_t orb = th_row_bytes(out->c, out->bits);
    const uint32_t npix = (uint32_t)out->h * out->w;
    int16_t *col0 = (int16_t *)scratch;
    int16_t *col1 = col0 + th_ru4(k);
    uint32_t p = 0;
    for (; p + 2u <= npix; p += 2u) {
        im2col_s8(L, in, x, p, out->w, col0);
        im2col_s8(L, in, x, p + 1u, out->w, col1);
        th_mm_s8_q15(L, out, (const int8_t *)L->weights, k, out->c, col0, col1, y + p * orb, y + (p + 1u) * orb);
    }
    if (p < npix) {
        im2col_s8(L, in, x, p, out->w, col0);
        th_mm_s8_q15(L, out, (const int8_t *)L->weights, k, out->c, col0, 0, y + p * orb, 0);
    }
}

void th_conv2d_ref(TH_KERNEL_ARGS)
{
    (void)in2;
    (void)scratch;
    const int8_t *x = (const int8_t *)(arena + in->offset);
    const int8_t *w = (const int8_t *)L->weights;
    uint8_t *y = arena + out->offset;
    const int32_t cin = in->c, kh = L->kh, kw = L->kw, zp = in->zero_point;
    const uint32_t orb = th_row_bytes(out->c, out->bits);
    for (int32_t oy = 0; oy < out->h; ++oy) {
        for (int32_t ox = 0; ox < out->w; ++ox) {
            uint8_t *yrow = y + ((uint32_t)oy * out->w + (uint32_t)ox) * orb;
            for (int32_t o = 0; o < out->c; ++o) {
                int32_t acc = L->bias[o];
                for (int32_t i = 0; i < kh; ++i) {
                    const int32_t iy = oy * L->stride + i - L->pad_t;
                    if (iy < 0 || iy >= in->h) {
                        continue;
                    }
                    for (int32_t j = 0; j < kw; ++j) {
                        const int32_t ix = ox * L->stride + j - L->pad_l;
                        if (ix < 0 || ix >= in->w) {
                            continue;
                        }
                        const int8_t *xp = x + (iy * in->w + ix) * cin;
                        const int8_t *wp = w + ((o * kh + i) * kw + j) * cin;
                        for (int32_t c = 0; c < cin; ++c) {
                            acc += (xp[c] - zp) * wp[c];
                        }
                    }
                }
                th_put(yrow, (uint32_t)o, out->bits,
                       th_requant_clamp(acc, L->mult[o], L->shift[o], out->zero_point, L->act_min, L->act_max));
            }
        }
    }
}

static void conv2d_generic(TH_KERNEL_ARGS, const int ab, const int wb)
{
    (void)in2;
    const uint8_t *x = arena + in->offset;
    uint8_t *y = arena + out->offset;
    const uint32_t cin = in->c;
    const uint32_t irb = th_row_bytes(cin, ab), wrb = th_row_bytes(cin, wb);
    const uint32_t cinp = wrb * (8u / (uint32_t)wb);
    const uint32_t wbytes = (uint32_t)L->kh * L->kw * wrb;
    const uint32_t orb = th_row_bytes(out->c, out->bits);
    int16_t *col = (int16_t *)scratch;
    for (uint32_t oy = 0; oy < out->h; ++oy) {
        for (uint32_t ox = 0; ox < out->w; ++ox) {
            int16_t *seg = col;
            for (uint32_t i = 0; i < L->kh; ++i) {
                for (uint32_t j = 0; j < L->kw; ++j, seg += cinp) {
                    const uint8_t *src = tap_row(L, in, x, irb, oy, ox, i, j);
                    if (src == 0) {
                        memset(seg, 0, cinp * sizeof(int16_t));
                    } else {
                        th_unpack_centered(src, cin, ab, in->zero_point, seg, cinp);
                    }
                }
            }
            th_generic_pixel(L, out, (const uint8_t *)L->weights, wbytes, col, y + (oy * out->w + ox) * orb, wb);
        }
    }
}

/* Scratch of every conv2d kernel: the largest of the matrix cores' job loop and the pair's fallback (conv2d_s8:
 * two q15 columns of K = kh kw cin entries, each rounded up to a multiple of 4; conv2d_generic: one centred
 * column of kh kw taps, each padded to whole weight bytes). */
uint32_t th_conv2d_scratch_bytes(const th_layer_t *L, const th_tensor_t *in, const th_tensor_t *out)
{
    const uint32_t taps = (uint32_t)L->kh * L->kw, cin = in->c;
    const int wb = L->w_bits;
    const uint32_t fallback = in->bits == 8 && wb == 8 ? 2u * 2u * th_ru4(taps * cin)
                                                       : 2u * taps * th_row_bytes(cin, wb) * (8u / (uint32_t)wb);
    const uint32_t fast = th_mm_run_scratch_bytes(taps, cin, out->c, in->bits, wb);
    return th_ru4(fallback > fast ? fallback : fast);
}

TH_MM_PAIR(conv2d, 8, 8, (uint32_t)L->kh * L->kw, conv2d_s8(L, in, in2, out, arena, scratch))
TH_MM_PAIR(conv2d, 8, 4, (uint32_t)L->kh * L->kw, conv2d_generic(L, in, in2, out, arena, scratch, 8, 4))
TH_MM_PAIR(conv2d, 8, 2, (uint32_t)L->kh * L->kw, conv2d_generic(L, in, in2, out, arena, scratch, 8, 2))
TH_MM_PAIR(conv2d, 4, 8, (uint32_t)L->kh * L->kw, conv2d_generic(L, in, in2, out, arena, scratch, 4, 8))
TH_MM_PAIR(conv2d, 4, 4, (uint32_t)L->kh * L->kw, conv2d_generic(L, in, in2, out, arena, scratch, 4, 4))
TH_MM_PAIR(conv2d, 4, 2, (uint32_t)L->kh * L->kw, conv2d_generic(L, in, in2, out, arena, scratch, 4, 2))
TH_MM_PAIR(conv2d, 2, 8, (uint32_t)L->kh * L->kw, conv2d_generic(L, in, in2, out, arena, scratch, 2, 8))
TH_MM_PAIR(conv2d, 2, 4, (uint32_t)L->kh * L->kw, conv2d_generic(L, in, in2, out, arena, scratch, 2, 4))
TH_MM_PAIR(conv2d, 2, 2, (uint32_t)L->kh * L->kw, conv2d_generic(L, in, in2, out, arena, scratch, 2, 2))
