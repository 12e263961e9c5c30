// `ember pull ORG/REPO[:FILE|:QUANT] [--revision R] [--dir ./models]`: downloads a GGUF model
// from the Hugging Face hub (HF_ENDPOINT; HF_TOKEN or the token `huggingface-cli login` saved)
// with the server's pull machinery — one writer per file (another `ember pull` or server of
// the same file is waited for), resume, sha256 of the file on disk, GGUF checks, atomic rename.
// "hf.co/ORG/REPO:QUANT" works as in Ollama and llama.cpp's -hf. A progress bar on a terminal,
// plain lines otherwise.
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>

#include "server/cli/args.h"
#include "server/cli/commands.h"
#include "server/model_registry.h"
#include "server/pull/pull_manager.h"

namespace ember::cli {

int run_pull(const std::vector<std::string>& argv) {
  Args args(argv, {"revision", "dir"}, {});
  if (args.positional().size() != 1) throw UsageError("pull needs one ORG/REPO[:FILE.gguf|:QUANT]");
  pull::PullRequest request = pull::parse_model_spec(args.positional()[0]);
  request.revision = args.get("revision").value_or("main");
  try {
    pull::validate(request);
  } catch (const pull::PullRejected& e) {
    throw UsageError(e.what());
  }
  const std::string dir = args.get("dir").value_or("./models");
  const bool tty = isatty(STDERR_FILENO);

  std::mutex mutex;
  std::condition_variable done_cv;
  bool done = false, ok = false;
  {
    pull::PullManager manager(dir, pull::HubOptions::from_environment(), 1,
                              [](const std::string& path) {
                                return server::model_id_for(path.substr(path.rfind('/') + 1));
                              });
    manager.pull(request, [&](const std::string& line, bool last) {
      const auto j = nlohmann::json::parse(line);
      const std::string status = j.value("status", "");
      const char* nl = tty ? "\n" : "";  // ends a progress bar
      if (status == "downloading" && tty) {
        const double total = j.value("total", 0.0), completed = j.value("completed", 0.0);
        const int width = 40, filled = total > 0 ? static_cast<int>(width * completed / total) : 0;
        std::fprintf(stderr, "\r[%-*s] %5.1f%%  %.1f / %.1f MiB", width,
                     std::string(static_cast<size_t>(filled), '#').c_str(),
                     total > 0 ? 100 * completed / total : 0.0, completed / 1048576,
                     total / 1048576);
      } else if (status == "downloading") {
        std::fprintf(stderr, "downloading %.0f / %.0f bytes\n", j.value("completed", 0.0),
                     j.value("total", 0.0));
      } else if (status == "complete") {
        std::fprintf(stderr, "%s%s -> %s (id %s)%s%s\n", nl, j.value("filename", "").c_str(),
                     j.value("path", "").c_str(), j.value("id", "").c_str(),
                     j.contains("note") ? ": " : "", j.value("note", "").c_str());
      } else if (status == "error") {
        std::fprintf(stderr, "%serror: %s\n", nl, j.value("error", "").c_str());
      } else if (status == "selected") {
        std::fprintf(stderr, "selected %s (%s)\n", j.value("filename", "").c_str(),
                     j.value("reason", "").c_str());
      } else if (status == "warning") {
        std::fprintf(stderr, "%swarning: %s\n", nl, j.value("warning", "").c_str());
      } else if (j.contains("note")) {  // waiting, retrying, destination, joined, note
        std::fprintf(stderr, "%s%s: %s\n", status == "retrying" ? nl : "", status.c_str(),
                     j.value("note", "").c_str());
      } else {
        std::fprintf(stderr, "%s\n", status.c_str());
      }
      if (last) {
        std::lock_guard<std::mutex> lock(mutex);
        done = true;
        ok = status == "complete";
        done_cv.notify_one();
      }
    });
    std::unique_lock<std::mutex> lock(mutex);
    done_cv.wait(lock, [&] { return done; });
  }
  return ok ? 0 : 1;
}

}  // namespace ember::cli
