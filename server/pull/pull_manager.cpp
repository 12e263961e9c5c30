#include "server/pull/pull_manager.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>

#include "gguf/model_files.h"
#include "server/pull/sha256.h"

namespace ember::pull {
namespace fs = std::filesystem;
using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

struct PullManager::Task {
  PullRequest request;
  std::string key;
  std::vector<Listener> listeners;  // under the manager's mutex
  std::string status = "starting";
  uint64_t completed = 0, total = 0;
  bool finished = false;
  std::atomic<bool> cancel{false};
};

void validate(const PullRequest& r) {
  static const std::regex repo("^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$");
  static const std::regex file("^([A-Za-z0-9._-]+/)*[A-Za-z0-9._+-]+\\.gguf$", std::regex::icase);
  static const std::regex revision("^[A-Za-z0-9._/-]{1,128}$");
  auto has_dotdot = [](const std::string& s) {
    return s.find("..") != std::string::npos || s.find("//") != std::string::npos;
  };
  if (!std::regex_match(r.repo, repo) || has_dotdot(r.repo))
    throw PullRejected(
        "'model' must be a Hugging Face repo id ORG/NAME (letters, digits, '.', '_', '-'), not '" +
        r.repo + "'");
  if (!r.filename.empty() && (!std::regex_match(r.filename, file) || has_dotdot(r.filename)))
    throw PullRejected(
        "'filename' must be a .gguf file name inside the repo (no '..', no leading '/'), not '" +
        r.filename + "'");
  if (!std::regex_match(r.revision, revision) || has_dotdot(r.revision))
    throw PullRejected("'revision' is not a valid branch, tag or commit: '" + r.revision + "'");
}

std::string choose_file(const std::vector<std::string>& files, std::string* reason) {
  // Preference: the usual default first, then nearby sizes, then anything GGUF.
  static const char* kOrder[] = {"Q4_K_M", "Q4_K_S", "Q5_K_M", "Q4_0",   "Q5_K_S", "Q4_1",   "Q5_0",
                                 "Q5_1",   "Q6_K",   "Q3_K_L", "Q3_K_M", "IQ4_XS", "IQ4_NL", "Q8_0",
                                 "Q3_K_S", "Q2_K",   "F16",    "BF16",   "F32"};
  std::vector<std::string> ggufs;
  for (const std::string& f : files) {
    std::string lower = f;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower.size() > 5 && lower.ends_with(".gguf") && lower.find("mmproj") == std::string::npos &&
        !std::regex_search(lower, std::regex("-0000[2-9]-of-|-000[1-9][0-9]-of-")))
      ggufs.push_back(f);
  }
  for (const char* q : kOrder) {
    std::string tag = q;
    std::string lower_tag = tag;
    for (char& c : lower_tag) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const std::string& f : ggufs) {
      std::string lower = f;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::replace(lower.begin(), lower.end(), '-', '_');
      // The quantisation as a whole word: q4_k_m, not q4_k_m_l or iq4_k_m.
      const std::regex word("(^|[^a-z0-9])" + lower_tag + "([^a-z0-9_]|$)");
      if (std::regex_search(lower, word)) {
        if (reason)
          *reason = tag == "Q4_K_M" ? "Q4_K_M" : "no Q4_K_M file; " + tag + " is the closest";
        return f;
      }
    }
  }
  if (!ggufs.empty() && reason) *reason = "no known quantisation in the names; the first GGUF file";
  return ggufs.empty() ? "" : ggufs.front();
}

PullManager::PullManager(std::string models_dir, HubOptions hub, int max_downloads,
                         std::function<std::string(const std::string&)> on_complete)
    : models_dir_(std::move(models_dir)),
      hub_(std::move(hub)),
      max_downloads_(std::max(1, max_downloads)),
      on_complete_(std::move(on_complete)) {}

PullManager::~PullManager() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    for (auto& [k, t] : tasks_) t->cancel = true;
  }
  slot_free_.notify_all();
  std::unique_lock<std::mutex> lock(mutex_);
  all_done_.wait(lock, [&] { return running_ == 0; });
}

void PullManager::emit(Task& task, const std::string& line, bool last) {
  std::vector<Listener> listeners;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    listeners = task.listeners;
  }
  for (const Listener& l : listeners) l(line, last);
}

void PullManager::pull(const PullRequest& request, Listener listener) {
  validate(request);
  const std::string key = request.repo + "@" + request.revision + ":" + request.filename;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = tasks_.find(key);
  if (it != tasks_.end() && !it->second->finished) {  // join: same progress from now on
    it->second->listeners.push_back(listener);
    listener(json{{"status", "joined"},
                  {"model", request.repo},
                  {"filename", request.filename},
                  {"note", "this file is already being pulled; following that pull"},
                  {"completed", it->second->completed},
                  {"total", it->second->total}}
                 .dump(),
             false);
    return;
  }
  auto task = std::make_shared<Task>();
  task->request = request;
  task->key = key;
  task->listeners.push_back(std::move(listener));
  tasks_[key] = task;
  ++running_;
  std::thread([this, task] {
    run(task);
    std::lock_guard<std::mutex> done(mutex_);
    if (--running_ == 0) all_done_.notify_all();
  }).detach();
}

std::vector<std::string> PullManager::status_lines() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> out;
  for (const auto& [k, t] : tasks_)
    if (!t->finished)
      out.push_back(json{
          {"model", t->request.repo},
          {"filename", t->request.filename},
          {"status", t->status},
          {"completed", t->completed},
          {"total",
           t->total}}.dump());
  return out;
}

void PullManager::run(std::shared_ptr<Task> task) {
  PullRequest r = task->request;
  auto say = [&](const json& j, bool last = false) {
    emit(*task, j.dump(-1, ' ', false, json::error_handler_t::replace), last);
  };
  auto finish = [&](const json& last) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      task->finished = true;
      task->status = last.value("status", "");
    }
    say(last, true);
    std::lock_guard<std::mutex> lock(mutex_);
    task->listeners.clear();
    tasks_.erase(task->key);
  };
  auto fail = [&](const std::string& message) {
    finish(json{{"status", "error"}, {"error", message}});
  };
  bool holding_slot = false;
  auto release_slot = [&] {
    if (!holding_slot) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      --downloading_;
    }
    holding_slot = false;
    slot_free_.notify_one();
  };

  fs::path part_path;  // known once the file name is
  try {
    say({{"status", "starting"},
         {"model", r.repo},
         {"filename", r.filename},
         {"revision", r.revision}});
    if (r.filename.empty()) {
      std::string reason;
      r.filename = choose_file(hub_.list_files(r.repo, r.revision), &reason);
      if (r.filename.empty()) return fail("the repo " + r.repo + " has no GGUF file");
      validate(r);
      say({{"status", "selected"}, {"filename", r.filename}, {"reason", reason}});
    }
    const std::string name = fs::path(r.filename).filename().string();
    fs::create_directories(models_dir_);
    const fs::path final_path = fs::path(models_dir_) / name;
    part_path = fs::path(models_dir_) / (name + ".part");
    std::error_code ec;
    if (fs::exists(final_path, ec)) {  // never overwritten
      const std::string id = on_complete_(final_path.string());
      return finish({{"status", "complete"},
                     {"filename", name},
                     {"path", final_path.string()},
                     {"size_mb", fs::file_size(final_path, ec) / 1048576.0},
                     {"id", id},
                     {"discovered", true},
                     {"note", "already present; not downloaded again"}});
    }

    // Wait for a download slot.
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (downloading_ >= max_downloads_) {
        task->status = "queued";
        lock.unlock();
        say({{"status", "queued"},
             {"note",
              "waiting: " + std::to_string(max_downloads_) + " download(s) already running"}});
        lock.lock();
        slot_free_.wait(lock, [&] { return downloading_ < max_downloads_ || stopping_.load(); });
      }
      if (stopping_) {
        lock.unlock();
        return fail("the server is shutting down");
      }
      ++downloading_;
      holding_slot = true;
    }

    const FileInfo info = hub_.file_info(r.repo, r.revision, r.filename);
    uint64_t have = fs::exists(part_path, ec) ? fs::file_size(part_path, ec) : 0;
    if (info.size > 0 && have > info.size) {  // not a prefix of this file: start over
      fs::remove(part_path, ec);
      have = 0;
    }
    struct statvfs disk {};
    if (info.size > 0 && statvfs(models_dir_.c_str(), &disk) == 0) {
      const uint64_t free_bytes = uint64_t(disk.f_bavail) * disk.f_frsize;
      if (free_bytes < info.size - have) {
        release_slot();
        return fail("not enough disk space in " + models_dir_ + ": the file needs " +
                    std::to_string((info.size - have) >> 20) + " MiB more, " +
                    std::to_string(free_bytes >> 20) + " MiB are free");
      }
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      task->status = "downloading";
      task->total = info.size;
      task->completed = have;
    }
    say({{"status", "downloading"},
         {"completed", have},
         {"total", info.size},
         {"percent", info.size ? 100.0 * have / info.size : 0.0}});
    auto last_report = Clock::now();
    std::string sha;
    if (info.size > 0 && have == info.size) {
      // Already complete from an earlier attempt: hash what is there.
      Sha256 h;
      h.update_from_file(part_path.string());
      sha = h.hex_digest();
    } else {
      sha = hub_.download(
          r.repo, r.revision, r.filename, part_path.string(),
          [&](uint64_t bytes) {
            {
              std::lock_guard<std::mutex> lock(mutex_);
              task->completed = bytes;
            }
            if (Clock::now() - last_report >= std::chrono::seconds(1)) {
              last_report = Clock::now();
              say({{"status", "downloading"},
                   {"completed", bytes},
                   {"total", info.size},
                   {"percent", info.size ? 100.0 * bytes / info.size : 0.0}});
            }
          },
          task->cancel);
    }
    release_slot();
    const uint64_t size = fs::file_size(part_path, ec);
    say({{"status", "downloading"},
         {"completed", size},
         {"total", info.size ? info.size : size},
         {"percent", 100.0}});
    say({{"status", "verifying"}});
    if (!info.sha256.empty() && sha != info.sha256) {
      fs::remove(part_path, ec);
      return fail("the download is corrupt: its sha256 is " + sha + " but the hub says " +
                  info.sha256 + " (the partial file was removed; pull again)");
    }
    try {
      gguf::ModelFiles::open(part_path.string());
    } catch (const std::exception& e) {
      fs::remove(part_path, ec);
      return fail(std::string("the downloaded file is not a usable GGUF model: ") + e.what());
    }
    if (fs::exists(final_path, ec)) {  // appeared meanwhile: keep it, drop ours
      fs::remove(part_path, ec);
    } else {
      fs::rename(part_path, final_path, ec);
      if (ec) return fail("cannot move the download into place: " + ec.message());
    }
    const std::string id = on_complete_(final_path.string());
    finish({{"status", "complete"},
            {"filename", name},
            {"path", final_path.string()},
            {"size_mb", size / 1048576.0},
            {"sha256", sha},
            {"id", id},
            {"discovered", !id.empty()}});
  } catch (const HubError& e) {
    release_slot();
    std::error_code ec;
    std::string message = e.what();
    // Say a partial download is kept only when there is one.
    if (e.http_status == 0 && message != "cancelled" && !part_path.empty() &&
        fs::exists(part_path, ec) && fs::file_size(part_path, ec) > 0)
      message += " (the partial download is kept; pull again to resume)";
    fail(message);
  } catch (const PullRejected& e) {
    release_slot();
    fail(e.what());
  } catch (const std::exception& e) {
    release_slot();
    fail(std::string("pull failed: ") + e.what());
  }
}

}  // namespace ember::pull
