#include "bench/bench.h"

#include "server/cli_args.h"

namespace ember::bench {

int run_bench(const std::vector<std::string>& args) {
  if (args.empty()) throw cli::UsageError("expected what to benchmark: kernels, e2e or make-model");
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "kernels") return run_bench_kernels(rest);
  if (args[0] == "e2e") return run_bench_e2e(rest);
  if (args[0] == "make-model") return run_make_model(rest);
  throw cli::UsageError("unknown benchmark '" + args[0] + "' (kernels, e2e, make-model)");
}

}  // namespace ember::bench
