/* PLACEHOLDER: to be replaced by the real avx512 kernels. */
#ifndef __AVX512F__
#error "kernels/meson.build must build this file with the avx512 flags"
#endif
#include "kernels/update_dsp.h"
void kn_update_dsp_init_avx512(KnUpdateDSP *dsp) { (void)dsp; }
