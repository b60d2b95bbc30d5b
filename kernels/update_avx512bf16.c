/* PLACEHOLDER: to be replaced by the real avx512bf16 kernels. */
#ifndef __AVX512BF16__
#error "kernels/meson.build must build this file with the avx512bf16 flags"
#endif
#include "kernels/update_dsp.h"
void kn_update_dsp_init_avx512bf16(KnUpdateDSP *dsp) { (void)dsp; }
