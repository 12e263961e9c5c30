// `ember serve`: the HTTP server. Flags win over environment variables (SPEC.md), and the
// SHIMMY_* variables are accepted for users moving from Shimmy.
//   ember serve [--bind HOST:PORT] [--model-dirs D1:D2] [--model FILE] [--api-key K]
//               [--backend auto|cpu] [--threads N] [--ctx N] [--parallel N] [--max-queue N]
//               [--max-loaded-models N] [--cors-origins O1,O2] [--max-body-mb N]
//               [--request-timeout S] [--idle-timeout S] [--max-downloads N]
//               [--memory-budget-mb N] [--drain-timeout S] [--rescan-interval S] [--no-watch]
//               [--public-metrics] [--speculative N] [--draft-model FILE]
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>

#include "gguf/model_files.h"
#include "model/chat/chat_template.h"
#include "model/draft_model.h"
#include "model/lora.h"
#include "server/app.h"
#include "server/backend_choice.h"
#include "server/cli/args.h"
#include "server/cli/commands.h"
#include "server/directory_watcher.h"
#include "server/http/event_loop.h"
#include "server/http/server.h"
#include "server/model_registry.h"
#include "server/pull/pull_manager.h"
#include "server/scheduler.h"
#include "server/version.h"

namespace ember::cli {
namespace {

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (v && *v) return std::string(v);
  return std::nullopt;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, sep);)
    if (!item.empty()) out.push_back(item);
  return out;
}

int to_int(const std::string& value, const char* what, int lo, int hi) {
  try {
    size_t used = 0;
    const long v = std::stol(value, &used);
    if (used == value.size() && v >= lo && v <= hi) return static_cast<int>(v);
  } catch (const std::exception&) {
  }
  throw UsageError(std::string(what) + " must be a whole number from " + std::to_string(lo) +
                   " to " + std::to_string(hi) + ", not '" + value + "'");
}

// HOST:PORT, [IPv6]:PORT, HOST alone, or :PORT.
void parse_bind(const std::string& bind, std::string& host, int& port) {
  std::string h = bind, p;
  if (!bind.empty() && bind[0] == '[') {
    const size_t close = bind.find(']');
    if (close == std::string::npos)
      throw UsageError("--bind: malformed IPv6 address '" + bind + "'");
    h = bind.substr(1, close - 1);
    if (close + 1 < bind.size() && bind[close + 1] == ':') p = bind.substr(close + 2);
  } else if (const size_t colon = bind.rfind(':');
             colon != std::string::npos && bind.find(':') == colon) {
    h = bind.substr(0, colon);
    p = bind.substr(colon + 1);
  }
  if (!h.empty()) host = h;
  if (!p.empty()) port = to_int(p, "the port", 0, 65535);
}

}  // namespace

int run_serve(const std::vector<std::string>& argv) {
  // SIGINT/SIGTERM arrive through a signalfd on the event loop; SIGPIPE is ignored (sends use
  // MSG_NOSIGNAL anyway).
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);  // before any thread starts (a Vulkan
                                               // driver starts some), so all inherit it
  signal(SIGPIPE, SIG_IGN);
  const int signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  Args args(argv,
            {"bind",
             "model-dirs",
             "model",
             "api-key",
             "backend",
             "device",
             "threads",
             "ctx",
             "parallel",
             "max-queue",
             "max-loaded-models",
             "cors-origins",
             "max-body-mb",
             "request-timeout",
             "idle-timeout",
             "batch",
             "n-gpu-layers",
             "n-cpu-moe",
             "max-downloads",
             "memory-budget-mb",
             "lora",
             "chat-template",
             "chat-template-file",
             "drain-timeout",
             "speculative",
             "draft-model",
             "rescan-interval",
             "cache-type"},
            {"cpu-moe", "no-watch", "public-metrics"});
  auto pick = [&](const char* flag, std::initializer_list<const char*> vars) {
    if (auto v = args.get(flag)) return v;
    for (const char* var : vars)
      if (auto v = env(var)) return v;
    return std::optional<std::string>();
  };

  std::string host = "127.0.0.1";
  int port = 11435;
  if (auto b = pick("bind", {"EMBER_BIND", "SHIMMY_BIND_ADDRESS"})) parse_bind(*b, host, port);
  if (!args.has("bind"))
    if (auto p = env("EMBER_PORT") ? env("EMBER_PORT") : env("SHIMMY_PORT"))
      port = to_int(*p, "EMBER_PORT", 0, 65535);

  server::RegistrySources sources = server::RegistrySources::from_environment();
  if (auto d = args.get("model-dirs")) sources.set_dirs(*d);  // the flag replaces the variables
  if (auto f = args.get("model")) sources.files.push_back(*f);

  // The backend, as gpu-info would explain it. Device discovery only runs when a GPU backend
  // could be chosen, so `--backend cpu` starts without touching a driver.
  const std::string requested = pick("backend", {"EMBER_BACKEND"}).value_or("auto");
  const int device = to_int(pick("device", {"EMBER_DEVICE"}).value_or("-1"), "--device", -1, 1024);
  server::BackendChoice backend;
  try {
    const bool discover = requested != "cpu" && (requested != "auto" || server::kGpuBackendsBuilt);
    backend = discover ? server::choose_backend(requested, vulkan::list_devices(),
                                                opencl::list_devices(), device)
                       : server::choose_backend(requested, {}, {});
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }

  server::SchedulerOptions sched;
  sched.backend = backend.backend;
  sched.device = backend.device_index;
  sched.backend_automatic = requested == "auto";
  if (auto n = args.get("n-gpu-layers"))
    sched.gpu_layers = *n == "all" ? -1 : to_int(*n, "--n-gpu-layers", 0, 1 << 20);
  if (auto n = args.get("n-cpu-moe")) sched.cpu_moe_layers = to_int(*n, "--n-cpu-moe", 0, 1 << 20);
  if (args.has("cpu-moe")) sched.cpu_moe_layers = 1 << 20;
  if (backend.backend == "cpu" &&
      (args.has("n-gpu-layers") || args.has("n-cpu-moe") || args.has("cpu-moe")))
    std::fprintf(stderr,
                 "ember: the backend is the CPU, so every layer runs there; --n-gpu-layers, "
                 "--cpu-moe and --n-cpu-moe change nothing\n");
  sched.threads =
      to_int(pick("threads", {"EMBER_THREADS"}).value_or(std::to_string(default_threads())),
             "--threads", 1, 1024);
  sched.n_ctx = to_int(pick("ctx", {"EMBER_CTX"}).value_or("4096"), "--ctx", 16, 1 << 20);
  sched.parallel = to_int(args.get("parallel").value_or("4"), "--parallel", 1, 256);
  sched.max_queue = to_int(args.get("max-queue").value_or("64"), "--max-queue", 0, 100000);
  sched.max_loaded_models =
      to_int(args.get("max-loaded-models").value_or("2"), "--max-loaded-models", 1, 64);
  sched.memory_budget_bytes =
      uint64_t(to_int(args.get("memory-budget-mb").value_or("0"), "--memory-budget-mb", 0, 1 << 30))
      << 20;
  sched.batch_tokens = to_int(args.get("batch").value_or("256"), "--batch", 1, 65536);
  // Greedy requests guess 8 tokens ahead by default with a draft model, 4 with prompt lookup.
  if (auto f = pick("draft-model", {"EMBER_DRAFT_MODEL"})) sched.draft_model_path = *f;
  if (auto n = args.get("speculative")) sched.speculative = to_int(*n, "--speculative", 0, 64);
  sched.cache_type = cache_type_option(args);
  if (sched.cache_type == model::CacheType::kQ8_0 && backend.backend != "cpu")
    throw UsageError(std::string("the q8_0 KV cache runs on the CPU backend only for now, and the "
                                 "backend is ") +
                     backend.backend + ": add --backend cpu, or use --cache-type f16 on the GPU");
  // A template for every model instead of their own: a built-in one by name, or a Jinja file
  // (as llama-server's --chat-template / --chat-template-file), checked now.
  try {
    if (args.has("chat-template") && args.has("chat-template-file"))
      throw UsageError("give --chat-template or --chat-template-file, not both");
    if (auto name = args.get("chat-template")) {
      // A built-in's name, or (as llama-server with --jinja) the template itself.
      const bool source =
          name->find("{%") != std::string::npos || name->find("{{") != std::string::npos;
      sched.chat_template = source ? *name : chat::ChatTemplate::builtin_source(*name);
    }
    if (auto file = args.get("chat-template-file")) {
      std::ifstream in(*file);
      if (!in) throw UsageError("--chat-template-file: cannot read " + *file);
      sched.chat_template.assign(std::istreambuf_iterator<char>(in), {});
    }
    if (!sched.chat_template.empty()) chat::ChatTemplate(sched.chat_template, "custom", "", "");
  } catch (const chat::jinja::Error& e) {
    throw UsageError(std::string("--chat-template: ") + e.what());
  }

  http::ServerOptions http_options;
  if (auto o = args.get("cors-origins")) http_options.cors_origins = split(*o, ',');
  http_options.limits.max_body_bytes =
      size_t(to_int(args.get("max-body-mb").value_or("16"), "--max-body-mb", 1, 4096)) << 20;
  http_options.request_timeout = std::chrono::seconds(
      to_int(args.get("request-timeout").value_or("30"), "--request-timeout", 1, 86400));
  http_options.idle_timeout = std::chrono::seconds(
      to_int(args.get("idle-timeout").value_or("30"), "--idle-timeout", 1, 86400));

  // Deployment: how long SIGTERM waits for in-flight requests (Kubernetes' grace period must be
  // longer), how often the model directories are rescanned as a backstop to inotify (which sees
  // nothing another host writes to a network volume), and whether inotify is used at all.
  const int drain_timeout = to_int(pick("drain-timeout", {"EMBER_DRAIN_TIMEOUT"}).value_or("25"),
                                   "--drain-timeout", 0, 86400);
  const int rescan_interval =
      to_int(pick("rescan-interval", {"EMBER_RESCAN_INTERVAL"}).value_or("30"), "--rescan-interval",
             0, 86400);
  const bool watch = !args.has("no-watch") && env("EMBER_WATCH").value_or("1") != "0";

  server::AppOptions app_options;
  app_options.api_key = pick("api-key", {"EMBER_API_KEY"}).value_or("");
  app_options.public_metrics =
      args.has("public-metrics") || env("EMBER_PUBLIC_METRICS").value_or("0") == "1";
  app_options.backend = backend.backend;
  app_options.device = backend.device;
  // A request naming no model gets the one --model (or a single EMBER_BASE_GGUF) names.
  if (auto f = args.get("model"))
    app_options.default_model_file = *f;
  else if (sources.files.size() == 1)
    app_options.default_model_file = sources.files[0];

  // LoRA adapters pair with that model: --lora FILE[:SCALE] (repeatable), else
  // EMBER_LORA_GGUF / SHIMMY_LORA_GGUF. Checked against the model now, so a wrong adapter stops
  // the start with its reason rather than failing the first request.
  std::vector<std::string> lora_specs = args.get_all("lora");
  if (lora_specs.empty())
    if (auto v = env("EMBER_LORA_GGUF") ? env("EMBER_LORA_GGUF") : env("SHIMMY_LORA_GGUF"))
      lora_specs.push_back(*v);
  if (!lora_specs.empty()) {
    if (app_options.default_model_file.empty())
      throw UsageError("--lora needs the model it adapts: --model FILE (or EMBER_BASE_GGUF)");
    sched.lora_model_path = app_options.default_model_file;
    const gguf::ModelFiles base = gguf::ModelFiles::open(sched.lora_model_path);
    const model::HyperParams hp = model::HyperParams::from_gguf(base.metadata());
    sched.loras = parse_lora_specs(lora_specs);
    for (const auto& [file, scale] : sched.loras) model::LoraAdapter::open(file, base, hp);
  }

  // The draft model guesses for every model whose vocabulary it shares (the others fall back to
  // prompt lookup); checked now against --model's, so a mismatch stops the start with its reason.
  if (!sched.draft_model_path.empty()) {
    const gguf::ModelFiles draft = gguf::ModelFiles::open(sched.draft_model_path);
    if (!app_options.default_model_file.empty()) {
      const gguf::ModelFiles target = gguf::ModelFiles::open(app_options.default_model_file);
      try {
        model::check_draft_vocabulary(text::Vocab::from_gguf(target.metadata()),
                                      text::Vocab::from_gguf(draft.metadata()));
      } catch (const std::runtime_error& e) {
        throw UsageError(std::string("--draft-model: ") + e.what());
      }
    }
  }

  server::ModelRegistry registry(sources);
  http::EventLoop loop;
  server::Scheduler scheduler(registry, sched);
  const int max_downloads =
      to_int(args.get("max-downloads").value_or("2"), "--max-downloads", 1, 64);
  pull::PullManager pulls(app_options.pull_dir, pull::HubOptions::from_environment(), max_downloads,
                          [&registry](const std::string& path) {
                            registry.rescan();
                            return registry.id_for_path(path);
                          });
  server::App app(registry, scheduler, pulls, app_options);
  std::optional<server::DirectoryWatcher> watcher;
  if (watch) watcher.emplace(loop, registry);
  std::optional<server::PeriodicRescan> rescans;
  if (rescan_interval > 0) rescans.emplace(registry, std::chrono::seconds(rescan_interval));
  http::Server http_server(loop, http_options,
                           [&app](const http::Request& r, std::shared_ptr<http::Responder> resp) {
                             app.handle(r, std::move(resp));
                           });
  const int bound = http_server.listen(host, port);
  const bool v6 = host.find(':') != std::string::npos;
  std::printf("listening on %s%s%s:%d\n", v6 ? "[" : "", host.c_str(), v6 ? "]" : "", bound);
  std::fflush(stdout);
  // Discovery after the socket is up: startup to listening stays instant.
  const size_t found = registry.rescan();
  std::fprintf(stderr,
               "ember %s: %zu model(s) found; %d slot(s) per model, context %d, %d threads\n",
               ember::kVersion, found, sched.parallel, sched.n_ctx, sched.threads);

  app.set_ready();

  // SIGTERM (or SIGINT) drains: /ready turns 503 at once, new work is refused with 503 +
  // Retry-After, what is in flight finishes; at the latest after --drain-timeout (or at a second
  // signal) the rest is ended, then the process exits 0.
  enum class Phase { kServing, kDraining, kStopping } phase = Phase::kServing;
  using Clock = std::chrono::steady_clock;
  Clock::time_point deadline;
  auto stop_now = [&] {
    phase = Phase::kStopping;
    http_server.stop_accepting();
    scheduler.shutdown();  // active requests end with what they have, queued ones get 503
    // Pulls stop at once (even a hanging request), ending their streams with an error line;
    // their .part files stay for a later pull to resume.
    pulls.cancel_all("the server is shutting down");
    deadline = Clock::now() + std::chrono::seconds(3);
  };
  loop.watch(signal_fd, EPOLLIN, [&](uint32_t) {
    signalfd_siginfo info;
    while (read(signal_fd, &info, sizeof info) == sizeof info) {
      if (phase == Phase::kServing) {
        std::fprintf(stderr,
                     "signal %u: draining (not ready, no new work; in-flight requests have %d s "
                     "to finish)\n",
                     info.ssi_signo, drain_timeout);
        phase = Phase::kDraining;
        app.begin_drain();
        http_server.drain();
        deadline = Clock::now() + std::chrono::seconds(drain_timeout);
      } else if (phase == Phase::kDraining) {
        std::fprintf(stderr, "signal %u again: ending in-flight requests now\n", info.ssi_signo);
        stop_now();
      }
    }
  });
  int quiet_ticks = 0;  // consecutive checks with nothing in flight
  loop.every(std::chrono::milliseconds(50), [&] {
    // Nothing in flight twice in a row: a connection accepted just now has had a turn to send
    // its request before the listener closes.
    quiet_ticks = http_server.busy_count() == 0 ? quiet_ticks + 1 : 0;
    if (phase == Phase::kDraining && (quiet_ticks >= 2 || Clock::now() > deadline)) {
      if (http_server.busy_count() > 0)
        std::fprintf(stderr, "drain timeout: ending %zu request(s) still in flight\n",
                     http_server.busy_count());
      stop_now();
    }
    if (phase == Phase::kStopping &&
        (http_server.connection_count() == 0 || Clock::now() > deadline))
      loop.stop();
  });
  loop.run();
  loop.unwatch(signal_fd);
  close(signal_fd);
  std::fprintf(stderr, "stopped\n");
  return 0;
}

}  // namespace ember::cli
