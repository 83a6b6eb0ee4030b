/*
 * th_kernels.h - the kernels a generated layer table points at, and the scratch each one needs.
 *
 * Naming: th_<op>_a<A>w<W> for op in {conv2d, depthwise, pointwise, fc} and every (A, W) in {2,4,8}^2; the
 * output precision (2/4/8) is read from the output tensor. th_add and th_avgpool handle every precision.
 * th_<op>_ref are plain int8 loops (a8w8 only, any output precision) that the benchmark compares against.
 *
 * Each (A, W) pair is its own function (DSP cores; the fast paths are #if TH_USE_SIMD, kernels/common.h):
 *   conv2d / pointwise   th_mm_run (kernels/mm/): im2col of four output pixels into columns interleaved word by
 *                        word, one output channel x four pixels per step: the lane core (int16 columns in the
 *                        weights' "lane order", weights unpacked in registers by SXTB16 of masked fields, one LDM
 *                        for the four pixels' words) or a packed-field core for a2w2 / a4w2 / a2w4 / a4w4 (two
 *                        products per 16-bit lane). Which pair takes which core: kernels/mm/mm.h.
 *   fc                   th_fc_run (kernels/mm/): one column, two output channels per step.
 *   depthwise            3x3 s1/s2 row buffers (kernels/depthwise.c).
 *   add, avgpool         the fast requantization where it is exact (kernels/add.c, kernels/avgpool.c).
 * 4/2-bit outputs are assembled in registers and stored whole (no read-modify-write). How close each kernel is to
 * the instruction-set floor: docs/kernels.md.
 *   fallbacks            (no DSP, other shapes, requantization parameters outside the fast path): the a8w8
 *                        q15 kernels (matmul.c, depthwise_s8_pixels) and the generic packed kernels
 *                        (<op>_generic, one centred column dotted byte by byte, th_generic_pixel).
 *
 * Scratch: th_<op>_scratch_bytes(L, in, out) is the number of bytes of `scratch` every kernel of that op needs
 * for the layer (the largest need of the paths a call may take: the fast core and its fallback), a multiple of
 * 4; 0 for add and avgpool. The *_ref kernels need none. Each is defined beside its kernels, from the scratch
 * functions of the cores they call; the host plans the firmware's scratch buffer with them
 * (harness/memory/arena.py:layer_scratch_bytes, through harness/native/host_c.py), so a kernel that
 * changes its scratch layout changes its scratch function and nothing else.
 */
#ifndef TH_KERNELS_H
#define TH_KERNELS_H

#include <stdint.h>

#include "th_model.h"

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
    void th_##op##_ref(TH_KERNEL_ARGS);                                                                         \
    uint32_t th_##op##_scratch_bytes(const th_layer_t *L, const th_tensor_t *in, const th_tensor_t *out);

TH_DECLARE_PAIRS(conv2d)
TH_DECLARE_PAIRS(depthwise)
TH_DECLARE_PAIRS(pointwise)
TH_DECLARE_PAIRS(fc)
void th_add(TH_KERNEL_ARGS);
uint32_t th_add_scratch_bytes(const th_layer_t *L, const th_tensor_t *in, const th_tensor_t *out);
void th_avgpool(TH_KERNEL_ARGS);
uint32_t th_avgpool_scratch_bytes(const th_layer_t *L, const th_tensor_t *in, const th_tensor_t *out);

#ifdef __cplusplus
}
#endif
#endif /* TH_KERNELS_H */
