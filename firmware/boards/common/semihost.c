/*
 * Semihosting (QEMU boards, TH_SEMIHOSTING): leaving the program with an exit status (SYS_EXIT_EXTENDED, with
 * -semihosting-config enable=on,target=native QEMU exits with our code) and reading a host file straight into
 * memory (the fast path for large input tensors). On silicon a BKPT without a debugger would lock the core up,
 * so real boards only park, and have no host files.
 */
#include <stdint.h>

#include "th_board.h"

#define SEMIHOST_SYS_OPEN 0x01u
#define SEMIHOST_SYS_CLOSE 0x02u
#define SEMIHOST_SYS_READ 0x06u
#define SEMIHOST_SYS_FLEN 0x0Cu
#define SEMIHOST_SYS_EXIT_EXTENDED 0x20u
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u

#ifdef TH_SEMIHOSTING
static int32_t semihost_call(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm("r0") = op;
    register const void *r1 __asm("r1") = arg;
    __asm volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return (int32_t)r0;
}
#endif

int32_t th_host_read_file(const char *path, uint8_t *dst, uint32_t n)
{
#ifdef TH_SEMIHOSTING
    uint32_t len = 0u;
    while (path[len] != '\0') {
        ++len;
    }
    uint32_t open_args[3] = {(uint32_t)(uintptr_t)path, 1u /* "rb" */, len};
    int32_t fd = semihost_call(SEMIHOST_SYS_OPEN, open_args);
    if (fd < 0) {
        return -1;
    }
    uint32_t fd_args[1] = {(uint32_t)fd};
    int32_t size = semihost_call(SEMIHOST_SYS_FLEN, fd_args);
    int32_t got = -2;
    if (size == (int32_t)n) {
        uint32_t read_args[3] = {(uint32_t)fd, (uint32_t)(uintptr_t)dst, n};
        int32_t left = semihost_call(SEMIHOST_SYS_READ, read_args); /* returns the bytes NOT read */
        got = left == 0 ? (int32_t)n : -3;
    }
    (void)semihost_call(SEMIHOST_SYS_CLOSE, fd_args);
    return got;
#else
    (void)path;
    (void)dst;
    (void)n;
    return -4;
#endif
}

void th_exit(int code)
{
#ifdef TH_SEMIHOSTING
    uint32_t args[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)code};
    semihost_call(SEMIHOST_SYS_EXIT_EXTENDED, args);
#else
    (void)code;
#endif
    for (;;) {
        __asm volatile("wfi");
    }
}
