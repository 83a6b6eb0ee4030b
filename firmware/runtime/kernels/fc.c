/*
 * fc.c - fully connected on a (1, 1, Cin) vector, weights (Cout, Cin) with byte-aligned rows.
 *
 *   every (A, W) pair  th_fc_run (kernels/mm/): the input becomes one column in the core's layout, the
 *                      weights are unpacked in registers (which core: mm/mm.h), when th_mm_prepare accepts the
 *                      layer; otherwise a8w8 -> fc_s8 (interleaved q15 column, 2-row core of matmul.c) and
 *                      other pairs -> fc_generic.
 *   th_fc_ref          plain loops, int8 only.
 */
#include "mm/mm.h"

static void fc_s8(TH_KERNEL_ARGS)
{
    (void)in2;
    int16_t *col = (int16_t *)scratch;
    th_q15_column_s8((const int8_t *)(arena + in->offset), in->c, in->zero_point, col);
    th_mm_s8_q15(L, out, (const int8_t *)L->weights, in->c, out->c, col, 0, arena + out->offset, 0);
}

void th_fc_ref(TH_KERNEL_ARGS)
{
    (void)in2;
    (void)scratch;
    const int8_t *x = (const int8_t *)(arena + in->offset);
    const int8_t *w = (const int8_t *)L->weights;
    uint8_t *y = arena + out->offset;
    const int32_t cin = in->c, zp = in->zero_point;
    for (int32_t o = 0; o < out->c; ++o) {
        int32_t acc = L->bias[o];
        for (int32_t c = 0; c < cin; ++c) {
            acc += (x[c] - zp) * w[o * cin + c];
        }
        th_put(y, (uint32_t)o, out->bits,
               th_requant_clamp(acc, L->mult[o], L->shift[o], out->zero_point, L->act_min, L->act_max));
    }
}

static void fc_generic(TH_KERNEL_ARGS, const int ab, const int wb)
{
    (void)in2;
    const uint32_t cin = in->c;
    const uint32_t wrb = th_row_bytes(cin, wb);
    int16_t *col = (int16_t *)scratch;
    th_unpack_centered(arena + in->offset, cin, ab, in->zero_point, col, wrb * (8u / (uint32_t)wb));
    th_generic_pixel(L, out, (const uint8_t *)L->weights, wrb, col, arena + out->offset, wb);
}

/* Scratch of every fc kernel: the largest of the matrix cores' job loop and the pair's fallback (fc_s8: one
 * q15 column, planned as pointwise_s8's two; fc_generic: one centred column padded to whole weight bytes). */
uint32_t th_fc_scratch_bytes(const th_layer_t *L, const th_tensor_t *in, const th_tensor_t *out)
{
    const uint32_t cin = in->c;
    const int wb = L->w_bits;
    const uint32_t fallback =
        in->bits == 8 && wb == 8 ? 2u * 2u * th_ru4(cin) : 2u * th_row_bytes(cin, wb) * (8u / (uint32_t)wb);
    const uint32_t fast = th_fc_run_scratch_bytes(cin, out->c, wb);
    return th_ru4(fallback > fast ? fallback : fast);
}

TH_FC_PAIR(8, 8, fc_s8(L, in, in2, out, arena, scratch))
TH_FC_PAIR(8, 4, fc_generic(L, in, in2, out, arena, scratch, 8, 4))
TH_FC_PAIR(8, 2, fc_generic(L, in, in2, out, arena, scratch, 8, 2))
TH_FC_PAIR(4, 8, fc_generic(L, in, in2, out, arena, scratch, 4, 8))
TH_FC_PAIR(4, 4, fc_generic(L, in, in2, out, arena, scratch, 4, 4))
TH_FC_PAIR(4, 2, fc_generic(L, in, in2, out, arena, scratch, 4, 2))
TH_FC_PAIR(2, 8, fc_generic(L, in, in2, out, arena, scratch, 2, 8))
TH_FC_PAIR(2, 4, fc_generic(L, in, in2, out, arena, scratch, 2, 4))
TH_FC_PAIR(2, 2, fc_generic(L, in, in2, out, arena, scratch, 2, 2))
