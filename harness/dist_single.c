/* harness/dist.h without MPI: one rank of one; collectives are identities. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness/dist.h"

void hx_dist_init(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
}

void hx_dist_finalize(void) {}
void hx_dist_exit(int code) { exit(code); }
int hx_dist_active(void) { return 0; }
int hx_dist_rank(void) { return 0; }
int hx_dist_size(void) { return 1; }
int hx_dist_root(void) { return 1; }
int hx_dist_local_size(void) { return 1; }
int hx_dist_local_rank(void) { return 0; }
void hx_dist_barrier(void) {}
void hx_dist_bcast_i64(int64_t *v, int n, int root) { (void)v, (void)n, (void)root; }
void hx_dist_bcast_f64(double *v, int n, int root) { (void)v, (void)n, (void)root; }
void hx_dist_bcast_f32(float *v, size_t n, int root) { (void)v, (void)n, (void)root; }
void hx_dist_bcast_bytes(void *v, int n, int root) { (void)v, (void)n, (void)root; }
void hx_dist_sum_i64(int64_t *v, int n) { (void)v, (void)n; }
void hx_dist_sum_f64(double *v, int n) { (void)v, (void)n; }
void hx_dist_max_f64(double *v, int n) { (void)v, (void)n; }
void hx_dist_sum_f64_cb(void *ctx, double *v, int n) { (void)ctx, (void)v, (void)n; }
int hx_dist_isum_f32(float *v, size_t n) { (void)v, (void)n; return -1; }
void hx_dist_progress(void) {}
void hx_dist_wait_all(void) {}
const char *hx_dist_library(void) { return ""; }

void hx_dist_hosts(char *buf, size_t len)
{
    char me[64] = "";
    gethostname(me, sizeof me - 1);
    snprintf(buf, len, "%s", me);
}
