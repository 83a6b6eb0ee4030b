/*
 * Host protocol over the polled UART: the MLPerf Tiny / EEMBC runner commands (`name%`, `profile%`,
 * `timestamp%`, `db load N%`, `db HEX%`, `infer N W%`, `results%`) plus tinyhil's extensions in the same
 * style (`layers%`, `patches%`, `model%`, `mem%`, `crc 0|1%`, `tensor I%`, `db host PATH%`, `exit N%`). Every
 * reply line ends in `*XXXX` (CRC-16/CCITT-FALSE of the payload) so the host detects any corrupted byte; a
 * command may carry the same suffix before its `%`. The format is specified in firmware/README.md.
 *
 * The only unit that reads from or writes to the host: it calls down into the executors (executor.c,
 * patch_exec.c) and the layer table (layer.c), which keep their results for it and never print.
 */
#include <string.h>

#include "th_board.h"
#include "th_patch.h"
#include "th_runtime.h"

#define CMD_MAX 160

/* ---------------------------------------------------------------- line writer */

static uint16_t line_crc;

static char hex_digit(uint32_t v)
{
    return "0123456789ABCDEF"[v & 0xFu];
}

void th_line_begin(void)
{
    line_crc = 0xFFFFu;
}

void th_line_char(char c)
{
    line_crc = th_crc16_update(line_crc, (uint8_t)c);
    th_uart_putc(c);
}

void th_line_str(const char *s)
{
    while (*s != '\0') {
        th_line_char(*s++);
    }
}

/* Text inside [...]: characters that are part of the framing are replaced so a name can never break it. */
static void line_field(const char *s)
{
    th_line_char('[');
    for (; *s != '\0'; ++s) {
        char c = *s;
        int framing = c == '[' || c == ']' || c == '*' || c == '%' || c == '\r' || c == '\n';
        th_line_char(framing ? '_' : c);
    }
    th_line_char(']');
}

void th_line_u64(uint64_t v)
{
    char buf[20];
    int n = 0;
    do {
        buf[n++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v != 0u);
    while (n > 0) {
        th_line_char(buf[--n]);
    }
}

void th_line_i32(int32_t v)
{
    if (v < 0) {
        th_line_char('-');
        th_line_u64((uint64_t)(-(int64_t)v));
    } else {
        th_line_u64((uint64_t)v);
    }
}

void th_line_hex32(uint32_t v)
{
    for (int s = 28; s >= 0; s -= 4) {
        th_line_char(hex_digit(v >> s));
    }
}

void th_line_end(void)
{
    uint16_t crc = line_crc;
    th_uart_putc('*');
    for (int s = 12; s >= 0; s -= 4) {
        th_uart_putc(hex_digit((uint32_t)crc >> s));
    }
    th_uart_putc('\r');
    th_uart_putc('\n');
}

void th_line(const char *s)
{
    th_line_begin();
    th_line_str(s);
    th_line_end();
}

static void field_u64(uint64_t v)
{
    th_line_str("-[");
    th_line_u64(v);
    th_line_char(']');
}

static void field_hex(uint32_t v)
{
    th_line_str("-[");
    th_line_hex32(v);
    th_line_char(']');
}

static void field_str(const char *s)
{
    th_line_char('-');
    line_field(s);
}

static void error_line(const char *what, const char *detail)
{
    th_line_begin();
    th_line_str("e-[");
    th_line_str(what);
    if (detail != 0) {
        th_line_str(": ");
        for (; *detail != '\0'; ++detail) {
            char c = *detail;
            th_line_char((c == ']' || c == '[' || c == '*' || c == '%') ? '_' : c);
        }
    }
    th_line_char(']');
    th_line_end();
}

/* ---------------------------------------------------------------- parser state */

enum { MODE_CMD, MODE_HEX };

static char cmd[CMD_MAX + 1];
static uint32_t cmd_len;
static int cmd_overflow;
static int mode;
static uint16_t rx_crc;
static int in_suffix;
static char suffix[4];
static uint32_t suffix_len;
static int suffix_bad;

/* `db` streaming state: hex is decoded straight into the input tensor, never buffered as text. */
static uint32_t db_expect;
static uint32_t db_pos;
static uint32_t db_chunk_start;
static int db_active;
static int hex_half;
static uint8_t hex_acc;
static const char *hex_error;

static int input_valid;
static int have_results;
static const char *model_error;

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static void reset_parser(void)
{
    cmd_len = 0u;
    cmd_overflow = 0;
    mode = MODE_CMD;
    rx_crc = 0xFFFFu;
    in_suffix = 0;
    suffix_len = 0u;
    suffix_bad = 0;
    hex_half = 0;
    hex_error = 0;
}

/* The arena is painted once at boot so `mem` can report how far into it the run has written (the measured
 * activation footprint, compared with the planner's peak). A written byte equal to the paint is not seen, so the
 * figure can only be low by the run of paint-valued bytes at the very top. */
#define ARENA_PAINT 0xA5u

static void paint_arena(void)
{
    for (uint32_t i = 0; i < th_model.arena_size; i++) {
        th_arena[i] = (uint8_t)ARENA_PAINT;
    }
}

static uint32_t arena_used(void)
{
    uint32_t n = th_model.arena_size;
    while (n > 0u && th_arena[n - 1u] == (uint8_t)ARENA_PAINT) {
        n--;
    }
    return n;
}

void th_protocol_init(void)
{
    reset_parser();
    db_active = 0;
    input_valid = 0;
    have_results = 0;
    model_error = th_exec_check();
    if (model_error == 0) {
        paint_arena();
    }
}

/* ---------------------------------------------------------------- commands */

/* Splits `s` in place on spaces; returns the number of tokens (at most `max`). */
static int tokenize(char *s, char **tok, int max)
{
    int n = 0;
    while (*s != '\0' && n < max) {
        while (*s == ' ') {
            *s++ = '\0';
        }
        if (*s == '\0') {
            break;
        }
        tok[n++] = s;
        while (*s != '\0' && *s != ' ') {
            ++s;
        }
    }
    return n;
}

static int parse_u32(const char *s, uint32_t *out)
{
    uint64_t v = 0u;
    if (s == 0 || *s == '\0') {
        return 0;
    }
    for (; *s != '\0'; ++s) {
        if (*s < '0' || *s > '9') {
            return 0;
        }
        v = v * 10u + (uint64_t)(*s - '0');
        if (v > 0xFFFFFFFFu) {
            return 0;
        }
    }
    *out = (uint32_t)v;
    return 1;
}

static uint64_t ticks_to_us(uint64_t ticks)
{
    uint32_t hz = th_timer_hz();
    return hz == 0u ? ticks : (ticks * 1000000u) / hz;
}

static void print_timestamp(void)
{
    th_line_begin();
    th_line_str("m-lap-us-");
    th_line_u64(ticks_to_us(th_timer_now()));
    th_line_end();
}

static void print_results(void)
{
    const th_tensor_t *out = &th_model.tensors[th_model.output];
    const int8_t *p = (const int8_t *)th_tensor_data(out);
    uint32_t n = th_tensor_bytes(out);
    th_line_begin();
    th_line_str("m-results-[");
    for (uint32_t i = 0; i < n; ++i) {
        if (i != 0u) {
            th_line_char(',');
        }
        th_line_i32(p[i]);
    }
    th_line_char(']');
    th_line_end();
}

static void cmd_db_file(const char *path, uint32_t want)
{
    static const char *const why[] = {"", "cannot open it", "its size is not the input tensor's", "short read",
                                      "this board has no host file access"};
    db_active = 0;
    input_valid = 0;
    /* Semihosting opens host files with the emulator's rights: only a plain file name is accepted, which the
     * emulator resolves in its working directory (the harness's private folder), never a path elsewhere. */
    if (path[0] == '.' || strchr(path, '/') != 0 || strchr(path, '\\') != 0) {
        error_line("db host rejected", "only a plain file name in the emulator's folder");
        return;
    }
    int32_t got = th_host_read_file(path, th_tensor_data(&th_model.tensors[th_model.input]), want);
    if (got != (int32_t)want) {
        int32_t code = got < -4 || got > -1 ? 3 : -got;
        error_line("db host rejected", why[code]);
        return;
    }
    input_valid = 1;
    th_line("m-load-done");
}

static void cmd_db(char **tok, int n)
{
    const th_tensor_t *in = &th_model.tensors[th_model.input];
    uint32_t want = th_tensor_bytes(in);
    uint32_t bytes;
    if (n == 3 && strcmp(tok[1], "host") == 0) {
        cmd_db_file(tok[2], want);
        return;
    }
    if (n != 3 || strcmp(tok[1], "load") != 0 || !parse_u32(tok[2], &bytes)) {
        error_line("bad db command", "use db load N, then db HEX (or db host PATH)");
        return;
    }
    if (bytes != want) {
        th_line_begin();
        th_line_str("e-[db load ");
        th_line_u64(bytes);
        th_line_str(": the input tensor takes ");
        th_line_u64(want);
        th_line_str(" bytes]");
        th_line_end();
        return;
    }
    db_expect = bytes;
    db_pos = 0u;
    db_active = 1;
    input_valid = 0;
    th_line_begin();
    th_line_str("m-[Expecting ");
    th_line_u64(bytes);
    th_line_str(" bytes]");
    th_line_end();
}

static void cmd_infer(char **tok, int n)
{
    uint32_t iters = 1u, warmup = 0u;
    if ((n >= 2 && !parse_u32(tok[1], &iters)) || (n >= 3 && !parse_u32(tok[2], &warmup)) || n > 3 ||
        iters == 0u) {
        error_line("bad infer command", "use infer N W with N >= 1");
        return;
    }
    if (model_error != 0) {
        error_line("model rejected", model_error);
        return;
    }
    if (!input_valid) {
        error_line("no input loaded", "send db load N and the db HEX data first");
        return;
    }
    int clobbers = th_exec_input_clobbered();
    if (clobbers && iters + warmup > 1u) {
        error_line("model overwrites its input", "reload the input before each inference (infer 1 0)");
        return;
    }
    th_line_begin();
    th_line_str("m-warmup-start-");
    th_line_u64(warmup);
    th_line_end();
    for (uint32_t i = 0; i < warmup; ++i) {
        (void)th_exec_run();
    }
    th_line("m-warmup-done");
    th_line_begin();
    th_line_str("m-infer-start-");
    th_line_u64(iters);
    th_line_end();
    print_timestamp();
    for (uint32_t i = 0; i < iters; ++i) {
        (void)th_exec_run();
    }
    print_timestamp();
    th_line("m-infer-done");
    if (clobbers) {
        input_valid = 0;
    }
    have_results = 1;
    print_results();
}

static const char *op_name(uint8_t op)
{
    static const char *const names[] = {"conv2d", "depthwise", "pointwise", "fc", "add", "avgpool"};
    return op < sizeof(names) / sizeof(names[0]) ? names[op] : "unknown";
}

static void cmd_layers(void)
{
    if (!have_results) {
        error_line("no inference yet", "run infer first");
        return;
    }
    int crcs = th_exec_crc_valid();
    for (uint16_t i = 0; i < th_model.n_layers; ++i) {
        const th_layer_t *L = &th_model.layers[i];
        th_line_begin();
        th_line_str("m-layer");
        field_u64(i);
        field_u64(th_exec_layer_ticks(i));
        if (crcs) {
            field_hex(th_exec_layer_crc(i));
        } else {
            th_line_str("-[]");
        }
        field_str(L->name != 0 ? L->name : "");
        field_str(op_name(L->op));
        field_u64(L->macs);
        th_line_end();
    }
    th_line_begin();
    th_line_str("m-total");
    field_u64(th_exec_total_ticks());
    th_line_end();
}

static void cmd_patches(void)
{
    const th_patch_schedule_t *S = th_patch_get();
    if (S == 0) {
        error_line("not a patch-based model", "use layers");
        return;
    }
    if (!have_results) {
        error_line("no inference yet", "run infer first");
        return;
    }
    th_line_begin();
    th_line_str("m-patches");
    field_u64(S->n_patches);
    field_u64(S->n_stage);
    field_u64(S->stage_out);
    th_line_end();
    const int crcs = th_patch_crc_valid();
    for (uint32_t p = 0; p < S->n_patches; ++p) {
        for (uint32_t j = 0; j < S->n_stage; ++j) {
            const uint32_t k = p * S->n_stage + j;
            const th_patch_step_t *st = &S->steps[k];
            th_line_begin();
            th_line_str("m-pstep");
            field_u64(p);
            field_u64(j);
            field_u64(S->ticks[k]);
            field_u64(S->copy_ticks[k]);
            th_line_str("-[");
            if (crcs) {
                th_line_hex32(S->crc[k]);
            }
            th_line_char(']');
            field_u64(st->L->a_bits);
            field_u64(st->L->o_bits);
            field_u64(st->L->macs);
            th_line_end();
        }
    }
}

static void cmd_model(void)
{
    const th_tensor_t *in = &th_model.tensors[th_model.input];
    const th_tensor_t *out = &th_model.tensors[th_model.output];
    th_line_begin();
    th_line_str("m-model");
    field_str(th_model.name != 0 ? th_model.name : "");
    field_hex(th_model.hash);
    field_u64(th_model.n_layers);
    field_u64(th_model.n_tensors);
    field_u64(th_model.arena_size);
    field_u64(th_model.scratch_size);
    th_line_end();
    th_line_begin();
    th_line_str("m-io");
    field_u64(th_model.input);
    field_u64(th_tensor_bytes(in));
    field_u64(th_model.output);
    field_u64(th_tensor_bytes(out));
    field_u64((uint64_t)th_exec_input_clobbered());
    th_line_end();
    th_line_begin();
    th_line_str("m-board");
    field_str(th_board_name());
    field_u64(th_core_hz());
    th_line_end();
    th_line_begin();
    th_line_str("m-timer");
    field_str(th_timer_name());
    field_u64(th_timer_hz());
    th_line_end();
    th_line_begin();
    th_line_str("m-runtime");
    field_str(TH_RUNTIME_VERSION);
    field_u64(TH_MAX_LAYERS);
    th_line_end();
    if (model_error != 0) {
        error_line("model rejected", model_error);
    }
}

static void cmd_mem(void)
{
    th_line_begin();
    th_line_str("m-mem");
    field_u64(th_static_ram());
    field_u64(th_stack_size());
    field_u64(th_stack_used());
    field_u64(th_model.arena_size);
    field_u64(th_model.scratch_size);
    field_u64(arena_used());
    th_line_end();
}

static void cmd_tensor(char **tok, int n)
{
    uint32_t idx;
    if (n != 2 || !parse_u32(tok[1], &idx) || idx >= th_model.n_tensors) {
        error_line("bad tensor command", "use tensor I with I < n_tensors");
        return;
    }
    const th_tensor_t *t = &th_model.tensors[idx];
    const uint8_t *p = th_tensor_data(t);
    uint32_t bytes = th_tensor_bytes(t);
    th_line_begin();
    th_line_str("m-tensor");
    field_u64(idx);
    field_u64(bytes);
    th_line_str("-[");
    for (uint32_t i = 0; i < bytes; ++i) {
        th_line_char(hex_digit((uint32_t)p[i] >> 4));
        th_line_char(hex_digit(p[i]));
    }
    th_line_char(']');
    th_line_end();
}

static void dispatch(char *line)
{
    char *tok[4];
    int n = tokenize(line, tok, 4);
    if (n == 0) {
        error_line("empty command", 0);
    } else if (strcmp(tok[0], "name") == 0) {
        th_line_begin();
        th_line_str("m-name-dut-[tinyhil-");
        th_line_str(th_board_name());
        th_line_char(']');
        th_line_end();
    } else if (strcmp(tok[0], "profile") == 0) {
        th_line("m-profile-[tinyhil runtime " TH_RUNTIME_VERSION "]");
        th_line_begin();
        th_line_str("m-model-");
        line_field(th_model.name != 0 ? th_model.name : "");
        th_line_end();
    } else if (strcmp(tok[0], "timestamp") == 0) {
        print_timestamp();
    } else if (strcmp(tok[0], "db") == 0) {
        cmd_db(tok, n);
    } else if (strcmp(tok[0], "infer") == 0) {
        cmd_infer(tok, n);
    } else if (strcmp(tok[0], "results") == 0) {
        if (have_results) {
            print_results();
        } else {
            error_line("no inference yet", "run infer first");
        }
    } else if (strcmp(tok[0], "layers") == 0) {
        cmd_layers();
    } else if (strcmp(tok[0], "patches") == 0) {
        cmd_patches();
    } else if (strcmp(tok[0], "model") == 0) {
        cmd_model();
    } else if (strcmp(tok[0], "mem") == 0) {
        cmd_mem();
    } else if (strcmp(tok[0], "crc") == 0) {
        uint32_t on;
        if (n != 2 || !parse_u32(tok[1], &on) || on > 1u) {
            error_line("bad crc command", "use crc 0 or crc 1");
        } else {
            th_exec_set_crc((int)on);
            th_line(on != 0u ? "m-crc-[1]" : "m-crc-[0]");
        }
    } else if (strcmp(tok[0], "tensor") == 0) {
        cmd_tensor(tok, n);
    } else if (strcmp(tok[0], "exit") == 0) {
        uint32_t code = 0u;
        if (n >= 2 && !parse_u32(tok[1], &code)) {
            code = 1u;
        }
        th_line_begin();
        th_line_str("m-exit");
        field_u64(code);
        th_line_end();
        th_exit((int)code);
    } else {
        error_line("unknown command", tok[0]);
    }
}

/* ---------------------------------------------------------------- byte-level parser */

static void hex_byte(char c)
{
    if (hex_error != 0) {
        return; /* the chunk is rejected at its '%'; stop writing into the tensor */
    }
    int v = hex_value(c);
    if (v < 0) {
        hex_error = "not a hex digit";
        return;
    }
    if (hex_half == 0) {
        hex_acc = (uint8_t)(v << 4);
        hex_half = 1;
        return;
    }
    hex_half = 0;
    if (db_pos >= db_expect) {
        hex_error = "more bytes than announced by db load";
        return;
    }
    th_tensor_data(&th_model.tensors[th_model.input])[db_pos++] = (uint8_t)(hex_acc | (uint8_t)v);
}

static int suffix_ok(void)
{
    uint16_t want = 0u;
    if (suffix_bad || suffix_len != 4u) {
        return 0;
    }
    for (uint32_t i = 0; i < 4u; ++i) {
        int v = hex_value(suffix[i]);
        if (v < 0) {
            return 0;
        }
        want = (uint16_t)((want << 4) | (uint16_t)v);
    }
    return want == rx_crc;
}

static void finish_command(void)
{
    int checked = !in_suffix || suffix_ok();
    if (mode == MODE_HEX) {
        const char *err = !checked      ? "command checksum mismatch"
                          : hex_error   ? hex_error
                          : hex_half    ? "odd number of hex digits"
                          : !db_active  ? "no db load before the data"
                                        : 0;
        if (err != 0) {
            db_pos = db_chunk_start; /* the host resends the whole chunk */
            error_line("db data rejected", err);
        } else if (db_pos == db_expect) {
            input_valid = 1;
            db_active = 0;
            th_line("m-load-done");
        }
    } else if (!checked) {
        error_line("command checksum mismatch", 0);
    } else if (cmd_overflow) {
        error_line("command too long", 0);
    } else {
        cmd[cmd_len] = '\0';
        dispatch(cmd);
    }
    th_line("m-ready");
    reset_parser();
}

void th_protocol_feed(char c)
{
    if (c == '\r' || c == '\n') {
        return;
    }
    if (c == '%') {
        finish_command();
        return;
    }
    if (in_suffix) {
        if (suffix_len < 4u) {
            suffix[suffix_len++] = c;
        } else {
            suffix_bad = 1;
        }
        return;
    }
    if (c == '*') {
        in_suffix = 1;
        return;
    }
    rx_crc = th_crc16_update(rx_crc, (uint8_t)c);
    if (mode == MODE_HEX) {
        hex_byte(c);
        return;
    }
    if (cmd_len < CMD_MAX) {
        cmd[cmd_len++] = c;
    } else {
        cmd_overflow = 1;
    }
    /* `db ` followed by a hex digit starts a data chunk (`db load` and `db host` do not: l and h are not hex). */
    if (cmd_len == 4u && cmd[0] == 'd' && cmd[1] == 'b' && cmd[2] == ' ' && hex_value(cmd[3]) >= 0) {
        mode = MODE_HEX;
        db_chunk_start = db_pos;
        hex_byte(cmd[3]);
    }
}

void th_protocol_run(void)
{
    th_protocol_init();
    th_line("m-timestamp-mode-performance");
    if (model_error != 0) {
        error_line("model rejected", model_error);
    }
    th_line("m-init-done");
    th_line("m-ready");
    for (;;) {
        th_protocol_feed((char)th_uart_getc());
    }
}

void th_report_fault(uint32_t exc, uint32_t pc, uint32_t lr, uint32_t cfsr, uint32_t hfsr)
{
    /* End whatever partial line was being printed so the fault line arrives intact. */
    th_uart_putc('\r');
    th_uart_putc('\n');
    th_line_begin();
    th_line_str("e-[fault exc=");
    th_line_u64(exc);
    th_line_str(" pc=0x");
    th_line_hex32(pc);
    th_line_str(" lr=0x");
    th_line_hex32(lr);
    th_line_str(" cfsr=0x");
    th_line_hex32(cfsr);
    th_line_str(" hfsr=0x");
    th_line_hex32(hfsr);
    th_line_char(']');
    th_line_end();
}
