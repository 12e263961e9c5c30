// Helpers shared by the ember subcommands (declared in commands.h).
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <thread>

#include "server/backend_choice.h"
#include "server/cli/args.h"
#include "server/cli/commands.h"
#include "server/cpu_quota.h"

namespace ember::cli {

std::vector<int32_t> parse_ids(const std::string& list) {
  std::vector<int32_t> ids;
  std::stringstream s(list);
  for (std::string item; std::getline(s, item, ',');) {
    if (item.empty()) continue;
    try {
      ids.push_back(std::stoi(item));
    } catch (const std::exception&) {
      throw UsageError("token ids must be integers separated by commas, not '" + item + "'");
    }
  }
  return ids;
}

int default_threads() {
  return server::usable_cpus();
}

std::set<std::string> with_backend_options(std::set<std::string> valued) {
  valued.insert({"backend", "device", "threads", "n-gpu-layers", "n-cpu-moe", "cache-type"});
  return valued;
}

std::set<std::string> with_backend_flags(std::set<std::string> flags) {
  flags.insert("cpu-moe");
  return flags;
}

model::CacheType cache_type_option(const Args& args) {
  const char* env = std::getenv("EMBER_CACHE_TYPE");
  const bool from_env = !args.has("cache-type") && env && *env;
  try {
    return model::parse_cache_type(args.get("cache-type").value_or(from_env ? env : "f16"));
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string(from_env ? "EMBER_CACHE_TYPE" : "--cache-type") + ": " + e.what());
  }
}

model::BackendSpec backend_spec(const Args& args) {
  const char* env = std::getenv("EMBER_BACKEND");
  const std::string requested = args.get("backend").value_or(env && *env ? env : "auto");
  model::BackendSpec spec;
  int device = -1;
  try {
    const char* env_device = std::getenv("EMBER_DEVICE");
    if (auto d = args.get("device"))
      device = std::stoi(*d);
    else if (env_device && *env_device)
      device = std::stoi(env_device);
    spec.threads = std::stoi(args.get("threads").value_or(std::to_string(default_threads())));
    if (auto n = args.get("n-gpu-layers")) spec.gpu_layers = *n == "all" ? -1 : std::stoi(*n);
    if (auto n = args.get("n-cpu-moe")) spec.cpu_moe_layers = std::stoi(*n);
  } catch (const std::exception&) {
    throw UsageError("--device, --threads, --n-gpu-layers and --n-cpu-moe take a number");
  }
  if (args.has("cpu-moe")) spec.cpu_moe_layers = 1 << 20;
  if (device < -1 || spec.threads < 1 || spec.gpu_layers < -1 || spec.cpu_moe_layers < 0)
    throw UsageError("--device, --n-gpu-layers and --n-cpu-moe must be ≥ 0, --threads ≥ 1");
  try {
    // Devices are only looked for when a GPU could be the answer.
    const server::BackendChoice c = requested == "cpu"
                                        ? server::choose_backend(requested, {}, {})
                                        : server::choose_backend(requested, vulkan::list_devices(),
                                                                 opencl::list_devices(), device);
    spec.kind = c.backend;
    spec.device = c.device_index;
    spec.automatic = requested == "auto";
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  // As llama.cpp's CPU builds do with -ngl: the command lines users copy between machines run.
  const bool split = args.has("n-gpu-layers") || args.has("n-cpu-moe") || args.has("cpu-moe");
  if (split && spec.kind == "cpu")
    std::fprintf(stderr,
                 "ember: the backend is the CPU (--backend %s), so every layer runs there; "
                 "--n-gpu-layers, --cpu-moe and --n-cpu-moe change nothing\n",
                 requested.c_str());
  return spec;
}

bool print_piece(const std::string& piece) {
  std::fwrite(piece.data(), 1, piece.size(), stdout);
  std::fflush(stdout);
  return true;
}

std::vector<std::pair<std::string, float>> parse_lora_specs(const std::vector<std::string>& specs) {
  std::vector<std::pair<std::string, float>> out;
  for (const std::string& spec : specs) {
    try {
      out.push_back(model::parse_lora_spec(spec));
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("--lora ") + e.what());
    }
  }
  return out;
}

void attach_loras(model::Transformer& transformer, const gguf::ModelFiles& files,
                  const std::vector<std::string>& specs) {
  for (const auto& [file, scale] : parse_lora_specs(specs))
    transformer.add_lora(model::LoraAdapter::open(file, files, transformer.hparams()), scale);
}

}  // namespace ember::cli
