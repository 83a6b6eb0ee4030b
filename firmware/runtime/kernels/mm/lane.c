/*
 * lane.c - the lane core of conv2d / pointwise (mm.h): one output channel x four pixels per step, weights
 * unpacked in registers (mm_lane), two MACs per SMLAD.
 *
 * The four pixels' columns interleave word by word (word 4 s + px is lane word s of pixel px), so one LDM
 * (MM_LD4; four LDRs on dual-issue cores) fetches a lane word of the four pixels and every weight lane word, made
 * once, feeds four SMLADs into four independent accumulators. Per 32-bit weight word (32 / W entries) and
 * channel: one LDR, the lane words (SXTB16, plus one AND per two lane words below 8 bits), 16 / W x (one LDM and
 * four SMLAD). The accumulators start from the bias (no moves), two weight words per loop step, the partial
 * last word as one more step.
 *
 * Outputs: 8-bit outputs are one byte store each. 4- and 2-bit outputs are packed in a register: the core steps
 * through 8 / O channels (one byte of each pixel's row) per group, inserts each output with one BFI into a word
 * that holds the four pixels' bytes, and stores each byte once (mm_pack_store): no read-modify-write.
 */
#include "mm.h"

#if TH_USE_SIMD

/* The instruction scheduler before register allocation hoists loads and multiplies across the unrolled field
 * loops and spills registers; the cores keep their source order. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-schedule-insns")
#endif

/* Accumulators of one channel (weights w, K in lane words of the column cp) for the four pixels. */
TH_ALWAYS_INLINE void lane_dot(const th_mm_job_t *J, const uint8_t *w, const uint32_t *cp, int32_t b, int32_t *acc,
                               uint32_t m, const int wb)
{
    const uint32_t LW = 16u / (uint32_t)wb; /* lane words per weight word */
    const uint32_t nw = J->nwords, tb = J->tbytes;
    const uint32_t *c = cp;
    const uint32_t *const cend = cp + 4u * LW * nw;
    int32_t a0 = b, a1 = b, a2 = b, a3 = b;
#define LANE_WORD(OFF)                                                                                          \
    do {                                                                                                        \
        const uint32_t v = th_load32(w + 4u * (OFF));                                                           \
        TH_UNROLL                                                                                               \
        for (uint32_t s = 0; s < LW; ++s) {                                                                     \
            const uint32_t l = mm_lane(v, s, m, wb);                                                            \
            MM_QUAD_DECL(x0, x1, x2, x3);                                                                       \
            MM_LD4(x0, x1, x2, x3, c);                                                                          \
            a0 = th_smlad(l, x0, a0);                                                                           \
            a1 = th_smlad(l, x1, a1);                                                                           \
            a2 = th_smlad(l, x2, a2);                                                                           \
            a3 = th_smlad(l, x3, a3);                                                                           \
        }                                                                                                       \
    } while (0)
    if (nw & 1u) {
        LANE_WORD(0u);
        w += 4;
    }
    while (c != cend) {
        LANE_WORD(0u);
        LANE_WORD(1u);
        w += 8;
    }
    if (tb != 0u) { /* the partial last word: its missing entries are zero weights (column words padded) */
        const uint32_t v = nw != 0u ? th_load32(w + tb - 4u) >> (32u - 8u * tb) : mm_short_word(w, tb);
        TH_UNROLL
        for (uint32_t s = 0; s < LW; ++s) {
            const uint32_t l = mm_lane(v, s, m, wb);
            MM_QUAD_DECL(x0, x1, x2, x3);
            MM_LD4(x0, x1, x2, x3, c);
            a0 = th_smlad(l, x0, a0);
            a1 = th_smlad(l, x1, a1);
            a2 = th_smlad(l, x2, a2);
            a3 = th_smlad(l, x3, a3);
        }
    }
#undef LANE_WORD
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* Channels [J->c0, J->c0 + J->n) of the four pixels of the step (MM_CHANNELS: requantization, stores). */
TH_ALWAYS_INLINE void lane_core(const th_mm_job_t *J, const uint32_t *cp, const int wb, const int rnd,
                                const int kind, const int ob)
{
    /* 4-bit weights: an immediate mask (with four accumulators and an LDM's four registers live, a mask register
     * is spilled and reloaded twice a word; a shift and an AND with an immediate cost one instruction more);
     * 2-bit weights: a mask register (AND of a shifted register, four times a word) */
    uint32_t m = wb == 4 ? 0xF0F0F0F0u : 0xC0C0C0C0u;
    if (wb == 2) {
        __asm("" : "+r"(m));
    }
    MM_CHANNELS(J, wb, rnd, kind, ob, lane_dot(J, w, cp, q->b, a, m, wb));
}

/* The specialisations th_mm_pick_w<W> chooses from: mm_<W>_<rounding>_<full-range clamp>_<output bits>. */
#define LANE_FN(W, R, F, O)                                                                                     \
    static void mm_##W##_##R##_##F##_##O(const th_mm_job_t *J, const uint32_t *cp)                              \
    {                                                                                                           \
        lane_core(J, cp, W, R, (F) ? TH_CLAMP_FULL : TH_CLAMP_ANY, O);                                         \
    }
#define LANE_PICK(W)                                                                                            \
    LANE_FN(W, 1, 1, 8)                                                                                         \
    LANE_FN(W, 1, 0, 8)                                                                                         \
    LANE_FN(W, 0, 1, 8)                                                                                         \
    LANE_FN(W, 0, 0, 8)                                                                                         \
    LANE_FN(W, 1, 1, 4)                                                                                         \
    LANE_FN(W, 0, 1, 4)                                                                                         \
    LANE_FN(W, 0, 0, 4)                                                                                         \
    LANE_FN(W, 1, 1, 2)                                                                                         \
    LANE_FN(W, 0, 1, 2)                                                                                         \
    LANE_FN(W, 0, 0, 2)                                                                                         \
    th_mm_fn th_mm_pick_w##W(int rnd, int full, int ob)                                                         \
    {                                                                                                           \
        if (ob != 8) { /* full: the whole ob-bit range (a saturation); rnd with it only */                      \
            if (full) {                                                                                         \
                return ob == 4 ? (rnd ? mm_##W##_1_1_4 : mm_##W##_0_1_4) : (rnd ? mm_##W##_1_1_2 : mm_##W##_0_1_2); \
            }                                                                                                   \
            return ob == 4 ? mm_##W##_0_0_4 : mm_##W##_0_0_2;                                                   \
        }                                                                                                       \
        if (rnd) {                                                                                              \
            return full ? mm_##W##_1_1_8 : mm_##W##_1_0_8;                                                      \
        }                                                                                                       \
        return full ? mm_##W##_0_1_8 : mm_##W##_0_0_8;                                                          \
    }

LANE_PICK(8)
LANE_PICK(4)
LANE_PICK(2)

#endif /* TH_USE_SIMD */
