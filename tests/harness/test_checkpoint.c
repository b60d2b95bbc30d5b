/* harness/checkpoint.c: a checkpoint read back is the one written; every
 * field of a crafted one (its checksum right) is refused with its offset,
 * name and value; truncations, flipped bytes and random fields never crash
 * the parser.  A finished run's result read back from summary.csv, of this
 * build and of earlier ones, and refused when it lies. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/checkpoint.h"
#include "common/hash.h"
#include "common/rng.h"

/* A run of 40 steps of batch 16 over 224 examples: 14 steps per epoch,
 * evaluations every 10 steps; a model of 7 parameters and 4 statistics. */
static const HxCkptRun RUN = {
    .run_id = "synthetic-r18w0.0625-amo-lr0.001-b0.9-g0.999-clip1-s1-0123abcd",
    .total_steps = 40, .steps_per_epoch = 14, .eval_every = 10, .batch = 16,
    .ntrain = 224, .nval = 32, .ntest = 64, .nparams = 7, .nstats = 4, .ranks = 1,
};

/* The field offsets of checkpoint.c's layout that the messages name. */
enum { OFF_RUN_ID = 12, OFF_TOTAL = 172, OFF_PARAMS = 228, OFF_STEP = 252,
       OFF_EPOCH = 260, OFF_POS = 268, OFF_WALL = 276, OFF_ROWS = 548 };

typedef struct Fixture {
    HxCheckpoint ck;
    HxStepRow steps[20];
    HxConvRow conv[2];
    float params[7], stats[4];
} Fixture;

/* RUN after its evaluation at step 20: epoch 1, 6 batches into it. */
static void fixture(Fixture *f)
{
    memset(f, 0, sizeof *f);
    for (int i = 0; i < 20; i++) {
        const double t = i + 1;
        f->steps[i] = (HxStepRow){ .step = t, .epoch = t / 14, .wall = 0.01 * t, .data_ms = 0.1,
                                   .fwd_ms = 0.2, .bwd_ms = 0.3, .opt_ms = 0.05,
                                   .loss = 1.5 - 0.01 * t, .lr = 1e-3, .gnorm = 2.0,
                                   .clipped = 1, .ips = 1000, .update_norm = 0.2 };
    }
    f->steps[6].gnorm = NAN; /* a skipped step */
    f->steps[6].skipped = 1;
    f->steps[6].clipped = 0;
    f->steps[6].update_norm = 0;
    for (int j = 0; j < 2; j++) {
        const double t = 10.0 * (j + 1);
        f->conv[j] = (HxConvRow){ t, t / 14, 0.01 * t + 0.005, 1.4, 0.4, 1.3, 0.45, NAN, NAN };
    }
    for (int i = 0; i < 7; i++)
        f->params[i] = 0.1f * (float)i - 0.3f;
    for (int i = 0; i < 4; i++)
        f->stats[i] = 1.0f + (float)i;
    HxTrainResult res = { .final_val_acc = 0.45, .best_val_acc = 0.45, .final_test_acc = NAN,
                          .final_val_loss = 1.3, .best_val_step = 20, .clipped = 19,
                          .skipped = 1 };
    f->ck = (HxCheckpoint){ .step = 20, .epoch = 1, .pos = 96, .wall = 0.25, .train_s = 0.2,
                            .res = res, .steps = f->steps, .conv = f->conv, .nsteps = 20,
                            .nconv = 2, .params = f->params, .stats = f->stats };
}

static unsigned char *serialise(const HxCkptRun *run, const HxCheckpoint *ck, size_t *len)
{
    unsigned char *buf = NULL;
    assert_int_equal(hx_checkpoint_serialise(run, ck, &buf, len), AMO_OK);
    return buf;
}

/* The fixture's checkpoint file. */
static unsigned char *fixture_file(Fixture *f, size_t *len)
{
    fixture(f);
    return serialise(&RUN, &f->ck, len);
}

/* Rewrites the checksum, as someone crafting a file would. */
static void reseal(unsigned char *buf, size_t len)
{
    const uint64_t sum = amo_fnv1a64(buf, len - 8);
    memcpy(buf + len - 8, &sum, 8);
}

/* Parsing buf must fail with every piece of want in the message. */
static void refused(const unsigned char *buf, size_t len, const char *what, const char *want)
{
    HxCheckpoint out;
    char err[512];
    const AmoStatus st = hx_checkpoint_parse(buf, len, &RUN, &out, err, sizeof err);
    printf("    %-40s -> %s\n", what, err);
    assert_int_equal(st, AMO_EFORMAT);
    if (!strstr(err, want))
        fail_msg("%s: message \"%s\" lacks \"%s\"", what, err, want);
    assert_null(out.steps);
    assert_null(out.params);
}

static void test_roundtrip(void **state)
{
    (void)state;
    Fixture f;
    size_t len;
    unsigned char *buf = fixture_file(&f, &len);
    assert_int_equal(len, OFF_ROWS + 20 * 16 * 8 + 2 * 9 * 8 + 11 * 4 + 8);
    HxCheckpoint out;
    char err[512] = "";
    assert_int_equal(hx_checkpoint_parse(buf, len, &RUN, &out, err, sizeof err), AMO_OK);
    assert_string_equal(err, "");
    assert_int_equal(out.step, 20);
    assert_int_equal(out.epoch, 1);
    assert_int_equal(out.pos, 96);
    assert_true(out.wall == 0.25 && out.train_s == 0.2);
    assert_int_equal(out.res.best_val_step, 20);
    assert_int_equal(out.res.skipped, 1);
    assert_true(isnan(out.res.final_test_acc));
    assert_int_equal(out.nsteps, 20);
    assert_int_equal(out.nconv, 2);
    /* NaN != NaN: compare the bytes */
    assert_memory_equal(out.steps, f.steps, sizeof f.steps);
    assert_memory_equal(out.conv, f.conv, sizeof f.conv);
    assert_memory_equal(out.params, f.params, sizeof f.params);
    assert_memory_equal(out.stats, f.stats, sizeof f.stats);
    hx_checkpoint_free(&out);
    free(buf);
}

/* One lie per case, written by the serialiser (which checks nothing) and
 * sealed with a right checksum. */
typedef struct Lie {
    const char *what, *want;
    void (*make)(Fixture *f, HxCkptRun *writer);
} Lie;

#define LIE(name, body) static void name(Fixture *f, HxCkptRun *w) { (void)f; (void)w; body; }
LIE(pos_negative, f->ck.pos = -5)
LIE(pos_huge, f->ck.pos = (int64_t)1 << 40)
LIE(pos_not_step, f->ck.pos = 32)
LIE(epoch_not_step, f->ck.epoch = 2)
LIE(step_negative, f->ck.step = -1)
LIE(step_at_end, f->ck.step = 40)
LIE(step_between, f->ck.step = 15)
LIE(other_seed, w->run_id = "synthetic-r18w0.0625-amo-lr0.001-b0.9-g0.999-clip1-s2-0123abcd")
LIE(other_optimizer, w->run_id = "synthetic-r18w0.0625-adam-lr0.001-b0.9-g0.999-noclip-s1-77")
LIE(other_budget, w->total_steps = 60)
LIE(other_split, w->nval = 64)
LIE(other_model, w->nparams = 6)
LIE(other_ranks, w->ranks = 2)
LIE(wall_nan, f->ck.wall = NAN)
LIE(seen_huge, f->ck.run_seen = 1e9)
LIE(best_later, f->ck.res.best_val_step = 30)
LIE(skipped_more, f->ck.res.skipped = 21)
LIE(acc_above_one, f->ck.res.final_val_acc = 1.5)
LIE(row_loss_inf, f->steps[4].loss = INFINITY)
LIE(row_step_gap, f->steps[2].step = 4)
LIE(row_clipped_2, f->steps[9].clipped = 2)
LIE(row_epoch, f->steps[13].epoch = 1.5)
LIE(conv_step, f->conv[1].step = 25)
LIE(conv_acc, f->conv[0].val_acc = -0.1)
LIE(param_nan, f->params[3] = NAN)
LIE(stat_inf, f->stats[1] = -INFINITY)
LIE(rows_fewer, f->ck.nsteps = 19)

static const Lie lies[] = {
    { "in-epoch position -5", "offset 268: in-epoch position -5 outside [0, 224]", pos_negative },
    { "in-epoch position 2^40", "offset 268: in-epoch position 1099511627776 outside [0, 224]",
      pos_huge },
    { "position not where 20 steps end", "offset 268: in-epoch position 32, but 20 steps end at 96",
      pos_not_step },
    { "epoch not where 20 steps end", "offset 260: epoch 2, but 20 steps end in epoch 1",
      epoch_not_step },
    { "step -1", "offset 252: step -1 outside [0, 39]", step_negative },
    { "step at the end", "offset 252: step 40 outside [0, 39]", step_at_end },
    { "step between evaluations", "offset 252: step 15 is not an evaluation step (every 10)",
      step_between },
    { "another seed",
      "offset 12: run id \"synthetic-r18w0.0625-amo-lr0.001-b0.9-g0.999-clip1-s2-0123abcd\", "
      "expected \"synthetic-r18w0.0625-amo-lr0.001-b0.9-g0.999-clip1-s1-0123abcd\"", other_seed },
    { "another optimizer", "offset 12: run id \"synthetic-r18w0.0625-adam-", other_optimizer },
    { "another budget", "offset 172: total steps 60, expected 40", other_budget },
    { "another split", "offset 212: validation examples 64, expected 32", other_split },
    { "another model", "offset 228: parameters 6, expected 7", other_model },
    { "another rank count", "offset 244: rank count 2, this job has 1: resume it with as many "
      "(mpirun -np 2)", other_ranks },
    { "wall NaN", "offset 276: wall seconds nan: must be finite", wall_nan },
    { "running examples 1e9", "offset 300: running examples 1e+09 outside [0, 160]", seen_huge },
    { "best step after the step", "best validation step 30 outside [-1, 20]", best_later },
    { "more skipped than steps", "skipped steps 21 outside [0, 20]", skipped_more },
    { "accuracy 1.5", "final validation accuracy 1.5 outside [0, 1]", acc_above_one },
    { "infinite training loss", "step row 5 loss inf: must be finite", row_loss_inf },
    { "step rows out of order", "step row 3 step 4, expected 3", row_step_gap },
    { "clipped 2", "step row 10 clipped 2 outside [0, 1]", row_clipped_2 },
    { "epoch of a row", "step row 14 epoch 1.5, expected 1", row_epoch },
    { "evaluation at 25", "evaluation row 2 step 25, expected 20", conv_step },
    { "accuracy -0.1", "evaluation row 1 val_acc -0.1 outside [0, 1]", conv_acc },
    { "NaN parameter", "parameter 3 of 7 is nan: must be finite", param_nan },
    { "infinite statistic", "batch-norm statistic 1 of 4 is -inf: must be finite", stat_inf },
    { "19 step rows", "step rows 19, expected 20", rows_fewer },
};

static void test_lies(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof lies / sizeof *lies; i++) {
        Fixture f;
        fixture(&f);
        HxCkptRun writer = RUN;
        lies[i].make(&f, &writer);
        size_t len;
        unsigned char *buf = serialise(&writer, &f.ck, &len);
        refused(buf, len, lies[i].what, lies[i].want);
        free(buf);
    }
}

/* The row offsets in the messages are the fields' own. */
static void test_offsets(void **state)
{
    (void)state;
    Fixture f;
    fixture(&f);
    f.steps[4].loss = INFINITY;
    size_t len;
    unsigned char *buf = serialise(&RUN, &f.ck, &len);
    char want[64];
    snprintf(want, sizeof want, "offset %d: step row 5 loss", OFF_ROWS + (4 * 16 + 7) * 8);
    refused(buf, len, "offset of a row's field", want);
    double loss;
    memcpy(&loss, buf + OFF_ROWS + (4 * 16 + 7) * 8, 8);
    assert_true(isinf(loss));
    free(buf);
}

/* Damage without a new checksum: every truncation, flipped bytes, a byte
 * more; and with one: a version, magic or trailing bytes of a stranger. */
static void test_frame(void **state)
{
    (void)state;
    Fixture f;
    size_t len;
    unsigned char *buf = fixture_file(&f, &len);
    HxCheckpoint out;
    char err[512];
    for (size_t cut = 0; cut < len; cut++) {
        assert_int_equal(hx_checkpoint_parse(buf, cut, &RUN, &out, err, sizeof err), AMO_EFORMAT);
        assert_true(strstr(err, "truncated") || strstr(err, "not a checkpoint"));
    }
    printf("    every truncation refused, e.g. %zu of %zu bytes -> %s\n", len - 1, len, err);
    for (size_t at = 0; at < len; at += 13) {
        buf[at] ^= 0x04;
        assert_int_equal(hx_checkpoint_parse(buf, len, &RUN, &out, err, sizeof err), AMO_EFORMAT);
        buf[at] ^= 0x04;
    }
    unsigned char *more = malloc(len + 1);
    assert_non_null(more);
    memcpy(more, buf, len - 8);
    more[len - 8] = 0;
    reseal(more, len + 1);
    char want[64];
    snprintf(want, sizeof want, "offset %zu: 1 bytes after the last field", len - 8);
    refused(more, len + 1, "a byte more, sealed", want);
    free(more);
    uint32_t v = 2;
    memcpy(buf + 8, &v, 4);
    reseal(buf, len);
    refused(buf, len, "version 2", "offset 8: format version 2, this build reads 4");
    memcpy(buf, "AMOSTATE", 8);
    refused(buf, len, "a state file", "offset 0: not a checkpoint");
    free(buf);
}

/* Random fields with a right checksum: refused or read, never a crash (the
 * parser sizes nothing by what the file says). */
static void test_random_fields(void **state)
{
    (void)state;
    Fixture f;
    size_t len;
    unsigned char *good = fixture_file(&f, &len);
    unsigned char *buf = malloc(len);
    assert_non_null(buf);
    AmoRng rng = amo_rng(14);
    int read = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(buf, good, len);
        const int n = 1 + (int)amo_rng_below(&rng, 4);
        for (int k = 0; k < n; k++) {
            /* mostly the header and progress, where the sizes and positions are */
            const size_t at = amo_rng_below(&rng, 2) ? 12 + amo_rng_below(&rng, OFF_ROWS - 12)
                                                    : amo_rng_below(&rng, len - 8);
            buf[at] = (unsigned char)amo_rng_u64(&rng);
        }
        reseal(buf, len);
        HxCheckpoint out;
        char err[512];
        const AmoStatus st = hx_checkpoint_parse(buf, len, &RUN, &out, err, sizeof err);
        assert_true(st == AMO_OK || (st == AMO_EFORMAT && !strncmp(err, "offset ", 7)));
        read += st == AMO_OK;
        hx_checkpoint_free(&out);
    }
    printf("    3000 random fields: %d read (bytes a field allows), the rest refused\n", read);
    free(buf);
    free(good);
}

/* ---- summary.csv -------------------------------------------------------------- */

/* A run of an earlier build (no conv_algo column), from results/study. */
static const char old_summary[] =
    "run_id,dataset,model,width,bf16,optimizer,lr,beta,gamma,eps,bias_correction,momentum,"
    "dampening,nesterov,alpha,clip,tau,lo,hi,weight_decay,decay_mode,schedule,warmup,"
    "label_smoothing,seed,batch,threads,kernel_level,steps,train_seconds,wall_s,images_per_s,"
    "final_val_loss,final_val_acc,best_val_acc,best_val_step,final_test_acc,clipped_steps,"
    "skipped_steps,diverged,data_ms,forward_ms,backward_ms,optimizer_ms,target1,"
    "steps_to_target1,seconds_to_target1,reached_target1,target2,steps_to_target2,"
    "seconds_to_target2,reached_target2,target3,steps_to_target3,seconds_to_target3,"
    "reached_target3,target4,steps_to_target4,seconds_to_target4,reached_target4\n"
    "fashion-r18w0.125-amo-lr0.001-b0.8-g0.99-clip1-bounds-s1-590b46b4,fashion,resnet18,0.125,"
    "0,amo,0.001,0.8,0.99,1e-08,0,0,0,0,0.99,1,1,-3,3,0,l2,constant,0,0.1,1,128,1,avx512,2145,"
    "244.556,275.704,1122.69,0.410271,0.8788,0.9018,2100,0.8752,1613,0,0,0.305885,35.0565,"
    "78.4087,0.24074,0.85,500,58.3928,1,0.88,1300,147.081,1,0.9,1900,215.601,1,0.91,2146,,0\n";
static const char old_id[] = "fashion-r18w0.125-amo-lr0.001-b0.8-g0.99-clip1-bounds-s1-590b46b4";

static AmoStatus summary(const char *text, int64_t total, HxTrainResult *out, char *err)
{
    const AmoStatus st = hx_summary_parse(text, strlen(text), old_id, total, out, err, 512);
    if (st != AMO_OK)
        printf("    summary -> %s\n", err);
    return st;
}

static void test_summary(void **state)
{
    (void)state;
    HxTrainResult x;
    char err[512];
    assert_int_equal(summary(old_summary, 2145, &x, err), AMO_OK);
    assert_int_equal(x.steps, 2145);
    assert_true(x.seconds == 244.556 && x.images_per_s == 1122.69);
    assert_true(x.final_val_acc == 0.8788 && x.best_val_acc == 0.9018);
    assert_int_equal(x.best_val_step, 2100);
    assert_int_equal(x.clipped, 1613);
    assert_int_equal(x.diverged, 0);
    assert_int_equal(x.steps_to[0], 500);
    assert_true(x.reached[2] && x.steps_to[2] == 1900 && x.seconds_to[2] == 215.601);
    assert_true(!x.reached[3] && x.steps_to[3] == 2146 && isnan(x.seconds_to[3]));
    assert_int_equal(summary(old_summary, 0, &x, err), AMO_OK); /* budget by epochs */

    /* a run with two targets: the others' columns are empty, their fields 0 */
    char *two = strdup(old_summary);
    assert_non_null(two);
    char *t3 = strstr(two, ",0.9,1900,215.601,1,0.91,2146,,0\n");
    assert_non_null(t3);
    strcpy(t3, ",,,,,,,,\n");
    assert_int_equal(summary(two, 2145, &x, err), AMO_OK);
    assert_true(x.steps_to[2] == 0 && x.reached[2] == 0 && x.seconds_to[2] == 0);
    free(two);

    /* refusals, each at its field's offset */
    /* from -> to in the text; want in the message, after "offset N" where N
     * is the field's (at `field` bytes into `to`) if want starts with ':' */
    static const struct {
        const char *from, *to, *want;
        int64_t total;
        int field;
    } bad[] = {
        { "\nfashion-r18w0.125-amo-lr0.001-b0.8-g0.99-clip1-bounds-s1",
          "\nfashion-r18w0.125-amo-lr0.001-b0.8-g0.99-clip1-bounds-s2",
          ": run_id \"fashion-r18w0.125-amo-lr0.001-b0.8-g0.99-clip1-bounds-s2-590b46b4\", "
          "expected \"fashion-r18w0.125-amo-lr0.001-b0.8-g0.99-clip1-bounds-s1-590b46b4\"",
          2145, 1 },
        { ",2100,", ",9999,", ": best_val_step 9999 outside [-1, 2145]", 2145, 1 },
        { ",1613,", ",2146,", ": clipped_steps 2146 outside [0, 2145]", 2145, 1 },
        { ",0.8788,", ",1.8788,", ": final_val_acc 1.8788 outside [0, 1] or empty", 2145, 1 },
        { ",1613,", ",16x3,", ": clipped_steps \"16x3\": not an integer", 2145, 1 },
        { ",244.556,", ",,", ": train_seconds empty: a number in [0, inf] needed", 2145, 1 },
        { ",2145,244", ",2145,244", ": steps 2145 outside [1, 2000]", 2000, 1 },
        { ",0,0,0.305885", ",0,2,0.305885", ": diverged 2 outside [0, 1]", 2145, 3 },
        { "diverged,", "Diverged,", "offset 0: no diverged column", 2145, 0 },
        { ",fashion,", ",\"fash\"ion,", "row: not a CSV record", 2145, 0 },
        { ",2146,,0\n", ",2146,,0\nx\n", "more than one row", 2145, 0 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *at = strstr(old_summary + 1, bad[i].from);
        assert_non_null(at);
        const size_t pre = (size_t)(at - old_summary);
        char text[sizeof old_summary + 64];
        snprintf(text, sizeof text, "%.*s%s%s", (int)pre, old_summary, bad[i].to,
                 at + strlen(bad[i].from));
        assert_int_equal(summary(text, bad[i].total, &x, err), AMO_EFORMAT);
        if (!strstr(err, bad[i].want))
            fail_msg("message \"%s\" lacks \"%s\"", err, bad[i].want);
        if (bad[i].want[0] == ':') { /* the offset is the field's */
            char off[32];
            snprintf(off, sizeof off, "offset %zu:", pre + (size_t)bad[i].field);
            if (strncmp(err, off, strlen(off)))
                fail_msg("message \"%s\" does not start with \"%s\"", err, off);
        }
    }
    /* a header alone, and nothing */
    const char *head_end = strchr(old_summary, '\n');
    assert_int_equal(hx_summary_parse(old_summary, (size_t)(head_end - old_summary) + 1, old_id,
                                      0, &x, err, sizeof err), AMO_EFORMAT);
    assert_non_null(strstr(err, "a header and no row"));
    assert_int_equal(hx_summary_parse("", 0, old_id, 0, &x, err, sizeof err), AMO_EFORMAT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_lies),
        cmocka_unit_test(test_offsets),
        cmocka_unit_test(test_frame),
        cmocka_unit_test(test_random_fields),
        cmocka_unit_test(test_summary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
