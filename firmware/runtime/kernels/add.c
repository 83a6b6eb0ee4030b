/*
 * add.c - elementwise addition with TFLite ADD requantization (harness/reference/kernels.py:add):
 *   s_i = mbqm((x_i - zp_i) << left_shift, m_i, shift_i);  y = clamp(zp_out + mbqm(s_1 + s_2, m_out, s_out)).
 * Each operand has its own precision.
 *
 * Fast path (add_fast), when every multiplier is positive, every shift in [-22, 0] and the scaled values stay
 * below 2^30 (checked once per call, add_plan): each rescale is th_rq2 on t = (x - zp) << (left_shift + 1),
 * and t itself one MLA (x * 2^(left_shift + 1) - zp * 2^(left_shift + 1)); the output's rescale th_rq2 on
 * 2 (s_1 + s_2) with the zero point folded into its rounding constant; about 18 instructions per element at
 * 8 bits against about 100 for the exact 64-bit path. 8-bit tensors are read a byte at a time (LDRSB);
 * 4/2-bit ones a field at a time, and 4/2-bit outputs are assembled in a register and stored a byte at a time
 * (no read-modify-write). Otherwise add_exact (th_mbqm, th_put).
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

TH_ALWAYS_INLINE void add_exact(TH_KERNEL_ARGS, const int b1, const int b2, const int bo)
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

/* The fast path's constants: per input the MLA factor k = 2^(left_shift + 1) and addend -zp * k, the th_rq2
 * multiplier, rounding constant and shift; the output's. */
typedef struct {
    int32_t k, c1, c2, m1, m2, r1, r2, e1, e2, mo, ro, eo;
} add_plan_t;

/* 1 when the fast path is exact for L (fills P): every rescale's conditions of th_rq2 (th_requant.h). */
static int add_plan(const th_layer_t *L, const th_tensor_t *in, const th_tensor_t *in2, const th_tensor_t *out,
                    add_plan_t *P)
{
    const int32_t ls = L->left_shift;
    const int32_t s1 = L->in1_shift, s2 = L->in2_shift, so = L->out_shift;
    if (L->in1_mult <= 0 || L->in2_mult <= 0 || L->out_mult <= 0 || s1 < -22 || s1 > 0 || s2 < -22 || s2 > 0 ||
        so < -22 || so > 0 || ls < 0 || ls > 27) {
        return 0;
    }
    /* |t_i| = |x - zp| << (ls + 1) < 2^30 */
    const int64_t d1 = (int64_t)((1 << in->bits) - 1), d2 = (int64_t)((1 << in2->bits) - 1);
    const int64_t lim = (int64_t)1 << 30;
    if ((d1 << (ls + 1)) >= lim || (d2 << (ls + 1)) >= lim) {
        return 0;
    }
    /* |s_i| <= |t_i| m_i / 2^32 / 2^e_i + 1, and the output's t = 2 (s_1 + s_2) below 2^30 */
    const int64_t b1 = (((d1 << (ls + 1)) * (int64_t)L->in1_mult) >> 32 >> -s1) + 1;
    const int64_t b2 = (((d2 << (ls + 1)) * (int64_t)L->in2_mult) >> 32 >> -s2) + 1;
    if (2 * (b1 + b2) >= lim) {
        return 0;
    }
    P->k = 1 << (ls + 1);
    P->c1 = -in->zero_point * P->k;
    P->c2 = -in2->zero_point * P->k;
    P->m1 = L->in1_mult;
    P->m2 = L->in2_mult;
    P->e1 = -s1;
    P->e2 = -s2;
    P->r1 = th_rq_round(0, P->e1);
    P->r2 = th_rq_round(0, P->e2);
    P->mo = L->out_mult;
    P->eo = -so;
    P->ro = th_rq_round(out->zero_point, P->eo);
    return 1;
}

/* mbqm(t / 2, m, -e) (+ the zero point folded into r) under th_rq2's conditions. `shifts`: every rescale of the
 * layer shifts right (th_rq2); otherwise the sign correction is masked per rescale (mk: -1 when e > 0, else 0),
 * so no branch per element either way. */
TH_ALWAYS_INLINE int32_t add_rq(int32_t t, int32_t m, int32_t r, int32_t e, int32_t mk, const int shifts)
{
    if (shifts) {
        return th_rq2(t, m, r, e);
    }
    return (th_smmlar(t, m, r) + ((t >> 31) & mk)) >> e;
}

TH_ALWAYS_INLINE void add_fast(TH_KERNEL_ARGS, const add_plan_t *P, const int b1, const int b2, const int bo,
                               const int kind, const int shifts)
{
    (void)scratch;
    const uint8_t *x1 = arena + in->offset;
    const uint8_t *x2 = arena + in2->offset;
    uint8_t *y = arena + out->offset;
    const uint32_t C = out->c, npix = (uint32_t)out->h * out->w;
    const uint32_t r1 = th_row_bytes(C, b1), r2 = th_row_bytes(C, b2), ro = th_row_bytes(C, bo);
    const int32_t lo = L->act_min, hi = L->act_max, k = P->k, c1 = P->c1, c2 = P->c2;
    const add_plan_t p = *P;
    for (uint32_t px = 0; px < npix; ++px, x1 += r1, x2 += r2, y += ro) {
        uint32_t pend = 0, pos = 0;
        uint8_t *yb = y;
        for (uint32_t c = 0; c < C; ++c) {
            const int32_t t1 = th_get(x1, c, b1) * k + c1, t2 = th_get(x2, c, b2) * k + c2;
            const int32_t s = add_rq(t1, p.m1, p.r1, p.e1, p.e1 > 0 ? -1 : 0, shifts) +
                              add_rq(t2, p.m2, p.r2, p.e2, p.e2 > 0 ? -1 : 0, shifts);
            const int32_t v = th_clamp_as(add_rq(2 * s, p.mo, p.ro, p.eo, p.eo > 0 ? -1 : 0, shifts), lo, hi, bo, kind);
            if (bo == 8) {
                y[c] = (uint8_t)v;
            } else { /* fields of a byte in a register, the byte stored once */
                pend |= ((uint32_t)v & ((1u << bo) - 1u)) << pos;
                pos += (uint32_t)bo;
                if (pos == 8u) {
                    *yb++ = (uint8_t)pend;
                    pend = 0, pos = 0;
                }
            }
        }
        if (bo != 8 && pos != 0u) {
            *yb = (uint8_t)pend;
        }
    }
}

void th_add(TH_KERNEL_ARGS)
{
    add_plan_t P;
    const int b1 = in->bits, b2 = in2->bits, bo = out->bits;
    if (add_plan(L, in, in2, out, &P)) {
        const int kind = th_clamp_kind(L, bo), shifts = P.e1 > 0 && P.e2 > 0 && P.eo > 0;
        const int full = kind == TH_CLAMP_FULL;
        if (b1 == 8 && b2 == 8 && bo == 8) {
            if (full) {
                if (shifts) {
                    add_fast(L, in, in2, out, arena, scratch, &P, 8, 8, 8, TH_CLAMP_FULL, 1);
                } else {
                    add_fast(L, in, in2, out, arena, scratch, &P, 8, 8, 8, TH_CLAMP_FULL, 0);
                }
            } else if (shifts) {
                add_fast(L, in, in2, out, arena, scratch, &P, 8, 8, 8, TH_CLAMP_ANY, 1);
            } else {
                add_fast(L, in, in2, out, arena, scratch, &P, 8, 8, 8, TH_CLAMP_ANY, 0);
            }
        } else if (b1 == b2 && b1 == bo && full) { /* one sub-byte precision throughout */
            if (b1 == 4) {
                add_fast(L, in, in2, out, arena, scratch, &P, 4, 4, 4, TH_CLAMP_FULL, 0);
            } else {
                add_fast(L, in, in2, out, arena, scratch, &P, 2, 2, 2, TH_CLAMP_FULL, 0);
            }
        } else {
            add_fast(L, in, in2, out, arena, scratch, &P, b1, b2, bo, TH_CLAMP_ANY, 0);
        }
        return;
    }
    if (b1 == 8 && b2 == 8 && bo == 8) {
        add_exact(L, in, in2, out, arena, scratch, 8, 8, 8);
    } else {
        add_exact(L, in, in2, out, arena, scratch, b1, b2, bo);
    }
}

uint32_t th_add_scratch_bytes(const th_layer_t *L, const th_tensor_t *in, const th_tensor_t *out)
{
    (void)L, (void)in, (void)out;
    return 0u;
}
