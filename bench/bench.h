// Benchmarks reachable as `ember bench ...`. Speed is measured here, never in unit tests.
#pragma once

#include <string>
#include <vector>

namespace ember::bench {

int run_bench_kernels(const std::vector<std::string>& args);  // `ember bench kernels`
int run_bench_e2e(const std::vector<std::string>& args);      // `ember bench e2e`
int run_make_model(const std::vector<std::string>& args);     // `ember bench make-model`
int run_bench(const std::vector<std::string>& args);          // dispatches `ember bench WHAT`

}  // namespace ember::bench
