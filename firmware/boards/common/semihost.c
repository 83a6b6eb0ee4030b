/*
 * Leaving the program. Under QEMU (TH_SEMIHOSTING) semihosting SYS_EXIT_EXTENDED makes the emulator exit with
 * our code (-semihosting-config enable=on,target=native). On silicon a BKPT without a debugger would lock
 * the core up, so real boards only park.
 */
#include <stdint.h>

#include "th_board.h"

#define SEMIHOST_SYS_EXIT_EXTENDED 0x20u
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u

#ifdef TH_SEMIHOSTING
static void semihost_call(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm("r0") = op;
    register const void *r1 __asm("r1") = arg;
    __asm volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
}
#endif

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
