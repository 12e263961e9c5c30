// `ember inspect FILE.gguf [--json] [--full-arrays]`: what a GGUF file holds, for people (a summary
// and a tensor table) or for programs (one JSON object).
// `ember inspect --memory FILE.gguf [--ctx N] [--parallel N] [--json]`: the memory `ember serve`
// needs for it with those settings (what a container's memory request is sized by).
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "gguf/model_files.h"
#include "model/hparams.h"
#include "server/cli/args.h"
#include "server/cli/commands.h"
#include "server/gguf_json.h"

namespace ember::cli {
namespace {

// ordered_json keeps metadata keys in file order.
using json = nlohmann::ordered_json;

// Arrays longer than this are shown as {"type":"array","element_type":T,"length":N} in JSON
// unless --full-arrays is given: a vocabulary would otherwise be megabytes of output.
constexpr uint64_t kSummariseArraysOver = 64;

json shape_json(const gguf::TensorInfo& t) {
  json shape = json::array();
  for (uint32_t d = 0; d < t.n_dims; ++d) shape.push_back(t.shape[d]);
  return shape;
}

std::string shape_text(const gguf::TensorInfo& t) {
  std::string s = "[";
  for (uint32_t d = 0; d < t.n_dims; ++d) s += (d ? ", " : "") + std::to_string(t.shape[d]);
  return s + "]";
}

std::string human_bytes(uint64_t n) {
  char buf[32];
  if (n >= (1ull << 30))
    std::snprintf(buf, sizeof buf, "%.2f GiB", n / double(1ull << 30));
  else if (n >= (1ull << 20))
    std::snprintf(buf, sizeof buf, "%.1f MiB", n / double(1ull << 20));
  else if (n >= 1024)
    std::snprintf(buf, sizeof buf, "%.1f KiB", n / 1024.0);
  else
    std::snprintf(buf, sizeof buf, "%" PRIu64 " B", n);
  return buf;
}

void print_json(const gguf::ModelFiles& model, bool full_arrays) {
  json out;
  out["version"] = model.parts().front().contents().version;
  json parts = json::array();
  for (const gguf::File& f : model.parts()) parts.push_back(f.path());
  out["parts"] = parts;
  json metadata = json::object();
  for (const gguf::KeyValue& kv : model.metadata().entries())
    metadata[std::string(kv.key)] =
        server::gguf_value_json(kv.value, full_arrays ? 0 : kSummariseArraysOver);
  out["metadata"] = metadata;
  json tensors = json::array();
  uint64_t params = 0;
  for (const gguf::TensorInfo& t : model.tensors()) {
    params += t.elements();
    tensors.push_back({{"name", std::string(t.name)},
                       {"shape", shape_json(t)},
                       {"type", std::string(gguf::type_name(t.type))},
                       {"offset", t.file_offset},
                       {"bytes", t.bytes},
                       {"split", t.split}});
  }
  out["tensors"] = tensors;
  out["totals"] = {{"tensors", model.tensors().size()},
                   {"parameters", params},
                   {"tensor_bytes", model.total_tensor_bytes()},
                   {"file_bytes", model.total_file_bytes()}};
  std::puts(out.dump(2, ' ', false, json::error_handler_t::replace).c_str());
}

void print_text(const gguf::ModelFiles& model) {
  const gguf::Metadata& meta = model.metadata();
  std::printf("file:          %s", model.parts().front().path().c_str());
  if (model.parts().size() > 1) std::printf(" (+%zu more parts)", model.parts().size() - 1);
  std::printf("\nformat:        GGUF v%u, %s\n", model.parts().front().contents().version,
              human_bytes(model.total_file_bytes()).c_str());
  std::string arch(meta.get_string("general.architecture").value_or("(none)"));
  std::printf("architecture:  %s\n", arch.c_str());
  if (auto name = meta.get_string("general.name"))
    std::printf("name:          %.*s\n", int(name->size()), name->data());

  static const char* kHyperParameters[] = {
      "context_length",
      "embedding_length",
      "block_count",
      "feed_forward_length",
      "expert_feed_forward_length",
      "attention.head_count",
      "attention.head_count_kv",
      "attention.key_length",
      "attention.value_length",
      "attention.layer_norm_rms_epsilon",
      "attention.sliding_window",
      "rope.freq_base",
      "rope.dimension_count",
      "expert_count",
      "expert_used_count",
      "vocab_size",
  };
  for (const char* key : kHyperParameters) {
    if (const gguf::Value* v = meta.find(arch + "." + key))
      std::printf("  %-32s %s\n", key, v->to_display_string().c_str());
  }

  std::string tokenizer(meta.get_string("tokenizer.ggml.model").value_or("(none)"));
  const gguf::Value* tokens = meta.find("tokenizer.ggml.tokens");
  std::printf("tokenizer:     %s, %" PRIu64 " tokens", tokenizer.c_str(),
              tokens && tokens->is_array() ? tokens->size() : 0);
  if (auto pre = meta.get_string("tokenizer.ggml.pre"))
    std::printf(", pre-tokenizer %.*s", int(pre->size()), pre->data());
  auto tmpl = meta.get_string("tokenizer.chat_template");
  std::printf("\nchat template: %s\n",
              tmpl ? ("yes, " + std::to_string(tmpl->size()) + " characters").c_str() : "no");
  std::printf("metadata:      %zu keys\n\n", meta.entries().size());

  size_t name_width = 4;
  for (const gguf::TensorInfo& t : model.tensors())
    name_width = std::max(name_width, t.name.size());
  std::printf("%-*s  %-24s  %-8s  %12s\n", int(name_width), "name", "shape", "type", "bytes");
  std::map<std::string, std::pair<uint64_t, uint64_t>> by_type;  // type → (tensors, bytes)
  uint64_t params = 0;
  for (const gguf::TensorInfo& t : model.tensors()) {
    std::string type(gguf::type_name(t.type));
    std::printf("%-*.*s  %-24s  %-8s  %12" PRIu64 "\n", int(name_width), int(t.name.size()),
                t.name.data(), shape_text(t).c_str(), type.c_str(), t.bytes);
    by_type[type].first += 1;
    by_type[type].second += t.bytes;
    params += t.elements();
  }
  std::printf("\ntotal: %zu tensors, %" PRIu64 " parameters, %s of tensor data\n",
              model.tensors().size(), params, human_bytes(model.total_tensor_bytes()).c_str());
  for (const auto& [type, count_bytes] : by_type)
    std::printf("  %-8s %5" PRIu64 " tensors  %s\n", type.c_str(), count_bytes.first,
                human_bytes(count_bytes.second).c_str());
}

// Weights (mapped: resident once touched, which generation does to all of them) + the KV cache of
// `parallel` slots of `ctx` positions (capped at the training context, as the server does) +
// ember's own 64 MiB (HTTP buffers, tokenizer, activations and scratch of a small model).
void print_memory(const gguf::ModelFiles& model, int ctx, int parallel, model::CacheType cache,
                  bool as_json) {
  constexpr uint64_t kOwn = 64ull << 20;
  const model::HyperParams hp = model::HyperParams::from_gguf(model.metadata());
  const int n_ctx = hp.context(ctx);
  uint64_t weights = 0;
  for (const gguf::File& f : model.parts()) weights += f.size();
  model::check_cache_type(cache, hp.head_dim);  // the load error serve would give
  const uint64_t kv = hp.kv_cache_bytes(n_ctx, parallel, cache);
  const uint64_t total = weights + kv + kOwn;
  const auto mib = [](uint64_t b) { return double(b) / double(1 << 20); };
  if (as_json) {
    std::printf("%s\n", json{{"ctx", n_ctx},
                             {"parallel", parallel},
                             {"cache_type", model::cache_type_name(cache)},
                             {"weights_bytes", weights},
                             {"kv_cache_bytes", kv},
                             {"overhead_bytes", kOwn},
                             {"total_bytes", total},
                             {"total_mib", uint64_t(std::ceil(mib(total)))}}
                            .dump(2)
                            .c_str());
    return;
  }
  std::printf("memory for `ember serve --ctx %d --parallel %d --cache-type %s`%s:\n", n_ctx,
              parallel, model::cache_type_name(cache),
              n_ctx < ctx ? " (the context capped at the model's training length)" : "");
  std::printf("  weights   %10.1f MiB  (the file, mapped)\n", mib(weights));
  std::printf(
      "  KV cache  %10.1f MiB  (2 × %g B × %d layers × %d kv heads × %d head_dim × %d positions × "
      "%d slots)\n",
      mib(kv), double(model::kv_bytes(cache, 32)) / 32, hp.n_layer, hp.n_head_kv, hp.head_dim,
      n_ctx, parallel);
  std::printf("  ember     %10.1f MiB\n", mib(kOwn));
  std::printf("  total     %10.1f MiB  → resources.requests.memory and limits.memory: %.0fMi\n",
              mib(total), std::ceil(mib(total)));
}

int to_positive(const std::string& value, const char* what) {
  try {
    size_t used = 0;
    const long v = std::stol(value, &used);
    if (used == value.size() && v >= 1 && v <= (1 << 24)) return int(v);
  } catch (const std::exception&) {
  }
  throw UsageError(std::string(what) + " must be a positive whole number, not '" + value + "'");
}

}  // namespace

int run_inspect(const std::vector<std::string>& argv) {
  Args args(argv, {"ctx", "parallel", "cache-type"}, {"json", "full-arrays", "memory"});
  if (args.positional().size() != 1) throw UsageError("expected one FILE.gguf");
  if ((args.has("ctx") || args.has("parallel") || args.has("cache-type")) && !args.has("memory"))
    throw UsageError("--ctx, --parallel and --cache-type go with --memory");
  gguf::ModelFiles model = gguf::ModelFiles::open(args.positional()[0]);
  if (args.has("memory"))
    print_memory(model, to_positive(args.get("ctx").value_or("4096"), "--ctx"),
                 to_positive(args.get("parallel").value_or("4"), "--parallel"),
                 cache_type_option(args), args.has("json"));
  else if (args.has("json"))
    print_json(model, args.has("full-arrays"));
  else
    print_text(model);
  return 0;
}

}  // namespace ember::cli
