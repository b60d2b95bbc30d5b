/* PLACEHOLDER: to be replaced by the real neon kernels. */
#ifndef __ARM_NEON
#error "kernels/meson.build must build this file with the neon flags"
#endif
#include "kernels/update_dsp.h"
void kn_update_dsp_init_neon(KnUpdateDSP *dsp) { (void)dsp; }
