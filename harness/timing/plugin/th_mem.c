/*
 * The model file (parameters written by harness/timing/model.py), address regions, set-associative caches with
 * LRU replacement, and the branch target address cache of the Cortex-M7 model.
 *
 * Model file: one item per line, '#' starts a comment.
 *   core m4|m7
 *   cost <event> <cycles>            event names: see EVENT_NAMES
 *   m7 <parameter> <cycles>          parameter names: see M7_NAMES
 *   region <base> <size> <fetch_ws> <read_ws> <write_ws> <icache> <dcache> <ifill> <dfill> <writeback>
 *   icache|dcache <bytes> <line bytes> <ways>
 *   fetch_bytes <n>
 *   btac <entries>
 *   sp_region <index>                the region SP-relative accesses go to (after the region lines)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "th_timing.h"

static const char *const EVENT_NAMES[EV_REGION_BASE] = {
    "alu", "mul", "div", "load", "load_pipelined", "store", "store_reg", "dual", "multi", "multi_reg",
    "agu_stall", "load_use", "branch", "fp_mac", "fp_div", "sys", "issue", "refill_direct", "refill_indirect",
    "mispredict",
};
static const char *const M7_NAMES[M7_N] = {
    "lat_alu", "lat_sat", "lat_mul", "lat_load", "lat_load_bh", "div", "ldm_per_cycle", "tb_issue", "sys_issue",
    "fp_div",
};

static int find(const char *const *names, int n, const char *name)
{
    for (int i = 0; i < n; ++i) {
        if (strcmp(names[i], name) == 0) {
            return i;
        }
    }
    return -1;
}

int th_model_load(th_model_t *m, const char *path, char *err, unsigned errlen)
{
    memset(m, 0, sizeof(*m));
    m->fetch_bytes = 4u;
    m->cost[EV_ISSUE] = 1.0;
    m->sp_region = -1;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open model file %s", path);
        return -1;
    }
    char line[512];
    int lineno = 0, have_core = 0;
    while (fgets(line, sizeof line, f)) {
        ++lineno;
        char *hash = strchr(line, '#');
        if (hash) {
            *hash = '\0';
        }
        char key[64], name[64];
        double v;
        unsigned long a[10];
        if (sscanf(line, "%63s", key) != 1) {
            continue;
        }
        int ok = 1;
        if (strcmp(key, "core") == 0) {
            ok = sscanf(line, "%*s %63s", name) == 1 && (strcmp(name, "m4") == 0 || strcmp(name, "m7") == 0);
            m->core = (ok && strcmp(name, "m7") == 0) ? CORE_M7 : CORE_M4;
            have_core = ok;
        } else if (strcmp(key, "cost") == 0) {
            int k = -1;
            ok = sscanf(line, "%*s %63s %lf", name, &v) == 2 && (k = find(EVENT_NAMES, EV_REGION_BASE, name)) >= 0;
            if (ok) {
                m->cost[k] = v;
            }
        } else if (strcmp(key, "m7") == 0) {
            int k = -1;
            ok = sscanf(line, "%*s %63s %lf", name, &v) == 2 && (k = find(M7_NAMES, M7_N, name)) >= 0;
            if (ok) {
                m->m7[k] = v;
            }
        } else if (strcmp(key, "region") == 0) {
            ok = m->n_regions < TH_MAX_REGIONS &&
                 sscanf(line, "%*s %li %li %lu %lu %lu %lu %lu %lu %lu %lu", (long *)&a[0], (long *)&a[1], &a[2],
                        &a[3], &a[4], &a[5], &a[6], &a[7], &a[8], &a[9]) == 10;
            if (ok) {
                th_region_t *r = &m->region[m->n_regions++];
                *r = (th_region_t){(uint32_t)a[0], (uint32_t)a[1], (uint32_t)a[2], (uint32_t)a[3], (uint32_t)a[4],
                                   (uint32_t)a[5], (uint32_t)a[6], (uint32_t)a[7], (uint32_t)a[8], (uint32_t)a[9]};
                int base = EV_REGION_BASE + (m->n_regions - 1) * EV_PER_REGION;
                m->cost[base + RE_FETCH] = (double)r->fetch_ws;
                m->cost[base + RE_READ] = (double)r->read_ws;
                m->cost[base + RE_WRITE] = (double)r->write_ws;
                m->cost[base + RE_IMISS] = (double)r->ifill;
                m->cost[base + RE_DMISS] = (double)r->dfill;
                m->cost[base + RE_WRITEBACK] = (double)r->writeback;
            }
        } else if (strcmp(key, "icache") == 0 || strcmp(key, "dcache") == 0) {
            th_cache_geom_t *g = key[0] == 'i' ? &m->icache : &m->dcache;
            ok = sscanf(line, "%*s %lu %lu %lu", &a[0], &a[1], &a[2]) == 3;
            if (ok) {
                *g = (th_cache_geom_t){(uint32_t)a[0], (uint32_t)a[1], (uint32_t)a[2]};
                ok = g->size == 0u || (g->line >= 4u && !(g->line & (g->line - 1u)) && g->ways > 0u &&
                                       g->size % (g->line * g->ways) == 0u);
            }
        } else if (strcmp(key, "fetch_bytes") == 0) {
            ok = sscanf(line, "%*s %lu", &a[0]) == 1 && (a[0] == 2u || a[0] == 4u || a[0] == 8u || a[0] == 16u);
            if (ok) {
                m->fetch_bytes = (uint32_t)a[0];
            }
        } else if (strcmp(key, "sp_region") == 0) {
            ok = sscanf(line, "%*s %lu", &a[0]) == 1 && (int)a[0] < m->n_regions;
            if (ok) {
                m->sp_region = (int)a[0];
            }
        } else if (strcmp(key, "btac") == 0) {
            ok = sscanf(line, "%*s %lu", &a[0]) == 1;
            if (ok) {
                m->btac_entries = (uint32_t)a[0];
            }
        } else {
            ok = 0;
        }
        if (!ok) {
            snprintf(err, errlen, "model file %s line %d is not understood: %s", path, lineno, line);
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    if (!have_core) {
        snprintf(err, errlen, "model file %s names no core (core m4|m7)", path);
        return -1;
    }
    if (m->core == CORE_M7 && m->m7[M7_LDM_PER_CYCLE] <= 0.0) {
        snprintf(err, errlen, "model file %s: the m7 core needs its m7 parameters", path);
        return -1;
    }
    return 0;
}

int th_model_region(const th_model_t *m, uint64_t addr)
{
    for (int i = 0; i < m->n_regions; ++i) {
        if (addr - m->region[i].base < m->region[i].size) {
            return i;
        }
    }
    return -1;
}

static uint32_t log2u(uint32_t v)
{
    uint32_t s = 0;
    while ((1u << s) < v) {
        ++s;
    }
    return s;
}

int th_cache_init(th_cache_t *c, th_cache_geom_t g)
{
    memset(c, 0, sizeof(*c));
    c->g = g;
    if (g.size == 0u) {
        return 0;
    }
    c->sets = g.size / (g.line * g.ways);
    if (c->sets & (c->sets - 1u)) {
        return -1; /* the set index is a mask: sets must be a power of two */
    }
    c->line_shift = log2u(g.line);
    size_t n = (size_t)c->sets * g.ways;
    c->tag = calloc(n, sizeof *c->tag);
    c->age = calloc(n, sizeof *c->age);
    c->dirty = calloc(n, 1);
    return (c->tag && c->age && c->dirty) ? 0 : -1;
}

int th_cache_access(th_cache_t *c, uint32_t addr, int write, uint32_t *slot)
{
    uint32_t line = addr >> c->line_shift;
    uint32_t ways = c->g.ways, first = (line & (c->sets - 1u)) * ways;
    uint32_t *tag = &c->tag[first], *age = &c->age[first];
    uint8_t *dirty = &c->dirty[first];
    uint32_t want = line + 1u, victim = 0;
    uint32_t now = ++c->clock;
    if (slot && *slot < c->sets * ways && c->tag[*slot] == want) { /* the caller's guess: where it hit last time */
        c->age[*slot] = now;
        c->dirty[*slot] |= (uint8_t)(write != 0);
        return 0;
    }
    for (uint32_t w = 0; w < ways; ++w) {
        if (tag[w] == want) {
            age[w] = now;
            dirty[w] |= (uint8_t)(write != 0);
            if (slot) {
                *slot = first + w;
            }
            return 0;
        }
    }
    for (uint32_t w = 1; w < ways; ++w) { /* LRU victim; an empty way has age 0 */
        if (age[w] < age[victim]) {
            victim = w;
        }
    }
    int evicted_dirty = tag[victim] != 0u && dirty[victim];
    ++c->fills;
    if (slot) {
        *slot = first + victim;
    }
    tag[victim] = want;
    age[victim] = now;
    dirty[victim] = (uint8_t)(write != 0);
    return evicted_dirty ? 2 : 1;
}

int th_btac_init(th_btac_t *b, uint32_t entries)
{
    memset(b, 0, sizeof(*b));
    if (entries & (entries - 1u)) {
        return -1; /* indexed by a mask: a power of two */
    }
    b->n = entries;
    if (entries == 0u) {
        return 0;
    }
    b->pc = calloc(entries, sizeof *b->pc);
    b->target = calloc(entries, sizeof *b->target);
    b->ctr = calloc(entries, 1);
    return (b->pc && b->target && b->ctr) ? 0 : -1;
}

int th_btac_resolve(th_btac_t *b, uint32_t pc, int taken, uint32_t target)
{
    if (b->n == 0u) {
        return taken; /* no predictor: every taken branch redirects the fetch late */
    }
    uint32_t i = (pc >> 1) & (b->n - 1u);
    int hit = b->pc[i] == pc + 1u;
    int pred_taken = hit && b->ctr[i] >= 2u;
    int wrong = pred_taken != taken || (taken && b->target[i] != target);
    if (!hit) {
        b->pc[i] = pc + 1u;
        b->ctr[i] = taken ? 2u : 1u;
    } else if (taken) {
        b->ctr[i] = (uint8_t)(b->ctr[i] < 3u ? b->ctr[i] + 1u : 3u);
    } else {
        b->ctr[i] = (uint8_t)(b->ctr[i] > 0u ? b->ctr[i] - 1u : 0u);
    }
    if (taken) {
        b->target[i] = target;
    }
    return wrong;
}
