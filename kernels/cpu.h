/* Run-time CPU detection and the mask that forces a lower kernel level.
 *
 * The flags in use are always detected & mask (dav1d's scheme): the mask lets
 * tests and `amo-bench --arch` force a lower level, and AMO_ARCH does the same
 * from the environment.  A level the CPU lacks is an error, never a silent
 * fallback. */
#ifndef AMO_KERNELS_CPU_H
#define AMO_KERNELS_CPU_H

#include "common/status.h"

enum {
    KN_CPU_AVX2       = 1u << 0, /* AVX2 + FMA, and the OS saves YMM state      */
    KN_CPU_AVX512     = 1u << 1, /* AVX-512 F, BW, DQ, VL; OS saves ZMM state   */
    KN_CPU_AVX512BF16 = 1u << 2, /* AVX512_BF16 on top of KN_CPU_AVX512        */
    KN_CPU_NEON       = 1u << 3, /* aarch64 Advanced SIMD (ASIMD)               */
    KN_CPU_AMX        = 1u << 4, /* AMX-TILE + AMX-BF16, OS saves tile state
                                  * (XCR0 17-18).  No update kernel uses it:
                                  * it lets nn/ give oneDNN its AMX bf16
                                  * convolutions at the avx512 level.        */
    KN_CPU_AES        = 1u << 5, /* AES rounds on 128-bit registers: x86 AES-NI
                                  * (with KN_CPU_AVX2), aarch64 AESE/AESMC
                                  * (with KN_CPU_NEON).  Only the bf16-state
                                  * kernels use it (their rounding stream,
                                  * bf16.h); without it their slot stays at
                                  * the level below.                         */
    KN_CPU_VAES       = 1u << 6, /* VAES on 512-bit registers (with
                                  * KN_CPU_AVX512 and KN_CPU_AES): four AES
                                  * blocks per instruction.                  */
    KN_CPU_ALL        = 0x7Fu,
};

/* What the CPU (and OS) support, whatever the mask says. */
AMO_API unsigned kn_cpu_detected(void);

/* detected & mask: the flags the kernel tables are built from. */
AMO_API unsigned kn_cpu_flags(void);

/* Sets the mask by flags.  Refuses (AMO_EUNSUPPORTED) a mask that asks for a
 * flag the CPU does not have, so nobody believes a level ran that did not,
 * and (AMO_EINVAL) one that skips a rung of the x86 ladder (AVX-512 without
 * AVX2, AVX512_BF16 without AVX-512, AMX without AVX512_BF16, VAES without
 * AVX-512 and AES) or has AES without AVX2 or NEON. */
AMO_API AmoStatus kn_cpu_set_mask(unsigned mask);

/* Sets the mask by level name: "auto", "scalar", "avx2", "avx512", "neon"
 * (each keeps the AES flags the CPU has that go with it).  Unknown name:
 * AMO_EINVAL.  Level not on this CPU: AMO_EUNSUPPORTED. */
AMO_API AmoStatus kn_cpu_set_arch(const char *name);

/* AMO_ARCH (same names as kn_cpu_set_arch) is applied once, when any of
 * these functions or a kernel is first used.  This returns its outcome: a
 * bad value makes every kernel call fail with this status until the mask is
 * set by kn_cpu_set_arch or kn_cpu_set_mask, which override the variable.
 * Programs call it first to report a bad AMO_ARCH up front. */
AMO_API AmoStatus kn_cpu_init_from_env(void);

/* Name of the highest level present in flags ("scalar", "avx2", "avx512",
 * "avx512bf16", "neon"). */
AMO_API const char *kn_cpu_level_name(unsigned flags);

#endif
