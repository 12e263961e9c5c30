// The coordination of pulls: their threads, who follows which pull, joining by destination,
// download slots, cancellation and status. One pull's steps are in pull_run.cpp.
#include "server/pull/pull_manager.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <thread>

#include "server/pull/pull_task.h"

namespace ember::pull {
using json = nlohmann::ordered_json;

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

PullManager::PullManager(std::string models_dir, HubOptions hub, int max_downloads,
                         std::function<std::string(const std::string&)> on_complete)
    : models_dir_(std::move(models_dir)),
      hub_(std::move(hub)),
      max_downloads_(std::max(1, max_downloads)),
      on_complete_(std::move(on_complete)) {}

PullManager::~PullManager() {
  cancel_all("the server is shutting down");
  std::list<std::thread> workers;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    workers.swap(workers_);
  }
  for (std::thread& w : workers) w.join();  // each ends within about a second once cancelled
}

void PullManager::pull(const PullRequest& request, Listener listener, Gone gone) {
  validate(request);
  auto task = std::make_shared<Task>();
  task->request = request;
  task->followers.push_back({listener, std::move(gone)});
  std::string refused;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    refused = stop_reason_;
    if (!stopping_) {
      // Threads of pulls that ended are joined here, so that none outlives the manager.
      for (const std::thread::id id : exited_)
        for (auto it = workers_.begin(); it != workers_.end(); ++it)
          if (it->get_id() == id) {
            it->join();  // it is past its last use of the mutex
            workers_.erase(it);
            break;
          }
      exited_.clear();
      tasks_.push_back(task);
      workers_.emplace_back([this, task]() mutable {
        run(task);
        task.reset();
        std::lock_guard<std::mutex> done(mutex_);
        exited_.push_back(std::this_thread::get_id());
      });
      return;
    }
  }
  listener(json{{"status", "error"}, {"error", refused}}.dump(), true);
}

void PullManager::emit(Task& task, const std::string& line, bool last) {
  std::vector<Task::Follower> followers;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    followers = task.followers;
  }
  for (const Task::Follower& f : followers) f.listener(line, last);
}

void PullManager::finish(Task& task, const std::string& line) {
  std::vector<Task::Follower> followers;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    task.finished = true;
    task.status = json::parse(line).value("status", "");
    followers.swap(task.followers);
    if (auto it = by_target_.find(task.key); it != by_target_.end() && it->second.get() == &task)
      by_target_.erase(it);
    tasks_.remove_if([&](const std::shared_ptr<Task>& t) { return t.get() == &task; });
    changed_.notify_all();
  }
  for (const Task::Follower& f : followers) f.listener(line, true);
}

bool PullManager::should_stop(Task& task) {
  if (task.cancel) return true;
  std::lock_guard<std::mutex> lock(mutex_);
  const size_t before = task.followers.size();
  std::erase_if(task.followers, [](const Task::Follower& f) { return f.gone && f.gone(); });
  if (before > 0 && task.followers.empty()) {
    task.cancel_reason = "every client following this pull hung up";
    task.cancel = true;
  }
  if (task.lock && task.lock->lost()) {
    task.cancel_reason =
        "another process took this download over (this one looked dead: no heartbeat for " +
        std::to_string(DestinationLock::stale_after().count()) + " s)";
    task.cancel = true;
  }
  return task.cancel;
}

bool PullManager::join_or_register(const std::shared_ptr<Task>& task, const std::string& key) {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    auto it = by_target_.find(key);
    if (it == by_target_.end() || it->second == task) {
      if (!task->key.empty() && task->key != key) by_target_.erase(task->key);
      by_target_[key] = task;
      task->key = key;
      return false;
    }
    Task& writer = *it->second;
    const bool stalled =
        writer.status == "downloading" && Clock::now() - writer.progress_at > kNoProgress;
    if (!stalled) {
      // Follow the writer from now on. The "joined" line is sent under the lock, so that it
      // comes before any line of the writer's.
      const std::string line = json{
          {"status", "joined"},
          {"model", writer.request.repo},
          {"filename", writer.id},
          {"note", "this file is already being pulled; following that pull"},
          {"completed", writer.completed},
          {"total", writer.total}}.dump();
      for (Task::Follower& f : task->followers) {
        f.listener(line, false);
        writer.followers.push_back(std::move(f));
      }
      task->followers.clear();
      task->joined = true;
      if (!task->key.empty()) by_target_.erase(task->key);
      return true;
    }
    // A transfer making no progress is not joined: stop it, then write the file ourselves.
    if (!writer.cancel) {
      writer.cancel_reason = "no data arrived for " + std::to_string(kNoProgress.count()) +
                             " s; a new pull of the same file restarts the download";
      writer.cancel = true;
    }
    changed_.wait_for(lock, std::chrono::milliseconds(200));
    if (task->cancel) return false;  // the caller notices
  }
}

bool PullManager::acquire_slot(Task& task) {
  bool said = false;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (downloading_ < max_downloads_) {
        ++downloading_;
        return true;
      }
      task.status = "queued";
    }
    if (!said) {
      said = true;
      emit(task,
           json{{"status", "queued"},
                {"note",
                 "waiting: " + std::to_string(max_downloads_) + " download(s) already running"}}
               .dump(),
           false);
    }
    if (should_stop(task)) return false;
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait_for(lock, std::chrono::milliseconds(200));
  }
}

void PullManager::release_slot() {
  std::lock_guard<std::mutex> lock(mutex_);
  --downloading_;
  changed_.notify_all();
}

std::vector<std::string> PullManager::cancel(const std::string& target, const std::string& reason) {
  std::vector<std::string> ids;
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& t : tasks_) {
    if (t->finished || t->joined) continue;
    bool match = t->id == target || lower(t->request.repo) == lower(target);
    for (const std::string& f : t->files) match = match || t->request.repo + "/" + f == target;
    if (!match) continue;
    t->cancel_reason = reason;
    t->cancel = true;
    ids.push_back(t->id.empty() ? t->request.repo : t->id);
  }
  changed_.notify_all();
  return ids;
}

void PullManager::cancel_all(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!stopping_) stop_reason_ = reason;
  stopping_ = true;
  for (const auto& t : tasks_) {
    if (t->cancel) continue;
    t->cancel_reason = reason;
    t->cancel = true;
  }
  changed_.notify_all();
}

std::vector<std::string> PullManager::status_lines() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> out;
  for (const auto& t : tasks_) {
    if (t->finished || t->joined) continue;
    json j = {{"id", t->id},
              {"model", t->request.repo},
              {"filename", t->files.empty() ? t->request.filename : t->files.front()},
              {"status", t->status},
              {"completed", t->completed},
              {"total", t->total},
              {"percent", t->total ? 100.0 * double(t->completed) / double(t->total) : 0.0},
              {"clients", t->followers.size()}};
    if (t->files.size() > 1) j["files"] = t->files;
    out.push_back(j.dump());
  }
  return out;
}

}  // namespace ember::pull
