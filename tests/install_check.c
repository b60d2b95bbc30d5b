/* Built by .ci/run against an installed amo (pkg-config amo): proves the
 * public headers and -lamo are enough for another C program.  Its argument,
 * when given, is the version pkg-config reports, which the library's own
 * must equal. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/version.h"
#include "kernels/cpu.h"
#include "optim/optim.h"

int main(int argc, char **argv)
{
    printf("libamo %s, built from %s\n", amo_version(), amo_build_commit());
    if (argc > 1 && strcmp(argv[1], amo_version())) {
        fprintf(stderr, "amo_version() %s, pkg-config says %s\n", amo_version(), argv[1]);
        return 1;
    }
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
