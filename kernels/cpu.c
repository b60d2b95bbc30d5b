/* CPU detection.  This file is built without any ISA flag (see
 * kernels/meson.build) so that nothing in it can fault on an older CPU. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu.h"

#if defined(__AVX__) || defined(__AVX2__) || defined(__AVX512F__)
#error "kernels/cpu.c must be built without ISA flags: it runs before dispatch"
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static unsigned long long xgetbv0(void)
{
    unsigned eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

static unsigned detect(void)
{
    unsigned a, b, c, d, flags = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    const int fma = (c >> 12) & 1, aes = (c >> 25) & 1, osxsave = (c >> 27) & 1,
              avx = (c >> 28) & 1;
    if (!osxsave || !avx)
        return 0;
    /* XCR0: bits 1-2 are SSE/YMM state; bits 5-7 opmask, ZMM_Hi256 and
     * Hi16_ZMM.  Without them the OS does not save the registers across
     * context switches and the instructions must not be used. */
    const unsigned long long xcr0 = xgetbv0();
    const int os_ymm = (xcr0 & 0x6) == 0x6, os_zmm = (xcr0 & 0xe6) == 0xe6;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    const int avx2 = (b >> 5) & 1;
    const int f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    const int vaes = (c >> 9) & 1;
    if (avx2 && fma && os_ymm)
        flags |= KN_CPU_AVX2;
    if ((flags & KN_CPU_AVX2) && aes)
        flags |= KN_CPU_AES;
    if ((flags & KN_CPU_AVX2) && f && dq && bw && vl && os_zmm) {
        flags |= KN_CPU_AVX512;
        if ((flags & KN_CPU_AES) && vaes)
            flags |= KN_CPU_VAES;
        unsigned a1 = 0, b1, c1, d1;
        if (__get_cpuid_count(7, 1, &a1, &b1, &c1, &d1) && ((a1 >> 5) & 1))
            flags |= KN_CPU_AVX512BF16;
        /* leaf 7 EDX: 22 AMX-BF16, 24 AMX-TILE; XCR0 17-18: tile state */
        const int amx = ((d >> 22) & 1) && ((d >> 24) & 1);
        if ((flags & KN_CPU_AVX512BF16) && amx && (xcr0 & 0x60000) == 0x60000)
            flags |= KN_CPU_AMX;
    }
    return flags;
}
#elif defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#ifndef HWCAP_AES
#define HWCAP_AES (1 << 3)
#endif
static unsigned detect(void)
{
    const unsigned long hw = getauxval(AT_HWCAP);
    if (!(hw & HWCAP_ASIMD))
        return 0;
    return KN_CPU_NEON | ((hw & HWCAP_AES) ? KN_CPU_AES : 0);
}
#else
static unsigned detect(void) { return 0; }
#endif

static unsigned g_detected, g_mask = KN_CPU_ALL;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static AmoStatus g_env_status;

static AmoStatus set_arch(const char *name);

/* Detection, then AMO_ARCH, once; an API call made afterwards overrides the
 * environment (and clears its error). */
static void init_once(void)
{
    g_detected = detect();
    const char *env = getenv("AMO_ARCH");
    g_env_status = env && *env ? set_arch(env) : AMO_OK;
}

/* Safe from any thread: the first caller detects, the others wait. */
static void init(void) { pthread_once(&g_once, init_once); }

unsigned kn_cpu_detected(void)
{
    init();
    return g_detected;
}

unsigned kn_cpu_flags(void)
{
    init();
    return g_detected & g_mask;
}

AmoStatus kn_cpu_init_from_env(void)
{
    init();
    return g_env_status;
}

AmoStatus kn_cpu_set_mask(unsigned mask)
{
    init();
    if (mask & ~KN_CPU_ALL)
        return AMO_EINVAL;
    if (mask != KN_CPU_ALL && (mask & ~g_detected))
        return AMO_EUNSUPPORTED;
    /* each x86 level builds on the one below (the kernel tables climb that
     * ladder): AMX needs AVX512_BF16, which needs AVX-512, which needs AVX2;
     * VAES needs AVX-512 and AES, which needs AVX2 or NEON */
    if (mask != KN_CPU_ALL &&
        (((mask & KN_CPU_AMX) && !(mask & KN_CPU_AVX512BF16)) ||
         ((mask & KN_CPU_AVX512BF16) && !(mask & KN_CPU_AVX512)) ||
         ((mask & KN_CPU_AVX512) && !(mask & KN_CPU_AVX2)) ||
         ((mask & KN_CPU_VAES) && !((mask & KN_CPU_AVX512) && (mask & KN_CPU_AES))) ||
         ((mask & KN_CPU_AES) && !(mask & (KN_CPU_AVX2 | KN_CPU_NEON)))))
        return AMO_EINVAL;
    g_mask = mask;
    g_env_status = AMO_OK;
    return AMO_OK;
}

static const struct {
    const char *name;
    unsigned needs, mask;
} levels[] = {
    { "auto", 0, KN_CPU_ALL },
    { "scalar", 0, 0 },
    { "avx2", KN_CPU_AVX2, KN_CPU_AVX2 | KN_CPU_AES },
    /* avx512 keeps AVX512_BF16, AMX and the AES flags when the CPU has
     * them: same level. */
    { "avx512", KN_CPU_AVX512, KN_CPU_AVX2 | KN_CPU_AVX512 | KN_CPU_AVX512BF16 | KN_CPU_AMX |
                                   KN_CPU_AES | KN_CPU_VAES },
    { "neon", KN_CPU_NEON, KN_CPU_NEON | KN_CPU_AES },
};

static AmoStatus set_arch(const char *name)
{
    if (!name)
        return AMO_EINVAL;
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        if (strcmp(name, levels[i].name))
            continue;
        if ((g_detected & levels[i].needs) != levels[i].needs)
            return AMO_EUNSUPPORTED;
        g_mask = levels[i].mask;
        return AMO_OK;
    }
    return AMO_EINVAL;
}

AmoStatus kn_cpu_set_arch(const char *name)
{
    init();
    const AmoStatus st = set_arch(name);
    if (st == AMO_OK)
        g_env_status = AMO_OK;
    return st;
}

const char *kn_cpu_level_name(unsigned flags)
{
    if (flags & KN_CPU_AVX512BF16) return "avx512bf16";
    if (flags & KN_CPU_AVX512) return "avx512";
    if (flags & KN_CPU_AVX2) return "avx2";
    if (flags & KN_CPU_NEON) return "neon";
    return "scalar";
}
