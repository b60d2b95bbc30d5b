#define _POSIX_C_SOURCE 200809L /* strcasecmp */
/* oneDNN's ISA, fixed once per process at the kernels' level or a user's
 * lower cap (nn/graph.h: nn_isa_init). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <oneapi/dnnl/dnnl_debug.h>

#include "kernels/cpu.h"
#include "nn/graph.h"

/* The cap oneDNN was given, once per process; the lock makes the first of
 * two threads creating networks at once the one that sets it. */
static pthread_mutex_t g_isa_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_isa_fixed;
static dnnl_cpu_isa_t g_isa;

/* oneDNN reads ONEDNN_MAX_CPU_ISA (or DNNL_MAX_CPU_ISA) only if nobody calls
 * dnnl_set_max_cpu_isa first, and our call would silently override a user's
 * cap.  So the cap is read here and the lower of the two is set.  oneDNN's
 * ISA values are bit sets (a lower ISA's bits are a subset of a higher's): the
 * result is the highest known ISA within both.  Returns 0 for an unknown
 * name, and want itself when there is no cap (unset, empty or ALL). */
static const struct { const char *name; dnnl_cpu_isa_t isa; } isa_names[] = {
    {"AVX512_CORE_AMX", dnnl_cpu_isa_avx512_core_amx},
    {"AVX512_CORE_BF16", dnnl_cpu_isa_avx512_core_bf16},
    {"AVX512_CORE_VNNI", dnnl_cpu_isa_avx512_core_vnni},
    {"AVX2_VNNI", dnnl_cpu_isa_avx2_vnni},
    {"AVX512_CORE", dnnl_cpu_isa_avx512_core},
    {"AVX512_MIC_4OPS", dnnl_cpu_isa_avx512_mic_4ops},
    {"AVX512_MIC", dnnl_cpu_isa_avx512_mic},
    {"AVX2", dnnl_cpu_isa_avx2},
    {"AVX", dnnl_cpu_isa_avx},
    {"SSE41", dnnl_cpu_isa_sse41},
};

static const char *isa_env(const char **var)
{
    const char *v = getenv(*var = "ONEDNN_MAX_CPU_ISA");
    if (!v || !*v)
        v = getenv(*var = "DNNL_MAX_CPU_ISA");
    return v && *v ? v : NULL;
}

static dnnl_cpu_isa_t isa_capped(dnnl_cpu_isa_t want, const char *cap)
{
    if (!cap || !strcasecmp(cap, "ALL"))
        return want;
    const int n = (int)(sizeof isa_names / sizeof isa_names[0]);
    int i = 0;
    while (i < n && strcasecmp(cap, isa_names[i].name))
        i++;
    if (i == n)
        return (dnnl_cpu_isa_t)0;
    const unsigned both = (unsigned)want & (unsigned)isa_names[i].isa;
    for (int j = 0; j < n; j++)
        if (((unsigned)isa_names[j].isa & both) == (unsigned)isa_names[j].isa)
            return isa_names[j].isa;
    return dnnl_cpu_isa_sse41;
}

AmoStatus nn_isa_init(char *msg, size_t msglen, const char **isa_name)
{
    AmoStatus s = kn_cpu_init_from_env();
    if (s != AMO_OK) {
        snprintf(msg, msglen, "AMO_ARCH: %s", amo_status_str(s));
        return s;
    }
#if defined(__x86_64__)
    const unsigned f = kn_cpu_flags();
    const dnnl_cpu_isa_t level = (f & KN_CPU_AMX)        ? dnnl_cpu_isa_avx512_core_amx
                               : (f & KN_CPU_AVX512BF16) ? dnnl_cpu_isa_avx512_core_bf16
                               : (f & KN_CPU_AVX512)     ? dnnl_cpu_isa_avx512_core
                               : (f & KN_CPU_AVX2)       ? dnnl_cpu_isa_avx2
                                                         : dnnl_cpu_isa_sse41;
    const char *var, *cap = isa_env(&var);
    const dnnl_cpu_isa_t want = isa_capped(level, cap);
    if (!want) {
        snprintf(msg, msglen,
                 "%s=%s: not an ISA oneDNN 2.6 knows (ALL, SSE41, AVX, AVX2, AVX2_VNNI, "
                 "AVX512_CORE, AVX512_CORE_VNNI, AVX512_CORE_BF16, AVX512_CORE_AMX)",
                 var, cap);
        return AMO_EINVAL;
    }
    pthread_mutex_lock(&g_isa_lock);
    AmoStatus fixed = AMO_OK;
    if (!g_isa_fixed) {
        /* Fails if oneDNN was used before us in this process; then accept
         * whatever it runs at only if that is what we want. */
        if (dnnl_set_max_cpu_isa(want) != dnnl_success
            && dnnl_get_effective_cpu_isa() != want) {
            snprintf(msg, msglen,
                     "oneDNN ISA cannot be capped at %s (level %s): oneDNN was used "
                     "earlier in this process and runs at %s",
                     dnnl_cpu_isa2str(want), kn_cpu_level_name(f),
                     dnnl_cpu_isa2str(dnnl_get_effective_cpu_isa()));
            fixed = AMO_EUNSUPPORTED;
        } else {
            g_isa_fixed = 1;
            g_isa = want;
        }
    } else if (want != g_isa) {
        snprintf(msg, msglen,
                 "oneDNN ISA is fixed at %s for this process; level %s (%s) was "
                 "selected after the first network was created",
                 dnnl_cpu_isa2str(g_isa), kn_cpu_level_name(f), dnnl_cpu_isa2str(want));
        fixed = AMO_EUNSUPPORTED;
    }
    pthread_mutex_unlock(&g_isa_lock);
    if (fixed != AMO_OK)
        return fixed;
#endif
    if (isa_name) { /* "cpu_isa_avx512_core_bf16" -> "avx512_core_bf16" */
        const char *s_ = dnnl_cpu_isa2str(dnnl_get_effective_cpu_isa());
        *isa_name = strncmp(s_, "cpu_isa_", 8) ? s_ : s_ + 8;
    }
    return AMO_OK;
}

int nn_isa_has_bf16(void)
{
    const unsigned core = dnnl_cpu_isa_avx512_core;
    return ((unsigned)dnnl_get_effective_cpu_isa() & core) == core;
}
