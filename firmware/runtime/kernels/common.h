/*
 * common.h - internal to kernels/: what the kernel files share besides the public contract (th_kernels.h):
 * the DSP instruction primitives (ACLE names, or portable emulations), the fast requantization (th_rq2 under
 * th_rq_fast_ok), the int8 x q15 core of matmul.c and the generic packed pixel of the fallbacks.
 *
 * SIMD: with __ARM_FEATURE_DSP (Cortex-M4/M7/M33/M55) the kernels use SXTB16/SXTAB16/SMLAD/SMMLAR/...; without
 * it the fallbacks run in plain C. Host tests define TH_EMULATE_DSP to run the SIMD code paths through portable
 * emulations of those instructions, and TH_NO_DSP forces the plain path on a DSP core.
 */
#ifndef TH_KERNELS_COMMON_H
#define TH_KERNELS_COMMON_H

#include <stdint.h>
#include <string.h>

#include "th_kernels.h"
#include "th_model.h"
#include "th_pack.h"
#include "th_requant.h"

/* ---------------------------------------------------------------------------------------------------------- */
/* Dual 16-bit MAC primitives (ACLE names). */
#if defined(__ARM_FEATURE_SAT) || defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
#endif
#if defined(__ARM_FEATURE_DSP) && !defined(TH_NO_DSP)
#define TH_USE_SIMD 1
TH_ALWAYS_INLINE uint32_t th_sxtb16(uint32_t x) { return (uint32_t)__sxtb16((int32_t)x); }
/* GCC 12 neither has __ror nor folds a rotate into SXTB16's ROR #8 operand: say it in asm (saves a MOV) */
TH_ALWAYS_INLINE uint32_t th_sxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
TH_ALWAYS_INLINE uint32_t th_sxtab16(uint32_t a, uint32_t b) { return (uint32_t)__sxtab16((int32_t)a, (int32_t)b); }
TH_ALWAYS_INLINE uint32_t th_uxtb16(uint32_t x) { return (uint32_t)__uxtb16((int32_t)x); }
TH_ALWAYS_INLINE uint32_t th_sxtab16_ror8(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
TH_ALWAYS_INLINE int32_t th_smlad(uint32_t a, uint32_t b, int32_t acc) { return __smlad((int32_t)a, (int32_t)b, acc); }
TH_ALWAYS_INLINE int32_t th_smlabb(uint32_t a, uint32_t b, int32_t acc) { return __smlabb((int32_t)a, (int32_t)b, acc); }
TH_ALWAYS_INLINE int32_t th_smlatt(uint32_t a, uint32_t b, int32_t acc) { return __smlatt((int32_t)a, (int32_t)b, acc); }
TH_ALWAYS_INLINE int32_t th_smlabt(uint32_t a, uint32_t b, int32_t acc) { return __smlabt((int32_t)a, (int32_t)b, acc); }
TH_ALWAYS_INLINE int32_t th_smlatb(uint32_t a, uint32_t b, int32_t acc) { return __smlatb((int32_t)a, (int32_t)b, acc); }
TH_ALWAYS_INLINE uint32_t th_ssub16(uint32_t a, uint32_t b) { return (uint32_t)__ssub16((int16x2_t)a, (int16x2_t)b); }
TH_ALWAYS_INLINE uint32_t th_usada8(uint32_t a, uint32_t b, uint32_t acc) { return __usada8(a, b, acc); }
TH_ALWAYS_INLINE int32_t th_smuad(uint32_t a, uint32_t b) { return __smuad((int32_t)a, (int32_t)b); }
TH_ALWAYS_INLINE uint32_t th_uxtab16_ror8(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm("uxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
TH_ALWAYS_INLINE uint32_t th_rev16(uint32_t x)
{
    uint32_t r;
    __asm("rev16 %0, %1" : "=r"(r) : "r"(x));
    return r;
}
/* a + bits 8..15 of b */
TH_ALWAYS_INLINE uint32_t th_uxtab_ror8(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm("uxtab %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
#elif defined(TH_EMULATE_DSP)
#define TH_USE_SIMD 1
TH_ALWAYS_INLINE uint32_t th_lo16(int32_t v) { return (uint32_t)v & 0xFFFFu; }
TH_ALWAYS_INLINE int32_t th_h0(uint32_t v) { return (int32_t)(int16_t)(v & 0xFFFFu); }
TH_ALWAYS_INLINE int32_t th_h1(uint32_t v) { return (int32_t)(int16_t)(v >> 16); }
TH_ALWAYS_INLINE uint32_t th_sxtb16(uint32_t x)
{
    return th_lo16((int8_t)(x & 0xFFu)) | (th_lo16((int8_t)((x >> 16) & 0xFFu)) << 16);
}
TH_ALWAYS_INLINE uint32_t th_sxtb16_ror8(uint32_t x) { return th_sxtb16((x >> 8) | (x << 24)); }
TH_ALWAYS_INLINE uint32_t th_uxtb16(uint32_t x) { return x & 0x00FF00FFu; }
TH_ALWAYS_INLINE uint32_t th_sxtab16(uint32_t a, uint32_t b)
{
    uint32_t e = th_sxtb16(b);
    return ((a + e) & 0xFFFFu) | (((a >> 16) + (e >> 16)) << 16);
}
TH_ALWAYS_INLINE uint32_t th_sxtab16_ror8(uint32_t a, uint32_t b) { return th_sxtab16(a, (b >> 8) | (b << 24)); }
TH_ALWAYS_INLINE int32_t th_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(th_h0(a) * th_h0(b)) + (uint32_t)(th_h1(a) * th_h1(b)));
}
TH_ALWAYS_INLINE int32_t th_smlabb(uint32_t a, uint32_t b, int32_t acc) { return acc + th_h0(a) * th_h0(b); }
TH_ALWAYS_INLINE int32_t th_smlatt(uint32_t a, uint32_t b, int32_t acc) { return acc + th_h1(a) * th_h1(b); }
TH_ALWAYS_INLINE int32_t th_smlabt(uint32_t a, uint32_t b, int32_t acc) { return acc + th_h0(a) * th_h1(b); }
TH_ALWAYS_INLINE int32_t th_smlatb(uint32_t a, uint32_t b, int32_t acc) { return acc + th_h1(a) * th_h0(b); }
TH_ALWAYS_INLINE uint32_t th_ssub16(uint32_t a, uint32_t b)
{
    return ((a - b) & 0xFFFFu) | (((a >> 16) - (b >> 16)) << 16);
}
TH_ALWAYS_INLINE int32_t th_smuad(uint32_t a, uint32_t b) { return th_smlad(a, b, 0); }
/* lanes (a.lo + byte 1 of b, a.hi + byte 3 of b) */
TH_ALWAYS_INLINE uint32_t th_uxtab16_ror8(uint32_t a, uint32_t b)
{
    return ((a + ((b >> 8) & 0xFFu)) & 0xFFFFu) | ((((a >> 16) + (b >> 24)) & 0xFFFFu) << 16);
}
TH_ALWAYS_INLINE uint32_t th_rev16(uint32_t x) { return ((x & 0x00FF00FFu) << 8) | ((x >> 8) & 0x00FF00FFu); }
TH_ALWAYS_INLINE uint32_t th_uxtab_ror8(uint32_t a, uint32_t b) { return a + ((b >> 8) & 0xFFu); }
TH_ALWAYS_INLINE uint32_t th_usada8(uint32_t a, uint32_t b, uint32_t acc)
{
    for (int i = 0; i < 32; i += 8) {
        const int32_t d = (int32_t)((a >> i) & 0xFFu) - (int32_t)((b >> i) & 0xFFu);
        acc += (uint32_t)(d < 0 ? -d : d);
    }
    return acc;
}
#else
#define TH_USE_SIMD 0
#endif

TH_ALWAYS_INLINE uint32_t th_ru4(uint32_t n) { return (n + 3u) & ~3u; }

/* x >> s (logical) for s in 0..32, where 32 gives 0 (a register-specified LSR on Arm). */
#if defined(__ARM_FEATURE_DSP) && !defined(TH_NO_DSP)
TH_ALWAYS_INLINE uint32_t th_lsr(int32_t x, int32_t s)
{
    uint32_t r;
    __asm("lsr %0, %1, %2" : "=r"(r) : "r"(x), "r"(s));
    return r;
}
#else
TH_ALWAYS_INLINE uint32_t th_lsr(int32_t x, int32_t s) { return s >= 32 ? 0u : (uint32_t)x >> s; }
#endif

/* Halfword packing (PKHBT / PKHTB): (lo16(a), lo16(b)) and (hi16(a), hi16(b)). */
#if defined(__ARM_FEATURE_DSP) && !defined(TH_NO_DSP)
TH_ALWAYS_INLINE uint32_t th_pack_lo(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
TH_ALWAYS_INLINE uint32_t th_pack_hi(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm("pkhtb %0, %2, %1, asr #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
#else
TH_ALWAYS_INLINE uint32_t th_pack_lo(uint32_t a, uint32_t b) { return (a & 0xFFFFu) | (b << 16); }
TH_ALWAYS_INLINE uint32_t th_pack_hi(uint32_t a, uint32_t b) { return (a >> 16) | (b & 0xFFFF0000u); }
#endif

/* Unaligned little-endian 32-bit store (a single STR on Cortex-M3 and up). */
TH_ALWAYS_INLINE void th_store32(void *p, uint32_t v) { memcpy(p, &v, 4); }

/* ---------------------------------------------------------------------------------------------------------- */
/* Fast requantization (th_rq2 in th_requant.h) */

/* 1 when th_rq2 (th_requant.h) is exact for output channels [0, n) of L: every multiplier > 0, every shift in
 * [-22, max_left], and (|bias| + taps * max|x - zp| * max|w|) << max(shift, 0) < 2^lim_log2 for every channel
 * (lim_log2 <= 29 keeps the doubled, left-shifted accumulator under 2^30; kernels that scale their
 * accumulators pass less). `rnd` (if not NULL) is set to 1 when every shift is negative (th_rq2 rounds every
 * channel), else 0. Checked once per call. */
static inline int th_rq_fast_ok(const th_layer_t *L, uint32_t n, uint32_t taps, int ab, int wb, int lim_log2,
                                int max_left, int *rnd)
{
    const uint64_t dot64 = (uint64_t)taps * (uint64_t)((1 << ab) - 1) * (uint64_t)((1 << (wb - 1)) - 1);
    const uint32_t lim = 1u << lim_log2;
    int all_neg = 1;
    if (dot64 >= lim) {
        return 0;
    }
    for (uint32_t o = 0; o < n; ++o) {
        const int32_t s = L->shift[o], bias = L->bias[o];
        const uint32_t b = bias < 0 ? 0u - (uint32_t)bias : (uint32_t)bias; /* |INT32_MIN| = 2^31 */
        const int32_t left = s > 0 ? s : 0;
        if (s < -22 || s > max_left || left >= lim_log2 || L->mult[o] <= 0 || (uint32_t)dot64 >= (lim >> left) ||
            b >= (lim >> left) - (uint32_t)dot64) {
            return 0;
        }
        all_neg &= s < 0;
    }
    if (rnd != 0) {
        *rnd = all_neg;
    }
    return 1;
}

/* Requantization parameters of one output channel for th_rq2, derived from L once per channel. `ls`: the
 * left shift (1 + max(shift, 0)) that turns the accumulator into th_rq2's t. */
typedef struct {
    int32_t m, r, e, ls, mk; /* mk: -1 when e > 0 (th_rq2's sign correction applies), else 0 */
} th_rq_t;

TH_ALWAYS_INLINE th_rq_t th_rq_channel(const th_layer_t *L, uint32_t o, int32_t zp)
{
    th_rq_t q;
    const int32_t s = L->shift[o];
    q.m = L->mult[o];
    q.e = s < 0 ? -s : 0;
    q.ls = s > 0 ? s + 1 : 1;
    q.r = th_rq_round(zp, q.e);
    q.mk = q.e > 0 ? -1 : 0;
    return q;
}

/* How an ob-bit output is clamped to [act_min, act_max]: TH_CLAMP_FULL when that is the whole ob-bit range (one
 * saturation), TH_CLAMP_HI when only the top is narrower (ReLU6: saturation, then a minimum), else both bounds. */
#define TH_CLAMP_ANY 0
#define TH_CLAMP_FULL 1
#define TH_CLAMP_HI 2
TH_ALWAYS_INLINE int th_clamp_kind(const th_layer_t *L, int ob)
{
    if (L->act_min != -(1 << (ob - 1))) {
        return TH_CLAMP_ANY;
    }
    return L->act_max == (1 << (ob - 1)) - 1 ? TH_CLAMP_FULL : TH_CLAMP_HI;
}

/* v clamped to [lo, hi] as `kind` (a constant) allows. */
TH_ALWAYS_INLINE int32_t th_clamp_as(int32_t v, int32_t lo, int32_t hi, const int ob, const int kind)
{
#if defined(__ARM_FEATURE_SAT)
    if (kind == TH_CLAMP_FULL) {
        return __ssat(v, ob);
    }
    if (kind == TH_CLAMP_HI) {
        v = __ssat(v, ob);
        return v > hi ? hi : v;
    }
#else
    (void)ob;
    (void)kind;
#endif
    return th_clamp(v, lo, hi);
}

/* The output of one channel from t = acc << q.ls: th_rq2 when `rnd` (every shift of the layer negative), else
 * with the sign correction masked per channel. */
TH_ALWAYS_INLINE int32_t th_rq_out(int32_t t, th_rq_t q, const int rnd)
{
    if (rnd) {
        return th_rq2(t, q.m, q.r, q.e);
    }
    return (th_smmlar(t, q.m, q.r) + ((t >> 31) & q.mk)) >> q.e;
}

/* Output channel c of n pixels from their t values: ob == 8 writes y[i * ystep], else th_put(y + i * ystep, c).
 * `kind`: th_clamp_kind of the layer. */
TH_ALWAYS_INLINE void th_rq_row(const int32_t *t, uint32_t n, th_rq_t q, int32_t lo, int32_t hi, uint8_t *y,
                                uint32_t ystep, uint32_t c, const int ob, const int rnd, const int kind)
{
    const int32_t *const end = t + n;
    for (; t != end; ++t, y += ystep) {
        const int32_t v = th_clamp_as(th_rq_out(*t, q, rnd), lo, hi, ob, kind);
        if (ob == 8) {
            *y = (uint8_t)v;
        } else {
            th_put(y, c, ob, v);
        }
    }
}

/* ---------------------------------------------------------------------------------------------------------- */
/* int8 x q15 matrix core shared by conv2d/pointwise/fc a8w8 (kernels/matmul.c).
 *
 * A "q15 column" holds the K centred inputs (x - zp) of one output pixel as int16, in *interleaved* order: each
 * full group of four inputs x0 x1 x2 x3 is stored as x0 x2 x1 x3, so one 32-bit load gives the (x0, x2) pair
 * that SXTB16 extracts from four int8 weights and the next gives (x1, x3). The K % 4 tail is stored in order. */

/* Writes n int8 inputs centred by zp as an interleaved q15 column (n % 4 tail in order). */
void th_q15_column_s8(const int8_t *x, uint32_t n, int32_t zp, int16_t *dst);
/* Reorders a plain q15 column of length K into the interleaved order, in place. */
void th_q15_interleave(int16_t *col, uint32_t k);
/* Output rows y0 (and y1 when col1 != NULL) of a layer with `cout` rows of K int8 weights each: bias, dot
 * product, per-channel requantization, written at out->bits. Blocks 2 output channels x 2 pixels. */
void th_mm_s8_q15(const th_layer_t *L, const th_tensor_t *out, const int8_t *w, uint32_t k, uint32_t cout,
                  const int16_t *col0, const int16_t *col1, uint8_t *y0, uint8_t *y1);

/* Generic packed core (any A, W): one output pixel from a plain centred column whose every weight row segment
 * is padded to whole weight bytes (th_unpack_centered with n_padded). `wbytes` = bytes of one output channel. */
TH_ALWAYS_INLINE void th_generic_pixel(const th_layer_t *L, const th_tensor_t *out, const uint8_t *w,
                                       uint32_t wbytes, const int16_t *col, uint8_t *yrow, int wb)
{
    const uint32_t cout = out->c;
    const int ob = out->bits;
    for (uint32_t o = 0; o < cout; ++o) {
        int32_t acc = th_dot_packed(w + o * wbytes, col, wbytes, wb, L->bias[o]);
        th_put(yrow, o, ob, th_requant_clamp(acc, L->mult[o], L->shift[o], out->zero_point, L->act_min, L->act_max));
    }
}

#endif /* TH_KERNELS_COMMON_H */
