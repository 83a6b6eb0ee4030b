/*
 * th_patch.h - patch-based execution (MCUNetV2): the schedule the code generator emits and the executor runs.
 *
 * The first n_stage layers of th_model (the patch stage) run once per patch; the rest runs layer by layer
 * (executor.c) on the full stage-output tensor the patches fill. For every (patch, stage layer) the generated
 * model_data.c (harness/codegen/emit_patch.py) holds one step: the layer copy to run (this patch's paddings,
 * activation precisions and requantization; weights shared with th_model.layers) and the descriptors of the
 * per-patch buffers it reads and writes. Data movement is explicit, as 2-D copies inside the arena:
 *   - before a step: fetching the patch's input window out of the full input tensor, and gathering a
 *     sub-window of a producer's buffer that a consumer reads (a residual add reads less than the next conv);
 *   - after the split layer: writing the patch's output window into the full stage-output tensor.
 * Copies move rows in increasing order with memmove, so an in-place gather (destination at or before the
 * source, destination rows no longer than source rows) is safe.
 *
 * A model built without patches simply does not define th_patch_schedule (a weak reference here), and the
 * executor runs every layer layer by layer.
 */
#ifndef TH_PATCH_H
#define TH_PATCH_H

#include <stdint.h>

#include "th_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A 2-D copy inside the arena: `rows` rows of `row_bytes` bytes. */
typedef struct {
    uint32_t src, dst;               /* arena byte offsets of the first row */
    uint32_t src_stride, dst_stride; /* bytes from one row to the next */
    uint16_t rows, row_bytes;
} th_copy_t;

/* One stage layer on one patch. */
typedef struct {
    const th_layer_t *L;       /* the layer copy this patch runs */
    th_tensor_t in, in2, out;  /* per-patch buffers (in2 only for add) */
    const th_copy_t *copies;   /* n_before copies run before the kernel, then n_after after it */
    uint8_t n_before, n_after;
} th_patch_step_t;

typedef struct {
    uint16_t n_patches;
    uint16_t n_stage;               /* the stage is th_model.layers[0 .. n_stage) */
    uint16_t stage_out;             /* tensor index of the full stage-output tensor */
    const th_patch_step_t *steps;   /* n_patches * n_stage, patch-major: steps[p * n_stage + j] */
    /* results of the last inference, one per step (sized by the generator) */
    uint32_t *ticks;                /* kernel ticks */
    uint32_t *copy_ticks;           /* ticks of the step's copies */
    uint32_t *crc;                  /* CRC-32 of the step's output buffer (while CRCs are enabled) */
} th_patch_schedule_t;

/* Defined by a generated model_data.c for patch-based models only. */
extern const th_patch_schedule_t th_patch_schedule;

/* The model's schedule, or NULL when the model runs layer by layer. */
const th_patch_schedule_t *th_patch_get(void);
/* Checks the schedule against the model and the arena; returns NULL or a static error message. */
const char *th_patch_check(void);
/* Runs the stage once per patch. Per stage layer j it sets ticks[j] (kernel + copy ticks summed over patches)
 * and, when `crc_enabled`, crc[j]: the CRC-32 of the layer's per-patch outputs concatenated in patch order,
 * except for the split layer (j = n_stage - 1), whose CRC covers the whole stage-output tensor. Returns the
 * summed ticks. */
uint64_t th_patch_run_stage(uint64_t *ticks, uint32_t *crc, int crc_enabled);
/* Whether the last th_patch_run_stage computed the per-step CRCs (S->crc). The protocol reports the last
 * inference per (patch, stage layer) from the schedule's arrays (`patches%`, firmware/README.md). */
int th_patch_crc_valid(void);

#ifdef __cplusplus
}
#endif
#endif /* TH_PATCH_H */
