/*
 * Thumb-2 (ARMv7E-M) instruction classes and register use, decoded from the instruction bytes.
 *
 * The encodings follow the ARMv7-M Architecture Reference Manual (DDI 0403E), chapter A5 "The Thumb Instruction
 * Set Encoding": A5.2 (16-bit), A5.3 (32-bit) and A6/A7 for the floating-point extension. Only what the timing
 * model needs is extracted: the class, the registers read (all, for address generation, as store data or
 * accumulator) and written, the transfer count of multiple loads/stores, and whether the instruction branches.
 * Floating-point registers are not tracked (the firmware's timed kernels are integer).
 */
#include "th_timing.h"

#define R(n) ((uint16_t)(1u << ((n) & 15u)))
#define PC 15u
#define LR 14u
#define SP 13u

static unsigned popcount16(uint32_t v)
{
    unsigned n = 0;
    for (v &= 0xFFFFu; v; v &= v - 1u) {
        ++n;
    }
    return n;
}

static void set(th_insn_t *o, unsigned cls, uint16_t rd, uint16_t rs)
{
    o->cls = (uint8_t)cls;
    o->rd = rd;
    o->rs = rs;
}

/* A single load or store: class, data register, address registers. */
static void single_ls(th_insn_t *o, int load, unsigned size, unsigned rt, unsigned rn, int rm, int wb, int pcrel)
{
    uint16_t ra = R(rn) | (rm >= 0 ? R((unsigned)rm) : 0);
    o->ra = ra;
    o->flags |= (uint8_t)((load ? F_LOAD : F_STORE) | (rm >= 0 ? F_REGOFF : 0) | (wb ? F_WB : 0) |
                          (pcrel ? F_PCREL : 0));
    if (load) {
        set(o, size == 2u ? K_LOAD : K_LOAD_BH, (uint16_t)(R(rt) | (wb ? R(rn) : 0)), ra);
        if (rt == PC) {
            o->flags |= F_WRITES_PC;
            o->branch = BR_INDIRECT;
        }
    } else {
        set(o, K_STORE, wb ? R(rn) : 0, (uint16_t)(ra | R(rt)));
        o->rdata = R(rt);
    }
}

static void multi_ls(th_insn_t *o, int load, unsigned rn, uint32_t list, int wb)
{
    o->nregs = (uint8_t)popcount16(list);
    o->ra = R(rn);
    o->flags |= (uint8_t)((load ? F_LOAD : F_STORE) | (wb ? F_WB : 0));
    if (load) {
        set(o, K_LDM, (uint16_t)(list | (wb ? R(rn) : 0)), R(rn));
        if (list & R(PC)) {
            o->flags |= F_WRITES_PC;
            o->branch = BR_INDIRECT;
        }
    } else {
        set(o, K_STM, wb ? R(rn) : 0, (uint16_t)(R(rn) | list));
        o->rdata = (uint16_t)list;
    }
}

static void decode16(uint32_t hw, th_insn_t *o)
{
    unsigned rd3 = hw & 7u, rm3 = (hw >> 3) & 7u, rn3 = (hw >> 3) & 7u;
    if ((hw >> 14) == 0u) { /* 00xxxx: shift (immediate), add, subtract, move, compare */
        unsigned op = (hw >> 11) & 7u;
        if (op <= 2u) {
            set(o, K_ALU, R(rd3), R(rm3));
        } else if (op == 3u) {
            uint16_t rs = R(rn3) | (((hw >> 10) & 1u) ? 0 : R((hw >> 6) & 7u));
            set(o, K_ALU, R(rd3), rs);
        } else {
            unsigned rdn = (hw >> 8) & 7u;
            if (op == 4u) {
                set(o, K_ALU, R(rdn), 0); /* MOV imm */
            } else if (op == 5u) {
                set(o, K_ALU, 0, R(rdn)); /* CMP imm */
            } else {
                set(o, K_ALU, R(rdn), R(rdn));
            }
        }
        return;
    }
    if ((hw >> 10) == 0x10u) { /* 010000: data processing (register) */
        unsigned op = (hw >> 6) & 0xFu;
        uint16_t both = R(rm3) | R(rd3);
        if (op == 13u) {
            set(o, K_MUL, R(rd3), both);
        } else if (op == 8u || op == 10u || op == 11u) {
            set(o, K_ALU, 0, both); /* TST, CMP, CMN */
        } else if (op == 9u || op == 15u) {
            set(o, K_ALU, R(rd3), R(rm3)); /* RSB #0, MVN */
        } else if (op == 2u || op == 3u || op == 4u || op == 7u) {
            set(o, K_ALU_SHIFT, R(rd3), both); /* shifts by register */
        } else {
            set(o, K_ALU, R(rd3), both);
        }
        return;
    }
    if ((hw >> 10) == 0x11u) { /* 010001: special data processing, branch and exchange */
        unsigned op = (hw >> 8) & 3u;
        unsigned rdn = (((hw >> 7) & 1u) << 3) | rd3, rm = (hw >> 3) & 0xFu;
        if (op == 3u) { /* BX / BLX register */
            set(o, K_BRANCH_IND, ((hw >> 7) & 1u) ? R(LR) : 0, R(rm));
            o->flags |= F_WRITES_PC;
            o->branch = BR_INDIRECT;
            return;
        }
        if (op == 1u) {
            set(o, K_ALU, 0, (uint16_t)(R(rdn) | R(rm)));
        } else if (op == 0u) {
            set(o, K_ALU, R(rdn), (uint16_t)(R(rdn) | R(rm)));
        } else {
            set(o, K_ALU, R(rdn), R(rm));
        }
        if (op != 1u && rdn == PC) {
            o->cls = K_BRANCH_IND;
            o->flags |= F_WRITES_PC;
            o->branch = BR_INDIRECT;
        }
        return;
    }
    if ((hw >> 11) == 0x09u) { /* LDR (literal) */
        single_ls(o, 1, 2u, (hw >> 8) & 7u, PC, -1, 0, 1);
        return;
    }
    if ((hw >> 12) == 0x5u) { /* load/store register offset */
        static const uint8_t load[8] = {0, 0, 0, 1, 1, 1, 1, 1};
        static const uint8_t size[8] = {2, 1, 0, 0, 2, 1, 0, 1};
        unsigned opb = (hw >> 9) & 7u;
        single_ls(o, load[opb], size[opb], rd3, rn3, (int)((hw >> 6) & 7u), 0, 0);
        return;
    }
    if ((hw >> 13) == 0x3u) { /* LDR/STR(B) immediate */
        single_ls(o, (int)((hw >> 11) & 1u), ((hw >> 12) & 1u) ? 0u : 2u, rd3, rn3, -1, 0, 0);
        return;
    }
    if ((hw >> 12) == 0x8u) { /* LDRH/STRH immediate */
        single_ls(o, (int)((hw >> 11) & 1u), 1u, rd3, rn3, -1, 0, 0);
        return;
    }
    if ((hw >> 12) == 0x9u) { /* LDR/STR SP-relative */
        single_ls(o, (int)((hw >> 11) & 1u), 2u, (hw >> 8) & 7u, SP, -1, 0, 0);
        return;
    }
    if ((hw >> 11) == 0x14u) { /* ADR */
        set(o, K_ALU, R((hw >> 8) & 7u), R(PC));
        return;
    }
    if ((hw >> 11) == 0x15u) { /* ADD Rd, SP, #imm */
        set(o, K_ALU, R((hw >> 8) & 7u), R(SP));
        return;
    }
    if ((hw >> 12) == 0xBu) { /* miscellaneous 16-bit */
        if ((hw >> 8) == 0xB0u) {
            set(o, K_ALU, R(SP), R(SP)); /* ADD/SUB SP, SP, #imm */
        } else if ((hw & 0xF500u) == 0xB100u) {
            set(o, K_BRANCH, 0, R(rd3)); /* CBZ/CBNZ */
            o->branch = BR_COND;
        } else if ((hw >> 8) == 0xB2u) {
            set(o, K_SIMD, R(rd3), R(rm3)); /* SXTH SXTB UXTH UXTB */
        } else if ((hw >> 9) == 0x5Au) {
            multi_ls(o, 0, SP, (hw & 0xFFu) | (((hw >> 8) & 1u) ? R(LR) : 0u), 1); /* PUSH */
        } else if ((hw >> 9) == 0x5Eu) {
            multi_ls(o, 1, SP, (hw & 0xFFu) | (((hw >> 8) & 1u) ? R(PC) : 0u), 1); /* POP */
        } else if ((hw >> 8) == 0xBAu) {
            set(o, K_SIMD, R(rd3), R(rm3)); /* REV REV16 REVSH */
        } else if ((hw >> 8) == 0xBFu) {
            set(o, (hw & 0xFu) ? K_IT : (((hw >> 4) & 0xFu) == 3u ? K_SYS : K_NOP), 0, 0); /* IT, hints (WFI) */
        } else {
            set(o, K_SYS, 0, 0); /* CPS, BKPT */
        }
        return;
    }
    if ((hw >> 12) == 0xCu) { /* LDM/STM */
        unsigned rn = (hw >> 8) & 7u, L = (hw >> 11) & 1u;
        multi_ls(o, (int)L, rn, hw & 0xFFu, !(L && (hw & R(rn))));
        return;
    }
    if ((hw >> 12) == 0xDu) { /* conditional branch, UDF, SVC */
        if (((hw >> 9) & 7u) == 7u) {
            set(o, K_SYS, 0, 0);
        } else {
            set(o, K_BRANCH, 0, 0);
            o->branch = BR_COND;
        }
        return;
    }
    if ((hw >> 11) == 0x1Cu) { /* B */
        set(o, K_BRANCH, 0, 0);
        o->branch = BR_DIRECT;
        return;
    }
    set(o, K_SYS, 0, 0);
}

/* Data-processing opcodes whose Rd = PC with S set is the compare form (TST, TEQ, CMN, CMP). */
static int is_compare_form(unsigned opc, unsigned rd, unsigned s)
{
    return rd == PC && s && (opc == 0u || opc == 4u || opc == 8u || opc == 13u);
}

static void decode_fp(uint32_t hw1, uint32_t hw2, th_insn_t *o)
{
    unsigned rn = hw1 & 0xFu, rt = hw2 >> 12;
    if ((hw1 & 0xEE00u) == 0xEC00u) { /* extension register load/store, 64-bit transfers */
        unsigned puw = ((hw1 >> 8) & 1u) << 2 | ((hw1 >> 7) & 1u) << 1 | ((hw1 >> 5) & 1u), L = (hw1 >> 4) & 1u;
        if ((hw1 & 0x01E0u) == 0x0040u) { /* VMOV two core registers <-> D/2 S */
            uint16_t r = (uint16_t)(R(rt) | R(rn));
            set(o, K_FP_MOV, L ? r : 0, L ? 0 : r);
            return;
        }
        o->ra = R(rn);
        if ((puw & 5u) == 4u) { /* P=1 W=0: VLDR/VSTR */
            o->flags |= (uint8_t)(L ? F_LOAD : F_STORE) | (rn == PC ? F_PCREL : 0);
            set(o, L ? K_FP_LOAD : K_FP_STORE, 0, R(rn));
            return;
        }
        o->nregs = (uint8_t)(hw2 & 0xFFu); /* words */
        o->flags |= (uint8_t)((L ? F_LOAD : F_STORE) | ((puw & 1u) ? F_WB : 0));
        set(o, L ? K_FP_LDM : K_FP_STM, (puw & 1u) ? R(rn) : 0, R(rn));
        return;
    }
    if ((hw1 & 0xEF00u) == 0xEE00u && (hw2 & 0x10u) == 0u) { /* VFP data processing */
        unsigned opc1 = (((hw1 >> 7) & 1u) << 2) | ((hw1 >> 4) & 3u);
        unsigned opc2 = hw1 & 0xFu, opc3 = (hw2 >> 6) & 3u;
        if (opc1 == 0u || opc1 == 1u || opc1 == 5u || opc1 == 6u) {
            set(o, K_FP_MAC, 0, 0);
        } else if (opc1 == 4u || (opc1 == 7u && opc2 == 1u && opc3 == 3u)) {
            set(o, K_FP_DIV, 0, 0); /* VDIV, VSQRT */
        } else {
            set(o, K_FP, 0, 0);
        }
        return;
    }
    if ((hw1 & 0xEF00u) == 0xEE00u) { /* 8/16/32-bit transfer core <-> FP register, VMRS/VMSR */
        unsigned L = (hw1 >> 4) & 1u;
        set(o, K_FP_MOV, (L && rt != PC) ? R(rt) : 0, L ? 0 : R(rt));
        return;
    }
    set(o, K_SYS, 0, 0); /* other coprocessor instructions */
}

static void decode_ls_single32(uint32_t hw1, uint32_t hw2, th_insn_t *o, int load)
{
    unsigned size = (hw1 >> 5) & 3u, rn = hw1 & 0xFu, rt = hw2 >> 12;
    int rm = -1, wb = 0;
    if (rn == PC || ((hw1 >> 7) & 1u)) {
        /* imm12 (or literal): no writeback */
    } else if ((hw2 >> 11) & 1u) {
        wb = (int)((hw2 >> 8) & 1u) && ((hw2 >> 8) & 0xFu) != 0xEu;
    } else {
        rm = (int)(hw2 & 0xFu);
    }
    if (load && rt == PC && size != 2u) { /* PLD/PLI hints */
        set(o, K_NOP, 0, (uint16_t)(R(rn) | (rm >= 0 ? R((unsigned)rm) : 0)));
        return;
    }
    single_ls(o, load, size, rt, rn, rm, wb, rn == PC);
}

static void decode_dp_register(uint32_t hw1, uint32_t hw2, th_insn_t *o)
{
    unsigned op1 = (hw1 >> 4) & 0xFu, op2 = (hw2 >> 4) & 0xFu;
    unsigned rn = hw1 & 0xFu, rd = (hw2 >> 8) & 0xFu, rm = hw2 & 0xFu;
    uint16_t both = (uint16_t)(R(rn) | R(rm));
    if ((op1 & 8u) == 0u && op2 == 0u) {
        set(o, K_ALU_SHIFT, R(rd), both); /* LSL/LSR/ASR/ROR by register */
    } else if ((op1 & 8u) == 0u && (op2 & 8u)) {
        set(o, K_SIMD, R(rd), rn == PC ? R(rm) : both); /* SXTAH .. UXTB */
    } else if ((op1 & 8u) && (op2 & 8u) == 0u) {
        set(o, (op2 & 3u) == 1u ? K_SAT : K_SIMD, R(rd), both); /* parallel add/sub: basic, Q, halving */
    } else if ((op1 & 0xCu) == 0x8u && (op2 & 0xCu) == 0x8u) {
        unsigned a = op1 & 3u, b = op2 & 3u;
        if (a == 0u) {
            set(o, K_SAT, R(rd), both); /* QADD QDADD QSUB QDSUB */
        } else if (a == 3u && b == 0u) {
            set(o, K_SLOT0, R(rd), R(rm)); /* CLZ */
        } else {
            set(o, K_SIMD, R(rd), a == 1u ? R(rm) : both); /* REV REV16 RBIT REVSH, SEL */
        }
    } else {
        set(o, K_SYS, 0, 0);
    }
}

static void decode_mul(uint32_t hw1, uint32_t hw2, th_insn_t *o)
{
    unsigned op1 = (hw1 >> 4) & 7u, rn = hw1 & 0xFu, ra = hw2 >> 12, rd = (hw2 >> 8) & 0xFu, rm = hw2 & 0xFu;
    uint16_t rs = (uint16_t)(R(rn) | R(rm));
    int acc = ra != PC;
    if (acc) {
        rs |= R(ra);
        o->rdata = R(ra);
        o->acc = 1;
    }
    set(o, op1 == 7u ? K_SAT : K_MUL, R(rd), rs); /* USAD8/USADA8 go down the SIMD path */
}

static void decode_mul64(uint32_t hw1, uint32_t hw2, th_insn_t *o)
{
    unsigned op1 = (hw1 >> 4) & 7u, op2 = (hw2 >> 4) & 0xFu;
    unsigned rn = hw1 & 0xFu, lo = hw2 >> 12, hi = (hw2 >> 8) & 0xFu, rm = hw2 & 0xFu;
    uint16_t rs = (uint16_t)(R(rn) | R(rm));
    if ((op1 == 1u || op1 == 3u) && op2 == 0xFu) {
        set(o, K_DIV, R(hi), rs);
        return;
    }
    uint16_t out = (uint16_t)(R(lo) | R(hi));
    if (op1 >= 4u) { /* accumulating: SMLAL*, SMLSLD, UMLAL, UMAAL */
        rs |= out;
        o->rdata = out;
        o->acc = 1;
    }
    set(o, K_MUL64, out, rs);
}

static void decode32(uint32_t hw1, uint32_t hw2, th_insn_t *o)
{
    unsigned op1 = (hw1 >> 11) & 3u, op2 = (hw1 >> 4) & 0x7Fu;
    unsigned rn = hw1 & 0xFu;
    if (op1 == 1u) {
        if ((op2 & 0x64u) == 0x00u) { /* load/store multiple */
            unsigned opc = (hw1 >> 7) & 3u, W = (hw1 >> 5) & 1u, L = (hw1 >> 4) & 1u;
            if (opc == 1u || opc == 2u) {
                multi_ls(o, (int)L, rn, hw2 & 0xDFFFu, (int)W);
            } else {
                set(o, K_SYS, 0, 0); /* SRS/RFE */
            }
        } else if ((op2 & 0x64u) == 0x04u) { /* load/store dual or exclusive, table branch */
            unsigned a = (hw1 >> 7) & 3u, b = (hw1 >> 4) & 3u, c = (hw2 >> 4) & 0xFu;
            unsigned rt = hw2 >> 12, rt2 = (hw2 >> 8) & 0xFu, W = (hw1 >> 5) & 1u;
            if (a == 0u && b == 0u) { /* STREX */
                single_ls(o, 0, 2u, rt, rn, -1, 0, 0);
                o->rd = R(rt2);
            } else if (a == 0u && b == 1u) {
                single_ls(o, 1, 2u, rt, rn, -1, 0, 0); /* LDREX */
            } else if (((a & 2u) == 0u && b == 2u) || ((a & 2u) && !(b & 1u))) { /* STRD */
                o->ra = R(rn);
                o->rdata = (uint16_t)(R(rt) | R(rt2));
                o->flags |= (uint8_t)(F_STORE | (W ? F_WB : 0));
                set(o, K_STRD, W ? R(rn) : 0, (uint16_t)(R(rn) | R(rt) | R(rt2)));
            } else if (((a & 2u) == 0u && b == 3u) || ((a & 2u) && (b & 1u))) { /* LDRD */
                o->ra = R(rn);
                o->flags |= (uint8_t)(F_LOAD | (W ? F_WB : 0) | (rn == PC ? F_PCREL : 0));
                set(o, K_LDRD, (uint16_t)(R(rt) | R(rt2) | (W ? R(rn) : 0)), R(rn));
            } else if (a == 1u && b == 0u) {
                single_ls(o, 0, 1u, rt, rn, -1, 0, 0); /* STREXB/H */
                o->rd = R(hw2 & 0xFu);
            } else if (a == 1u && b == 1u && c <= 1u) { /* TBB/TBH */
                o->ra = (uint16_t)(R(rn) | R(hw2 & 0xFu));
                o->flags |= F_LOAD | F_WRITES_PC;
                o->branch = BR_INDIRECT;
                set(o, K_TB, 0, o->ra);
            } else {
                single_ls(o, 1, 1u, rt, rn, -1, 0, 0); /* LDREXB/H */
            }
        } else if ((op2 & 0x60u) == 0x20u) { /* data processing (shifted register) */
            unsigned opc = (hw1 >> 5) & 0xFu, s = (hw1 >> 4) & 1u, rd = (hw2 >> 8) & 0xFu, rm = hw2 & 0xFu;
            unsigned imm = (((hw2 >> 12) & 7u) << 2) | ((hw2 >> 6) & 3u), type = (hw2 >> 4) & 3u;
            uint16_t rs = R(rm);
            if (!((opc == 2u || opc == 3u) && rn == PC)) {
                rs |= R(rn);
            }
            unsigned cls = (imm != 0u || type == 3u) ? K_ALU_SHIFT : K_ALU;
            if (opc == 6u) {
                cls = K_SIMD; /* PKHBT/PKHTB */
            }
            set(o, cls, is_compare_form(opc, rd, s) ? 0 : R(rd), rs);
        } else {
            decode_fp(hw1, hw2, o);
        }
        return;
    }
    if (op1 == 2u) {
        if ((hw2 >> 15) == 0u) {
            unsigned rd = (hw2 >> 8) & 0xFu;
            if ((op2 & 0x20u) == 0u) { /* modified immediate */
                unsigned opc = (hw1 >> 5) & 0xFu, s = (hw1 >> 4) & 1u;
                uint16_t rs = ((opc == 2u || opc == 3u) && rn == PC) ? 0 : R(rn);
                set(o, K_ALU, is_compare_form(opc, rd, s) ? 0 : R(rd), rs);
            } else { /* plain binary immediate */
                unsigned opc = (hw1 >> 4) & 0x1Fu;
                if (opc == 0x04u) {
                    set(o, K_ALU, R(rd), 0); /* MOVW */
                } else if (opc == 0x0Cu) {
                    set(o, K_ALU, R(rd), R(rd)); /* MOVT */
                } else if (opc == 0x10u || opc == 0x12u || opc == 0x18u || opc == 0x1Au) {
                    set(o, K_SAT, R(rd), R(rn)); /* SSAT/USAT(16) */
                } else if (opc == 0x14u || opc == 0x1Cu) {
                    set(o, K_SIMD, R(rd), R(rn)); /* SBFX/UBFX */
                } else if (opc == 0x16u) {
                    set(o, K_SLOT0, R(rd), (uint16_t)(R(rd) | (rn == PC ? 0 : R(rn)))); /* BFI/BFC */
                } else {
                    set(o, K_ALU, R(rd), R(rn)); /* ADDW/SUBW/ADR */
                }
            }
            return;
        }
        unsigned b = (hw2 >> 12) & 5u;
        if (b == 0u) {
            if (((hw1 >> 7) & 7u) != 7u) {
                set(o, K_BRANCH, 0, 0); /* B<c>.W */
                o->branch = BR_COND;
            } else {
                unsigned op = (hw1 >> 4) & 0x7Fu;
                set(o, (op == 0x3Au && (hw2 & 0xFFu) == 0u) ? K_NOP : K_SYS, 0, 0); /* NOP.W, MSR/MRS/DMB */
                if (op == 0x3Eu || op == 0x3Fu) {
                    o->rd = R((hw2 >> 8) & 0xFu); /* MRS */
                } else if (op == 0x38u || op == 0x39u) {
                    o->rs = R(rn); /* MSR */
                }
            }
        } else if (b == 1u) {
            set(o, K_BRANCH, 0, 0); /* B.W */
            o->branch = BR_DIRECT;
        } else if (b == 5u) {
            set(o, K_BRANCH, R(LR), 0); /* BL */
            o->branch = BR_DIRECT;
        } else {
            set(o, K_SYS, 0, 0);
        }
        return;
    }
    /* op1 == 3 */
    if ((op2 & 0x71u) == 0x00u) {
        decode_ls_single32(hw1, hw2, o, 0);
    } else if ((op2 & 0x67u) == 0x01u || (op2 & 0x67u) == 0x03u || (op2 & 0x67u) == 0x05u) {
        decode_ls_single32(hw1, hw2, o, 1);
    } else if ((op2 & 0x70u) == 0x20u) {
        decode_dp_register(hw1, hw2, o);
    } else if ((op2 & 0x78u) == 0x30u) {
        decode_mul(hw1, hw2, o);
    } else if ((op2 & 0x78u) == 0x38u) {
        decode_mul64(hw1, hw2, o);
    } else if ((op2 & 0x40u) == 0x40u) {
        decode_fp(hw1, hw2, o);
    } else {
        set(o, K_SYS, 0, 0);
    }
}

void th_decode(const uint8_t *bytes, unsigned size, unsigned *it_left, th_insn_t *o)
{
    uint32_t hw1 = (uint32_t)bytes[0] | ((uint32_t)bytes[1] << 8);
    *o = (th_insn_t){0};
    o->size = (uint8_t)size;
    int in_it = *it_left > 0u;
    if (size == 4u) {
        uint32_t hw2 = (uint32_t)bytes[2] | ((uint32_t)bytes[3] << 8);
        decode32(hw1, hw2, o);
    } else {
        decode16(hw1, o);
    }
    if (in_it) {
        --*it_left;
        o->flags |= F_INIT;
        if (o->branch == BR_DIRECT) {
            o->branch = BR_COND;
        } else if (o->branch == BR_INDIRECT) {
            o->branch = BR_COND_INDIRECT;
        }
    }
    if (o->cls == K_IT) { /* firstcond:mask; the block holds 4 - (trailing zeros of mask) instructions */
        unsigned mask = hw1 & 0xFu, n = 4u;
        while (!(mask & 1u)) {
            mask >>= 1;
            --n;
        }
        *it_left = n;
    }
}

uint32_t th_branch_target(const uint8_t *bytes, unsigned size, uint32_t pc)
{
    uint32_t hw1 = (uint32_t)bytes[0] | ((uint32_t)bytes[1] << 8);
    int32_t off;
    if (size == 2u) {
        if ((hw1 >> 12) == 0xDu && ((hw1 >> 9) & 7u) != 7u) {
            off = (int32_t)(int8_t)(hw1 & 0xFFu) * 2; /* B<c> T1 */
        } else if ((hw1 >> 11) == 0x1Cu) {
            off = ((int32_t)((hw1 & 0x7FFu) << 21) >> 20); /* B T2: imm11:'0' sign-extended */
        } else {
            return 0;
        }
        return pc + 4u + (uint32_t)off;
    }
    uint32_t hw2 = (uint32_t)bytes[2] | ((uint32_t)bytes[3] << 8);
    if ((hw1 >> 11) != 0x1Eu || (hw2 >> 14) != 2u) {
        return 0;
    }
    uint32_t s = (hw1 >> 10) & 1u, j1 = (hw2 >> 13) & 1u, j2 = (hw2 >> 11) & 1u, imm11 = hw2 & 0x7FFu;
    uint32_t imm;
    if (((hw2 >> 12) & 1u) == 0u) { /* B<c>.W T3: S:J2:J1:imm6:imm11:'0' */
        if (((hw1 >> 7) & 7u) == 7u) {
            return 0;
        }
        imm = (s << 20) | (j2 << 19) | (j1 << 18) | ((hw1 & 0x3Fu) << 12) | (imm11 << 1);
        off = (int32_t)(imm << 11) >> 11;
    } else { /* B.W T4: S:I1:I2:imm10:imm11:'0', I = NOT(J XOR S) */
        uint32_t i1 = !(j1 ^ s), i2 = !(j2 ^ s);
        imm = (s << 24) | (i1 << 23) | (i2 << 22) | ((hw1 & 0x3FFu) << 12) | (imm11 << 1);
        off = (int32_t)(imm << 7) >> 7;
    }
    return pc + 4u + (uint32_t)off;
}
