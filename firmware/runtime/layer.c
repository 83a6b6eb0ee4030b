/*
 * One layer: the tensors of th_model and the kernel call on explicit tensors. The lowest unit of the runtime:
 * the executors (executor.c, patch_exec.c) and the protocol use it; it uses nothing but the layer table.
 */
#include "th_runtime.h"

uint32_t th_tensor_bytes(const th_tensor_t *t)
{
    uint32_t row = ((uint32_t)t->c * (uint32_t)t->bits + 7u) / 8u;
    return (uint32_t)t->h * (uint32_t)t->w * row;
}

uint8_t *th_tensor_data(const th_tensor_t *t)
{
    return th_arena + t->offset;
}

void th_layer_run(const th_layer_t *L, const th_tensor_t *in, const th_tensor_t *in2, const th_tensor_t *out)
{
    th_layer_call(L, in, in2, out);
}
