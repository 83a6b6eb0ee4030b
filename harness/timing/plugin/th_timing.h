/*
 * th_timing.h - the cycle model shared by the plugin's parts: the Thumb-2 decoder (th_decode.c), the per-core
 * static schedulers (th_sched.c), the memory system (th_mem.c) and the QEMU glue (th_plugin.c).
 *
 * A cycle count is linear in the model's parameters: cycles = sum over events k of count_k * cost_k. The static
 * events of a translation block (instruction classes, pipelining, interlocks; on the Cortex-M7 its dual-issue
 * schedule length) are counted once at translation time; dynamic events (taken branches, mispredictions, cache
 * misses, wait states by address region) are counted as they happen. Calibration fits the costs from the counts.
 */
#ifndef TH_TIMING_H
#define TH_TIMING_H

#include <stdint.h>

/* ---- decoded instruction ---------------------------------------------------------------------------------- */

enum th_class {
    K_ALU,       /* data processing, moves, compares, shifts by immediate */
    K_ALU_SHIFT, /* data processing with a shifted register operand or a shift by register (M7: EX1 shifter) */
    K_SIMD,      /* DSP SIMD add/sub, extend, REV/RBIT, UBFX/SBFX, PKH, SEL (M7: SIMD unit, slot 0) */
    K_SAT,       /* saturating arithmetic, SSAT/USAT, USAD8 (M7: SIMD unit, latency 2) */
    K_SLOT0,     /* CLZ, BFI, BFC (M7: slot 0 only) */
    K_MUL,       /* 32-bit result multiplies and multiply-accumulates incl. SMLAD/SMUAD/SMLA<x><y> */
    K_MUL64,     /* SMULL/UMULL/SMLAL/UMLAL/SMLALD/SMLSLD/UMAAL */
    K_DIV,       /* SDIV/UDIV */
    K_LOAD,      /* LDR/LDREX word (single load) */
    K_LOAD_BH,   /* byte/halfword single loads (M7: slow load data) */
    K_STORE,     /* STR/STRB/STRH/STREX (single store) */
    K_LDRD,
    K_STRD,
    K_LDM,       /* LDM/POP */
    K_STM,       /* STM/PUSH */
    K_BRANCH,    /* B, B<c>, BL, CBZ/CBNZ (direct) */
    K_BRANCH_IND,/* BX, BLX reg, MOV/ADD pc */
    K_TB,        /* TBB/TBH */
    K_IT,
    K_NOP,       /* NOP and memory hints (PLD/PLI) */
    K_SYS,       /* MSR/MRS/CPS/barriers/SVC/BKPT/WFI/UDF */
    K_FP,        /* single-cycle FPU ops (VADD, VMUL, VCVT, VCMP, VMOV imm, VABS ...) */
    K_FP_MAC,    /* VMLA/VMLS/VNMLA/VFMA/VFNMA... */
    K_FP_DIV,    /* VDIV, VSQRT */
    K_FP_MOV,    /* VMOV core<->FP, VMRS/VMSR */
    K_FP_LOAD,   /* VLDR */
    K_FP_STORE,  /* VSTR */
    K_FP_LDM,    /* VLDM/VPOP */
    K_FP_STM,    /* VSTM/VPUSH */
    K_N
};

enum th_branch_kind { BR_NONE, BR_DIRECT, BR_COND, BR_INDIRECT, BR_COND_INDIRECT };

#define F_LOAD 0x01u
#define F_STORE 0x02u
#define F_REGOFF 0x04u   /* register offset addressing */
#define F_WB 0x08u       /* base register writeback */
#define F_PCREL 0x10u    /* literal (PC-relative) load */
#define F_INIT 0x20u     /* inside an IT block (conditional) */
#define F_WRITES_PC 0x40u

typedef struct {
    uint8_t cls;       /* enum th_class */
    uint8_t size;      /* 2 or 4 bytes */
    uint8_t nregs;     /* registers (words) transferred by LDM/STM/VLDM/VSTM */
    uint8_t flags;
    uint8_t branch;    /* enum th_branch_kind */
    uint8_t acc;       /* 1: the written register is also an accumulator input (MLA, SMLAD, SMLAL ...) */
    uint16_t rd;       /* core registers written (bit i = r_i) */
    uint16_t rs;       /* core registers read, all uses */
    uint16_t ra;       /* registers read to form an address */
    uint16_t rdata;    /* registers read as store data or accumulator (read late on the M7) */
} th_insn_t;

/* Decodes one Thumb instruction at `bytes` (2 or 4 bytes, little-endian halfwords). `it_left` carries the IT
 * state across calls (instructions still to come in the current IT block). */
void th_decode(const uint8_t *bytes, unsigned size, unsigned *it_left, th_insn_t *out);
/* Target of the direct branch (B, B<c>, B.W, B<c>.W) at address `pc`, or 0 if it is not one. */
uint32_t th_branch_target(const uint8_t *bytes, unsigned size, uint32_t pc);

/* ---- events and parameters -------------------------------------------------------------------------------- */

#define TH_MAX_REGIONS 6

enum th_event {
    /* static, Cortex-M4 (TRM r0p1 table 3-1 and section 3.3.2) */
    EV_ALU,          /* 1-cycle instructions */
    EV_MUL,          /* MUL/MLA/DSP multiplies (1) */
    EV_DIV,          /* SDIV/UDIV (2..12; fixed) */
    EV_LOAD,         /* single load not pipelined (2) */
    EV_LOAD_PIPE,    /* single load pipelined after a load (1) */
    EV_STORE,        /* STR with immediate offset, or pipelined after a load (1) */
    EV_STORE_REG,    /* STR with register offset not following a load; VSTR (2) */
    EV_DUAL,         /* LDRD/STRD (1+N = 3) */
    EV_MULTI,        /* LDM/STM/PUSH/POP/VLDM/VSTM: the 1 of 1+N */
    EV_MULTI_REG,    /* ... the N of 1+N */
    EV_AGU,          /* address generation interlock: address from the previous data-processing result (+1) */
    EV_LOAD_USE,     /* the instruction after a pipelined load reads its result (+1) */
    EV_BRANCH,       /* the 1 of a branch's 1+P */
    EV_FP_MAC,       /* VMLA family (3) */
    EV_FP_DIV,       /* VDIV/VSQRT (14) */
    EV_SYS,          /* MSR/MRS/barriers (2) */
    /* static, Cortex-M7: cycles of the dual-issue schedule */
    EV_ISSUE,
    /* dynamic */
    EV_REFILL_DIRECT,   /* M4: taken direct branch, the P of 1+P */
    EV_REFILL_INDIRECT, /* M4: taken indirect branch / load to PC / TBB, P */
    EV_MISPREDICT,      /* M7: mispredicted or unpredicted taken branch */
    EV_REGION_BASE,     /* per region r: EV_REGION_BASE + r * EV_PER_REGION + one of the following */
};
enum th_region_event { RE_FETCH, RE_READ, RE_WRITE, RE_IMISS, RE_DMISS, RE_WRITEBACK, RE_N };
#define EV_PER_REGION RE_N
#define EV_N (EV_REGION_BASE + TH_MAX_REGIONS * EV_PER_REGION)
#define EV_STATIC_N (EV_ISSUE + 1)

enum th_core { CORE_M4, CORE_M7 };

/* M7 scheduling parameters (cycles) */
enum th_m7_param { M7_LAT_ALU, M7_LAT_SAT, M7_LAT_MUL, M7_LAT_LOAD, M7_LAT_LOAD_BH, M7_DIV, M7_LDM_PER_CYCLE,
                   M7_TB_ISSUE, M7_SYS_ISSUE, M7_FP_DIV, M7_N };

typedef struct {
    uint32_t base, size;
    uint32_t fetch_ws, read_ws, write_ws; /* cycles per fetch word / data access outside a cache */
    uint32_t icache, dcache;              /* 1: cacheable by the I-/D-cache */
    uint32_t ifill, dfill, writeback;     /* cycles per line fill / dirty line write-back */
} th_region_t;

typedef struct {
    uint32_t size, line, ways; /* bytes, bytes, ways; size 0: no cache */
} th_cache_geom_t;

typedef struct {
    int core;
    double cost[EV_N];   /* cycles per event */
    double m7[M7_N];
    th_region_t region[TH_MAX_REGIONS];
    int n_regions;
    th_cache_geom_t icache, dcache;
    uint32_t fetch_bytes; /* fetch width outside a cache (M4: 4) */
    uint32_t btac_entries;
    int sp_region;        /* the region SP-relative accesses go to (the stack), or -1 */
} th_model_t;

/* Reads the model file written by the harness (harness/timing/model.py). Returns 0, or -1 with `err` filled. */
int th_model_load(th_model_t *m, const char *path, char *err, unsigned errlen);
int th_model_region(const th_model_t *m, uint64_t addr); /* region index, or -1 */

/* ---- static cost of a straight-line block ----------------------------------------------------------------- */

/* Adds the block's static events to `ev` (EV_STATIC_N counters) and fills `prefix[i]` / `prefix_ev[i]` (either may
 * be NULL) with the cycles / static events before instruction i starts (its issue cycle). Returns the block's
 * static cycles (fractional only when calibrated costs are). */
double th_sched_block(const th_model_t *m, const th_insn_t *insn, unsigned n, uint32_t *ev, double *prefix,
                        uint16_t (*prefix_ev)[EV_STATIC_N]);

/* Static cycles of one iteration of a block that loops back to its own start, in the steady state (the M7's
 * register dependencies carry over from the previous iteration; on the M4 the taken-branch refill separates the
 * iterations, so this equals th_sched_block). Adds that iteration's static events to `ev`. */
double th_sched_loop(const th_model_t *m, const th_insn_t *insn, unsigned n, uint32_t *ev);

/* ---- caches and branch prediction ------------------------------------------------------------------------ */

typedef struct {
    th_cache_geom_t g;
    uint32_t sets, line_shift;
    uint32_t *tag;   /* sets * ways, 0 = invalid, else line address + 1 */
    uint32_t *age;   /* LRU stamps */
    uint8_t *dirty;
    uint32_t clock;
    uint32_t fills; /* line fills so far: while unchanged, no line has left the cache */
} th_cache_t;

int th_cache_init(th_cache_t *c, th_cache_geom_t g);
/* Looks up the line holding `addr`; allocates it on a miss. Returns 0 hit, 1 miss, 2 miss that evicted a dirty
 * line. `write` marks the line dirty (write-back, write-allocate). `slot` (may be NULL) is a guess of the line's
 * slot, tried first, and receives the slot the line now occupies. */
int th_cache_access(th_cache_t *c, uint32_t addr, int write, uint32_t *slot);

typedef struct {
    uint32_t n;
    uint32_t *pc;     /* tag: branch address + 1, 0 = empty */
    uint32_t *target;
    uint8_t *ctr;     /* 2-bit saturating counter */
} th_btac_t;

int th_btac_init(th_btac_t *b, uint32_t entries);
/* Predicts the branch at `pc`, then trains with the outcome. Returns 1 if the prediction was wrong (a wrong
 * direction, or a taken branch whose target the BTAC did not hold). */
int th_btac_resolve(th_btac_t *b, uint32_t pc, int taken, uint32_t target);

#endif
