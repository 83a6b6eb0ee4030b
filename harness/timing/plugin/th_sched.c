/*
 * Static cost of a straight-line block (a QEMU translation block) under the core's pipeline model.
 *
 * Cortex-M4 (Arm Cortex-M4 TRM r0p1, DDI 0439 / 100166): single issue. Table 3-1 gives each instruction's cycles
 * at zero wait states; section 3.3.2 ("Load/store timings") the pipelining rules modelled here:
 *   - a single load (LDR/LDRB/LDRH/LDRSx/LDREX) takes 2 cycles; when it follows a single load whose destination
 *     does not form its address, it is pipelined and takes 1 ("LDR R0,[R1]; LDR R1,[R2]: three cycles");
 *   - STR with an immediate offset takes 1; with a register offset 2, or 1 when pipelined after a load;
 *     nothing pipelines after a store;
 *   - LDRD/STRD and LDM/STM/PUSH/POP do not pipeline with neighbours: 1+N;
 *   - a load or store whose address comes from the previous data-processing result stalls 1 cycle (no forwarding
 *     path to the address generator);
 *   - (model assumption, not in the TRM) the instruction right after a pipelined load that reads its result
 *     stalls 1 cycle: the pipelined load's data arrives a cycle after the load "completes".
 * Taken-branch refills (the P of 1+P) are dynamic and charged by the plugin when the next block runs.
 *
 * Cortex-M7: in-order dual issue. Arm publishes no per-instruction cycle table for it; the Cortex-M7 TRM (DDI 0489)
 * describes the pipes (two ALU, two load, one store, one MAC, one branch, FPU) and the dual-issue front end. Per-class
 * latencies, operand read stages and issue restrictions here follow LLVM's ARMScheduleM7.td (address operands read a
 * cycle early, MAC accumulators and store data a cycle late, DSP SIMD instructions in slot 0 only, LDRD/LDM/STM and
 * divides single-issue). LDM/STM move two registers per cycle over the 64-bit data path (model assumption).
 */
#include <stdlib.h>

#include "th_timing.h"

/* ---- Cortex-M4 ----------------------------------------------------------------------------------------------- */

static int is_data_processing(unsigned cls)
{
    return cls == K_ALU || cls == K_ALU_SHIFT || cls == K_SIMD || cls == K_SAT || cls == K_SLOT0 ||
           cls == K_MUL || cls == K_MUL64 || cls == K_DIV;
}

static int is_single_load(const th_insn_t *in)
{
    return (in->cls == K_LOAD || in->cls == K_LOAD_BH) && !(in->flags & F_WRITES_PC);
}

/* Adds the M4 events of instruction `in` (given the previous one's state) to ev[]; returns nothing. */
static void m4_events(const th_insn_t *in, const th_insn_t *prev, int prev_pipelined, uint32_t *ev)
{
    int after_load = prev != 0 && is_single_load(prev);
    /* a base register update is not load data */
    uint16_t prev_load_rd = after_load ? (uint16_t)(prev->rd & ~((prev->flags & F_WB) ? prev->ra : 0)) : 0;
    switch (in->cls) {
    case K_MUL:
    case K_MUL64:
        ev[EV_MUL]++;
        break;
    case K_DIV:
        ev[EV_DIV]++;
        break;
    case K_LOAD:
    case K_LOAD_BH:
        if (!(in->flags & F_WRITES_PC) && after_load && !(in->ra & prev_load_rd)) {
            ev[EV_LOAD_PIPE]++;
        } else {
            ev[EV_LOAD]++;
        }
        break;
    case K_FP_LOAD:
        ev[EV_LOAD]++;
        break;
    case K_STORE:
        if ((in->flags & F_REGOFF) && !(after_load && !(in->ra & prev_load_rd))) {
            ev[EV_STORE_REG]++;
        } else {
            ev[EV_STORE]++;
        }
        break;
    case K_FP_STORE:
        ev[EV_STORE_REG]++;
        break;
    case K_LDRD:
    case K_STRD:
        ev[EV_DUAL]++;
        break;
    case K_LDM:
    case K_STM:
    case K_FP_LDM:
    case K_FP_STM:
        ev[EV_MULTI]++;
        ev[EV_MULTI_REG] += in->nregs;
        break;
    case K_BRANCH:
    case K_BRANCH_IND:
        ev[EV_BRANCH]++;
        break;
    case K_TB: /* "two cycles for the load, one cycle for the add" + refill (dynamic) */
        ev[EV_LOAD]++;
        ev[EV_ALU]++;
        break;
    case K_FP_MAC:
        ev[EV_FP_MAC]++;
        break;
    case K_FP_DIV:
        ev[EV_FP_DIV]++;
        break;
    case K_SYS:
        ev[EV_SYS]++;
        break;
    default:
        ev[EV_ALU]++;
        break;
    }
    if ((in->flags & (F_LOAD | F_STORE)) && prev != 0 && is_data_processing(prev->cls) && (in->ra & prev->rd)) {
        ev[EV_AGU]++;
    }
    if (prev_pipelined && (in->rs & prev_load_rd)) {
        ev[EV_LOAD_USE]++;
    }
}

static double m4_block(const th_model_t *m, const th_insn_t *insn, unsigned n, uint32_t *ev, double *prefix,
                         uint16_t (*prefix_ev)[EV_STATIC_N])
{
    uint32_t local[EV_STATIC_N] = {0};
    double cycles = 0.0;
    int prev_pipelined = 0;
    for (unsigned i = 0; i < n; ++i) {
        if (prefix) {
            prefix[i] = cycles;
        }
        if (prefix_ev) {
            for (unsigned k = 0; k < EV_STATIC_N; ++k) {
                prefix_ev[i][k] = (uint16_t)local[k];
            }
        }
        uint32_t before[EV_STATIC_N];
        for (unsigned k = 0; k < EV_STATIC_N; ++k) {
            before[k] = local[k];
        }
        m4_events(&insn[i], i ? &insn[i - 1] : 0, prev_pipelined, local);
        prev_pipelined = local[EV_LOAD_PIPE] != before[EV_LOAD_PIPE];
        for (unsigned k = 0; k < EV_STATIC_N; ++k) {
            cycles += (double)(local[k] - before[k]) * m->cost[k];
        }
    }
    for (unsigned k = 0; k < EV_STATIC_N; ++k) {
        ev[k] += local[k];
    }
    return cycles;
}

/* ---- Cortex-M7 ----------------------------------------------------------------------------------------------- */

enum { U_ALU, U_LOAD, U_STORE, U_MAC, U_BR, U_SHIFT, U_SIMD, U_VFP, U_N };
static const uint8_t unit_cap[U_N] = {2, 2, 1, 1, 1, 1, 1, 1};

#define A_SINGLE 1u /* issues alone */
#define A_SLOT0 2u  /* only the first instruction of a pair */

typedef struct {
    uint8_t units[U_N];
    uint8_t attr;
    uint32_t lat;       /* result latency (cycles until an EX2 reader can issue) */
    uint32_t occupancy; /* issue cycles */
} m7_props_t;

static m7_props_t m7_props(const th_model_t *m, const th_insn_t *in)
{
    m7_props_t p = {{0}, 0, (uint32_t)m->m7[M7_LAT_ALU], 1};
    uint32_t per = m->m7[M7_LDM_PER_CYCLE] > 0 ? (uint32_t)m->m7[M7_LDM_PER_CYCLE] : 2u;
    switch (in->cls) {
    case K_ALU:
    case K_IT:
        p.units[U_ALU] = 1;
        break;
    case K_ALU_SHIFT:
        p.units[U_ALU] = 1;
        p.units[U_SHIFT] = 1;
        break;
    case K_SIMD:
        p.units[U_ALU] = 1;
        p.units[U_SIMD] = 1;
        p.attr = A_SLOT0;
        break;
    case K_SAT:
        p.units[U_ALU] = 1;
        p.units[U_SIMD] = 1;
        p.attr = A_SLOT0;
        p.lat = (uint32_t)m->m7[M7_LAT_SAT];
        break;
    case K_SLOT0:
        p.units[U_ALU] = 1;
        p.attr = A_SLOT0;
        break;
    case K_MUL:
    case K_MUL64:
        p.units[U_MAC] = 1;
        p.lat = (uint32_t)m->m7[M7_LAT_MUL];
        break;
    case K_DIV:
        p.attr = A_SINGLE;
        p.occupancy = (uint32_t)m->m7[M7_DIV];
        break;
    case K_LOAD:
    case K_FP_LOAD:
        p.units[U_LOAD] = 1;
        p.lat = (uint32_t)m->m7[M7_LAT_LOAD];
        break;
    case K_LOAD_BH:
        p.units[U_LOAD] = 1;
        p.lat = (uint32_t)m->m7[M7_LAT_LOAD_BH];
        break;
    case K_STORE:
    case K_FP_STORE:
        p.units[U_STORE] = 1;
        break;
    case K_LDRD:
        p.units[U_LOAD] = 2;
        p.attr = A_SINGLE;
        p.lat = (uint32_t)m->m7[M7_LAT_LOAD];
        break;
    case K_STRD:
        p.units[U_STORE] = 1;
        p.attr = A_SINGLE;
        break;
    case K_LDM:
    case K_FP_LDM:
        p.attr = A_SINGLE;
        p.occupancy = (in->nregs + per - 1u) / per;
        p.lat = p.occupancy - 1u + (uint32_t)m->m7[M7_LAT_LOAD];
        break;
    case K_STM:
    case K_FP_STM:
        p.attr = A_SINGLE;
        p.occupancy = (in->nregs + per - 1u) / per;
        break;
    case K_BRANCH:
    case K_BRANCH_IND:
        p.units[U_BR] = 1;
        break;
    case K_TB:
        p.attr = A_SINGLE;
        p.occupancy = (uint32_t)m->m7[M7_TB_ISSUE];
        break;
    case K_SYS:
        p.attr = A_SINGLE;
        p.occupancy = (uint32_t)m->m7[M7_SYS_ISSUE];
        break;
    case K_FP_DIV:
        p.units[U_VFP] = 1;
        p.attr = A_SINGLE;
        p.occupancy = (uint32_t)m->m7[M7_FP_DIV];
        break;
    case K_FP:
    case K_FP_MAC:
    case K_FP_MOV:
        p.units[U_VFP] = 1;
        p.lat = 3u;
        break;
    default: /* K_NOP */
        break;
    }
    if (p.occupancy == 0u) {
        p.occupancy = 1u;
    }
    return p;
}

static double m7_block(const th_model_t *m, const th_insn_t *insn, unsigned n, uint32_t *ev, double *prefix,
                         uint16_t (*prefix_ev)[EV_STATIC_N])
{
    int64_t ready[16];
    for (unsigned r = 0; r < 16u; ++r) {
        ready[r] = -64; /* values from before the block are ready */
    }
    int64_t t_prev = -1, busy_until = 0, end = 0;
    int slot_prev = 1;
    uint8_t prev_attr = 0;
    uint8_t used[U_N] = {0};
    for (unsigned i = 0; i < n; ++i) {
        const th_insn_t *in = &insn[i];
        m7_props_t p = m7_props(m, in);
        int64_t need = 0;
        for (unsigned r = 0; r < 15u; ++r) { /* PC reads are never late */
            if (!(in->rs & (1u << r))) {
                continue;
            }
            int64_t t = ready[r];
            if (in->ra & (1u << r)) {
                t += 1; /* address operands are read at issue (EX1 address generation) */
            } else if ((in->rdata & (1u << r)) && (in->acc || (in->flags & F_STORE))) {
                t -= 1; /* accumulators and store data are read a stage late */
            }
            if (t > need) {
                need = t;
            }
        }
        if (busy_until > need) {
            need = busy_until;
        }
        int pair = need <= t_prev && slot_prev == 0 && !(p.attr & (A_SINGLE | A_SLOT0)) &&
                   !(prev_attr & A_SINGLE);
        for (unsigned u = 0; pair && u < U_N; ++u) {
            if (used[u] + p.units[u] > unit_cap[u]) {
                pair = 0;
            }
        }
        int64_t t;
        if (pair) {
            t = t_prev;
            slot_prev = 1;
        } else {
            t = need > t_prev + 1 ? need : t_prev + 1;
            slot_prev = 0;
            for (unsigned u = 0; u < U_N; ++u) {
                used[u] = 0;
            }
        }
        for (unsigned u = 0; u < U_N; ++u) {
            used[u] = (uint8_t)(used[u] + p.units[u]);
        }
        if (prefix) {
            prefix[i] = (double)t * m->cost[EV_ISSUE];
        }
        if (prefix_ev) {
            for (unsigned k = 0; k < EV_STATIC_N; ++k) {
                prefix_ev[i][k] = 0;
            }
            prefix_ev[i][EV_ISSUE] = (uint16_t)t;
        }
        uint16_t wb = (in->flags & F_WB) ? in->ra : 0;
        for (unsigned r = 0; r < 16u; ++r) {
            if (in->rd & (1u << r)) {
                ready[r] = t + ((wb & (1u << r)) ? 0 : (int64_t)p.lat);
            }
        }
        /* a multi-cycle issue (LDM, divide, TBB) holds the issue stage; a single-cycle one leaves its slot free */
        busy_until = p.occupancy > 1u ? t + (int64_t)p.occupancy : t;
        t_prev = t;
        prev_attr = p.attr;
        if (t + (int64_t)p.occupancy > end) {
            end = t + (int64_t)p.occupancy;
        }
    }
    ev[EV_ISSUE] += (uint32_t)end;
    return (double)end * m->cost[EV_ISSUE];
}

double th_sched_block(const th_model_t *m, const th_insn_t *insn, unsigned n, uint32_t *ev, double *prefix,
                        uint16_t (*prefix_ev)[EV_STATIC_N])
{
    return m->core == CORE_M7 ? m7_block(m, insn, n, ev, prefix, prefix_ev)
                              : m4_block(m, insn, n, ev, prefix, prefix_ev);
}

double th_sched_loop(const th_model_t *m, const th_insn_t *insn, unsigned n, uint32_t *ev)
{
    if (m->core != CORE_M7 || n == 0u) {
        return th_sched_block(m, insn, n, ev, 0, 0);
    }
    /* The marginal cost of the 4th back-to-back copy: the schedule has settled into its steady state. */
    th_insn_t *copies = malloc(4u * n * sizeof *copies);
    if (!copies) {
        return th_sched_block(m, insn, n, ev, 0, 0);
    }
    for (unsigned k = 0; k < 4u; ++k) {
        for (unsigned i = 0; i < n; ++i) {
            copies[k * n + i] = insn[i];
        }
    }
    uint32_t e3[EV_STATIC_N] = {0}, e4[EV_STATIC_N] = {0};
    double c3 = th_sched_block(m, copies, 3u * n, e3, 0, 0);
    double c4 = th_sched_block(m, copies, 4u * n, e4, 0, 0);
    free(copies);
    ev[EV_ISSUE] += e4[EV_ISSUE] - e3[EV_ISSUE];
    return c4 - c3;
}
