// `ember bench kernels | e2e | grammar | speculative | make-model`: parses the options into
// bench/'s option structs.
#include <stdexcept>

#include "bench/bench.h"
#include "server/cli/args.h"
#include "server/cli/commands.h"

namespace ember::cli {
namespace {

int number(const Args& args, const char* name, int fallback) {
  auto v = args.get(name);
  if (!v) return fallback;
  try {
    size_t used = 0;
    const int n = std::stoi(*v, &used);
    if (used == v->size()) return n;
  } catch (const std::exception&) {
  }
  throw UsageError(std::string("--") + name + " must be a whole number, not '" + *v + "'");
}

std::vector<std::string> split_commas(const std::string& list) {
  std::vector<std::string> out;
  for (size_t pos = 0; pos <= list.size();) {
    const size_t comma = std::min(list.find(',', pos), list.size());
    out.push_back(list.substr(pos, comma - pos));
    pos = comma + 1;
  }
  return out;
}

int bench_kernels(const std::vector<std::string>& argv) {
  Args args(argv, {"threads", "types", "tokens", "isa", "backend", "device"}, {});
  bench::KernelBenchOptions o;
  o.backend = args.get("backend").value_or("cpu");
  o.device = number(args, "device", -1);
  o.threads = number(args, "threads", 0);
  o.tokens = number(args, "tokens", 128);
  if (auto types = args.get("types")) o.types = split_commas(*types);
  o.isa = args.get("isa");
  return bench::run_bench_kernels(o);
}

int bench_e2e(const std::vector<std::string>& argv) {
  // llama-bench's spelling (-p, -n, -t) is accepted as well.
  std::vector<std::string> renamed;
  for (const std::string& a : argv)
    renamed.push_back(a == "-p" ? "--prompt" : a == "-n" ? "--gen" : a == "-t" ? "--threads" : a);
  Args args(renamed, with_backend_options({"model", "prompt", "gen", "repeat", "batch"}),
            with_backend_flags({"profile", "no-interleave"}));
  bench::E2eBenchOptions o;
  auto model = args.get("model");
  if (!model) throw UsageError("--model FILE is required");
  o.model = *model;
  o.n_prompt = number(args, "prompt", o.n_prompt);
  o.n_gen = number(args, "gen", o.n_gen);
  o.threads = number(args, "threads", o.threads);
  o.repeat = number(args, "repeat", o.repeat);
  o.batch = number(args, "batch", o.batch);
  o.profile = args.has("profile");
  o.interleave = !args.has("no-interleave");
  o.backend = backend_spec(args);
  o.backend.threads = o.threads;
  o.cache = cache_type_option(args);
  return bench::run_bench_e2e(o);
}

int bench_speculative(const std::vector<std::string>& argv) {
  std::vector<std::string> renamed;
  for (const std::string& a : argv)
    renamed.push_back(a == "-n" ? "--gen" : a == "-t" ? "--threads" : a);
  Args args(renamed, with_backend_options({"model", "draft-model", "speculative", "gen", "repeat"}),
            with_backend_flags({"chat"}));
  bench::SpeculativeBenchOptions o;
  auto model = args.get("model");
  if (!model) throw UsageError("--model FILE is required");
  o.model = *model;
  o.draft_model = args.get("draft-model").value_or("");
  if (auto counts = args.get("speculative")) {
    o.counts.clear();
    for (const std::string& c : split_commas(*counts)) {
      size_t used = 0;
      int n = -1;
      try {
        n = std::stoi(c, &used);
      } catch (const std::exception&) {
      }
      if (used != c.size() || n < 1 || n > 64)
        throw UsageError("--speculative: guess counts from 1 to 64, separated by commas");
      o.counts.push_back(n);
    }
  }
  o.n_gen = number(args, "gen", o.n_gen);
  o.repeat = number(args, "repeat", o.repeat);
  if (o.n_gen < 1 || o.repeat < 1) throw UsageError("-n and --repeat must be at least 1");
  o.chat = args.has("chat");
  o.backend = backend_spec(args);
  o.cache = cache_type_option(args);
  return bench::run_bench_speculative(o);
}

int make_model(const std::vector<std::string>& argv) {
  Args args(argv, {"type", "out", "threads", "shape"}, {});
  bench::MakeModelOptions o;
  o.type = args.get("type").value_or(o.type);
  o.shape = args.get("shape").value_or(o.shape);
  auto out = args.get("out");
  if (!out) throw UsageError("--out FILE is required");
  o.out = *out;
  o.threads = number(args, "threads", o.threads);
  return bench::run_make_model(o);
}

}  // namespace

int run_bench(const std::vector<std::string>& args) {
  if (args.empty())
    throw UsageError(
        "expected what to benchmark: kernels, e2e, grammar, speculative or make-model");
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  try {
    if (args[0] == "kernels") return bench_kernels(rest);
    if (args[0] == "e2e") return bench_e2e(rest);
    if (args[0] == "make-model") return make_model(rest);
    if (args[0] == "speculative") return bench_speculative(rest);
    if (args[0] == "grammar") {
      std::vector<std::string> renamed;  // -n and -t as bench e2e takes them
      for (const std::string& arg : rest)
        renamed.push_back(arg == "-n" ? "--gen" : arg == "-t" ? "--threads" : arg);
      Args a(renamed, {"model", "threads", "gen"}, {});
      if (!a.get("model")) throw UsageError("--model FILE is required");
      return bench::run_bench_grammar(*a.get("model"), number(a, "threads", 2),
                                      number(a, "gen", 64));
    }
  } catch (const std::invalid_argument& e) {  // an option the benchmark cannot honour
    throw UsageError(e.what());
  }
  throw UsageError("unknown benchmark '" + args[0] +
                   "' (kernels, e2e, grammar, speculative, make-model)");
}

}  // namespace ember::cli
