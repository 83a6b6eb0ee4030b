/*
 * th_pack.h - reading and writing packed 2/4/8-bit rows (convention of harness/codegen/ir.py and packing.py):
 * each row starts at a byte boundary; element j sits at bit (j % (8/bits)) * bits of byte j / (8/bits), low bits
 * first, two's complement. Writers leave unused bits at the end of a row at 0, so a tensor's bytes (and CRC)
 * are a pure function of its values.
 *
 * `bits` is a parameter everywhere: called with a constant, the inline helpers fold to a few shifts.
 */
#ifndef TH_PACK_H
#define TH_PACK_H

#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TH_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define TH_ALWAYS_INLINE static inline
#endif

/* Fully unrolls the next loop (constant trip counts of the inner loops over the fields of a word). */
#if defined(__GNUC__)
#define TH_UNROLL _Pragma("GCC unroll 16")
#else
#define TH_UNROLL
#endif

/* Bytes of one packed row of n elements. */
TH_ALWAYS_INLINE uint32_t th_row_bytes(uint32_t n, int bits)
{
    return (n * (uint32_t)bits + 7u) / 8u;
}

/* log2 of the elements per byte (bits 2 -> 2, 4 -> 1): shifts instead of divisions when bits is a variable */
TH_ALWAYS_INLINE uint32_t th_lg_per(int bits)
{
    return bits == 2 ? 2u : (bits == 4 ? 1u : 0u);
}

/* Element j of a packed row, sign-extended. */
TH_ALWAYS_INLINE int32_t th_get(const uint8_t *row, uint32_t j, int bits)
{
    if (bits == 8) {
        return (int32_t)(int8_t)row[j];
    }
    {
        const uint32_t lg = th_lg_per(bits);
        const uint32_t pos = (j & ((1u << lg) - 1u)) * (uint32_t)bits;
        /* move the field to the top of a word, then an arithmetic shift sign-extends it */
        return (int32_t)((uint32_t)row[j >> lg] << (32u - (uint32_t)bits - pos)) >> (32 - bits);
    }
}

/* Writes element j of a row. Elements of one row must be written in increasing j: the first element of each
 * byte overwrites the whole byte (clearing stale arena contents and padding bits), later ones OR in. */
TH_ALWAYS_INLINE void th_put(uint8_t *row, uint32_t j, int bits, int32_t v)
{
    if (bits == 8) {
        row[j] = (uint8_t)v;
        return;
    }
    {
        const uint32_t lg = th_lg_per(bits);
        const uint32_t pos = (j & ((1u << lg) - 1u)) * (uint32_t)bits;
        const uint8_t field = (uint8_t)(((uint32_t)v & ((1u << bits) - 1u)) << pos);
        if (pos == 0u) {
            row[j >> lg] = field;
        } else {
            row[j >> lg] |= field;
        }
    }
}

/* dst[j] = x_j - zp for a row of n elements; then zero up to n_padded (so unused weight fields meet zeros). */
TH_ALWAYS_INLINE void th_unpack_centered(const uint8_t *row, uint32_t n, int bits, int32_t zp, int16_t *dst,
                                         uint32_t n_padded)
{
    uint32_t j = 0;
    if (bits == 8) {
        for (; j < n; ++j) {
            dst[j] = (int16_t)((int8_t)row[j] - zp);
        }
    } else {
        const uint32_t per = 8u / (uint32_t)bits;
        const uint32_t full = n / per;
        for (uint32_t b = 0; b < full; ++b) {
            const uint32_t byte = row[b];
            for (uint32_t k = 0; k < per; ++k) {
                int32_t v = (int32_t)(byte << (32u - (uint32_t)bits - k * (uint32_t)bits)) >> (32 - bits);
                dst[j++] = (int16_t)(v - zp);
            }
        }
        for (; j < n; ++j) {
            dst[j] = (int16_t)(th_get(row, j, bits) - zp);
        }
    }
    for (; j < n_padded; ++j) {
        dst[j] = 0;
    }
}

/* sum_k w_k * col_k over a packed weight row of nbytes bytes (8/bits weights each) against an int16 column of
 * nbytes * (8/bits) entries. Fields past the logical row end meet zeros in `col`, so they add nothing. */
TH_ALWAYS_INLINE int32_t th_dot_packed(const uint8_t *w, const int16_t *col, uint32_t nbytes, int bits,
                                       int32_t acc)
{
    if (bits == 8) {
        for (uint32_t k = 0; k < nbytes; ++k) {
            acc += (int32_t)(int8_t)w[k] * col[k];
        }
    } else if (bits == 4) {
        for (uint32_t k = 0; k < nbytes; ++k, col += 2) {
            const int32_t b = (int32_t)(int8_t)w[k];
            acc += ((int32_t)((uint32_t)b << 28) >> 28) * col[0];
            acc += (b >> 4) * col[1];
        }
    } else {
        for (uint32_t k = 0; k < nbytes; ++k, col += 4) {
            const int32_t b = (int32_t)(int8_t)w[k];
            acc += ((int32_t)((uint32_t)b << 30) >> 30) * col[0];
            acc += ((int32_t)((uint32_t)b << 28) >> 30) * col[1];
            acc += ((int32_t)((uint32_t)b << 26) >> 30) * col[2];
            acc += (b >> 6) * col[3];
        }
    }
    return acc;
}

/* Unaligned little-endian 32-bit load (a single LDR on Cortex-M3 and up). */
TH_ALWAYS_INLINE uint32_t th_load32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

#ifdef __cplusplus
}
#endif
#endif /* TH_PACK_H */
