#include "bench/bench.h"

#include "server/cli_args.h"

namespace ember::bench {

int run_bench(const std::vector<std::string>& args) {
  if (args.empty()) throw cli::UsageError("expected what to benchmark: kernels");
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "kernels") return run_bench_kernels(rest);
  throw cli::UsageError("unknown benchmark '" + args[0] + "' (kernels)");
}

}  // namespace ember::bench
