// The one C++ file of amo: Google Benchmark behind the C interface of
// harness/gbench.h.  Nothing here measures anything itself; it forwards.
// Every entry point catches exceptions: none may unwind into C.
#include <benchmark/benchmark.h>

#include <exception>
#include <map>
#include <string>
#include <vector>

#include "harness/gbench.h"

#ifndef AMO_GBENCH_VERSION
#define AMO_GBENCH_VERSION "unknown"
#endif

namespace {

benchmark::State &S(GbState *st) { return *reinterpret_cast<benchmark::State *>(st); }
const benchmark::State &S(const GbState *st)
{
    return *reinterpret_cast<const benchmark::State *>(st);
}

// function_name + "/" + args, as Google Benchmark builds a run's name
// (BenchmarkInstance: each argument "name:value" or "value", '/'-joined),
// mapped to the id gb_register returned.
std::map<std::string, int> g_ids;
int g_next_id = 0;

std::string key_of(const std::string &function_name, const std::string &args)
{
    return args.empty() ? function_name : function_name + "/" + args;
}

// The display reporter that --benchmark_format asked for, with every run
// also handed to C.  The file reporter (--benchmark_out) is left to Google
// Benchmark, which builds it from --benchmark_out_format.
class Forwarder : public benchmark::BenchmarkReporter {
public:
    Forwarder(benchmark::BenchmarkReporter *inner, GbResultFn fn, void *ctx)
        : inner_(inner), fn_(fn), ctx_(ctx) {}

    bool ReportContext(const Context &c) override { return inner_->ReportContext(c); }
    void Finalize() override { inner_->Finalize(); }

    void ReportRuns(const std::vector<Run> &runs) override
    {
        inner_->ReportRuns(runs);
        for (const Run &r : runs)
            forward(r);
    }

private:
    void forward(const Run &r)
    {
        const std::string name = r.benchmark_name();
        const auto it = g_ids.find(key_of(r.run_name.function_name, r.run_name.args));
        std::vector<const char *> cn;
        std::vector<double> cv;
        for (const auto &c : r.counters) {
            cn.push_back(c.first.c_str());
            cv.push_back(c.second.value);
        }
        const double it_count = r.iterations > 0 ? static_cast<double>(r.iterations) : 1.0;
        GbResult g{};
        g.id = it == g_ids.end() ? -1 : it->second;
        g.name = name.c_str();
        g.aggregate = r.run_type == Run::RT_Aggregate ? r.aggregate_name.c_str() : "";
        g.repetition = r.repetition_index;
        g.iterations = r.iterations;
        g.real_seconds = r.real_accumulated_time / it_count;
        g.cpu_seconds = r.cpu_accumulated_time / it_count;
        g.error = r.error_occurred;
        g.error_message = r.error_message.c_str();
        g.ncounters = static_cast<int>(cn.size());
        g.counter_names = cn.data();
        g.counter_values = cv.data();
        fn_(&g, ctx_);
    }

    benchmark::BenchmarkReporter *inner_; // owned by Google Benchmark
    GbResultFn fn_;
    void *ctx_;
};

} // namespace

extern "C" {

int gb_init(int *argc, char **argv)
{
    try {
        benchmark::Initialize(argc, argv);
        return *argc > 1 ? -1 : 0;
    } catch (...) {
        return -1;
    }
}

int gb_add_context(const char *key, const char *value)
{
    try {
        benchmark::AddCustomContext(key, value ? value : "");
        return 0;
    } catch (...) {
        return -1;
    }
}

int gb_register(const char *name, GbFn fn, void *ctx, const GbArg *args, int nargs)
{
    try {
        if (!name || !fn || nargs < 0 || (nargs > 0 && !args))
            return -1;
        std::vector<int64_t> values;
        std::vector<std::string> names;
        std::string joined;
        for (int i = 0; i < nargs; i++) {
            values.push_back(args[i].value);
            names.push_back(args[i].name ? args[i].name : "");
            if (i)
                joined += '/';
            if (args[i].name && *args[i].name)
                joined += std::string(args[i].name) + ":";
            joined += std::to_string(args[i].value);
        }
        const std::string key = key_of(name, joined);
        if (g_ids.count(key))
            return -1; // results could not be told apart
        benchmark::internal::Benchmark *b = benchmark::RegisterBenchmark(
            name, [fn, ctx](benchmark::State &st) { fn(reinterpret_cast<GbState *>(&st), ctx); });
        if (nargs) {
            b->Args(values);
            b->ArgNames(names);
        }
        b->UseRealTime();
        const int id = g_next_id++;
        g_ids[key] = id;
        return id;
    } catch (...) {
        return -1;
    }
}

int gb_keep_running(GbState *st) { return S(st).KeepRunning(); }
int gb_keep_running_batch(GbState *st, int64_t n) { return S(st).KeepRunningBatch(n); }
int64_t gb_iterations(const GbState *st) { return S(st).iterations(); }
int64_t gb_arg(const GbState *st, int i) { return S(st).range(static_cast<size_t>(i)); }
void gb_pause_timing(GbState *st) { S(st).PauseTiming(); }
void gb_resume_timing(GbState *st) { S(st).ResumeTiming(); }

void gb_skip_with_error(GbState *st, const char *msg)
{
    S(st).SkipWithError(msg ? msg : "error"); // copied into a std::string
}

void gb_set_counter(GbState *st, const char *name, double value, int flags)
{
    try {
        int f = benchmark::Counter::kDefaults;
        if (flags & GB_RATE)
            f |= benchmark::Counter::kIsRate;
        S(st).counters[name] = benchmark::Counter(
            value, static_cast<benchmark::Counter::Flags>(f),
            (flags & GB_1024) ? benchmark::Counter::kIs1024 : benchmark::Counter::kIs1000);
    } catch (...) {
    }
}

long gb_run(GbResultFn on_result, void *ctx)
{
    try {
        Forwarder fwd(benchmark::CreateDefaultDisplayReporter(), on_result, ctx);
        return static_cast<long>(benchmark::RunSpecifiedBenchmarks(&fwd));
    } catch (const std::exception &) {
        return -1;
    } catch (...) {
        return -1;
    }
}

const char *gb_version(void) { return AMO_GBENCH_VERSION; }

} // extern "C"
