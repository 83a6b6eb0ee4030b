/*
 * avgpool.c - average pooling without padding: acc = sum over the window of (x - zp), requantized by one
 * multiplier/shift that already holds 1/window (harness/reference/kernels.py:avgpool). Any in/out precision.
 *
 * Fast path (pool_fast), when the multiplier is positive, the shift in [-22, 7] and the window sums stay small
 * (checked once per call): each output is th_rq2 on t = (sum x - n zp) << ls, t one MLA of the sum; 8-bit
 * inputs sum four channels a word with two SXTAB16 per tap (16-bit lanes, up to 255 taps), 4/2-bit inputs a
 * field at a time; 4/2-bit outputs are assembled in a register and stored a byte at a time. Otherwise
 * pool_exact (th_requant_clamp, th_put).
 *
 * Division mode (shift[0] == TH_AVGPOOL_DIVIDE, harness/ops/avgpool.py DIVIDE): TFLite's integer AVERAGE_POOL_2D,
 * for imported .tflite models: the raw window sum divided by the tap count, rounded half away from zero, clamped.
 */
#include "common.h"

TH_ALWAYS_INLINE void pool_exact(TH_KERNEL_ARGS, const int ab, const int ob)
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

/* The fast path's requantization: t = sum * k + c (k = 2^ls, c = -n zp k), then th_rq2 (or one SMMLAR when
 * there is no right shift). */
typedef struct {
    int32_t k, c, m, r, e;
} pool_plan_t;

static int pool_plan(const th_layer_t *L, const th_tensor_t *in, const th_tensor_t *out, pool_plan_t *P)
{
    const int32_t s = L->shift[0], n = (int32_t)(L->kh * L->kw);
    const int32_t ls = s > 0 ? s + 1 : 1;
    if (L->mult[0] <= 0 || s < -22 || s > 7 || n > 255) {
        return 0;
    }
    if (((int64_t)n * ((1 << in->bits) - 1) << ls) >= ((int64_t)1 << 30)) { /* |t| < 2^30 */
        return 0;
    }
    P->k = 1 << ls;
    P->c = -n * in->zero_point * P->k;
    P->m = L->mult[0];
    P->e = s < 0 ? -s : 0;
    P->r = th_rq_round(out->zero_point, P->e);
    return 1;
}

TH_ALWAYS_INLINE int32_t pool_rq(int32_t sum, const pool_plan_t *P, int32_t lo, int32_t hi, const int ob,
                                 const int kind)
{
    const int32_t t = sum * P->k + P->c;
    const int32_t v = P->e > 0 ? th_rq2(t, P->m, P->r, P->e) : th_smmlar(t, P->m, P->r);
    return th_clamp_as(v, lo, hi, ob, kind);
}

TH_ALWAYS_INLINE void pool_fast(TH_KERNEL_ARGS, const pool_plan_t *P, const int ab, const int ob, const int kind)
{
    (void)in2;
    (void)scratch;
    const uint8_t *x = arena + in->offset;
    uint8_t *y = arena + out->offset;
    const uint32_t C = out->c, irb = th_row_bytes(C, ab), orb = th_row_bytes(C, ob);
    const uint32_t kh = L->kh, kw = L->kw, rstep = in->w * irb;
    const int32_t lo = L->act_min, hi = L->act_max;
    const pool_plan_t p = *P;
    for (uint32_t oy = 0; oy < out->h; ++oy) {
        for (uint32_t ox = 0; ox < out->w; ++ox) {
            const uint8_t *win = x + ((oy * L->stride) * in->w + ox * L->stride) * irb;
            uint8_t *yrow = y + (oy * out->w + ox) * orb;
            uint32_t c = 0;
#if TH_USE_SIMD
            if (ab == 8) { /* four channels a word: even and odd channels in two 16-bit-lane sums */
                for (; c + 4u <= C; c += 4u) {
                    uint32_t se = 0, so = 0;
                    for (uint32_t i = 0; i < kh; ++i) {
                        const uint8_t *r = win + i * rstep + c;
                        for (uint32_t j = 0; j < kw; ++j, r += irb) {
                            const uint32_t v = th_load32(r);
                            se = th_sxtab16(se, v);
                            so = th_sxtab16_ror8(so, v);
                        }
                    }
                    const int32_t v0 = pool_rq((int16_t)se, &p, lo, hi, ob, kind);
                    const int32_t v1 = pool_rq((int16_t)so, &p, lo, hi, ob, kind);
                    const int32_t v2 = pool_rq((int32_t)se >> 16, &p, lo, hi, ob, kind);
                    const int32_t v3 = pool_rq((int32_t)so >> 16, &p, lo, hi, ob, kind);
                    if (ob == 8) {
                        yrow[c] = (uint8_t)v0;
                        yrow[c + 1u] = (uint8_t)v1;
                        yrow[c + 2u] = (uint8_t)v2;
                        yrow[c + 3u] = (uint8_t)v3;
                    } else { /* four fields: a byte (2 bits) or two (4 bits), stored once each */
                        const uint32_t f = ((uint32_t)v0 & ((1u << ob) - 1u)) |
                                           (((uint32_t)v1 & ((1u << ob) - 1u)) << ob) |
                                           (((uint32_t)v2 & ((1u << ob) - 1u)) << (2 * ob)) |
                                           (((uint32_t)v3 & ((1u << ob) - 1u)) << (3 * ob));
                        yrow[(c * (uint32_t)ob) / 8u] = (uint8_t)f;
                        if (ob == 4) {
                            yrow[(c * (uint32_t)ob) / 8u + 1u] = (uint8_t)(f >> 8);
                        }
                    }
                }
            }
#endif
            uint32_t pend = 0, pos = 0; /* 4/2-bit outputs: the fields of a byte in a register (c starts a byte) */
            for (; c < C; ++c) {
                int32_t sum = 0;
                for (uint32_t i = 0; i < kh; ++i) {
                    const uint8_t *r = win + i * rstep;
                    for (uint32_t j = 0; j < kw; ++j, r += irb) {
                        sum += th_get(r, c, ab);
                    }
                }
                const int32_t v = pool_rq(sum, &p, lo, hi, ob, kind);
                if (ob == 8) {
                    yrow[c] = (uint8_t)v;
                    continue;
                }
                pend |= ((uint32_t)v & ((1u << ob) - 1u)) << pos;
                pos += (uint32_t)ob;
                if (pos == 8u) {
                    yrow[(c * (uint32_t)ob) / 8u] = (uint8_t)pend;
                    pend = 0, pos = 0;
                }
            }
            if (ob != 8 && pos != 0u) {
                yrow[((C - 1u) * (uint32_t)ob) / 8u] = (uint8_t)pend;
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
    pool_plan_t P;
    const int ab = in->bits, ob = out->bits;
    if (L->shift[0] == TH_AVGPOOL_DIVIDE) { /* before the plan: the divide marker is no shift */
        avgpool_divide(L, in, in2, out, arena, scratch, ab, ob);
        return;
    }
    if (pool_plan(L, in, out, &P)) {
        const int full = th_clamp_kind(L, ob) == TH_CLAMP_FULL;
        if (ab == 8 && ob == 8) {
            if (full) {
                pool_fast(L, in, in2, out, arena, scratch, &P, 8, 8, TH_CLAMP_FULL);
            } else {
                pool_fast(L, in, in2, out, arena, scratch, &P, 8, 8, TH_CLAMP_ANY);
            }
        } else if (ab == 8 && ob == 4 && full) {
            pool_fast(L, in, in2, out, arena, scratch, &P, 8, 4, TH_CLAMP_FULL);
        } else if (ab == 8 && ob == 2 && full) {
            pool_fast(L, in, in2, out, arena, scratch, &P, 8, 2, TH_CLAMP_FULL);
        } else {
            pool_fast(L, in, in2, out, arena, scratch, &P, ab, ob, TH_CLAMP_ANY);
        }
        return;
    }
    if (ab == 8 && ob == 8) {
        pool_exact(L, in, in2, out, arena, scratch, 8, 8);
    } else {
        pool_exact(L, in, in2, out, arena, scratch, ab, ob);
    }
}

uint32_t th_avgpool_scratch_bytes(const th_layer_t *L, const th_tensor_t *in, const th_tensor_t *out)
{
    (void)L, (void)in, (void)out;
    return 0u;
}
