#include "server/pull/hub_client.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

namespace ember::pull {
namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// Percent-encodes a path, keeping '/'.
std::string encode_path(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '/' || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.erase(0, 1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

std::string mib(uint64_t bytes) {
  return std::to_string((bytes + (1 << 19)) >> 20) + " MiB";
}

// The headers that matter, from every response of a request (a redirect's, then the CDN's).
struct Headers {
  int status = 0;  // of the latest response
  std::string linked_etag, linked_size, content_length, content_range, retry_after;
};

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* h = static_cast<Headers*>(user);
  const std::string line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {  // a new response begins
    const size_t space = line.find(' ');
    h->status = space == std::string::npos ? 0 : std::atoi(line.c_str() + space + 1);
    h->retry_after.clear();
    h->content_range.clear();
    return size * n;
  }
  const size_t colon = line.find(':');
  if (colon == std::string::npos) return size * n;
  const std::string name = lower(line.substr(0, colon));
  const std::string value = trim(line.substr(colon + 1));
  if (name == "x-linked-etag") h->linked_etag = value;
  if (name == "x-linked-size") h->linked_size = value;
  if (name == "content-length") h->content_length = value;
  if (name == "content-range") h->content_range = value;
  if (name == "retry-after") h->retry_after = value;
  return size * n;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* t = static_cast<const Transfer*>(user);
  return t->cancelled && t->cancelled() ? 1 : 0;
}

// Retry-After as seconds (a number, or an HTTP date); -1 when absent or unreadable.
double retry_after_seconds(const std::string& value) {
  if (value.empty()) return -1;
  if (std::all_of(value.begin(), value.end(), [](char c) { return std::isdigit(c); }))
    return std::atof(value.c_str());
  const time_t when = curl_getdate(value.c_str(), nullptr);
  return when < 0 ? -1 : std::max(0.0, std::difftime(when, std::time(nullptr)));
}

// One libcurl request with the common options: redirects (the hub sends files to a CDN),
// timeouts for a stalled transfer, cancellation, the token as a bearer header (libcurl does not
// forward it to another host on redirect).
struct Call {
  Call(const HubOptions& o, const std::string& url, const Transfer& transfer) : options(o) {
    global_init();
    handle = curl_easy_init();
    if (!handle) throw HubError("cannot start a libcurl session");
    curl_easy_setopt(handle, CURLOPT_URL, url.c_str());
    curl_easy_setopt(handle, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(handle, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(handle, CURLOPT_LOW_SPEED_LIMIT, 1L);  // bytes/s
    curl_easy_setopt(handle, CURLOPT_LOW_SPEED_TIME, 60L);  // for this long: stalled
    curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(handle, CURLOPT_USERAGENT, "ember/0.1");
    curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(handle, CURLOPT_HEADERDATA, &headers);
    curl_easy_setopt(handle, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(handle, CURLOPT_XFERINFODATA, &transfer);
    if (!o.token.empty())
      request_headers =
          curl_slist_append(request_headers, ("Authorization: Bearer " + o.token).c_str());
    curl_easy_setopt(handle, CURLOPT_HTTPHEADER, request_headers);
    cancelled = &transfer;
  }
  ~Call() {
    curl_easy_cleanup(handle);
    if (request_headers) curl_slist_free_all(request_headers);
  }
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  // Turns the outcome into a HubError naming `what` (and `repo` for access problems).
  void check(CURLcode rc, const std::string& what, const std::string& repo) const {
    if (rc == CURLE_ABORTED_BY_CALLBACK && cancelled->cancelled && cancelled->cancelled())
      throw HubError(what + ": cancelled", HubError::Kind::kCancelled);
    long status = 0;
    curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 400)
      throw HubError(describe(int(status), what, repo), HubError::Kind::kHttp, int(status),
                     retry_after_seconds(headers.retry_after));
    if (rc != CURLE_OK)
      throw HubError(what + ": " + (error[0] ? std::string(error) : curl_easy_strerror(rc)));
  }

  std::string describe(int status, const std::string& what, const std::string& repo) const {
    const std::string code = " (HTTP " + std::to_string(status) + ")";
    if ((status == 401 || status == 403) && options.token.empty())
      return what + ": the hub refused access" + code + ": " + repo +
             " is private or gated and needs a token: set HF_TOKEN or run "
             "`huggingface-cli login`";
    if (status == 403)
      return what + ": the token from " + options.token_source + " has no access to " + repo +
             code +
             ": accept the repo's terms or request access on its page, or use a token "
             "that has access";
    if (status == 401)
      return what + ": the hub refused the token from " + options.token_source + code +
             ": it is invalid or expired (or " + repo + " does not exist)";
    if (status == 404) return what + ": not found on the hub (HTTP 404)";
    if (status == 429) return what + ": the hub is limiting requests" + code;
    if (status >= 500) return what + ": the hub failed" + code;
    return what + ": the hub answered HTTP " + std::to_string(status);
  }

  const HubOptions& options;
  CURL* handle = nullptr;
  curl_slist* request_headers = nullptr;
  char error[CURL_ERROR_SIZE] = {};
  Headers headers;
  const Transfer* cancelled = nullptr;
};

size_t to_string(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<std::string*>(user);
  if (s->size() + size * n > (64u << 20)) return 0;  // a listing is never this large
  s->append(data, size * n);
  return size * n;
}

// Runs `fn`, again after 429 and 5xx answers: waits Retry-After when the hub sent one, else
// 1, 2, 4, ... s; at most options.attempts tries. The waits can be cancelled.
template <typename Fn>
auto with_retries(const HubOptions& options, const Transfer& transfer, Fn&& fn) {
  for (int attempt = 1;; ++attempt) {
    try {
      return fn();
    } catch (const HubError& e) {
      const bool temporary =
          e.kind == HubError::Kind::kHttp &&
          (e.http_status == 429 || (e.http_status >= 500 && e.http_status <= 504));
      if (!temporary) throw;
      if (attempt >= options.attempts)
        throw HubError(
            std::string(e.what()) + "; gave up after " + std::to_string(attempt) + " attempts",
            e.kind, e.http_status);
      const double wait = e.retry_after_s >= 0 ? std::min(e.retry_after_s, 60.0)
                                               : std::min(30.0, std::ldexp(1.0, attempt - 1));
      if (transfer.notice) {
        char line[64];
        std::snprintf(line, sizeof line, "; retrying in %g s (attempt %d of %d)", wait, attempt + 1,
                      options.attempts);
        transfer.notice(e.what() + std::string(line));
      }
      const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(wait);
      while (std::chrono::steady_clock::now() < until) {
        if (transfer.cancelled && transfer.cancelled())
          throw HubError("cancelled while waiting to retry", HubError::Kind::kCancelled);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
  }
}

// A download in progress: where the bytes go, and the overlap still to compare.
struct Sink {
  Headers* headers;
  int fd = -1;
  uint64_t start = 0;  // the offset asked for with Range
  uint64_t pos = 0;    // where the next byte goes
  std::string tail;    // bytes already in the part at `start`, to compare
  size_t compared = 0;
  bool began = false;
  bool mismatch = false;
  bool from_scratch = false;  // the server ignored Range and sends the whole file
  int write_errno = 0;
  const Transfer* transfer = nullptr;
};

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<Sink*>(user);
  const size_t len = size * n;
  if (!s->began) {
    const int status = s->headers->status;
    if (status < 200 || status >= 300) return len;  // a redirect's or an error's body
    if (status == 200 && s->start > 0) {            // Range ignored: the whole file comes
      if (ftruncate(s->fd, 0) != 0) {
        s->write_errno = errno;
        return 0;
      }
      s->start = 0;
      s->tail.clear();
      s->from_scratch = true;
    } else if (status == 206) {  // it must start where we asked
      const std::string& range = s->headers->content_range;
      const size_t space = range.find(' ');
      if (space == std::string::npos ||
          std::strtoull(range.c_str() + space + 1, nullptr, 10) != s->start) {
        s->mismatch = true;
        return 0;
      }
    }
    s->pos = s->start;
    s->began = true;
  }
  const char* p = data;
  size_t left = len;
  while (s->compared < s->tail.size() && left > 0) {
    const size_t k = std::min(left, s->tail.size() - s->compared);
    if (std::memcmp(p, s->tail.data() + s->compared, k) != 0) {
      s->mismatch = true;
      return 0;
    }
    s->compared += k, s->pos += k, p += k, left -= k;
  }
  while (left > 0) {
    const ssize_t w = pwrite(s->fd, p, left, off_t(s->pos));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      s->write_errno = w < 0 ? errno : ENOSPC;
      return 0;
    }
    s->pos += uint64_t(w), p += w, left -= size_t(w);
  }
  if (s->transfer->on_bytes) s->transfer->on_bytes(s->pos);
  return len;
}

}  // namespace

HubOptions HubOptions::from_environment() {
  HubOptions o;
  if (const char* e = std::getenv("HF_ENDPOINT"); e && *e) o.endpoint = e;
  while (!o.endpoint.empty() && o.endpoint.back() == '/') o.endpoint.pop_back();
  for (const char* name : {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"}) {
    if (const char* t = std::getenv(name); t && *t) {
      o.token = trim(t);
      o.token_source = name;
      return o;
    }
  }
  // The token `huggingface-cli login` saved, found as huggingface_hub finds it.
  std::string path;
  if (const char* p = std::getenv("HF_TOKEN_PATH"); p && *p) {
    path = p;
  } else {
    std::string home;
    if (const char* h = std::getenv("HF_HOME"); h && *h)
      home = h;
    else if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x)
      home = std::string(x) + "/huggingface";
    else if (const char* u = std::getenv("HOME"); u && *u)
      home = std::string(u) + "/.cache/huggingface";
    if (!home.empty()) path = home + "/token";
  }
  if (!path.empty()) {
    std::ifstream in(path);
    std::string line;
    if (in && std::getline(in, line) && !trim(line).empty()) {
      o.token = trim(line);
      o.token_source = path;
    }
  }
  return o;
}

HubClient::HubClient(HubOptions options) : options_(std::move(options)) {}

std::string HubClient::file_url(const std::string& repo, const std::string& revision,
                                const std::string& filename) const {
  return options_.endpoint + "/" + encode_path(repo) + "/resolve/" + encode_path(revision) + "/" +
         encode_path(filename);
}

std::vector<std::string> HubClient::list_files(const std::string& repo, const std::string& revision,
                                               const Transfer& transfer) const {
  std::string url = options_.endpoint + "/api/models/" + encode_path(repo);
  if (revision != "main") url += "/revision/" + encode_path(revision);
  const std::string body = with_retries(options_, transfer, [&] {
    Call call(options_, url, transfer);
    std::string out;
    curl_easy_setopt(call.handle, CURLOPT_WRITEFUNCTION, to_string);
    curl_easy_setopt(call.handle, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(call.handle, CURLOPT_TIMEOUT, 120L);
    call.check(curl_easy_perform(call.handle), "listing " + repo, repo);
    return out;
  });
  std::vector<std::string> files;
  try {
    const auto j = nlohmann::json::parse(body);
    for (const auto& s : j.at("siblings")) files.push_back(s.at("rfilename").get<std::string>());
  } catch (const std::exception&) {
    throw HubError("the hub's listing of " + repo +
                   " is not the JSON expected (siblings[].rfilename)");
  }
  return files;
}

FileInfo HubClient::file_info(const std::string& repo, const std::string& revision,
                              const std::string& filename, const Transfer& transfer) const {
  const Headers h = with_retries(options_, transfer, [&] {
    Call call(options_, file_url(repo, revision, filename), transfer);
    curl_easy_setopt(call.handle, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(call.handle, CURLOPT_TIMEOUT, 120L);
    call.check(curl_easy_perform(call.handle), repo + "/" + filename, repo);
    return call.headers;
  });
  FileInfo info;
  std::string etag = h.linked_etag;
  if (etag.rfind("W/", 0) == 0) etag.erase(0, 2);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"')
    etag = etag.substr(1, etag.size() - 2);
  etag = lower(etag);
  if (etag.size() == 64 && etag.find_first_not_of("0123456789abcdef") == std::string::npos)
    info.sha256 = etag;
  const std::string& size = !h.linked_size.empty() ? h.linked_size : h.content_length;
  info.size = size.empty() ? 0 : std::strtoull(size.c_str(), nullptr, 10);
  return info;
}

void HubClient::download(const std::string& repo, const std::string& revision,
                         const std::string& filename, const std::string& part_path,
                         uint64_t overlap, const Transfer& transfer) const {
  const std::string what = repo + "/" + filename;
  with_retries(options_, transfer, [&] {
    // What is there already (a retry resumes after the bytes the failed attempt wrote).
    struct stat st {};
    const uint64_t have = stat(part_path.c_str(), &st) == 0 ? uint64_t(st.st_size) : 0;
    const uint64_t compare = std::min(overlap, have);
    const int fd = open(part_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
      throw HubError("cannot write " + part_path + ": " + std::strerror(errno),
                     HubError::Kind::kDisk);
    Headers* headers = nullptr;
    Sink sink;
    sink.fd = fd;
    sink.start = have - compare;
    sink.transfer = &transfer;
    sink.tail.resize(compare);
    if (compare > 0 &&
        pread(fd, sink.tail.data(), compare, off_t(sink.start)) != ssize_t(compare)) {
      close(fd);
      throw HubError("cannot read " + part_path + ": " + std::strerror(errno),
                     HubError::Kind::kDisk);
    }
    Call call(options_, file_url(repo, revision, filename), transfer);
    headers = &call.headers;
    sink.headers = headers;
    if (sink.start > 0)
      curl_easy_setopt(call.handle, CURLOPT_RANGE, (std::to_string(sink.start) + "-").c_str());
    curl_easy_setopt(call.handle, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(call.handle, CURLOPT_WRITEDATA, &sink);
    const CURLcode rc = curl_easy_perform(call.handle);
    const int closed = close(fd);
    if (sink.mismatch)
      throw HubError(part_path + " does not match the hub's " + filename +
                         " (its last bytes differ, or the hub sent another range)",
                     HubError::Kind::kMismatch);
    const int err = sink.write_errno ? sink.write_errno : (closed != 0 ? errno : 0);
    if (err) {
      const std::string dir = std::filesystem::path(part_path).parent_path().string();
      struct statvfs disk {};
      const uint64_t free_bytes = statvfs(dir.empty() ? "." : dir.c_str(), &disk) == 0
                                      ? uint64_t(disk.f_bavail) * disk.f_frsize
                                      : 0;
      if (err == ENOSPC || err == EDQUOT)
        throw HubError("disk full: writing " + part_path + " failed after " + mib(sink.pos) + " (" +
                           mib(free_bytes) + " free)",
                       HubError::Kind::kDisk);
      throw HubError("cannot write " + part_path + ": " + std::strerror(err),
                     HubError::Kind::kDisk);
    }
    call.check(rc, what, repo);
  });
}

}  // namespace ember::pull
