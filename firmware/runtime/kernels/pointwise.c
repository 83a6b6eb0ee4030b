/*
 * pointwise.c - 1x1 convolution (optional stride, no padding), weights (Cout, Cin) with byte-aligned rows.
 *
 *   every (A, W) pair  a matrix core of kernels/mm/ (th_mm_run: each input pixel becomes a column in the core's
 *                      layout once, weights unpacked in registers) when th_mm_prepare accepts the layer (which
 *                      core: mm/mm.h); otherwise (no DSP, requantization outside the fast
 *                      path) a8w8 -> pointwise_s8 (the 2x2 q15 core of matmul.c), others -> pointwise_generic.
 *   th_pointwise_ref   plain loops, int8 only.
 */
#include "mm/mm.h"

TH_ALWAYS_INLINE const uint8_t *src_pixel(const th_layer_t *L, const th_tensor_t *in, const th_tensor_t *out,
                                          const uint8_t *x, uint32_t irb, uint32_t p)
{
    const uint32_t oy = p / out->w, ox = p % out->w;
    return x + ((oy * L->stride) * in->w + ox * L->stride) * irb;
}

static void pointwise_s8(TH_KERNEL_ARGS)
{
    (void)in2;
    const uint8_t *x = arena + in->offset;
    uint8_t *y = arena + out->offset;
    const uint32_t cin = in->c;
    const uint32_t orb = th_row_bytes(out->c, out->bits);
    const uint32_t npix = (uint32_t)out->h * out->w;
    const int8_t *w = (const int8_t *)L->weights;
    int16_t *col0 = (int16_t *)scratch;
    int16_t *col1 = col0 + th_ru4(cin);
    uint32_t p = 0;
    for (; p + 2u <= npix; p += 2u) {
        th_q15_column_s8((const int8_t *)src_pixel(L, in, out, x, cin, p), cin, in->zero_point, col0);
        th_q15_column_s8((const int8_t *)src_pixel(L, in, out, x, cin, p + 1u), cin, in->zero_point, col1);
        th_mm_s8_q15(L, out, w, cin, out->c, col0, col1, y + p * orb, y + (p + 1u) * orb);
    }
    if (p < npix) {
        th_q15_column_s8((const int8_t *)src_pixel(L, in, out, x, cin, p), cin, in->zero_point, col0);
        th_mm_s8_q15(L, out, w, cin, out->c, col0, 0, y + p * orb, 0);
    }
}

void th_pointwise_ref(TH_KERNEL_ARGS)
{
    (void)in2;
    (void)scratch;
    const uint8_t *x = arena + in->offset;
    const int8_t *w = (const int8_t *)L->weights;
    uint8_t *y = arena + out->offset;
    const int32_t cin = in->c, zp = in->zero_point;
    const uint32_t orb = th_row_bytes(out->c, out->bits);
    const uint32_t npix = (uint32_t)out->h * out->w;
    for (uint32_t p = 0; p < npix; ++p) {
        const int8_t *xp = (const int8_t *)src_pixel(L, in, out, x, (uint32_t)cin, p);
        for (int32_t o = 0; o < out->c; ++o) {
            int32_t acc = L->bias[o];
            for (int32_t c = 0; c < cin; ++c) {
                acc += (xp[c] - zp) * w[o * cin + c];
            }
            th_put(y + p * orb, (uint32_t)o, out->bits,
                   th_requant_clamp(acc, L->mult[o], L->shift[o], out->zero_point, L->act_min, L->act_max));
        }
    }
}

static void pointwise_generic(TH_KERNEL_ARGS, const int ab, const int wb)
{
    (void)in2;
    const uint8_t *x = arena + in->offset;
    uint8_t *y = arena + out->offset;
    const uint32_t cin = in->c;
    const uint32_t irb = th_row_bytes(cin, ab), wrb = th_row_bytes(cin, wb);
    const uint32_t cinp = wrb * (8u / (uint32_t)wb);
    const uint32_t orb = th_row_bytes(out->c, out->bits);
    const uint32_t npix = (uint32_t)out->h * out->w;
    int16_t *col = (int16_t *)scratch;
    for (uint32_t p = 0; p < npix; ++p) {
        th_unpack_centered(src_pixel(L, in, out, x, irb, p), cin, ab, in->zero_point, col, cinp);
        th_generic_pixel(L, out, (const uint8_t *)L->weights, wrb, col, y + p * orb, wb);
    }
}

/* Scratch of every pointwise kernel: the largest of the matrix cores' job loop and the pair's fallback
 * (pointwise_s8: two q15 columns of cin entries rounded up to a multiple of 4; pointwise_generic: one centred
 * column padded to whole weight bytes). */
uint32_t th_pointwise_scratch_bytes(const th_layer_t *L, const th_tensor_t *in, const th_tensor_t *out)
{
    const uint32_t cin = in->c;
    const int wb = L->w_bits;
    const uint32_t fallback =
        in->bits == 8 && wb == 8 ? 2u * 2u * th_ru4(cin) : 2u * th_row_bytes(cin, wb) * (8u / (uint32_t)wb);
    const uint32_t fast = th_mm_run_scratch_bytes(1u, cin, out->c, in->bits, wb);
    return th_ru4(fallback > fast ? fallback : fast);
}

TH_MM_PAIR(pointwise, 8, 8, 1u, pointwise_s8(L, in, in2, out, arena, scratch))
TH_MM_PAIR(pointwise, 8, 4, 1u, pointwise_generic(L, in, in2, out, arena, scratch, 8, 4))
TH_MM_PAIR(pointwise, 8, 2, 1u, pointwise_generic(L, in, in2, out, arena, scratch, 8, 2))
TH_MM_PAIR(pointwise, 4, 8, 1u, pointwise_generic(L, in, in2, out, arena, scratch, 4, 8))
TH_MM_PAIR(pointwise, 4, 4, 1u, pointwise_generic(L, in, in2, out, arena, scratch, 4, 4))
TH_MM_PAIR(pointwise, 4, 2, 1u, pointwise_generic(L, in, in2, out, arena, scratch, 4, 2))
TH_MM_PAIR(pointwise, 2, 8, 1u, pointwise_generic(L, in, in2, out, arena, scratch, 2, 8))
TH_MM_PAIR(pointwise, 2, 4, 1u, pointwise_generic(L, in, in2, out, arena, scratch, 2, 4))
TH_MM_PAIR(pointwise, 2, 2, 1u, pointwise_generic(L, in, in2, out, arena, scratch, 2, 2))
