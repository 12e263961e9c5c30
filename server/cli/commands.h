// The ember subcommands. Each takes the arguments after its name and returns the exit code
// (0 ok, 1 failure, 2 usage); cli::UsageError escaping one is reported as a usage error.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gguf/model_files.h"
#include "model/backends/make_backend.h"
#include "model/transformer.h"
#include "server/cli/args.h"

namespace ember::cli {

int run_inspect(const std::vector<std::string>& args);
int run_tokenize(const std::vector<std::string>& args);
int run_detokenize(const std::vector<std::string>& args);
int run_template(const std::vector<std::string>& args);
int run_eval(const std::vector<std::string>& args);
int run_generate(const std::vector<std::string>& args);
int run_perplexity(const std::vector<std::string>& args);
int run_chat(const std::vector<std::string>& args);
int run_serve(const std::vector<std::string>& args);
int run_list(const std::vector<std::string>& args);
int run_discover(const std::vector<std::string>& args);
int run_probe(const std::vector<std::string>& args);
int run_pull(const std::vector<std::string>& args);
int run_bench(const std::vector<std::string>& args);
int run_gpu_info(const std::vector<std::string>& args);

// Shared by the commands (common.cpp).
std::vector<int32_t> parse_ids(const std::string& list);  // "1,2,3" → ids; UsageError on junk
int default_threads();  // the CPUs this process may use (affinity, cgroup quota)
bool print_piece(const std::string& piece);  // streams generated text to stdout
// The (file, scale) of each --lora FILE[:SCALE] option; UsageError for a malformed scale.
std::vector<std::pair<std::string, float>> parse_lora_specs(const std::vector<std::string>& specs);
// The backends a model command runs on: --backend auto|cpu|vulkan (else EMBER_BACKEND, else
// auto, chosen as serve chooses: server/backend_choice.h), --device N, --threads N, and the
// placement of a split model: --n-gpu-layers N|all, --cpu-moe, --n-cpu-moe N. Commands list
// these names (with_backend_options, with_backend_flags) among their own. UsageError for a bad
// choice; on the CPU backend the placement flags change nothing (a note on stderr says so).
model::BackendSpec backend_spec(const Args& args);
std::set<std::string> with_backend_options(std::set<std::string> valued);
// The KV cache's element type: --cache-type f16|q8_0|f32 (one of the backend options), else
// EMBER_CACHE_TYPE, else f16. UsageError for another name.
model::CacheType cache_type_option(const Args& args);
std::set<std::string> with_backend_flags(std::set<std::string> flags);
// Attaches the adapters of --lora FILE[:SCALE] options (model/lora.h) to `transformer`;
// UsageError for a malformed scale, std::runtime_error for an adapter that does not fit.
void attach_loras(model::Transformer& transformer, const gguf::ModelFiles& files,
                  const std::vector<std::string>& specs);

}  // namespace ember::cli
