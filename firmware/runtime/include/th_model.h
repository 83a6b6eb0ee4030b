/*
 * th_model.h - the contract between the code generator (harness/codegen) and the firmware runtime.
 *
 * The host generates one C file per model (model_data.c) that defines `th_model`, the arena and the scratch
 * buffer. The executor walks the layer table and calls each layer's kernel; kernels never allocate.
 * Integer semantics and packed storage are documented in harness/codegen/ir.py and must match it bit for bit.
 */
#ifndef TH_MODEL_H
#define TH_MODEL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    TH_OP_CONV2D = 0,
    TH_OP_DEPTHWISE = 1,
    TH_OP_POINTWISE = 2,
    TH_OP_FC = 3,
    TH_OP_ADD = 4,
    TH_OP_AVGPOOL = 5,
} th_op_t;

/* One activation buffer inside the arena. Packed at `bits`, each pixel's channel row byte-aligned. */
typedef struct {
    uint32_t offset; /* byte offset in the arena */
    uint16_t h, w, c;
    uint8_t bits; /* 2, 4 or 8 */
    int8_t zero_point;
} th_tensor_t;

typedef struct th_layer th_layer_t;

/* A kernel: reads `in` (and `in2` for add), writes `out`. `scratch` is the shared static scratch buffer. */
typedef void (*th_kernel_fn)(const th_layer_t *L, const th_tensor_t *in, const th_tensor_t *in2,
                             const th_tensor_t *out, uint8_t *arena, void *scratch);

struct th_layer {
    th_kernel_fn fn; /* chosen by the code generator for op x (a_bits, w_bits) */
    const char *name;
    uint8_t op; /* th_op_t */
    uint8_t a_bits, w_bits, o_bits;
    uint8_t kh, kw, stride;
    uint8_t pad_t, pad_l, pad_b, pad_r;
    int16_t in, in2, out; /* tensor indices; in2 = -1 unless op == TH_OP_ADD */
    int32_t act_min, act_max;
    const void *weights; /* packed at w_bits, rows byte-aligned; layout per op as in ir.py */
    const int32_t *bias; /* per output channel; NULL for add/avgpool */
    const int32_t *mult; /* per output channel (avgpool: 1 entry) */
    const int32_t *shift; /* per output channel (avgpool: 1 entry); > 0 is a left shift */
    /* add only (TFLite ADD semantics) */
    int32_t left_shift, in1_mult, in1_shift, in2_mult, in2_shift, out_mult, out_shift;
    uint32_t macs;
};

typedef struct {
    const char *name;
    uint16_t n_layers, n_tensors;
    const th_layer_t *layers;
    const th_tensor_t *tensors;
    uint16_t input, output; /* tensor indices */
    uint32_t arena_size, scratch_size;
    uint32_t hash; /* of the generated model, reported by the firmware */
} th_model_t;

/* Defined by the generated model_data.c. */
extern const th_model_t th_model;
extern uint8_t th_arena[];
extern uint8_t th_scratch[];

#ifdef __cplusplus
}
#endif
#endif /* TH_MODEL_H */
