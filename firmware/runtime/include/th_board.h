/*
 * th_board.h - what every board port provides to the runtime (firmware/boards/<board>/ + boards/common/).
 *
 * A board supplies a polled UART, a free-running tick counter, an exit path and the stack bounds; the
 * runtime (executor, protocol) never touches a register directly, so a new board is one folder.
 */
#ifndef TH_BOARD_H
#define TH_BOARD_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Board bring-up: clocks, UART, timer. Called once from main() before anything else. */
void th_board_init(void);

/* Polled UART (115200 8N1 on silicon). th_uart_init is called by th_board_init. putc blocks until the byte is accepted; getc blocks until a byte arrives. */
void th_uart_init(void);
/* Boards that define TH_UART_RX_IRQ sleep (WFI) while waiting for a byte and are woken by the UART's receive
 * interrupt, whose handler only disarms it: an idle emulator then uses no host CPU. Data still moves by
 * polling. Without TH_UART_RX_IRQ getc spins. */
void th_uart_rx_isr(void);
void th_uart_putc(char c);
int th_uart_getc(void);

/* The tick counter. boards/common/timer.c implements it for every Cortex-M board: DWT CYCCNT with
 * TH_TIMER_DWT (real silicon), else SysTick with a wrap counter (under QEMU -icount shift=0 a tick is a fixed
 * number of guest instructions). th_timer_init is called by th_board_init. */
void th_timer_init(void);
uint64_t th_timer_now(void); /* monotonically increasing ticks since th_timer_init */
/* Called right before a timed region: aligns the tick phase so a region's count depends only on its own
 * instructions (SysTick); a no-op for cycle counters. */
void th_timer_align(void);
const char *th_timer_name(void); /* "qemu-icount" or "dwt-cycles" */
uint32_t th_timer_hz(void); /* tick frequency */

/* Leaves the program: semihosting SYS_EXIT_EXTENDED (QEMU returns `code` as its exit status); on a
 * real board without a debugger attached it parks the core. */
void th_exit(int code) __attribute__((noreturn));

/* Reads exactly `n` bytes of a host file into `dst` (semihosting; emulated boards only). Returns n, or < 0:
 * -1 cannot open, -2 the file is not n bytes long, -3 short read, -4 no host file access on this board. */
int32_t th_host_read_file(const char *path, uint8_t *dst, uint32_t n);

/* Stack bounds from the linker script; the startup code paints the stack so the high-water mark can be
 * measured later. */
uint32_t th_stack_size(void);
uint32_t th_stack_used(void); /* deepest use since reset, in bytes (from the painted pattern) */
uint32_t th_static_ram(void); /* .data + .bss bytes (arena and scratch included) */

/* Board identity, compiled in from the build flags (TH_BOARD_NAME, TH_CORE_HZ). */
const char *th_board_name(void);
uint32_t th_core_hz(void);

/* Cycle markers for the emulator's cycle model (timer=qemu-cycles; harness/timing). Only images built with
 * -DTH_CYCLE_MARKERS have them: elsewhere TH_MARK compiles to nothing, so other images are unchanged. A marker is
 * a store to th_timer_marks[tag]; the QEMU timing plugin sees the store's address (not its value) and records the
 * cycle count there. Tags: TH_MARK_INFER when an inference starts, TH_MARK_LAYER(i) right after the start of a
 * timed region of layer i, TH_MARK_END right before its end. */
#define TH_MARK_INFER 0u
#define TH_MARK_END 1u
#define TH_MARK_LAYER(i) (2u + (uint32_t)(i))
#ifndef TH_MARK_SLOTS
#define TH_MARK_SLOTS 1026u /* 2 + the most layers a marker image can time */
#endif
#ifdef TH_CYCLE_MARKERS
extern volatile uint32_t th_timer_marks[TH_MARK_SLOTS];
#define TH_MARK(tag) (th_timer_marks[(tag)] = 0u)
#else
#define TH_MARK(tag) ((void)0)
#endif

#ifdef __cplusplus
}
#endif
#endif /* TH_BOARD_H */
