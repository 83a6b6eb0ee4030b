/*
 * Checksums shared by the executor and the protocol. Both are the common parameterisations so the host can
 * use stock implementations: CRC-32 is zlib's (binascii.crc32), CRC-16 is CRC-16/CCITT-FALSE
 * (poly 0x1021, init 0xFFFF, no reflection, no final xor; binascii.crc_hqx(data, 0xFFFF)).
 */
#include "th_runtime.h"

/* Half-byte table: 64 bytes of flash instead of 1 KB; CRCs run outside the timed regions. */
static const uint32_t crc32_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u, 0x4DB26158u, 0x5005713Cu,
    0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu, 0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
};

uint32_t th_crc32_update(uint32_t crc, const uint8_t *data, uint32_t n)
{
    crc = ~crc;
    for (uint32_t i = 0; i < n; ++i) {
        crc ^= data[i];
        crc = (crc >> 4) ^ crc32_nibble[crc & 0xFu];
        crc = (crc >> 4) ^ crc32_nibble[crc & 0xFu];
    }
    return ~crc;
}

uint16_t th_crc16_update(uint16_t crc, uint8_t byte)
{
    crc ^= (uint16_t)((uint16_t)byte << 8);
    for (int b = 0; b < 8; ++b) {
        crc = (crc & 0x8000u) != 0u ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
    }
    return crc;
}
