/* The project's one hash: FNV-1a (Fowler, Noll and Vo,
 * http://www.isthe.com/chongo/tech/comp/fnv/).  64 bits: the checksum of the
 * optimizer's state files and the harness's checkpoints and the tag that
 * ties a state file to its run; 32 bits: the suffix of a run id.  It catches
 * corruption and mix-ups, not forgery. */
#ifndef AMO_COMMON_HASH_H
#define AMO_COMMON_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t amo_fnv1a64(const void *src, size_t n)
{
    const unsigned char *p = src;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* 32 bits, continued from h (start from AMO_FNV32_INIT): a hash can be fed
 * piece by piece. */
#define AMO_FNV32_INIT 2166136261u
static inline uint32_t amo_fnv1a32(uint32_t h, const void *src, size_t n)
{
    const unsigned char *p = src;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

#endif
