/*
 * thtiming: a QEMU TCG plugin (API version 1, QEMU 7.2) that counts Cortex-M4/M7 cycles.
 *
 * At translation time each block's instructions are decoded (th_decode.c) and its static cost scheduled
 * (th_sched.c); at run time a per-block callback adds that cost, charges the previous block's branch (taken
 * refill on the M4, misprediction on the M7) and the instruction fetch (cache lines, wait states); memory
 * callbacks charge data accesses by address region (wait states, D-cache misses) and watch for marker stores.
 *
 * Markers: the firmware (built with TH_CYCLE_MARKERS) stores to th_timer_marks[tag]; tag 0 = an inference starts,
 * 1 = a timed region ends, 2 + i = a timed region of layer i begins. The plugin cannot see stored values in API
 * version 1, so the tag is the word offset of the address. At each marker it appends a line to the records file:
 *     <tag> <cycles> <instructions> [<event counts>...]
 * counting everything executed before the marker store. The file starts with a header line naming the model.
 *
 * Arguments (-plugin libthtiming.so,arg=...): model=FILE out=FILE marks=ADDR nmarks=N [events=on] [hot=FILE]
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qemu_api.h"
#include "th_timing.h"

#define TH_PLUGIN_VERSION "thtiming-1"

TH_EXPORT int qemu_plugin_version = 1;

typedef struct tb_info {
    uint32_t vaddr, end, last_pc;
    uint32_t n;
    double cost;
    uint32_t ev[EV_STATIC_N];
    double loop_cost; /* an iteration right after itself (the block branches back to its own start) */
    uint32_t loop_ev[EV_STATIC_N];
    uint8_t self_loop;
    uint8_t branch;
    int8_t code_region;
    uint32_t first_line, last_line, fetch_words;
    uint32_t ic_fills, ic_slot[4]; /* I-cache slots of the block's lines, valid while no fill has happened */
    uint8_t ic_valid;
    uint64_t execs;
    uint8_t *bytes; /* kept for the hot-block dump only */
    uint32_t nbytes;
    struct tb_info *next;
} tb_info_t;

typedef struct {
    /* hot: the region and D-cache slot of this instruction's last access, tried first */
    uint32_t rbase, rsize; /* bounds of that region (size 0: none yet) */
    uint32_t dslot;
    int16_t rev;           /* the region's first event (EV_REGION_BASE + r * EV_PER_REGION) */
    uint8_t rcache;        /* the region is D-cacheable */
    uint8_t rcounted;      /* its accesses cost something (or calibration counts them) */
    /* cold: for marker records */
    tb_info_t *tb;
    uint32_t idx;
    double prefix;
    uint16_t prefix_ev[EV_STATIC_N];
} insn_info_t;

static th_model_t model;
static th_cache_t icache, dcache;
static uint32_t dcache_slots; /* sets * ways of the D-cache */
static th_btac_t btac;
static int out_fd = -1, events_on, data_timing, sp_free;
static uint32_t marks_base, marks_bytes;
static char hot_path[1024];
static tb_info_t *all_tbs, *cur_tb;
static double cur_cost; /* static cycles charged for the running block's current execution */
static const uint32_t *cur_ev;
static double static_cycles, dyn_cycles;
static uint64_t insns_total, ev_static[EV_STATIC_N], ev_dyn[EV_N];

static inline void add_dyn(int ev, double n)
{
    if (model.cost[ev] != 0.0 || events_on) { /* zero-cost events are counted only for calibration */
        dyn_cycles += n * model.cost[ev];
        ev_dyn[ev] += (uint64_t)n;
    }
}

static void write_all(const char *buf, size_t len)
{
    while (len > 0 && out_fd >= 0) {
        ssize_t w = write(out_fd, buf, len);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return;
        }
        buf += w;
        len -= (size_t)w;
    }
}

static void record(const insn_info_t *ii, uint32_t tag)
{
    const tb_info_t *tb = ii->tb;
    char line[2048];
    /* cur_tb == tb: a memory callback runs inside its own block's execution */
    double cycles = static_cycles - cur_cost + ii->prefix + dyn_cycles;
    uint64_t insns = insns_total - tb->n + ii->idx;
    int len = snprintf(line, sizeof line, "%" PRIu32 " %.3f %" PRIu64, tag, cycles, insns);
    if (events_on) {
        for (int k = 0; k < EV_N && len < (int)sizeof line - 32; ++k) {
            uint64_t v = ev_dyn[k];
            if (k < EV_STATIC_N) {
                v += ev_static[k] - cur_ev[k] + ii->prefix_ev[k];
            }
            len += snprintf(line + len, sizeof line - (size_t)len, " %" PRIu64, v);
        }
    }
    line[len++] = '\n';
    write_all(line, (size_t)len);
}

/* Charges one data access at `a` (not a marker store). The region and D-cache slot of the instruction's last
 * access are tried first: most instructions stream through one region and stay on a line for a while. */
static void set_region(insn_info_t *ii, uint32_t a)
{
    int r = th_model_region(&model, a);
    if (r < 0) {
        ii->rbase = a;
        ii->rsize = 1u; /* no region: nothing to charge at this address */
        ii->rev = -1;
        ii->rcache = ii->rcounted = 0;
        return;
    }
    const th_region_t *rg = &model.region[r];
    ii->rbase = rg->base;
    ii->rsize = rg->size;
    ii->rev = (int16_t)(EV_REGION_BASE + r * EV_PER_REGION);
    ii->rcache = (uint8_t)(rg->dcache && dcache.sets);
    ii->rcounted = (uint8_t)(ii->rcache || rg->read_ws || rg->write_ws || events_on);
}

static inline void charge_access(insn_info_t *ii, uint32_t a, int store)
{
    if (a - ii->rbase >= ii->rsize) {
        set_region(ii, a);
    }
    if (ii->rcache) {
        uint32_t slot = ii->dslot;
        if (slot < dcache_slots && dcache.tag[slot] == (a >> dcache.line_shift) + 1u) {
            dcache.age[slot] = ++dcache.clock; /* hit where it hit last time */
            dcache.dirty[slot] |= (uint8_t)store;
            return;
        }
        int res = th_cache_access(&dcache, a, store, &ii->dslot);
        if (res) {
            add_dyn(ii->rev + RE_DMISS, 1.0);
        }
        if (res == 2) {
            add_dyn(ii->rev + RE_WRITEBACK, 1.0);
        }
    } else if (ii->rcounted) {
        add_dyn(ii->rev + (store ? RE_WRITE : RE_READ), 1.0); /* counted even at zero cost for calibration */
    }
}

static void on_load(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata)
{
    (void)vcpu;
    (void)info;
    charge_access(udata, (uint32_t)vaddr, 0);
}

static void on_store(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata)
{
    (void)vcpu;
    (void)info;
    uint32_t a = (uint32_t)vaddr;
    if (a - marks_base < marks_bytes) {
        record(udata, (a - marks_base) >> 2);
        return;
    }
    charge_access(udata, a, 1);
}

static void on_tb(unsigned int vcpu, void *udata)
{
    (void)vcpu;
    tb_info_t *t = udata;
    tb_info_t *prev = cur_tb;
    if (prev && prev->branch != BR_NONE) {
        int taken = t->vaddr != prev->end;
        if (model.core == CORE_M7) {
            if (th_btac_resolve(&btac, prev->last_pc, taken, t->vaddr)) {
                add_dyn(EV_MISPREDICT, 1.0);
            }
        } else if (taken) {
            int direct = prev->branch == BR_DIRECT || prev->branch == BR_COND;
            add_dyn(direct ? EV_REFILL_DIRECT : EV_REFILL_INDIRECT, 1.0);
        }
    }
    /* Another iteration of a one-block loop (M7: with the dependencies carried over from the last iteration). */
    int again = t->self_loop && prev && prev->vaddr == t->vaddr && prev->end == t->end;
    cur_tb = t;
    cur_cost = again ? t->loop_cost : t->cost;
    cur_ev = again ? t->loop_ev : t->ev;
    static_cycles += cur_cost;
    insns_total += t->n;
    t->execs++;
    if (events_on) {
        for (int k = 0; k < EV_STATIC_N; ++k) {
            ev_static[k] += cur_ev[k];
        }
    }
    if (t->code_region >= 0) {
        const th_region_t *rg = &model.region[t->code_region];
        int base = EV_REGION_BASE + t->code_region * EV_PER_REGION;
        if (rg->icache && icache.sets) {
            if (t->ic_valid && t->ic_fills == icache.fills) {
                /* no line has been filled (so none evicted) since this block's lines were all present: they are
                 * hits; only their LRU ages move */
                for (uint32_t k = 0; k <= t->last_line - t->first_line; ++k) {
                    icache.age[t->ic_slot[k]] = ++icache.clock;
                }
            } else {
                for (uint32_t line = t->first_line, k = 0; line <= t->last_line; ++line, ++k) {
                    uint32_t slot = 0;
                    if (th_cache_access(&icache, line << icache.line_shift, 0, &slot)) {
                        add_dyn(base + RE_IMISS, 1.0);
                    }
                    if (k < 4u) {
                        t->ic_slot[k] = slot;
                    }
                }
                t->ic_valid = t->last_line - t->first_line < 4u;
                t->ic_fills = icache.fills;
            }
        } else {
            add_dyn(base + RE_FETCH, (double)t->fetch_words);
        }
    }
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    if (n == 0) {
        return;
    }
    tb_info_t *t = calloc(1, sizeof *t);
    th_insn_t *dec = calloc(n, sizeof *dec);
    double *prefix = calloc(n, sizeof *prefix);
    uint16_t(*prefix_ev)[EV_STATIC_N] = calloc(n, sizeof *prefix_ev);
    if (!t || !dec || !prefix || !prefix_ev) {
        free(t), free(dec), free(prefix), free(prefix_ev);
        return;
    }
    unsigned it_left = 0;
    uint32_t last_size = 2;
    for (size_t i = 0; i < n; ++i) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        size_t size = qemu_plugin_insn_size(insn);
        uint8_t bytes[4] = {0};
        memcpy(bytes, qemu_plugin_insn_data(insn), size <= 4 ? size : 4);
        th_decode(bytes, size == 4 ? 4u : 2u, &it_left, &dec[i]);
        if (i + 1 == n) {
            t->last_pc = (uint32_t)qemu_plugin_insn_vaddr(insn);
            last_size = (uint32_t)size;
            t->self_loop = th_branch_target(bytes, size == 4 ? 4u : 2u, t->last_pc) ==
                           (uint32_t)qemu_plugin_tb_vaddr(tb);
        }
    }
    t->vaddr = (uint32_t)qemu_plugin_tb_vaddr(tb);
    t->end = t->last_pc + last_size;
    t->n = (uint32_t)n;
    t->branch = dec[n - 1].branch;
    t->cost = th_sched_block(&model, dec, (unsigned)n, t->ev, prefix, prefix_ev);
    if (t->self_loop) {
        t->loop_cost = th_sched_loop(&model, dec, (unsigned)n, t->loop_ev);
    } else {
        t->loop_cost = t->cost;
        memcpy(t->loop_ev, t->ev, sizeof t->ev);
    }
    t->code_region = (int8_t)th_model_region(&model, t->vaddr);
    uint32_t shift = icache.sets ? icache.line_shift : 0u;
    t->first_line = t->vaddr >> shift;
    t->last_line = (t->end - 1u) >> shift;
    uint32_t fb = model.fetch_bytes;
    t->fetch_words = (t->end - 1u) / fb - t->vaddr / fb + 1u;
    if (hot_path[0]) {
        t->nbytes = t->end - t->vaddr;
        t->bytes = malloc(t->nbytes);
        if (t->bytes) {
            uint32_t off = 0;
            for (size_t i = 0; i < n && off < t->nbytes; ++i) {
                struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
                size_t size = qemu_plugin_insn_size(insn);
                memcpy(t->bytes + off, qemu_plugin_insn_data(insn), size);
                off += (uint32_t)size;
            }
        }
    }
    t->next = all_tbs;
    all_tbs = t;
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_tb, QEMU_PLUGIN_CB_NO_REGS, t);
    for (size_t i = 0; i < n; ++i) {
        uint8_t f = dec[i].flags;
        int load = (f & F_LOAD) != 0, store = (f & F_STORE) != 0;
        if (dec[i].cls == K_TB) {
            load = 1;
        }
        if (!store && !(load && data_timing)) {
            continue;
        }
        if (sp_free && dec[i].ra == (1u << 13)) {
            continue; /* SP-relative: the stack, where accesses cost nothing under this profile */
        }
        insn_info_t *ii = calloc(1, sizeof *ii);
        if (!ii) {
            continue;
        }
        ii->tb = t;
        ii->idx = (uint32_t)i;
        ii->dslot = UINT32_MAX;
        ii->prefix = prefix[i];
        memcpy(ii->prefix_ev, prefix_ev[i], sizeof ii->prefix_ev);
        /* Measured on Debian's QEMU 7.2: a callback registered for QEMU_PLUGIN_MEM_R alone never fires, one for
         * QEMU_PLUGIN_MEM_RW fires on loads and stores alike. An instruction either loads or stores, so each gets
         * the callback for its kind, registered RW (loads) or W (stores). */
        qemu_plugin_register_vcpu_mem_cb(qemu_plugin_tb_get_insn(tb, i), store ? on_store : on_load,
                                         QEMU_PLUGIN_CB_NO_REGS, store ? QEMU_PLUGIN_MEM_W : QEMU_PLUGIN_MEM_RW, ii);
    }
    free(dec);
    free(prefix);
    free(prefix_ev);
}

static void at_exit(qemu_plugin_id_t id, void *udata)
{
    (void)id;
    (void)udata;
    if (hot_path[0]) {
        FILE *f = fopen(hot_path, "w");
        if (f) {
            for (tb_info_t *t = all_tbs; t; t = t->next) {
                if (t->execs == 0 || !t->bytes) {
                    continue;
                }
                fprintf(f, "%08" PRIx32 " %08" PRIx32 " %" PRIu32 " %" PRIu64 " %.3f %u %.3f ", t->vaddr, t->end,
                        t->n, t->execs, t->cost, (unsigned)t->branch, t->loop_cost);
                for (uint32_t i = 0; i < t->nbytes; ++i) {
                    fprintf(f, "%02x", t->bytes[i]);
                }
                fputc('\n', f);
            }
            fclose(f);
        }
    }
    if (out_fd >= 0) {
        close(out_fd);
        out_fd = -1;
    }
}

static int fail(const char *msg)
{
    fprintf(stderr, "thtiming plugin: %s\n", msg);
    return -1;
}

TH_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    (void)info;
    const char *model_path = 0, *out_path = 0;
    unsigned long nmarks = 0;
    int have_marks = 0;
    for (int i = 0; i < argc; ++i) {
        char *eq = strchr(argv[i], '=');
        if (!eq) {
            return fail("arguments are key=value");
        }
        *eq = '\0';
        const char *k = argv[i], *v = eq + 1;
        if (strcmp(k, "model") == 0) {
            model_path = v;
        } else if (strcmp(k, "out") == 0) {
            out_path = v;
        } else if (strcmp(k, "marks") == 0) {
            marks_base = (uint32_t)strtoul(v, 0, 0);
            have_marks = 1;
        } else if (strcmp(k, "nmarks") == 0) {
            nmarks = strtoul(v, 0, 0);
        } else if (strcmp(k, "events") == 0) {
            events_on = strcmp(v, "on") == 0;
        } else if (strcmp(k, "hot") == 0) {
            snprintf(hot_path, sizeof hot_path, "%s", v);
        } else {
            return fail("unknown argument (model, out, marks, nmarks, events, hot)");
        }
    }
    if (!model_path || !out_path || !have_marks || nmarks == 0) {
        return fail("needs model=FILE out=FILE marks=ADDR nmarks=N");
    }
    marks_bytes = (uint32_t)(nmarks * 4u);
    char err[600];
    if (th_model_load(&model, model_path, err, sizeof err) != 0) {
        return fail(err);
    }
    if (th_cache_init(&icache, model.icache) || th_cache_init(&dcache, model.dcache) ||
        th_btac_init(&btac, model.btac_entries)) {
        return fail("cache sets and BTAC entries must be powers of two (or out of memory)");
    }
    dcache_slots = dcache.sets * dcache.g.ways;
    /* Loads need callbacks only when they cost something, or when calibration wants their counts. */
    data_timing = events_on;
    for (int r = 0; r < model.n_regions; ++r) {
        if (model.region[r].read_ws || (model.region[r].dcache && dcache.sets)) {
            data_timing = 1;
        }
    }
    if (model.sp_region >= 0 && !events_on) {
        const th_region_t *rg = &model.region[model.sp_region];
        sp_free = !rg->read_ws && !rg->write_ws && !(rg->dcache && dcache.sets) &&
                  !(marks_base - rg->base < rg->size); /* markers are never SP-relative, but stay safe */
    }
    out_fd = open(out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (out_fd < 0) {
        return fail("cannot open the records file (out=)");
    }
    char head[256];
    int len = snprintf(head, sizeof head, "# %s core=%s marks=0x%08" PRIx32 " nmarks=%lu events=%d\n",
                       TH_PLUGIN_VERSION, model.core == CORE_M7 ? "m7" : "m4", marks_base, nmarks, events_on);
    write_all(head, (size_t)len);
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, at_exit, 0);
    return 0;
}
