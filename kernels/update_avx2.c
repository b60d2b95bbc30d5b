/* PLACEHOLDER: to be replaced by the real avx2 kernels. */
#ifndef __AVX2__
#error "kernels/meson.build must build this file with the avx2 flags"
#endif
#include "kernels/update_dsp.h"
void kn_update_dsp_init_avx2(KnUpdateDSP *dsp) { (void)dsp; }
