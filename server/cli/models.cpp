// The model commands: `ember list [--short]`, `ember discover`, `ember probe ID`. They see the
// models `ember serve` would (RegistrySources::from_environment, plus --model-dirs).
#include <sys/resource.h>

#include <chrono>
#include <cstdio>

#include "model/transformer.h"
#include "server/cli/args.h"
#include "server/cli/commands.h"
#include "server/model_registry.h"

namespace ember::cli {
namespace {

server::RegistrySources sources_from(const Args& args) {
  server::RegistrySources s = server::RegistrySources::from_environment();
  if (auto d = args.get("model-dirs")) s.set_dirs(*d);  // the flag replaces the variables
  return s;
}

std::string size_text(uint64_t bytes) {
  char buf[32];
  if (bytes >= (uint64_t(1) << 30))
    std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / double(uint64_t(1) << 30));
  else
    std::snprintf(buf, sizeof buf, "%.1f MiB", bytes / double(1 << 20));
  return buf;
}

void print_table(const std::vector<server::ModelEntry>& models) {
  std::printf("%-40s %-10s %-8s %10s  %-8s %s\n", "ID", "ARCH", "QUANT", "SIZE", "SOURCE", "FILE");
  for (const auto& m : models) {
    std::printf("%-40s %-10s %-8s %10s  %-8s %s%s\n", m.id.c_str(), m.arch.c_str(), m.quant.c_str(),
                size_text(m.size_bytes).c_str(), m.source.c_str(), m.path.c_str(),
                m.parts > 1 ? (" (+" + std::to_string(m.parts - 1) + " parts)").c_str() : "");
    if (!m.alias.empty()) std::printf("  alias: %s\n", m.alias.c_str());
  }
}

}  // namespace

int run_list(const std::vector<std::string>& argv) {
  Args args(argv, {"model-dirs"}, {"short"});
  server::ModelRegistry registry(sources_from(args));
  registry.rescan();
  const auto models = registry.list();
  // (What could not be read was said on stderr by the scan; stdout stays the list.)
  if (args.has("short")) {
    for (const auto& m : models) std::printf("%s\n", m.id.c_str());
    return 0;
  }
  if (models.empty()) {
    std::printf(
        "no models found (put GGUF files in ./models, or use --model-dirs, or ember pull)\n");
    return 0;
  }
  print_table(models);
  return 0;
}

int run_discover(const std::vector<std::string>& argv) {
  Args args(argv, {"model-dirs"}, {});
  server::ModelRegistry registry(sources_from(args));
  const size_t n = registry.rescan();
  const auto& s = registry.sources();
  std::printf("searched:");
  for (const auto& d : s.dirs) std::printf(" %s", d.c_str());
  for (const auto& f : s.files) std::printf(" %s", f.c_str());
  if (!s.hf_hub.empty()) std::printf(" %s", s.hf_hub.c_str());
  if (!s.ollama.empty()) std::printf(" %s", s.ollama.c_str());
  std::printf("\nfound %zu model(s)\n", n);
  if (n) print_table(registry.list());
  return 0;
}

int run_probe(const std::vector<std::string>& argv) {
  Args args(argv, with_backend_options({"model-dirs"}), with_backend_flags({}));
  if (args.positional().size() != 1) throw UsageError("probe needs one model id (see ember list)");
  server::ModelRegistry registry(sources_from(args));
  registry.rescan();
  auto entry = registry.find(args.positional()[0]);
  if (!entry) throw std::runtime_error("no model '" + args.positional()[0] + "' (see ember list)");
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  gguf::ModelFiles files = gguf::ModelFiles::open(entry->path);
  model::Backends backends = model::make_backends(backend_spec(args));
  model::Transformer transformer(files, *backends.main, 64, cache_type_option(args), 1,
                                 backends.placement);
  const auto loaded = Clock::now();
  std::vector<float> logits = transformer.forward({0}, false);
  const auto done = Clock::now();
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto ms = [](Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
  std::printf("model:        %s (%s, %s, %s)\n", entry->id.c_str(), entry->arch.c_str(),
              entry->quant.c_str(), size_text(entry->size_bytes).c_str());
  std::printf("file:         %s\n", entry->path.c_str());
  std::printf("load:         %.1f ms (mapped, not copied)\n", ms(loaded - start));
  std::printf("first token:  %.1f ms (%zu logits)\n", ms(done - loaded), logits.size());
  std::printf("peak memory:  %s resident\n", size_text(uint64_t(usage.ru_maxrss) * 1024).c_str());
  return 0;
}

}  // namespace ember::cli
