/* The scalar bf16 conversions and the stochastic-rounding stream (see
 * kernels/bf16.h). */
#include <string.h>

#include "kernels/bf16.h"
#include "common/rng.h"

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

float kn_bf16_to_f32(uint16_t h)
{
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* NaN and zero/denormal inputs: shared by both roundings (see update.h). */
static int bf16_special(uint32_t u, uint16_t *out)
{
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        *out = (uint16_t)((u >> 16) | 0x0040u);
        return 1;
    }
    if ((u & 0x7f800000u) == 0) {
        *out = (uint16_t)((u >> 16) & 0x8000u);
        return 1;
    }
    return 0;
}

uint16_t kn_f32_to_bf16_rne(float f)
{
    const uint32_t u = f32_bits(f);
    uint16_t h;
    if (bf16_special(u, &h))
        return h;
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

uint16_t kn_f32_to_bf16_sr(float f, uint32_t r)
{
    const uint32_t u = f32_bits(f);
    uint16_t h;
    if (bf16_special(u, &h))
        return h;
    return (uint16_t)((u + (r & 0xffffu)) >> 16);
}

uint32_t kn_bf16_key(const KnBf16Round *r)
{
    const uint64_t z = amo_mix64(r->seed * 0x9e3779b97f4a7c15ull + r->step + 0x632be59bd9b4e019ull);
    return (uint32_t)(z ^ (z >> 32));
}

uint32_t kn_bf16_random(uint32_t key, uint64_t i)
{
    return kn_hash32((uint32_t)i ^ key);
}
