// One pull's steps: which files (a name, a quantisation or the automatic choice; every part of
// a split set), where they go (the repo's name unless a different file holds it; join a pull
// writing them, or wait for the writer's lock), the download of each part with resume and its
// verification from disk, the GGUF check, and the commit: renames, part 1 last, then discovery.
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "gguf/reader.h"
#include "server/json_text.h"
#include "server/pull/pull_manager.h"
#include "server/pull/pull_task.h"
#include "server/pull/sha256.h"

namespace ember::pull {
namespace fs = std::filesystem;
using json = nlohmann::ordered_json;
using server::dump;

namespace {

// Bytes fetched again to check the tail of a partial download that no sha256 can verify.
constexpr uint64_t kOverlap = 1 << 20;

// A failure whose message is the final "error" line as it stands.
class PullFailed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::string mib(uint64_t bytes) {
  return std::to_string((bytes + (1 << 19)) >> 20) + " MiB";
}

uint64_t size_or_zero(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? uint64_t(st.st_size) : 0;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

HubError cancelled() {
  return HubError("cancelled", HubError::Kind::kCancelled);
}

// Where a pull's files go: the first of destination_names() not held by another file.
struct Destination {
  std::string name;                 // part 1's name in the models directory; empty: none is free
  std::vector<OnDisk> states;       // what each part's name holds now
  bool present = false;             // every part is there, verified
  std::vector<std::string> others;  // names tried first, holding other files
};

template <typename Parts>
Destination choose_destination(const std::string& dir, const Parts& parts, const std::string& tag) {
  Destination d;
  const int n = int(parts.size());
  for (const std::string& name : destination_names(parts[0].repo_file, tag)) {
    std::vector<OnDisk> states;
    for (int i = 0; i < n; ++i)
      states.push_back(examine((fs::path(dir) / part_name(name, i + 1, n)).string(),
                               parts[i].info.size, parts[i].info.sha256, i + 1, n));
    auto all = [&](OnDisk s) { return std::count(states.begin(), states.end(), s) == n; };
    auto any = [&](OnDisk s) { return std::count(states.begin(), states.end(), s) > 0; };
    if (any(OnDisk::kOther) && !all(OnDisk::kSame)) {
      d.others.push_back(name);
      continue;
    }
    d.name = name;
    d.present = all(OnDisk::kSame);
    d.states = std::move(states);
    return d;
  }
  return d;
}

// Each downloaded part must be a whole GGUF file, and the part of the set its name says.
template <typename Parts>
void check_gguf(const Parts& parts) {
  const int n = int(parts.size());
  for (int i = 0; i < n; ++i) {
    if (parts[i].state == OnDisk::kSame) continue;
    const gguf::File file = gguf::File::open(parts[i].part_path);
    const int64_t count = file.metadata().get_int("split.count").value_or(1);
    const int64_t no = file.metadata().get_int("split.no").value_or(0);
    if (count != n || (n > 1 && no != i))
      throw std::runtime_error(parts[i].repo_file + ": its split.no and split.count say part " +
                               std::to_string(no + 1) + " of " + std::to_string(count) +
                               ", its name part " + std::to_string(i + 1) + " of " +
                               std::to_string(n));
  }
}

}  // namespace

void PullManager::say(Task& task, const std::string& status, const std::string& field,
                      const std::string& text) {
  emit(task, dump(json{{"status", status}, {field, text}}), false);
}

void PullManager::run(const std::shared_ptr<Task>& task) {
  std::unique_ptr<DestinationLock> lock;
  bool holding_slot = false;
  std::string last;
  // A partial download a later pull can resume: say so only when there is one.
  auto kept = [&] {
    std::vector<std::string> paths;
    {
      std::lock_guard<std::mutex> guard(mutex_);
      paths = task->part_paths;
    }
    for (const std::string& p : paths)
      if (size_or_zero(p) > 0) return true;
    return false;
  };
  auto error = [](const std::string& message) {
    return dump(json{{"status", "error"}, {"error", message}});
  };
  try {
    last = run_steps(task, lock, holding_slot);
  } catch (const HubError& e) {
    std::string message = e.what();
    bool shutdown = false;
    if (e.kind == HubError::Kind::kCancelled) {
      std::lock_guard<std::mutex> guard(mutex_);
      message = task->cancel_reason.empty() ? "cancelled" : task->cancel_reason;
      shutdown = stopping_;
    }
    if (e.kind == HubError::Kind::kDisk) {  // the sizes: what was free, what the file needs
      std::lock_guard<std::mutex> guard(mutex_);
      if (task->total > 0 && message.find(" needs ") == std::string::npos)
        message += "; " + task->id + " needs " + mib(task->total) + " in all";
    }
    if (e.kind == HubError::Kind::kDisk && kept())
      message += "; the partial download is kept: free some space and pull again to resume";
    else if (!shutdown && kept())
      message += " (the partial download is kept; pull again to resume)";
    last = error(message);
  } catch (const PullRejected& e) {
    last = error(e.what());
  } catch (const PullFailed& e) {
    last = error(e.what());
  } catch (const std::exception& e) {
    last = error(std::string("pull failed: ") + e.what());
  }
  if (holding_slot) release_slot();
  {
    std::lock_guard<std::mutex> guard(mutex_);
    task->lock = nullptr;
  }
  lock.reset();  // before the last line: a pull waiting for this file goes on at once
  finish(*task, last.empty() ? dump(json{{"status", "joined"}}) : last);
}

std::string PullManager::run_steps(const std::shared_ptr<Task>& task,
                                   std::unique_ptr<DestinationLock>& lock, bool& holding_slot) {
  Task& t = *task;
  const PullRequest& r = t.request;
  auto send = [&](const json& j) { emit(t, dump(j), false); };
  json start = {{"status", "starting"},
                {"model", r.repo},
                {"filename", r.filename},
                {"revision", r.revision}};
  if (!r.quant.empty()) start["quant"] = r.quant;
  send(start);
  Transfer transfer;
  transfer.cancelled = [&] { return should_stop(t); };
  transfer.notice = [&](const std::string& note) { say(t, "retrying", "note", note); };

  // 1. Which files: as named (every part of a split set), or chosen from the listing.
  std::vector<std::string> files;
  if (r.filename.empty()) {
    const Choice c = choose_file(hub_.list_files(r.repo, r.revision, transfer), r.quant);
    if (c.files.empty()) throw PullFailed("the repo " + r.repo + " has " + c.reason);
    files = c.files;
    json selected = {{"status", "selected"},
                     {"filename", files[0]},
                     {"quant", c.quant},
                     {"reason", c.reason},
                     {"alternatives", c.alternatives}};
    if (files.size() > 1) selected["files"] = files;
    send(selected);
  } else {
    files = split_set(r.filename);
    if (files.size() > 1)
      send({{"status", "selected"},
            {"filename", files[0]},
            {"files", files},
            {"reason",
             "a split model: its " + std::to_string(files.size()) + " parts are pulled as one"}});
  }
  for (const std::string& f : files) validate({r.repo, f, "", r.revision});
  {
    std::lock_guard<std::mutex> guard(mutex_);
    t.files = files;
  }

  // 2. What the hub offers: sizes and sha256s.
  std::vector<Part> parts(files.size());
  std::vector<std::string> unverifiable;
  for (size_t i = 0; i < files.size(); ++i) {
    parts[i].repo_file = files[i];
    try {
      parts[i].info = hub_.file_info(r.repo, r.revision, files[i], transfer);
    } catch (const HubError& e) {
      // The hub cannot be reached, but the file asked for by name is here: a pod's init step
      // (`ember pull` before `ember serve`) must not depend on the hub once the model is on the
      // volume. What cannot be checked is said.
      const bool unreachable =
          e.kind == HubError::Kind::kNetwork ||
          (e.kind == HubError::Kind::kHttp && (e.http_status >= 500 || e.http_status == 429));
      if (!unreachable || r.filename.empty()) throw;
      const int count = int(files.size());
      const std::string first = fs::path(files[0]).filename().string();
      uint64_t size = 0;
      for (int k = 0; k < count; ++k) {
        const std::string path = (fs::path(models_dir_) / part_name(first, k + 1, count)).string();
        if (examine(path, 0, "", k + 1, count) != OnDisk::kOther) throw;
        size += size_or_zero(path);
      }
      const std::string path = (fs::path(models_dir_) / first).string();
      const std::string id = on_complete_(path);
      return dump(json{{"status", "complete"},
                       {"filename", first},
                       {"path", path},
                       {"size_mb", double(size) / 1048576.0},
                       {"id", id},
                       {"discovered", !id.empty()},
                       {"verified", false},
                       {"note", std::string("the hub could not be reached (") + e.what() +
                                    "); the file already here is used without checking it "
                                    "against the hub"}});
    }
    if (parts[i].info.sha256.empty()) unverifiable.push_back(files[i]);
  }
  const bool verifiable = unverifiable.empty();
  if (!verifiable)
    say(t, "warning", "warning",
        "the hub sent no sha256 for " + join(unverifiable) +
            ": the download can be checked only against its size and GGUF header, and a "
            "partial download is resumed only when its last MiB matches a fresh copy");

  // 3. Where they go. The same file in this process: join its writer. Otherwise take the lock
  // (waiting for another process), then look again: the writer may have put it in place.
  std::string identity;  // what the hub serves: the sha256s, else the names
  for (const Part& p : parts)
    identity +=
        (p.info.sha256.empty() ? r.repo + "@" + r.revision + ":" + p.repo_file : p.info.sha256) +
        "\n";
  Sha256 identity_hash;
  identity_hash.update(identity);
  const std::string tag = parts.size() == 1 && verifiable ? parts[0].info.sha256.substr(0, 8)
                                                          : identity_hash.hex_digest().substr(0, 8);
  fs::create_directories(models_dir_);
  const int n = int(parts.size());
  Destination d;
  std::string said;
  auto complete = [&](const Destination& where, const std::string& note) {
    const std::string path = (fs::path(models_dir_) / where.name).string();
    uint64_t size = 0;
    std::vector<std::string> names;
    for (int i = 0; i < n; ++i) {
      names.push_back(part_name(where.name, i + 1, n));
      size += size_or_zero((fs::path(models_dir_) / names.back()).string());
    }
    const std::string id = on_complete_(path);
    json j = {{"status", "complete"},
              {"filename", where.name},
              {"path", path},
              {"size_mb", double(size) / 1048576.0},
              {"sha256", parts[0].sha256.empty() ? parts[0].info.sha256 : parts[0].sha256},
              {"id", id},
              {"discovered", !id.empty()},
              {"verified", verifiable}};
    if (n > 1) j["files"] = names;
    std::string text = note;
    if (id.empty())
      text += std::string(text.empty() ? "" : "; ") +
              "discovery did not list it (see `ember list` and the server log)";
    if (!text.empty()) j["note"] = text;
    return dump(j);
  };
  for (;;) {
    d = choose_destination(models_dir_, parts, tag);
    if (d.present) return complete(d, "already present; not downloaded again");
    if (d.name.empty())
      throw PullFailed("cannot store " + files[0] + ": " + join(d.others) + " in " + models_dir_ +
                       " hold other files; move one away");
    if (join_or_register(task, (fs::path(models_dir_) / d.name).string() + "|" + identity))
      return "";
    if (t.cancel) throw cancelled();
    std::string note;
    if (!d.others.empty())
      note = (fs::path(models_dir_) / d.others.front()).string() +
             " is a different model file; this download is stored as " + d.name;
    for (int i = 0; i < n; ++i)
      if (d.states[i] == OnDisk::kBroken)
        note += std::string(note.empty() ? "" : "; ") +
                (fs::path(models_dir_) / part_name(d.name, i + 1, n)).string() +
                " is not a valid GGUF file (empty or cut short?): the verified download "
                "replaces it";
    if (!note.empty() && note != said)
      send({{"status", "destination"}, {"filename", d.name}, {"note", note}});
    said = note;
    std::vector<std::string> part_paths;
    for (int i = 0; i < n; ++i) {
      parts[i].final_path = (fs::path(models_dir_) / part_name(d.name, i + 1, n)).string();
      parts[i].part_path = parts[i].final_path + ".part";
      part_paths.push_back(parts[i].part_path);
    }
    {
      std::lock_guard<std::mutex> guard(mutex_);
      t.id = d.name;
      t.part_paths = part_paths;
    }
    lock = wait_for_lock(t, parts[0].part_path + ".lock");
    Destination now = choose_destination(models_dir_, parts, tag);
    if (now.name == d.name && !now.present) {
      d = std::move(now);
      break;
    }
    lock.reset();  // it changed while we waited: decide again
  }
  for (int i = 0; i < n; ++i) parts[i].state = d.states[i];
  {
    std::lock_guard<std::mutex> guard(mutex_);
    t.lock = lock.get();
  }

  // 4. A download slot, and room on the disk.
  holding_slot = acquire_slot(t);
  if (!holding_slot) throw cancelled();
  uint64_t total = 0, have = 0, need = 0;
  std::error_code ec;
  for (Part& p : parts) {
    total += p.info.size;
    if (p.state == OnDisk::kSame) {
      have += p.info.size;
      continue;
    }
    uint64_t got = size_or_zero(p.part_path);
    if (got > 0 && (p.info.size == 0 || got > p.info.size)) {  // not a prefix of this file
      fs::remove(p.part_path, ec);
      got = 0;
    }
    p.resumed = got > 0;
    have += got;
    need += p.info.size - got;
  }
  struct statvfs disk {};
  if (need > 0 && statvfs(models_dir_.c_str(), &disk) == 0) {
    const uint64_t free_bytes = uint64_t(disk.f_bavail) * disk.f_frsize;
    if (free_bytes < need)
      throw HubError("disk full: " + d.name + " needs " + mib(need) + " more in " + models_dir_ +
                         " but only " + mib(free_bytes) + " are free",
                     HubError::Kind::kDisk);
  }
  {
    std::lock_guard<std::mutex> guard(mutex_);
    t.status = "downloading";
    t.total = total;
    t.completed = have;
    t.progress_at = Clock::now();
  }
  send({{"status", "downloading"},
        {"completed", have},
        {"total", total},
        {"percent", total ? 100.0 * double(have) / double(total) : 0.0}});

  // 5. Each part: download, then verify from disk.
  uint64_t done = 0;
  for (Part& p : parts) {
    if (p.state != OnDisk::kSame) fetch(t, p, done);
    done += p.info.size ? p.info.size : size_or_zero(p.part_path);
  }
  release_slot();
  holding_slot = false;
  send({{"status", "downloading"}, {"completed", done}, {"total", done}, {"percent", 100.0}});

  // 6. A GGUF model, each part where its name says.
  try {
    check_gguf(parts);
  } catch (const std::exception& e) {
    for (const Part& p : parts) fs::remove(p.part_path, ec);
    throw PullFailed(std::string("the downloaded file is not a usable GGUF model: ") + e.what());
  }

  // 7. Without a sha256, the same bytes may be here already under a name tried first.
  if (!verifiable) {
    for (const std::string& other : d.others) {
      bool same = true;
      for (int i = 0; i < n && same; ++i) {
        const std::string path = (fs::path(models_dir_) / part_name(other, i + 1, n)).string();
        same = size_or_zero(path) == size_or_zero(parts[i].part_path) &&
               sha256_of_file(path, &t.cancel) == parts[i].sha256;
      }
      if (!same) continue;
      for (const Part& p : parts) fs::remove(p.part_path, ec);
      Destination there;
      there.name = other;
      return complete(there, "already present (the same bytes); not stored twice");
    }
  }

  // 8. Into place, the last part first: discovery looks at part 1, so a set appears whole.
  std::string note;
  for (int i = n - 1; i >= 0; --i) {
    Part& p = parts[i];
    if (p.state == OnDisk::kSame) continue;
    const bool replace = p.state == OnDisk::kBroken;
    if (replace ? std::rename(p.part_path.c_str(), p.final_path.c_str()) == 0
                : rename_no_replace(p.part_path, p.final_path)) {
      if (replace) note = "replaced " + p.final_path + ", which was not a valid GGUF file";
      continue;
    }
    const int err = errno;
    if (err == EEXIST && examine(p.final_path, p.info.size, p.sha256, i + 1, n) == OnDisk::kSame) {
      fs::remove(p.part_path, ec);
      continue;
    }
    throw PullFailed(err == EEXIST
                         ? "another file appeared at " + p.final_path +
                               " during the download; the verified download is "
                               "kept as " +
                               p.part_path
                         : "cannot move " + p.part_path + " into place: " + std::strerror(err));
  }
  return complete(d, note);
}

std::unique_ptr<DestinationLock> PullManager::wait_for_lock(Task& task,
                                                            const std::string& lock_path) {
  std::string said;
  for (;;) {
    DestinationLock::Holder holder;
    std::string took_over;
    if (auto lock = DestinationLock::try_acquire(lock_path, &holder, &took_over)) {
      if (!took_over.empty()) say(task, "note", "note", took_over);
      return lock;
    }
    const std::string who = "process " + std::to_string(holder.pid) + " on " +
                            (holder.host.empty() ? "?" : holder.host);
    if (who != said) {
      said = who;
      {
        std::lock_guard<std::mutex> guard(mutex_);
        task.status = "joined";
      }
      // Another process (another replica on a shared volume, or `ember pull`) writes the file:
      // this pull joins it, waiting for its rename, and then finds the file present.
      say(task, "joined", "note",
          "another pull (" + who + ") is writing " + fs::path(lock_path).stem().stem().string() +
              "; waiting for it to finish");
    }
    if (should_stop(task)) throw cancelled();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

void PullManager::fetch(Task& task, Part& p, uint64_t done_before) {
  const PullRequest& r = task.request;
  auto last_report = Clock::now();
  Transfer transfer;
  transfer.cancelled = [&] { return should_stop(task); };
  transfer.notice = [&](const std::string& note) { say(task, "retrying", "note", note); };
  transfer.on_bytes = [&](uint64_t bytes) {
    uint64_t completed, total;
    {
      std::lock_guard<std::mutex> guard(mutex_);
      task.status = "downloading";
      task.completed = completed = done_before + bytes;
      total = task.total;
      task.progress_at = Clock::now();
    }
    if (Clock::now() - last_report < std::chrono::seconds(1)) return;
    last_report = Clock::now();
    emit(task,
         dump(json{{"status", "downloading"},
                   {"completed", completed},
                   {"total", total},
                   {"percent", total ? 100.0 * double(completed) / double(total) : 0.0}}),
         false);
  };
  std::error_code ec;
  bool ours = false;  // every byte of the part is from this pull (or was checked by it)
  for (int round = 0;; ++round) {
    const uint64_t have = size_or_zero(p.part_path);
    const bool whole = p.info.size > 0 && have == p.info.size;
    // A partial download no sha256 will check: its tail is compared with the hub's first.
    const bool check_tail = p.info.sha256.empty() && have > 0 && !ours;
    if (!whole || check_tail) {
      try {
        hub_.download(r.repo, r.revision, p.repo_file, p.part_path, check_tail ? kOverlap : 0,
                      transfer);
      } catch (const HubError& e) {
        if (e.kind != HubError::Kind::kMismatch || round > 0) throw;
        fs::remove(p.part_path, ec);
        p.resumed = false;
        say(task, "note", "note",
            "the partial download of " + p.repo_file +
                " does not match the hub's copy (and no sha256 can check it): downloading it "
                "again from the start");
        ours = true;
        continue;
      }
    }
    ours = true;
    {
      std::lock_guard<std::mutex> guard(mutex_);
      task.status = "verifying";
    }
    say(task, "verifying", "filename", p.repo_file);
    const auto sha = sha256_of_file(p.part_path, &task.cancel);
    if (!sha) {
      if (task.cancel) throw cancelled();
      throw PullFailed("cannot read " + p.part_path + " to verify it");
    }
    const uint64_t size = size_or_zero(p.part_path);
    const bool size_ok = p.info.size == 0 || size == p.info.size;
    const bool hash_ok = p.info.sha256.empty() || *sha == p.info.sha256;
    if (size_ok && hash_ok) {
      p.sha256 = *sha;
      return;
    }
    fs::remove(p.part_path, ec);
    if (p.resumed && round == 0) {  // the earlier attempt's bytes were bad: once more, whole
      p.resumed = false;
      say(task, "note", "note",
          "the resumed download of " + p.repo_file +
              " does not match the hub's sha256: downloading it again from the start");
      continue;
    }
    throw PullFailed(!hash_ok
                         ? "the download is corrupt: its sha256 is " + *sha + " but the hub says " +
                               p.info.sha256 + " (the partial file was removed; pull again)"
                         : "the download is corrupt: it has " + std::to_string(size) +
                               " bytes but the hub says " + std::to_string(p.info.size) +
                               " (the partial file was removed; pull again)");
  }
}

}  // namespace ember::pull
