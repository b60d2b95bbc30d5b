/* The project's one random number generator: splitmix64 (Steele, Lea and
 * Flood, "Fast splittable pseudorandom number generators", 2014), small,
 * seedable, and good enough for initialisation, shuffling and test data.
 * Counter-based use (amo_rng_at) gives the value at any position directly,
 * so a stream can be resumed without saving state. */
#ifndef AMO_COMMON_RNG_H
#define AMO_COMMON_RNG_H

#include <math.h>
#include <stdint.h>

typedef struct AmoRng { uint64_t s; } AmoRng;

static inline uint64_t amo_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline AmoRng amo_rng(uint64_t seed) { return (AmoRng){ seed }; }

static inline uint64_t amo_rng_u64(AmoRng *r)
{
    return amo_mix64(r->s += 0x9e3779b97f4a7c15ull);
}

/* The i-th value of the stream of seed, without stepping through it. */
static inline uint64_t amo_rng_at(uint64_t seed, uint64_t i)
{
    return amo_mix64(seed + (i + 1) * 0x9e3779b97f4a7c15ull);
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double amo_rng_uniform(AmoRng *r)
{
    return (double)(amo_rng_u64(r) >> 11) * 0x1p-53;
}

/* Uniform integer in [0, n), n > 0 (Lemire's multiply-shift, bias < n/2^64). */
static inline uint64_t amo_rng_below(AmoRng *r, uint64_t n)
{
    __extension__ typedef unsigned __int128 u128;
    return (uint64_t)(((u128)amo_rng_u64(r) * n) >> 64);
}

/* Standard normal (Box-Muller; one of the pair is dropped for simplicity). */
static inline double amo_rng_normal(AmoRng *r)
{
    const double u = 1.0 - amo_rng_uniform(r); /* (0, 1] */
    const double v = amo_rng_uniform(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

#endif
