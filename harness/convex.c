/* amo-bench convex: the paper's Theorem 1 (regret O(sqrt(T)) on convex
 * problems at alpha0/sqrt(t)) put to the test of Reddi, Kale and Kumar, "On
 * the Convergence of Adam and Beyond" (ICLR 2018), section 3: one parameter
 * x in [-1, 1], f_t(x) = g_t x with g_t = C with probability 1/P and -1
 * otherwise.  E[g] = (C - P + 1) / P > 0 when C > P - 1: the optimum is -1.
 * Adam-type methods whose second moment forgets the rare large gradient can
 * drift to +1; AMSGrad's max(v) is Reddi's repair.  Every optimizer here sees
 * the same gradient sequence for a seed (paired), through the library's
 * opt_step, except AMSGrad, which the library does not have: it is written
 * out below as an independent reference (Reddi's Algorithm 2, no bias
 * correction), and labelled so in the output. */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "harness/commands.h"
#include "harness/common.h"
#include "harness/csv.h"
#include "harness/dist.h"
#include "harness/error.h"
#include "harness/parse.h"
#include "optim/optim.h"

#define MAX_PROBLEMS 8
#define NTRACE 80 /* log-spaced points of each trajectory */

typedef enum Method { M_AMO, M_AMO_NOCLIP, M_ADAM, M_AMSGRAD_REF, M_SGD, NMETHODS } Method;
static const char *const method_names[NMETHODS] = {
    "amo", "amo-noclip", "adam", "amsgrad-reference", "sgd",
};

typedef struct Problem {
    double c;
    long p;
} Problem;

typedef struct Outcome {
    double final_x, avg_last, avg_all, regret; /* regret: R(T) / T against x = -1 */
    double trace[NTRACE];
    long trace_step[NTRACE];
    int ntrace;
} Outcome;

static double grad_at(AmoRng *r, const Problem *pb)
{
    return amo_rng_uniform(r) * (double)pb->p < 1.0 ? pb->c : -1.0;
}

static OptConfig method_config(Method m, double alpha0)
{
    OptConfig c = opt_config_default(m == M_SGD ? OPT_SGD : m == M_ADAM ? OPT_ADAM : OPT_AMO);
    if (m == M_AMO_NOCLIP)
        c.clip = 0;
    if (m == M_SGD)
        c.momentum = 0;
    c.lr = (float)alpha0;
    c.schedule = OPT_SCHED_INVSQRT; /* alpha0 / sqrt(t): the step size of Theorem 1 */
    c.lo = -1.0f;
    c.hi = 1.0f;
    c.threads = 1;
    return c;
}

/* One optimizer over T steps of the problem, seed fixing the gradients. */
static void run_one(Method m, const Problem *pb, uint64_t seed, long steps, double alpha0,
                    Outcome *out)
{
    AmoRng r = amo_rng(seed);
    float x = 0.0f, g = 0.0f;
    Opt *o = NULL;
    const OptConfig cfg = method_config(m, alpha0);
    double am = 0, av = 0, avmax = 0; /* the AMSGrad reference's state, in fp64 */
    double xd = 0;
    if (m != M_AMSGRAD_REF) {
        const OptTensor t = { &x, &g, 1, 0 };
        char err[256];
        if (opt_create(&o, &cfg, &t, 1, err, sizeof err) != AMO_OK)
            hx_fail(HX_EXIT_FAIL, "convex: %s: %s", method_names[m], err);
    }
    double sum_all = 0, sum_last = 0, regret = 0;
    const long last_from = steps - steps / 10;
    int k = 0;
    out->ntrace = 0;
    for (long t = 1; t <= steps; t++) {
        const double gt = grad_at(&r, pb);
        const double xt = m == M_AMSGRAD_REF ? xd : (double)x;
        regret += gt * (xt + 1.0); /* f_t(x_t) - f_t(-1) */
        if (m == M_AMSGRAD_REF) {
            am = 0.9 * am + 0.1 * gt;
            av = 0.999 * av + 0.001 * gt * gt;
            avmax = fmax(avmax, av);
            xd -= alpha0 / sqrt((double)t) * am / (sqrt(avmax) + 1e-8);
            xd = fmin(1.0, fmax(-1.0, xd));
        } else {
            g = (float)gt;
            OptStepInfo info;
            if (opt_step(o, &info) != AMO_OK)
                hx_fail(HX_EXIT_FAIL, "convex: %s: opt_step failed", method_names[m]);
        }
        const double xn = m == M_AMSGRAD_REF ? xd : (double)x;
        sum_all += xn;
        if (t > last_from)
            sum_last += xn;
        /* log-spaced trace: step ~ steps^(k / (NTRACE - 1)) */
        if (k < NTRACE && (double)t >= pow((double)steps, (double)k / (NTRACE - 1))) {
            out->trace[out->ntrace] = xn;
            out->trace_step[out->ntrace++] = t;
            while (k < NTRACE && (double)t >= pow((double)steps, (double)k / (NTRACE - 1)))
                k++;
        }
    }
    out->final_x = m == M_AMSGRAD_REF ? xd : (double)x;
    out->avg_all = sum_all / (double)steps;
    out->avg_last = sum_last / (double)(steps - last_from);
    out->regret = regret / (double)steps;
    opt_destroy(o);
}

static void usage(void)
{
    printf("Usage: amo-bench convex [OPTIONS]\n\n"
           "The 1-D stochastic convex problem of Reddi et al. (2018): x in [-1, 1],\n"
           "gradient C with probability 1/P and -1 otherwise (optimum -1 when C > P - 1),\n"
           "lr alpha0/sqrt(t).  AMO (clipping at tau 1, and off), Adam and SGD through the\n"
           "library; AMSGrad (max of v) as a reference written in this command only.\n\n"
           "  --problems LIST  C:P pairs (default 3:2,11:10,101:100,101:50)\n"
           "  --steps N        (1000000)\n"
           "  --seeds N        seeds 1..N (10)\n"
           "  --lr X           alpha0 (0.1)\n"
           "  --out DIR        writes DIR/convex_summary.csv and DIR/convex_trace.csv\n"
           "                   (default: the current directory)\n");
}

static int parse_problems(const char *s, Problem *pb)
{
    int n = 0;
    const char *q = s;
    while (*q) {
        char *end;
        if (n == MAX_PROBLEMS)
            hx_fail(HX_EXIT_USAGE, "--problems '%s': at most %d", s, MAX_PROBLEMS);
        pb[n].c = strtod(q, &end);
        if (end == q || *end != ':' || !(pb[n].c > 0) || !isfinite(pb[n].c))
            hx_fail(HX_EXIT_USAGE, "--problems '%s': expected C:P pairs, C > 0", s);
        q = end + 1;
        pb[n].p = strtol(q, &end, 10);
        if (end == q || (*end && *end != ',') || pb[n].p < 1)
            hx_fail(HX_EXIT_USAGE, "--problems '%s': expected C:P pairs, P >= 1", s);
        n++;
        q = *end ? end + 1 : end;
    }
    if (!n)
        hx_fail(HX_EXIT_USAGE, "--problems '%s': empty", s);
    return n;
}

static void csv_check(AmoStatus st, const char *path)
{
    if (st != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "%s: %s", path, amo_status_str(st));
}

int hx_cmd_convex(int argc, char **argv, const HxInvocation *whole)
{
    (void)whole;
    static const struct option opts[] = {
        { "problems", 1, 0, 'p' }, { "steps", 1, 0, 's' }, { "seeds", 1, 0, 'n' },
        { "lr", 1, 0, 'l' },       { "out", 1, 0, 'o' },   { "help", 0, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    Problem pb[MAX_PROBLEMS];
    int np = parse_problems("3:2,11:10,101:100,101:50", pb);
    long steps = 1000000, nseeds = 10;
    double alpha0 = 0.1;
    const char *out = ".";
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'p': np = parse_problems(optarg, pb); break;
        case 's': steps = hx_parse_long("--steps", optarg, 10, 1L << 40); break;
        case 'n': nseeds = hx_parse_long("--seeds", optarg, 1, 1000); break;
        case 'l': {
            char *end;
            alpha0 = strtod(optarg, &end);
            if (*end || !(alpha0 > 0) || !isfinite(alpha0))
                hx_fail(HX_EXIT_USAGE, "--lr '%s': expected a number > 0", optarg);
            break;
        }
        case 'o': out = optarg; break;
        case 'h':
            if (hx_dist_root()) /* under mpirun: once, not once per rank */
                usage();
            return HX_EXIT_OK;
        default: hx_getopt_fail(c, argv);
        }
    }
    if (optind < argc)
        hx_fail(HX_EXIT_USAGE, "convex: unexpected argument '%s'", argv[optind]);
    hx_one_process("convex");
    hx_out_dir("--out", out);
    static const char *const sum_cols[] = {
        "C", "P", "mean_grad", "method", "reference_only", "seed", "steps", "alpha0",
        "final_x", "avg_x_last10pct", "avg_x_all", "regret_per_step",
    };
    static const char *const tr_cols[] = { "C", "P", "method", "seed", "step", "x" };
    char sp[4200], tp[4200];
    if ((size_t)snprintf(sp, sizeof sp, "%s/convex_summary.csv", out) >= sizeof sp
        || (size_t)snprintf(tp, sizeof tp, "%s/convex_trace.csv", out) >= sizeof tp)
        hx_fail(HX_EXIT_USAGE, "--out %s: path too long", out);
    HxCsv *sw, *tw;
    csv_check(hx_csv_open(&sw, sp, sum_cols, 12), sp);
    csv_check(hx_csv_open(&tw, tp, tr_cols, 6), tp);
    printf("%8s %5s %10s  %-18s %9s %9s  (mean over %ld seeds, %ld steps, alpha0 %g)\n", "C", "P",
           "E[g]", "method", "final x", "avg last", nseeds, steps, alpha0);
    for (int i = 0; i < np; i++) {
        const double eg = (pb[i].c - (double)pb[i].p + 1.0) / (double)pb[i].p;
        for (int m = 0; m < NMETHODS; m++) {
            double fsum = 0, lsum = 0;
            for (long s = 1; s <= nseeds; s++) {
                Outcome o;
                run_one((Method)m, &pb[i], (uint64_t)s, steps, alpha0, &o);
                fsum += o.final_x;
                lsum += o.avg_last;
                hx_csv_num(sw, pb[i].c);
                hx_csv_int(sw, pb[i].p);
                hx_csv_num(sw, eg);
                hx_csv_str(sw, method_names[m]);
                hx_csv_int(sw, m == M_AMSGRAD_REF);
                hx_csv_int(sw, s);
                hx_csv_int(sw, steps);
                hx_csv_num(sw, alpha0);
                hx_csv_num(sw, o.final_x);
                hx_csv_num(sw, o.avg_last);
                hx_csv_num(sw, o.avg_all);
                hx_csv_num(sw, o.regret);
                csv_check(hx_csv_end_row(sw), sp);
                for (int k = 0; k < o.ntrace; k++) {
                    hx_csv_num(tw, pb[i].c);
                    hx_csv_int(tw, pb[i].p);
                    hx_csv_str(tw, method_names[m]);
                    hx_csv_int(tw, s);
                    hx_csv_int(tw, o.trace_step[k]);
                    hx_csv_num(tw, o.trace[k]);
                    csv_check(hx_csv_end_row(tw), tp);
                }
            }
            printf("%8g %5ld %10.4g  %-18s %9.4f %9.4f\n", pb[i].c, pb[i].p, eg, method_names[m],
                   fsum / (double)nseeds, lsum / (double)nseeds);
            fflush(stdout);
        }
    }
    csv_check(hx_csv_close(sw), sp);
    csv_check(hx_csv_close(tw), tp);
    return HX_EXIT_OK;
}
