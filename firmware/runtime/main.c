/* Firmware entry: bring the board up, then serve the host protocol forever. */
#include "th_board.h"
#include "th_runtime.h"

int main(void)
{
    th_board_init();
    th_protocol_run();
}
