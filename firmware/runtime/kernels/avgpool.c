/*
 * avgpool.c - average pooling without padding: acc = sum over the window of (x - zp), requantized by one
 * multiplier/shift that already holds 1/window (harness/reference/kernels.py:avgpool). Any in/out precision;
 * int8 in and out take a specialised copy.
 *
 * Division mode (shift[0] == TH_AVGPOOL_DIVIDE, harness/ops/avgpool.py DIVIDE): TFLite's integer AVERAGE_POOL_2D,
 * for imported .tflite models: the raw window sum divided by the tap count, rounded half away from zero, clamped.
 */
#include "common.h"

TH_ALWAYS_INLINE void avgpool_impl(TH_KERNEL_ARGS, const int ab, const int ob)
{
    (void)in2;
    (void)scratch;
    const uint8_t *x = arena + in->offset;
    uint8_t *y = arena + out->offset;
    const uint32_t C = out->c, irb = th_row_bytes(C, ab), orb = th_row_bytes(C, ob);
    const int32_t zp = in->zero_point, m = L->mult[0], sh = L->shift[0];
    for (uint32_t oy = 0; oy < out->h; ++oy) {
        for (uint32_t ox = 0; ox < out->w; ++ox) {
            const uint8_t *win = x + ((oy * L->stride) * in->w + ox * L->stride) * irb;
            uint8_t *yrow = y + (oy * out->w + ox) * orb;
            for (uint32_t c = 0; c < C; ++c) {
                int32_t acc = 0;
                for (uint32_t i = 0; i < L->kh; ++i) {
                    const uint8_t *r = win + i * in->w * irb;
                    for (uint32_t j = 0; j < L->kw; ++j, r += irb) {
                        acc += th_get(r, c, ab);
                    }
                }
                acc -= zp * (int32_t)(L->kh * L->kw);
                th_put(yrow, c, ob, th_requant_clamp(acc, m, sh, out->zero_point, L->act_min, L->act_max));
            }
        }
    }
}

#define TH_AVGPOOL_DIVIDE 64

static void avgpool_divide(TH_KERNEL_ARGS, const int ab, const int ob)
{
    (void)in2;
    (void)scratch;
    const uint8_t *x = arena + in->offset;
    uint8_t *y = arena + out->offset;
    const uint32_t C = out->c, irb = th_row_bytes(C, ab), orb = th_row_bytes(C, ob);
    const int32_t n = (int32_t)(L->kh * L->kw);
    for (uint32_t oy = 0; oy < out->h; ++oy) {
        for (uint32_t ox = 0; ox < out->w; ++ox) {
            const uint8_t *win = x + ((oy * L->stride) * in->w + ox * L->stride) * irb;
            uint8_t *yrow = y + (oy * out->w + ox) * orb;
            for (uint32_t c = 0; c < C; ++c) {
                int32_t acc = 0;
                for (uint32_t i = 0; i < L->kh; ++i) {
                    const uint8_t *r = win + i * in->w * irb;
                    for (uint32_t j = 0; j < L->kw; ++j, r += irb) {
                        acc += th_get(r, c, ab);
                    }
                }
                acc = acc > 0 ? (acc + n / 2) / n : (acc - n / 2) / n;
                acc = acc < L->act_min ? L->act_min : (acc > L->act_max ? L->act_max : acc);
                th_put(yrow, c, ob, acc);
            }
        }
    }
}

void th_avgpool(TH_KERNEL_ARGS)
{
    if (L->shift[0] == TH_AVGPOOL_DIVIDE) {
        avgpool_divide(L, in, in2, out, arena, scratch, in->bits, out->bits);
    } else if (in->bits == 8 && out->bits == 8) {
        avgpool_impl(L, in, in2, out, arena, scratch, 8, 8);
    } else {
        avgpool_impl(L, in, in2, out, arena, scratch, in->bits, out->bits);
    }
}

uint32_t th_avgpool_scratch_bytes(const th_layer_t *L, const th_tensor_t *in, const th_tensor_t *out)
{
    (void)L, (void)in, (void)out;
    return 0u;
}
