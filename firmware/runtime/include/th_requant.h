/*
 * th_requant.h - TFLite integer requantization, bit-exact with harness/reference/requant.py.
 *
 *   th_srdhm(a, b)    SaturatingRoundingDoublingHighMul: a*b/2^31, nearest, ties toward +inf;
 *                     INT32_MIN*INT32_MIN saturates to INT32_MAX.
 *   th_rdbpot(x, e)   RoundingDivideByPOT: x/2^e, nearest, ties away from zero; e in 0..31.
 *   th_mbqm(x, m, s)  MultiplyByQuantizedMultiplier; s > 0 shifts left (wrapping in two's complement, the
 *                     project's definition of TFLite's undefined overflow), s < 0 rounds right.
 *
 * Relies on `>>` of a negative signed value being arithmetic, which GCC and Clang guarantee.
 */
#ifndef TH_REQUANT_H
#define TH_REQUANT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

static inline int32_t th_srdhm(int32_t a, int32_t b)
{
    int64_t ab = (int64_t)a * (int64_t)b;
    /* gemmlowp adds 2^30 (or 1 - 2^30 when ab < 0) and truncates toward zero; both cases equal
     * floor((ab + 2^30) / 2^31), which needs no 64-bit division (SMULL + shifts on Cortex-M). */
    if (ab == ((int64_t)1 << 62)) {
        return INT32_MAX; /* only INT32_MIN * INT32_MIN gets here */
    }
    return (int32_t)((ab + ((int64_t)1 << 30)) >> 31);
}

static inline int32_t th_rdbpot(int32_t x, int exponent)
{
    int32_t mask = (int32_t)((1u << exponent) - 1u);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

static inline int32_t th_mbqm(int32_t x, int32_t multiplier, int32_t shift)
{
    int left = shift > 0 ? (int)shift : 0;
    int right = shift > 0 ? 0 : (int)-shift;
    int32_t shifted = (int32_t)((uint32_t)x << left); /* wraps instead of signed-overflow UB */
    return th_rdbpot(th_srdhm(shifted, multiplier), right);
}

/* out_zp + mbqm(acc), clamped to [lo, hi]: one output of a conv/fc/pool layer. */
static inline int32_t th_requant_clamp(int32_t acc, int32_t multiplier, int32_t shift, int32_t out_zp, int32_t lo,
                                       int32_t hi)
{
    /* clamp before adding the zero point: mbqm may be near INT32_MAX, where `+ out_zp` would overflow */
    int32_t v = th_mbqm(acc, multiplier, shift);
    int32_t vlo = lo - out_zp, vhi = hi - out_zp;
    return (v < vlo ? vlo : (v > vhi ? vhi : v)) + out_zp;
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Fast path, exact under conditions a kernel checks once per layer (th_rq_fast_ok in th_kernels.h):
 *
 *   multiplier m > 0, shift s in [-22, 31], and t = acc * 2^(max(s, 0) + 1) within |t| < 2^30.
 *
 * With e = max(-s, 0) and r = (2 zp + 1) << (e - 1) (r = zp when e = 0):
 *   out_zp + mbqm(acc, m, s) == th_rq2(t, m, r, e)   (e >= 1)     == th_smmlar(t, m, zp)   (e == 0)
 *   srdhm(acc << s, m) = floor((t m + 2^31) / 2^32): one SMMLAR, which also adds r (zp and the rounding half);
 *   rdbpot's "ties away from zero" needs 1 subtracted for negative values: the sign of t is the sign of the
 *   product (m > 0), and when the product rounds to 0 the subtraction is absorbed by the shift.
 * No intermediate overflows: |srdhm| < 2^29 and |r| < 2^29.01 for e <= 22 and |zp| <= 128. */

#if defined(__ARM_FEATURE_DSP) && !defined(TH_NO_DSP) && defined(__GNUC__)
/* (r * 2^32 + a * b + 2^31) >> 32 */
static inline __attribute__((always_inline)) int32_t th_smmlar(int32_t a, int32_t b, int32_t r)
{
    int32_t d;
    __asm("smmlar %0, %1, %2, %3" : "=r"(d) : "r"(a), "r"(b), "r"(r));
    return d;
}
#else
static inline int32_t th_smmlar(int32_t a, int32_t b, int32_t r)
{
    return (int32_t)(((int64_t)r * 4294967296LL + (int64_t)a * (int64_t)b + 2147483648LL) >> 32);
}
#endif

/* out_zp + mbqm(t / 2, m, -e) under the fast-path conditions, e >= 1; r = th_rq_round(zp, e). */
static inline int32_t th_rq2(int32_t t, int32_t m, int32_t r, int32_t e)
{
    return (th_smmlar(t, m, r) + (t >> 31)) >> e;
}

/* The constant th_rq2 adds: (2 zp + 1) << (e - 1) == zp * 2^e + 2^(e-1); zp itself when e == 0. */
static inline int32_t th_rq_round(int32_t zp, int32_t e)
{
    return e > 0 ? (int32_t)((uint32_t)(2 * zp + 1) << (e - 1)) : zp;
}

static inline int32_t th_clamp(int32_t v, int32_t lo, int32_t hi)
{
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

#ifdef __cplusplus
}
#endif
#endif /* TH_REQUANT_H */
