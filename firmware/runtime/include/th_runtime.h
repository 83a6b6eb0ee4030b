/*
 * th_runtime.h - the firmware runtime, in layers that call only downwards:
 *   protocol.c     the host protocol (parser, commands, reply lines): the only unit that talks to the host
 *   executor.c     one inference: the patch stage (patch_exec.c, th_patch.h), then layer by layer, timed
 *   patch_exec.c   the patch stage of a patch-based model
 *   layer.c        the tensors of th_model and one kernel call on explicit tensors
 *   crc.c          the checksums the executors and the protocol use
 * The wire format is documented in firmware/README.md.
 */
#ifndef TH_RUNTIME_H
#define TH_RUNTIME_H

#include <stdint.h>

#include "th_model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TH_RUNTIME_VERSION "0.1.0"

/* Upper bound on th_model.n_layers (per-layer results live in static arrays). Override with -D. */
#ifndef TH_MAX_LAYERS
#define TH_MAX_LAYERS 256
#endif

/* ---- checksums (crc.c) ---- */
/* CRC-32 as zlib: th_crc32_update(0, p, n) == zlib.crc32(p); chain by passing the previous result. */
uint32_t th_crc32_update(uint32_t crc, const uint8_t *data, uint32_t n);
/* CRC-16/CCITT-FALSE, one byte at a time; start from 0xFFFF. */
uint16_t th_crc16_update(uint16_t crc, uint8_t byte);

/* ---- tensors and one kernel call (layer.c) ---- */
/* Packed size of a tensor: h * w * ceil(c * bits / 8), as harness/codegen/ir.py TensorSpec.nbytes. */
uint32_t th_tensor_bytes(const th_tensor_t *t);
uint8_t *th_tensor_data(const th_tensor_t *t);
/* Runs layer L's kernel on explicit tensors (a patch step passes a layer copy whose pads and tensor
 * descriptors cover one patch). th_layer_call is the call itself, inline: the layer executor times exactly it;
 * th_layer_run is the same call out of line, which the patch executor times (so its step counts include one
 * function call, as they always have). */
static inline void th_layer_call(const th_layer_t *L, const th_tensor_t *in, const th_tensor_t *in2,
                                 const th_tensor_t *out)
{
    L->fn(L, in, in2, out, th_arena, th_scratch);
}
void th_layer_run(const th_layer_t *L, const th_tensor_t *in, const th_tensor_t *in2, const th_tensor_t *out);

/* ---- executor (executor.c) ---- */
/* Checks the model against the runtime's limits; returns NULL or a static error message. */
const char *th_exec_check(void);
/* Whether some layer writes over the input tensor's bytes (then the input must be reloaded per inference). */
int th_exec_input_clobbered(void);
/* Per-layer output CRC-32s are computed after each layer, outside the timed region, while enabled. */
void th_exec_set_crc(int enabled);
int th_exec_crc_enabled(void);
/* One full inference over th_model.layers; returns the sum of the per-layer ticks. */
uint64_t th_exec_run(void);
/* Results of the last th_exec_run. */
uint64_t th_exec_layer_ticks(uint16_t i);
uint32_t th_exec_layer_crc(uint16_t i);
int th_exec_crc_valid(void); /* CRCs were computed during the last run */
uint64_t th_exec_total_ticks(void);

/* ---- protocol (protocol.c) ---- */
/* Reply lines: `payload*XXXX\r\n`, XXXX = CRC-16/CCITT-FALSE of the payload in upper-case hex. */
void th_line_begin(void);
void th_line_str(const char *s);
void th_line_char(char c);
void th_line_u64(uint64_t v);
void th_line_i32(int32_t v);
void th_line_hex32(uint32_t v);
void th_line_end(void);
/* A whole line from a string: th_line_begin(); th_line_str(s); th_line_end(). */
void th_line(const char *s);

void th_protocol_init(void);
/* Feeds one received byte into the command parser (executes a command when its terminating '%' arrives). */
void th_protocol_feed(char c);
/* Banner then the receive loop; never returns (`exit N%` leaves through th_exit). */
void th_protocol_run(void) __attribute__((noreturn));
/* Called from the fault handler: prints `e-[fault ...]` without touching the parser state. */
void th_report_fault(uint32_t exc, uint32_t pc, uint32_t lr, uint32_t cfsr, uint32_t hfsr);

#ifdef __cplusplus
}
#endif
#endif /* TH_RUNTIME_H */
