/*
 * th_kernels.h - the kernels a generated layer table points at, and the helpers they share.
 *
 * Naming: th_<op>_a<A>w<W> for op in {conv2d, depthwise, pointwise, fc} and every (A, W) in {2,4,8}^2; the
 * output precision (2/4/8) is read from the output tensor. th_add and th_avgpool handle every precision.
 * th_<op>_ref are plain int8 loops (a8w8 only, any output precision) that the benchmark compares against.
 *
 * Each (A, W) pair is its own function. Today a8w8 is hand-optimised and the other pairs are compile-time
 * specialisations of one generic packed kernel (TH_GENERIC_PAIR in each family file). To give a pair a
 * specialised kernel, delete its TH_GENERIC_PAIR line and define the function (same name, same contract);
 * harness/codegen/memory.py:layer_scratch_bytes must cover its scratch needs.
 *
 * Scratch (bytes) each kernel needs in `scratch`, K = kh*kw*cin, ru4(n) = n rounded up to a multiple of 4:
 *   conv2d a8w8:          4 * ru4(K)          (two int16 im2col columns)
 *   conv2d generic:       2 * kh*kw*cinp      (one int16 column; cinp = cin rounded up to whole weight bytes)
 *   pointwise/fc a8w8:    4 * ru4(cin)
 *   pointwise/fc generic: 2 * cinp
 *   depthwise, add, avgpool, *_ref: 0
 *
 * SIMD: with __ARM_FEATURE_DSP (Cortex-M4/M7/M33/M55) the a8w8 kernels use SXTB16/SXTAB16/SMLAD; without it
 * they run the same blocking in plain C. Host tests define TH_EMULATE_DSP to run the SIMD code path through
 * portable emulations of those instructions, and TH_NO_DSP forces the plain path on a DSP core.
 */
#ifndef TH_KERNELS_H
#define TH_KERNELS_H

#include <stdint.h>
#include <string.h>

#include "th_model.h"
#include "th_pack.h"
#include "th_requant.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TH_KERNEL_ARGS                                                                                          \
    const th_layer_t *L, const th_tensor_t *in, const th_tensor_t *in2, const th_tensor_t *out, uint8_t *arena, \
        void *scratch

#define TH_DECLARE_PAIRS(op)                                                                                    \
    void th_##op##_a2w2(TH_KERNEL_ARGS);                                                                        \
    void th_##op##_a2w4(TH_KERNEL_ARGS);                                                                        \
    void th_##op##_a2w8(TH_KERNEL_ARGS);                                                                        \
    void th_##op##_a4w2(TH_KERNEL_ARGS);                                                                        \
    void th_##op##_a4w4(TH_KERNEL_ARGS);                                                                        \
    void th_##op##_a4w8(TH_KERNEL_ARGS);                                                                        \
    void th_##op##_a8w2(TH_KERNEL_ARGS);                                                                        \
    void th_##op##_a8w4(TH_KERNEL_ARGS);                                                                        \
    void th_##op##_a8w8(TH_KERNEL_ARGS);                                                                        \
    void th_##op##_ref(TH_KERNEL_ARGS);

TH_DECLARE_PAIRS(conv2d)
TH_DECLARE_PAIRS(depthwise)
TH_DECLARE_PAIRS(pointwise)
TH_DECLARE_PAIRS(fc)
void th_add(TH_KERNEL_ARGS);
void th_avgpool(TH_KERNEL_ARGS);

/* Defines th_<op>_a<A>w<W> as the generic kernel `impl(..., A, W)` specialised at compile time. */
#define TH_GENERIC_PAIR(op, impl, A, W)                                                                         \
    void th_##op##_a##A##w##W(TH_KERNEL_ARGS)                                                                   \
    {                                                                                                           \
        impl(L, in, in2, out, arena, scratch, A, W);                                                            \
    }

/* ---------------------------------------------------------------------------------------------------------- */
/* Dual 16-bit MAC primitives (ACLE names). */
#if defined(__ARM_FEATURE_DSP) && !defined(TH_NO_DSP)
#include <arm_acle.h>
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
TH_ALWAYS_INLINE uint32_t th_sxtab16_ror8(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
TH_ALWAYS_INLINE int32_t th_smlad(uint32_t a, uint32_t b, int32_t acc) { return __smlad((int32_t)a, (int32_t)b, acc); }
TH_ALWAYS_INLINE int32_t th_smlabb(uint32_t a, uint32_t b, int32_t acc) { return __smlabb((int32_t)a, (int32_t)b, acc); }
TH_ALWAYS_INLINE int32_t th_smlatt(uint32_t a, uint32_t b, int32_t acc) { return __smlatt((int32_t)a, (int32_t)b, acc); }
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
#else
#define TH_USE_SIMD 0
#endif

TH_ALWAYS_INLINE uint32_t th_ru4(uint32_t n) { return (n + 3u) & ~3u; }

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

#ifdef __cplusplus
}
#endif
#endif /* TH_KERNELS_H */
