/*
 * add.c - elementwise addition with TFLite ADD requantization (harness/reference/kernels.py:add):
 *   s_i = mbqm((x_i - zp_i) << left_shift, m_i, shift_i);  y = clamp(zp_out + mbqm(s_1 + s_2, m_out, s_out)).
 * Each operand has its own precision; all-int8 tensors take a straight loop over the bytes.
 */
#include "common.h"

TH_ALWAYS_INLINE int32_t add_one(const th_layer_t *L, int32_t x1, int32_t x2, int32_t zp1, int32_t zp2, int32_t zpo)
{
    const int32_t a = (int32_t)((uint32_t)(x1 - zp1) << L->left_shift);
    const int32_t b = (int32_t)((uint32_t)(x2 - zp2) << L->left_shift);
    const int32_t s = (int32_t)((uint32_t)th_mbqm(a, L->in1_mult, L->in1_shift) +
                                (uint32_t)th_mbqm(b, L->in2_mult, L->in2_shift));
    return th_requant_clamp(s, L->out_mult, L->out_shift, zpo, L->act_min, L->act_max);
}

TH_ALWAYS_INLINE void add_impl(TH_KERNEL_ARGS, const int b1, const int b2, const int bo)
{
    (void)scratch;
    const uint8_t *x1 = arena + in->offset;
    const uint8_t *x2 = arena + in2->offset;
    uint8_t *y = arena + out->offset;
    const uint32_t C = out->c, npix = (uint32_t)out->h * out->w;
    const uint32_t r1 = th_row_bytes(C, b1), r2 = th_row_bytes(C, b2), ro = th_row_bytes(C, bo);
    for (uint32_t p = 0; p < npix; ++p) {
        for (uint32_t c = 0; c < C; ++c) {
            th_put(y + p * ro, c, bo,
                   add_one(L, th_get(x1 + p * r1, c, b1), th_get(x2 + p * r2, c, b2), in->zero_point,
                           in2->zero_point, out->zero_point));
        }
    }
}

void th_add(TH_KERNEL_ARGS)
{
    if (in->bits == 8 && in2->bits == 8 && out->bits == 8) {
        add_impl(L, in, in2, out, arena, scratch, 8, 8, 8);
    } else {
        add_impl(L, in, in2, out, arena, scratch, in->bits, in2->bits, out->bits);
    }
}

uint32_t th_add_scratch_bytes(const th_layer_t *L, const th_tensor_t *in, const th_tensor_t *out)
{
    (void)L, (void)in, (void)out;
    return 0u;
}
