/*
 * Patch executor: runs the patch stage of a patch-based model once per patch (th_patch.h), timing every kernel
 * call and every copy, and checksumming every per-patch output outside the timed regions. The results stay in
 * the schedule's arrays for the protocol to report (`patches%`); it neither prints nor parses.
 */
#include <string.h>

#include "th_board.h"
#include "th_patch.h"
#include "th_runtime.h"

/* Weak: a layer-by-layer model_data.c does not define it, and then its address is NULL. */
extern const th_patch_schedule_t th_patch_schedule __attribute__((weak));

static int patch_crc_valid;

const th_patch_schedule_t *th_patch_get(void)
{
    return &th_patch_schedule;
}

static int extent_ok(uint32_t offset, uint32_t bytes)
{
    return offset <= th_model.arena_size && bytes <= th_model.arena_size - offset;
}

static int copy_ok(const th_copy_t *c)
{
    if (c->rows == 0u) {
        return 1;
    }
    uint32_t last = (uint32_t)(c->rows - 1u);
    return (c->rows == 1u || (c->row_bytes <= c->src_stride && c->row_bytes <= c->dst_stride)) &&
           extent_ok(c->src, last * c->src_stride + c->row_bytes) &&
           extent_ok(c->dst, last * c->dst_stride + c->row_bytes);
}

const char *th_patch_check(void)
{
    const th_patch_schedule_t *S = th_patch_get();
    if (S == 0) {
        return 0;
    }
    if (S->n_stage == 0u || S->n_stage > th_model.n_layers || S->n_patches == 0u ||
        S->stage_out >= th_model.n_tensors) {
        return "patch schedule does not match the model";
    }
    for (uint32_t k = 0; k < (uint32_t)S->n_patches * S->n_stage; ++k) {
        const th_patch_step_t *st = &S->steps[k];
        if (st->L == 0 || st->L->fn == 0 || !extent_ok(st->in.offset, th_tensor_bytes(&st->in)) ||
            !extent_ok(st->out.offset, th_tensor_bytes(&st->out)) ||
            (st->L->op == TH_OP_ADD && !extent_ok(st->in2.offset, th_tensor_bytes(&st->in2)))) {
            return "a patch step has no kernel or a buffer outside the arena";
        }
        for (uint32_t i = 0; i < (uint32_t)st->n_before + st->n_after; ++i) {
            if (!copy_ok(&st->copies[i])) {
                return "a patch copy reaches outside the arena";
            }
        }
    }
    return 0;
}

static void copy_2d(const th_copy_t *c)
{
    const uint8_t *src = th_arena + c->src;
    uint8_t *dst = th_arena + c->dst;
    for (uint32_t r = 0; r < c->rows; ++r) {
        memmove(dst, src, c->row_bytes);
        src += c->src_stride;
        dst += c->dst_stride;
    }
}

static uint32_t run_copies(const th_copy_t *c, uint32_t n, uint32_t layer)
{
    if (n == 0u) {
        return 0u;
    }
    th_timer_align();
    uint64_t t0 = th_timer_now();
    TH_MARK(TH_MARK_LAYER(layer));
    for (uint32_t i = 0; i < n; ++i) {
        copy_2d(&c[i]);
    }
    TH_MARK(TH_MARK_END);
    (void)layer;
    return (uint32_t)(th_timer_now() - t0);
}

uint64_t th_patch_run_stage(uint64_t *ticks, uint32_t *crc, int crc_enabled)
{
    const th_patch_schedule_t *S = &th_patch_schedule;
    const uint32_t n_stage = S->n_stage;
    uint64_t total = 0u;
    for (uint32_t j = 0; j < n_stage; ++j) {
        ticks[j] = 0u;
        crc[j] = 0u;
    }
    for (uint32_t p = 0; p < S->n_patches; ++p) {
        for (uint32_t j = 0; j < n_stage; ++j) {
            const uint32_t k = p * n_stage + j;
            const th_patch_step_t *st = &S->steps[k];
            uint32_t moved = run_copies(st->copies, st->n_before, j);
            th_timer_align();
            uint64_t t0 = th_timer_now();
            TH_MARK(TH_MARK_LAYER(j));
            th_layer_run(st->L, &st->in, st->L->op == TH_OP_ADD ? &st->in2 : (const th_tensor_t *)0, &st->out);
            TH_MARK(TH_MARK_END);
            uint32_t spent = (uint32_t)(th_timer_now() - t0);
            if (crc_enabled) {
                uint32_t c = th_crc32_update(0u, th_tensor_data(&st->out), th_tensor_bytes(&st->out));
                S->crc[k] = c;
                if (j + 1u < n_stage) {
                    crc[j] = th_crc32_update(crc[j], th_tensor_data(&st->out), th_tensor_bytes(&st->out));
                }
            }
            moved += run_copies(st->copies + st->n_before, st->n_after, j);
            S->ticks[k] = spent;
            S->copy_ticks[k] = moved;
            ticks[j] += (uint64_t)spent + moved;
            total += (uint64_t)spent + moved;
        }
    }
    if (crc_enabled && n_stage > 0u) {
        const th_tensor_t *out = &th_model.tensors[S->stage_out];
        crc[n_stage - 1u] = th_crc32_update(0u, th_tensor_data(out), th_tensor_bytes(out));
    }
    patch_crc_valid = crc_enabled;
    return total;
}

int th_patch_crc_valid(void)
{
    return patch_crc_valid;
}
