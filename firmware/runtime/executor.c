/*
 * Executor: one inference. Runs the patch stage of a patch-based model (patch_exec.c), then walks the rest of
 * th_model.layers, times each kernel call with the board timer and, on request, checksums each layer's output
 * (outside the timed region) so the host can compare against the integer reference layer by layer. It keeps
 * the results for the protocol to report; it neither prints nor parses.
 */
#include "th_board.h"
#include "th_patch.h"
#include "th_runtime.h"

#if defined(TH_CYCLE_MARKERS) && TH_MAX_LAYERS + 2 > TH_MARK_SLOTS
#error "TH_MAX_LAYERS needs more cycle markers: define TH_MARK_SLOTS >= TH_MAX_LAYERS + 2"
#endif

static uint64_t layer_ticks[TH_MAX_LAYERS];
static uint32_t layer_crc[TH_MAX_LAYERS];
static uint64_t total_ticks;
static int crc_enabled;
static int crc_valid;

static const th_tensor_t *tensor_at(int16_t i)
{
    return i < 0 ? (const th_tensor_t *)0 : &th_model.tensors[i];
}

static int tensor_ok(int16_t i)
{
    return i >= 0 && (uint16_t)i < th_model.n_tensors &&
           th_model.tensors[i].offset + th_tensor_bytes(&th_model.tensors[i]) <= th_model.arena_size;
}

const char *th_exec_check(void)
{
    if (th_model.n_layers > TH_MAX_LAYERS) {
        return "model has more layers than TH_MAX_LAYERS";
    }
    if (!tensor_ok((int16_t)th_model.input) || !tensor_ok((int16_t)th_model.output)) {
        return "model input/output tensor index or extent is invalid";
    }
    for (uint16_t i = 0; i < th_model.n_layers; ++i) {
        const th_layer_t *L = &th_model.layers[i];
        if (L->fn == 0 || !tensor_ok(L->in) || !tensor_ok(L->out) || (L->in2 >= 0 && !tensor_ok(L->in2))) {
            return "a layer has no kernel or a tensor outside the arena";
        }
    }
    return th_patch_get() != 0 ? th_patch_check() : 0;
}

int th_exec_input_clobbered(void)
{
    const th_tensor_t *in = &th_model.tensors[th_model.input];
    uint32_t a0 = in->offset, a1 = in->offset + th_tensor_bytes(in);
    for (uint16_t i = 0; i < th_model.n_layers; ++i) {
        const th_tensor_t *out = &th_model.tensors[th_model.layers[i].out];
        uint32_t b0 = out->offset, b1 = out->offset + th_tensor_bytes(out);
        if (b0 < a1 && a0 < b1) {
            return 1;
        }
    }
    return 0;
}

void th_exec_set_crc(int enabled)
{
    crc_enabled = enabled != 0;
}

int th_exec_crc_enabled(void)
{
    return crc_enabled;
}

uint64_t th_exec_run(void)
{
    uint64_t total = 0u;
    uint16_t first = 0u;
    const th_patch_schedule_t *patches = th_patch_get();
    TH_MARK(TH_MARK_INFER);
    if (patches != 0) { /* patch-based model: the stage runs per patch (patch_exec.c), then layer by layer */
        total = th_patch_run_stage(layer_ticks, layer_crc, crc_enabled);
        first = patches->n_stage;
    }
    for (uint16_t i = first; i < th_model.n_layers; ++i) {
        const th_layer_t *L = &th_model.layers[i];
        const th_tensor_t *in = tensor_at(L->in);
        const th_tensor_t *in2 = tensor_at(L->in2);
        const th_tensor_t *out = tensor_at(L->out);
        th_timer_align();
        uint64_t t0 = th_timer_now();
        TH_MARK(TH_MARK_LAYER(i));
        th_layer_call(L, in, in2, out);
        TH_MARK(TH_MARK_END);
        uint64_t t1 = th_timer_now();
        layer_ticks[i] = t1 - t0;
        total += t1 - t0;
        if (crc_enabled) {
            layer_crc[i] = th_crc32_update(0u, th_tensor_data(out), th_tensor_bytes(out));
        }
    }
    crc_valid = crc_enabled;
    total_ticks = total;
    return total;
}

uint64_t th_exec_layer_ticks(uint16_t i)
{
    return i < TH_MAX_LAYERS ? layer_ticks[i] : 0u;
}

uint32_t th_exec_layer_crc(uint16_t i)
{
    return i < TH_MAX_LAYERS ? layer_crc[i] : 0u;
}

int th_exec_crc_valid(void)
{
    return crc_valid;
}

uint64_t th_exec_total_ticks(void)
{
    return total_ticks;
}
