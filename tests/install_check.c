/* Built by .ci/run against an installed amo (pkg-config amo): proves the
 * public headers and -lamo are enough for another C program. */
#include <math.h>
#include <stdio.h>

#include "kernels/cpu.h"
#include "optim/optim.h"

int main(void)
{
    float p[3] = { 1, 2, 3 }, g[3] = { 1, -1, 0.5f };
    const OptTensor t = { p, g, 3, 0 };
    const OptConfig c = opt_config_default(OPT_AMO);
    Opt *o;
    char err[256];
    if (opt_create(&o, &c, &t, 1, err, sizeof err) != AMO_OK) {
        fprintf(stderr, "opt_create: %s\n", err);
        return 1;
    }
    OptStepInfo info;
    if (opt_step(o, &info) != AMO_OK)
        return 1;
    opt_destroy(o);
    /* first AMO step: 3.162 x alpha0 against the sign of g */
    const double want = 1.0 - 1e-3 * sqrt(10.0);
    printf("level %s, p[0] = %.6f (want %.6f)\n", info.level, p[0], want);
    return fabs(p[0] - want) < 1e-5 ? 0 : 1;
}
