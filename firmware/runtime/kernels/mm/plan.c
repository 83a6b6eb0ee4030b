/*
 * plan.c - th_mm_prepare: whether a conv2d / pointwise / fc layer can take a matrix core (mm.h) at all (the fast
 * requantization th_rq2 is exact for it), which family (lane or packed-field), and the weight row geometry the
 * job loops use. The pair (TH_MM_PAIR, TH_FC_PAIR) then picks the core's specialisation.
 */
#include "mm.h"

#if TH_USE_SIMD

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-schedule-insns")
#endif

int th_mm_prepare(const th_layer_t *L, const th_tensor_t *out, uint32_t taps, int ab, int wb, uint32_t cin,
                  int ulp_ok, int widen_ok, th_mm_plan_t *P)
{
    int rnd;
    uint32_t wrow = taps * th_row_bytes(cin, wb);
    const int ulp = ulp_ok && th_mm_takes_ulp(ab, wb, wrow);
    const int g = ulp ? 0 : MM_G(wb);
    /* scaled accumulators stay below 2^31; ls <= g keeps t an exact right shift of them */
    const int lim = 29 < 31 - g ? 29 : 31 - g;
    if (!th_rq_fast_ok(L, out->c, taps * cin, ab, wb, lim, g == 0 ? 31 : g - 1, &rnd)) {
        return 0;
    }
    P->wsrc = wb;
    if (widen_ok && !ulp && ab == 8 && th_mm_widen(taps, cin, out->c, wb)) {
        wb = 8; /* the lane core runs on the job's weights widened to int8 (lane_run) */
    }
    P->wb = wb;
    P->ab = ab;
    P->ulp = ulp;
    P->rnd = rnd;
    P->wrow = wrow = taps * th_row_bytes(cin, wb); /* conv: taps rows of whole bytes; pointwise/fc: one row */
    P->tap_bytes = th_row_bytes(cin, wb);
    P->nwords = P->wrow / 4u;
    P->nwc = (P->wrow + 3u) / 4u;
    P->tbytes = P->wrow % 4u;
    P->kp = P->wrow * (8u / (uint32_t)wb);
    P->tail = P->tbytes * (8u / (uint32_t)wb);
    P->full = th_clamp_kind(L, out->bits) == TH_CLAMP_FULL; /* the whole output range: one saturation */
    if (!P->full && (out->bits != 8 || (ulp && !(ab == 4 && wb == 4)))) {
        P->rnd = 0; /* these take the general core: per-channel shifts, both bounds */
    }
    P->fn = 0; /* picked by the pair (TH_MM_PAIR), so that a firmware links only the cores it uses */
    P->ffn = 0;
    return 1;
}

#endif /* TH_USE_SIMD */
