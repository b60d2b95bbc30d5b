/* Prints the layout of the structs python/amo/_capi.py mirrors with ctypes,
 * as "Struct field offset size" lines and "Struct sizeof N": the python
 * suite (tests/test_capi.py) compares them with ctypes' own, so a field
 * added to optim/optim.h fails the suite instead of shifting the rest. */
#include <stddef.h>
#include <stdio.h>

#include "optim/optim.h"

#define FIELD(s, f) printf("%s %s %zu %zu\n", #s, #f, offsetof(s, f), sizeof(((s *)0)->f))

int main(void)
{
    FIELD(OptConfig, algo); FIELD(OptConfig, lr); FIELD(OptConfig, beta);
    FIELD(OptConfig, gamma); FIELD(OptConfig, eps); FIELD(OptConfig, bias_correction);
    FIELD(OptConfig, momentum); FIELD(OptConfig, dampening); FIELD(OptConfig, nesterov);
    FIELD(OptConfig, alpha); FIELD(OptConfig, clip); FIELD(OptConfig, tau);
    FIELD(OptConfig, lo); FIELD(OptConfig, hi); FIELD(OptConfig, weight_decay);
    FIELD(OptConfig, decay_mode); FIELD(OptConfig, schedule); FIELD(OptConfig, warmup);
    FIELD(OptConfig, step_size); FIELD(OptConfig, step_gamma); FIELD(OptConfig, total_steps);
    FIELD(OptConfig, min_lr); FIELD(OptConfig, state); FIELD(OptConfig, seed);
    FIELD(OptConfig, threads);
    printf("OptConfig sizeof %zu\n", sizeof(OptConfig));
    FIELD(OptTensor, param); FIELD(OptTensor, grad); FIELD(OptTensor, n);
    FIELD(OptTensor, no_decay);
    printf("OptTensor sizeof %zu\n", sizeof(OptTensor));
    FIELD(OptStepInfo, grad_norm); FIELD(OptStepInfo, grad_scale); FIELD(OptStepInfo, lr);
    FIELD(OptStepInfo, clipped); FIELD(OptStepInfo, skipped); FIELD(OptStepInfo, step);
    FIELD(OptStepInfo, level);
    printf("OptStepInfo sizeof %zu\n", sizeof(OptStepInfo));
    return 0;
}
