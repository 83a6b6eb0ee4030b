/*
 * mm.h - internal to kernels/: the matrix cores behind conv2d, pointwise and fc at every (A, W) pair on DSP
 * cores, one core per file, and the dispatch that picks one per pair (the last section of this header).
 *
 *   plan.c     th_mm_prepare: whether the fast requantization is exact for a layer, which core family it takes
 *   run.c      the job loops th_mm_run / th_fc_run: columns (each core's activation layout), requantization
 *              tables, the calls of the cores; and the scratch each loop needs (th_mm_run_scratch_bytes,
 *              th_fc_run_scratch_bytes). The columns stay in this one file with the loops that call them: the
 *              compiler's register allocation across those calls is part of every measured instruction count.
 *   lane.c     the lane core of conv2d / pointwise: 2 output channels x 2 pixels, any weight precision
 *   ulp.c      the packed-field core with 8-bit fields (a2w2, a4w2, a2w4): 1 channel x 4 pixels
 *   u44.c      the packed-field core with 11-bit fields (a4w4): 1 channel x 4 pixels
 *   fc_lane.c  the lane core of fc: 2 output channels x 1 pixel
 *   fc_ulp.c   the packed-field core of fc (a2w2, a4w2 with post-ReLU inputs): 1 channel x 1 pixel
 *
 * Lane order. Weights stay packed as stored (rows of `wrow` bytes, w_bits each). One 32-bit weight word holds
 * G = 32/wb weights; masking one field per byte to the top of the byte and SXTB16 (plain or ROR 8) turn it into
 * G/2 "lane words" of two int16 weights, scaled by 2^(8-wb) (mm_lane: 0 shifts for 8-bit weights, a shift-and-
 * mask for 4 and 2 bits). Lane word s of a weight word holds the weights at entries
 *     e0(s) = (s % 2) * per + s / 2   and   e0(s) + 2 * per        (per = 8 / wb weights per byte),
 * so the activations are stored in that order ("lane order") as centred int16, once per pixel, and each SMLAD
 * then does two MACs with no per-MAC unpacking. The K % 32 bits tail of a weight row (whole bytes that do not
 * fill a word) is done byte by byte against a plain int16 tail. Accumulators start at bias * 2^(8-wb) and are
 * turned into th_rq2's t by one shift per output; the fast requantization holds when th_rq_fast_ok does for
 * the layer (th_mm_prepare checks, and the pair falls back otherwise).
 *
 * A plan (th_mm_prepare) holds the weight row geometry and the core for the layer's weight bits, rounding and
 * clamp; a job is one block of up to TH_MM_CB output channels with its requantization table (th_mm_rq_table).
 * Each core is specialised for (rounding, clamp kind, output bits) by plain wrapper functions that call it
 * with constants; a pick function per core returns the wrapper for a layer.
 */
#ifndef TH_KERNELS_MM_H
#define TH_KERNELS_MM_H

#include "../common.h"

/* Output channels per job (the requantization table holds one job's channels). */
#define TH_MM_CB 64u

typedef struct {
    int32_t b, m, r, e; /* bias * 2^(8-wb); multiplier; th_rq2's r and e */
    int32_t sh, sc;     /* (not rnd) accumulator -> t shift; 31 when e > 0, else 32 (th_lsr: no correction) */
} th_mm_rq_t;

typedef struct {
    const uint8_t *w; /* weights of channel c0 */
    uint32_t wrow, nwords, tbytes, c0, n;
    const th_mm_rq_t *rq;
    int32_t lo, hi;
    int ob;
    /* packed-field cores: weight offset x sum of each column's offset activations; the four pixels' tails and
     * output rows (a padding pixel past the end repeats pixel 0 of the step: same column, same row) */
    int32_t sx[4];
    int16_t *t[4];
    uint8_t *y[4];
} th_mm_job_t;

/* A conv2d / pointwise core: channels [J->c0, J->c0 + J->n) of one step's four pixels (their interleaved
 * column cp; tails and output rows in J). */
typedef void (*th_mm_fn)(const th_mm_job_t *J, const uint32_t *cp);

/* An fc core: channels [J->c0, J->c0 + J->n) of the one pixel (column col, tail, output row y). */
typedef void (*th_fc_fn)(const th_mm_job_t *J, const uint32_t *col, const int16_t *tail, uint8_t *y);

typedef struct {
    th_mm_fn fn;        /* conv2d / pointwise core (set by TH_MM_PAIR) */
    th_fc_fn ffn;       /* fc core (set by TH_FC_PAIR) */
    int ab, wb, rnd, full;
    int ulp;            /* a2w2 / a4w2 / a2w4 / a4w4: the packed-field core (two products per 16-bit lane) */
    int wsrc;           /* bits of the stored weights (wb is 8 when they are widened: th_mm_widen) */
    uint32_t wrow;      /* bytes of one output channel's weights */
    uint32_t tap_bytes; /* bytes of one tap row (cin weights) */
    uint32_t nwords;    /* whole 32-bit words in wrow */
    uint32_t nwc;       /* words in wrow, the last one partial when tbytes > 0 (the lane core's column) */
    uint32_t tbytes;    /* wrow % 4 */
    uint32_t kp;        /* int16 entries of a column: wrow * 8 / wb */
    uint32_t tail;      /* entries of the tail: tbytes * 8 / wb */
} th_mm_plan_t;

/* Sub-byte weights whose taps leave padding inside the weight words (cin * wb not a multiple of 32, as the
 * 3-channel stem's) are widened to int8 once per job when the job's weights take at most this many bytes: the
 * 8-bit lane core then skips the padded entries instead of multiplying them (th_mm_widen). */
#define TH_MM_WIDEN_BYTES 2048u
TH_ALWAYS_INLINE int th_mm_widen(uint32_t taps, uint32_t cin, uint32_t cout, int wb)
{
    const uint32_t cb = cout < TH_MM_CB ? cout : TH_MM_CB;
    return wb < 8 && (cin * (uint32_t)wb) % 32u != 0u && taps * cin * cb <= TH_MM_WIDEN_BYTES;
}

/* Whether conv2d / pointwise at (ab, wb) with weight rows of wrow bytes take a packed-field core (ulp.c, u44.c)
 * rather than the lane core: a2w2 / a4w2 / a2w4 when the core's 16-bit field sums cannot overflow (flushes per
 * row x the largest field at a flush < 2^16), a4w4 always (32-bit field sums); a weight row of a word at least. */
TH_ALWAYS_INLINE int th_mm_takes_ulp(int ab, int wb, uint32_t wrow)
{
    const uint32_t nflush = ab == 2 && wb == 2 ? (wrow / 4u + 1u) / 2u : 2u * (wrow / 4u);
    const uint32_t fmax = ab == 2 ? (wb == 2 ? 192u : 168u) : 240u;
    return wrow >= 4u && ((ab + wb <= 6 && wb < 8 && nflush * fmax < 65536u) || (ab == 4 && wb == 4));
}

/* Scratch bytes th_mm_run needs for `taps` taps of cin ab-bit inputs, cout outputs and wb-bit weights (the core
 * the shape takes): requantization table; lane core: the four-pixel column, the window bytes or natural column
 * unless the column comes straight from the input, the widened weights (th_mm_widen); packed-field cores: the
 * column, four tails, a natural column. */
uint32_t th_mm_run_scratch_bytes(uint32_t taps, uint32_t cin, uint32_t cout, int ab, int wb);
/* Scratch bytes th_fc_run needs: requantization table, one column, its tail, a natural column. */
uint32_t th_fc_run_scratch_bytes(uint32_t cin, uint32_t cout, int wb);

#if TH_USE_SIMD

/* Fills P and returns 1 when a core applies to L (fast requantization exact), else 0. `ulp_ok`: a2w2 / a4w2 /
 * a2w4 / a4w4 may take a packed-field core (a4w4: th_mm_run only); `widen_ok`: sub-byte weights may be widened
 * to int8 (th_mm_widen; th_mm_run only). (plan.c) */
int th_mm_prepare(const th_layer_t *L, const th_tensor_t *out, uint32_t taps, int ab, int wb, uint32_t cin,
                  int ulp_ok, int widen_ok, th_mm_plan_t *P);
/* n centred activations of a packed row (from element 0) as natural-order int16 (run.c). */
void th_mm_col_natural(const uint8_t *src, uint32_t n, int ab, int32_t zp, int16_t *dst);
/* Requantization table of output channels [c0, c0 + n) (run.c). */
void th_mm_rq_table(const th_layer_t *L, const th_tensor_t *out, uint32_t c0, uint32_t n, int wb, int rnd,
                    th_mm_rq_t *tab);
/* conv2d / pointwise (a 1x1 conv without padding) through P->fn, two (lane core) or four (packed-field cores)
 * output pixels at a time (run.c). */
void th_mm_run(TH_KERNEL_ARGS, const th_mm_plan_t *P);
/* Fully connected through P->ffn: one column, the output channels in jobs of TH_MM_CB (run.c). */
void th_fc_run(TH_KERNEL_ARGS, const th_mm_plan_t *P);

/* ---------------------------------------------------------------------------------------------------------- */
/* What the cores share (always inlined into each specialisation) */

/* log2 of the weight scale of a lane word: 0 (8-bit), 4 (4-bit), 6 (2-bit). */
#define MM_G(wb) ((wb) == 8 ? 0 : ((wb) == 4 ? 4 : 6))

/* Lane word s (0 .. 16/wb - 1) of weight word v, scaled by 2^MM_G(wb). */
TH_ALWAYS_INLINE uint32_t mm_lane(uint32_t v, uint32_t s, uint32_t m, const int wb)
{
    const uint32_t per = 8u / (uint32_t)wb;
    const uint32_t f = s / 2u;
    const uint32_t fv = wb == 8 ? v : (v << ((per - 1u - f) * (uint32_t)wb)) & m;
    return (s & 1u) ? th_sxtb16_ror8(fv) : th_sxtb16(fv);
}

/* A weight row shorter than a word: its tb bytes, the missing ones zero (no read outside the row). */
TH_ALWAYS_INLINE uint32_t mm_short_word(const uint8_t *w, uint32_t tb)
{
    uint32_t v = 0;
    for (uint32_t k = 0; k < tb; ++k) {
        v |= (uint32_t)w[k] << (8u * k);
    }
    return v;
}

/* Weight `f` of tail byte b, scaled like the lane words. */
TH_ALWAYS_INLINE int32_t mm_tail_w(uint32_t b, uint32_t f, const int wb)
{
    const uint32_t per = 8u / (uint32_t)wb;
    return (int32_t)(int8_t)(uint8_t)((b << ((per - 1u - f) * (uint32_t)wb)) & (0xFFu << (8 - wb)));
}

/* th_rq2's t from a (scaled) accumulator. */
TH_ALWAYS_INLINE int32_t mm_t(int32_t acc, const th_mm_rq_t *q, const int wb, const int rnd)
{
    const int g = MM_G(wb);
    if (rnd) {
        return wb == 8 ? (int32_t)((uint32_t)acc << 1) : acc >> (g - 1);
    }
    return wb == 8 ? (int32_t)((uint32_t)acc << q->sh) : acc >> q->sh;
}

/* The clamped output of one channel from t. */
TH_ALWAYS_INLINE int32_t mm_out(int32_t t, const th_mm_rq_t *q, int32_t lo, int32_t hi, const int rnd,
                                const int kind, const int ob)
{
    int32_t v;
    if (rnd) {
        v = th_rq2(t, q->m, q->r, q->e);
    } else { /* the sign correction is 1 for negative t when e > 0 (sc = 31), never when e == 0 (sc = 32) */
        v = (th_smmlar(t, q->m, q->r) - (int32_t)th_lsr(t, q->sc)) >> q->e;
    }
    return th_clamp_as(v, lo, hi, ob, kind);
}

/* Words p[o] and p[o + 1] into x0, x1 with one LDRD (o a constant; p word-aligned): GCC pairs two loads only
 * when they end up next to each other, which the cores' interleaved SMLADs prevent. */
typedef struct {
    uint32_t w[2];
} mm_pair_t;
#if defined(__ARM_FEATURE_DSP) && !defined(TH_NO_DSP)
#define MM_LD2(x0, x1, p, o)                                                                                    \
    __asm("ldrd %0, %1, [%2, #%c3]"                                                                             \
          : "=r"(x0), "=r"(x1)                                                                                  \
          : "r"(p), "i"(4u * (o)), "m"(*(const mm_pair_t *)(const void *)((p) + (o))))
#else
#define MM_LD2(x0, x1, p, o) ((x0) = (p)[o], (x1) = (p)[(o) + 1u])
#endif

/* The four words at p into x0..x3, p advanced by 16 bytes (four pixels' lane words). Single-issue cores (the
 * Cortex-M4): one LDM, one instruction and 1 + 4 cycles against 2 x 3 for two LDRDs; LDM fills registers in
 * ascending order, so the four values live in fixed registers (r8-r11) for the asm. Dual-issue cores
 * (TH_DUAL_ISSUE, the Cortex-M7): four LDRs, which the compiler's post-allocation scheduler pairs with the
 * SMLADs (an LDM issues alone for two cycles there). */
typedef struct {
    uint32_t w[4];
} mm_quad_t;
#if !defined(TH_DUAL_ISSUE) && defined(__ARM_ARCH_7EM__) && defined(__ARM_FP) && (__ARM_FP & 8)
#define TH_DUAL_ISSUE 1 /* a double-precision FPU on ARMv7E-M: a Cortex-M7 */
#endif
#if defined(__ARM_FEATURE_DSP) && !defined(TH_NO_DSP) && !defined(TH_DUAL_ISSUE)
#define MM_QUAD_DECL(x0, x1, x2, x3)                                                                            \
    register uint32_t x0 __asm("r8");                                                                           \
    register uint32_t x1 __asm("r9");                                                                           \
    register uint32_t x2 __asm("r10");                                                                          \
    register uint32_t x3 __asm("r11")
#define MM_LD4(x0, x1, x2, x3, p)                                                                               \
    __asm("ldm %4!, {%0, %1, %2, %3}"                                                                           \
          : "=r"(x0), "=r"(x1), "=r"(x2), "=r"(x3), "+r"(p)                                                     \
          : "m"(*(const mm_quad_t *)(const void *)(p)))
#else
#define MM_QUAD_DECL(x0, x1, x2, x3) uint32_t x0, x1, x2, x3
#define MM_LD4(x0, x1, x2, x3, p) ((x0) = (p)[0], (x1) = (p)[1], (x2) = (p)[2], (x3) = (p)[3], (p) += 4)
#endif

/* pend with bits [lsb, lsb + width) replaced by the low bits of v (lsb and width constants): one BFI. */
#if defined(__ARM_FEATURE_DSP) && !defined(TH_NO_DSP)
#define mm_bfi(pend, v, lsb, width) mm_bfi_asm((pend), (v), (lsb), (width))
TH_ALWAYS_INLINE uint32_t mm_bfi_asm(uint32_t pend, int32_t v, const uint32_t lsb, const uint32_t width)
{
    __asm("bfi %0, %1, %2, %3" : "+r"(pend) : "r"(v), "i"(lsb), "i"(width));
    return pend;
}
#else
TH_ALWAYS_INLINE uint32_t mm_bfi(uint32_t pend, int32_t v, const uint32_t lsb, const uint32_t width)
{
    const uint32_t mask = ((1u << width) - 1u) << lsb;
    return (pend & ~mask) | (((uint32_t)v << lsb) & mask);
}
#endif

/* Byte `byte` of the four pixels' output rows from the four bytes of pend (pixel px in bits 8 px .. 8 px + 7):
 * the packed-output path of the one-channel cores (4/2-bit outputs assembled in a register, stored once). */
TH_ALWAYS_INLINE void mm_pack_store(const th_mm_job_t *J, uint32_t byte, uint32_t pend)
{
    J->y[0][byte] = (uint8_t)pend;
    J->y[1][byte] = (uint8_t)(pend >> 8);
    J->y[2][byte] = (uint8_t)(pend >> 16);
    J->y[3][byte] = (uint8_t)(pend >> 24);
}

/* The four outputs of one channel into slot k of each byte of pend (pixel px's byte at bits 8 px). */
#define MM_PEND4(pend, v, k, ob)                                                                                \
    do {                                                                                                        \
        (pend) = mm_bfi((pend), (v)[0], 0u + (k) * (ob), (ob));                                                 \
        (pend) = mm_bfi((pend), (v)[1], 8u + (k) * (ob), (ob));                                                 \
        (pend) = mm_bfi((pend), (v)[2], 16u + (k) * (ob), (ob));                                                \
        (pend) = mm_bfi((pend), (v)[3], 24u + (k) * (ob), (ob));                                                \
    } while (0)

/* The channel loop of the one-channel, four-pixel cores (lane.c, ulp.c, u44.c): for each channel of job J,
 * DOT (a statement that reads the channel's weights `w` and table entry `q`) fills the accumulators a[4] of
 * the four pixels, which are requantized (mm_t with accumulator scale TB, mm_out) and stored. 8-bit outputs:
 * one byte store each. 4/2-bit outputs: each output goes into a register by one BFI at its channel's place in
 * the byte (the job's first channel is a multiple of 8, so channel i sits at slot i % (8 / OB)), and each
 * pixel's byte is stored once when the group of 8 / OB channels is complete: no read-modify-write. The slot
 * is a run-time branch, so the core (DOT) is inlined once. */
#define MM_CHANNELS(J, TB, RND, KIND, OB, DOT)                                                                  \
    do {                                                                                                        \
        const uint32_t mc_wrow = (J)->wrow, mc_n = (J)->n, mc_c0 = (J)->c0;                                     \
        const int32_t mc_lo = (J)->lo, mc_hi = (J)->hi;                                                         \
        const th_mm_rq_t *q = (J)->rq;                                                                          \
        const uint8_t *w = (J)->w;                                                                              \
        uint32_t pend = 0;                                                                                      \
        for (uint32_t mc_i = 0; mc_i < mc_n; ++mc_i, w += mc_wrow, ++q) {                                       \
            int32_t a[4], v[4];                                                                                 \
            DOT;                                                                                                \
            TH_UNROLL                                                                                           \
            for (uint32_t px = 0; px < 4u; ++px) {                                                              \
                v[px] = mm_out(mm_t(a[px], q, TB, RND), q, mc_lo, mc_hi, RND, KIND, OB);                        \
            }                                                                                                   \
            if ((OB) == 8) {                                                                                    \
                TH_UNROLL                                                                                       \
                for (uint32_t px = 0; px < 4u; ++px) {                                                          \
                    (J)->y[px][mc_c0 + mc_i] = (uint8_t)v[px];                                                  \
                }                                                                                               \
                continue;                                                                                       \
            }                                                                                                   \
            const uint32_t mc_k = mc_i & (8u / (uint32_t)(OB) - 1u);                                            \
            if ((OB) == 4) {                                                                                    \
                if (mc_k == 0u) {                                                                               \
                    MM_PEND4(pend, v, 0u, 4u);                                                                  \
                } else {                                                                                        \
                    MM_PEND4(pend, v, 1u, 4u);                                                                  \
                }                                                                                               \
            } else if (mc_k < 2u) {                                                                             \
                if (mc_k == 0u) {                                                                               \
                    MM_PEND4(pend, v, 0u, 2u);                                                                  \
                } else {                                                                                        \
                    MM_PEND4(pend, v, 1u, 2u);                                                                  \
                }                                                                                               \
            } else if (mc_k == 2u) {                                                                            \
                MM_PEND4(pend, v, 2u, 2u);                                                                      \
            } else {                                                                                            \
                MM_PEND4(pend, v, 3u, 2u);                                                                      \
            }                                                                                                   \
            if (mc_k == 8u / (uint32_t)(OB) - 1u || mc_i + 1u == mc_n) {                                        \
                mm_pack_store((J), (mc_c0 + mc_i) / (8u / (uint32_t)(OB)), pend);                               \
                pend = 0;                                                                                       \
            }                                                                                                   \
            __asm("" : "+m"(pend)); /* on the stack across the next channel's K loop */                         \
        }                                                                                                       \
    } while (0)

/* Output channel c of a row: a byte store when ob (a constant) is 8, else th_put at the run-time bits. */
TH_ALWAYS_INLINE void mm_store(uint8_t *y, uint32_t c, int32_t v, const int ob, int ob_rt)
{
    if (ob == 8) {
        y[c] = (uint8_t)v;
    } else {
        th_put(y, c, ob_rt, v);
    }
}

/* The packed-field cores (ulp.c, u44.c, fc_ulp.c; their columns in run.c) */

#define ULP_WV(wb) ((wb) == 2 ? 1 : 7) /* weight offset o */

/* fields of an offset-binary weight word minus 1 (2-bit: w + 1) or 1 each (4-bit: w + 7) */
TH_ALWAYS_INLINE uint32_t ulp_v(uint32_t w, const int wb)
{
    return wb == 2 ? (w ^ 0xAAAAAAAAu) - 0x55555555u : (w ^ 0x88888888u) - 0x11111111u;
}

/* The packed-field cores work on four pixels at once: their columns interleave word by word. */
#define ULP_PX 4u

/* Weight f of a tail byte, sign-extended. */
TH_ALWAYS_INLINE int32_t ulp_tail_w(uint32_t b, uint32_t f, const int wb)
{
    return (int32_t)(b << (32u - (uint32_t)wb * (f + 1u))) >> (32 - wb);
}

/* Field sums that fit the core's 16-bit lanes, and the flush period F (ulp.c). */
TH_ALWAYS_INLINE uint32_t ulp_flush_period(int ab, int wb)
{
    return ab == 2 ? (wb == 2 ? 8u : 1u) : 2u;
}

#define U44_S 11u /* field spacing of the a4w4 core (u44.c) */

/* ---------------------------------------------------------------------------------------------------------- */
/* Dispatch: which pair takes which core
 *
 *   pair                 conv2d / pointwise (th_mm_run)               fc (th_fc_run)
 *   a8w8 a4w8 a2w8       lane core, 8-bit weights (lane.c)            fc lane core, 8-bit weights (fc_lane.c)
 *   a8w4                 lane core, 4-bit weights                     fc lane core, 4-bit weights
 *   a8w2                 lane core, 2-bit weights                     fc lane core, 2-bit weights
 *   a4w4                 11-bit field core (u44.c)                    fc lane core, 4-bit weights
 *   a2w4                 8-bit field core (ulp.c) *                   fc lane core, 4-bit weights
 *   a4w2 a2w2            8-bit field core (ulp.c) *                   fc field core (fc_ulp.c) when the input
 *                                                                     zero point is the bottom of its range
 *                                                                     (post-ReLU) *, else fc lane core
 * * when the core's 16-bit field sums cannot overflow for the layer (th_mm_prepare), else the lane core. Every
 *   packed-field core also needs a weight row of at least one word (4 bytes).
 * A layer whose requantization parameters fail th_rq_fast_ok (and every layer on a core without DSP) takes
 * the pair's FALLBACK instead (op files). Within a core, its pick function chooses the specialisation for
 * (all shifts negative: rounding th_rq2, full-range 8-bit clamp, output bits).
 *
 * One pick function per core and pair (not one table) so that a firmware links only the cores of the pairs
 * its layer table names. */

th_mm_fn th_mm_pick_w8(int rnd, int full, int ob);
th_mm_fn th_mm_pick_w4(int rnd, int full, int ob);
th_mm_fn th_mm_pick_w2(int rnd, int full, int ob);
th_mm_fn th_ulp_pick_a2w2(int rnd, int full, int ob);
th_mm_fn th_ulp_pick_a4w2(int rnd, int full, int ob);
th_mm_fn th_ulp_pick_a2w4(int rnd, int full, int ob);
th_mm_fn th_ulp_pick_a4w4(int rnd, int full, int ob);
th_mm_fn th_ulp_pick_none(int rnd, int full, int ob);
th_fc_fn th_fc_pick_w8(int rnd, int full, int ob);
th_fc_fn th_fc_pick_w4(int rnd, int full, int ob);
th_fc_fn th_fc_pick_w2(int rnd, int full, int ob);
th_fc_fn th_fcu_pick_a2w2(int rnd, int full, int ob);
th_fc_fn th_fcu_pick_a4w2(int rnd, int full, int ob);
th_fc_fn th_fcu_pick_none(int rnd, int full, int ob);
#define TH_ULP_PICK_a2w2 th_ulp_pick_a2w2
#define TH_ULP_PICK_a4w2 th_ulp_pick_a4w2
#define TH_ULP_PICK_a2w4 th_ulp_pick_a2w4
#define TH_ULP_PICK_a4w4 th_ulp_pick_a4w4
#define TH_ULP_PICK_a2w8 th_ulp_pick_none
#define TH_ULP_PICK_a4w8 th_ulp_pick_none
#define TH_ULP_PICK_a8w2 th_ulp_pick_none
#define TH_ULP_PICK_a8w4 th_ulp_pick_none
#define TH_ULP_PICK_a8w8 th_ulp_pick_none
#define TH_FCU_PICK_a2w2 th_fcu_pick_a2w2
#define TH_FCU_PICK_a4w2 th_fcu_pick_a4w2
#define TH_FCU_PICK_a2w4 th_fcu_pick_none
#define TH_FCU_PICK_a2w8 th_fcu_pick_none
#define TH_FCU_PICK_a4w4 th_fcu_pick_none
#define TH_FCU_PICK_a4w8 th_fcu_pick_none
#define TH_FCU_PICK_a8w2 th_fcu_pick_none
#define TH_FCU_PICK_a8w4 th_fcu_pick_none
#define TH_FCU_PICK_a8w8 th_fcu_pick_none

/* Defines th_<op>_a<A>w<W> (conv2d, pointwise): a core when th_mm_prepare accepts the layer, else FALLBACK. */
#define TH_MM_PAIR(op, A, W, TAPS, FALLBACK)                                                                    \
    void th_##op##_a##A##w##W(TH_KERNEL_ARGS)                                                                   \
    {                                                                                                           \
        th_mm_plan_t P;                                                                                         \
        if (th_mm_prepare(L, out, (TAPS), A, W, in->c, 1, 1, &P)) {                                                \
            P.fn = P.ulp ? TH_ULP_PICK_a##A##w##W(P.rnd, P.full, out->bits)                                     \
                         : (P.wb == 8 ? th_mm_pick_w8 : th_mm_pick_w##W)(P.rnd, P.full, out->bits);             \
            th_mm_run(L, in, in2, out, arena, scratch, &P);                                                     \
        } else {                                                                                                \
            FALLBACK;                                                                                           \
        }                                                                                                       \
    }
/* Defines th_fc_a<A>w<W>. */
#define TH_FC_PAIR(A, W, FALLBACK)                                                                              \
    void th_fc_a##A##w##W(TH_KERNEL_ARGS)                                                                       \
    {                                                                                                           \
        th_mm_plan_t P;                                                                                         \
        /* the packed-field core (a2w2, a4w2) only when its per-channel correction vanishes (zero point at the \
         * bottom of the range, as after a ReLU): with one pixel it would cost as much as the MACs it saves */ \
        if (th_mm_prepare(L, out, 1u, A, W, in->c, (W) == 2 && in->zero_point == -(1 << ((A) - 1)), 0, &P)) {      \
            const int fr = out->bits == 8 && P.full && P.rnd; /* fc: rounding cores for full 8-bit outputs */  \
            P.ffn = P.ulp ? TH_FCU_PICK_a##A##w##W(fr, P.full, out->bits) : th_fc_pick_w##W(fr, P.full, out->bits); \
            th_fc_run(L, in, in2, out, arena, scratch, &P);                                                     \
        } else {                                                                                                \
            FALLBACK;                                                                                           \
        }                                                                                                       \
    }
#else
#define TH_MM_PAIR(op, A, W, TAPS, FALLBACK)                                                                    \
    void th_##op##_a##A##w##W(TH_KERNEL_ARGS) { FALLBACK; }
#define TH_FC_PAIR(A, W, FALLBACK)                                                                              \
    void th_fc_a##A##w##W(TH_KERNEL_ARGS) { FALLBACK; }
#endif /* TH_USE_SIMD */

#endif /* TH_KERNELS_MM_H */
