#include "server/pull/hub_client.h"

#include <curl/curl.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>

#include "server/pull/sha256.h"

namespace ember::pull {
namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Easy {
  Easy() {
    global_init();
    handle = curl_easy_init();
    if (!handle) throw HubError("cannot start a libcurl session");
  }
  ~Easy() {
    curl_easy_cleanup(handle);
    if (headers) curl_slist_free_all(headers);
  }
  CURL* handle;
  curl_slist* headers = nullptr;
};

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

// Common options: redirects (the hub sends files to a CDN), timeouts for a stalled transfer,
// the token as a bearer header (libcurl does not forward it to another host on redirect).
void setup(Easy& e, const std::string& url, const HubOptions& o) {
  curl_easy_setopt(e.handle, CURLOPT_URL, url.c_str());
  curl_easy_setopt(e.handle, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(e.handle, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(e.handle, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(e.handle, CURLOPT_LOW_SPEED_LIMIT, 1L);  // bytes/s
  curl_easy_setopt(e.handle, CURLOPT_LOW_SPEED_TIME, 60L);  // for this long: stalled
  curl_easy_setopt(e.handle, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e.handle, CURLOPT_USERAGENT, "ember/0.1");
  if (!o.token.empty())
    e.headers = curl_slist_append(e.headers, ("Authorization: Bearer " + o.token).c_str());
  curl_easy_setopt(e.handle, CURLOPT_HTTPHEADER, e.headers);
}

struct Headers {
  std::string linked_etag, linked_size, content_length;
};

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* h = static_cast<Headers*>(user);
  std::string line(data, size * n);
  const size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = lower(line.substr(0, colon));
    std::string value = line.substr(colon + 1);
    while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front())))
      value.erase(0, 1);
    while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back())))
      value.pop_back();
    if (name == "x-linked-etag") h->linked_etag = value;
    if (name == "x-linked-size") h->linked_size = value;
    if (name == "content-length") h->content_length = value;
  }
  return size * n;
}

size_t to_string(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<std::string*>(user);
  if (s->size() + size * n > (64u << 20)) return 0;  // a listing is never this large
  s->append(data, size * n);
  return size * n;
}

std::string describe(int status, const std::string& what) {
  if (status == 401 || status == 403)
    return what + ": the hub refused access (HTTP " + std::to_string(status) +
           "; a private or gated repo needs HF_TOKEN)";
  if (status == 404) return what + ": not found on the hub (HTTP 404)";
  return what + ": the hub answered HTTP " + std::to_string(status);
}

void check(CURLcode rc, Easy& e, const std::string& what) {
  if (rc != CURLE_OK) throw HubError(what + ": " + curl_easy_strerror(rc));
  long status = 0;
  curl_easy_getinfo(e.handle, CURLINFO_RESPONSE_CODE, &status);
  if (status >= 400)
    throw HubError(describe(static_cast<int>(status), what), static_cast<int>(status));
}

}  // namespace

HubOptions HubOptions::from_environment() {
  HubOptions o;
  if (const char* e = std::getenv("HF_ENDPOINT"); e && *e) o.endpoint = e;
  while (!o.endpoint.empty() && o.endpoint.back() == '/') o.endpoint.pop_back();
  if (const char* t = std::getenv("HF_TOKEN"); t && *t) o.token = t;
  return o;
}

HubClient::HubClient(HubOptions options) : options_(std::move(options)) {}

std::string HubClient::file_url(const std::string& repo, const std::string& revision,
                                const std::string& filename) const {
  return options_.endpoint + "/" + encode_path(repo) + "/resolve/" + encode_path(revision) + "/" +
         encode_path(filename);
}

std::vector<std::string> HubClient::list_files(const std::string& repo,
                                               const std::string& revision) const {
  Easy e;
  std::string body;
  std::string url = options_.endpoint + "/api/models/" + encode_path(repo);
  if (revision != "main") url += "/revision/" + encode_path(revision);
  setup(e, url, options_);
  curl_easy_setopt(e.handle, CURLOPT_WRITEFUNCTION, to_string);
  curl_easy_setopt(e.handle, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(e.handle, CURLOPT_TIMEOUT, 120L);
  check(curl_easy_perform(e.handle), e, "listing " + repo);
  std::vector<std::string> files;
  try {
    auto j = nlohmann::json::parse(body);
    for (const auto& s : j.at("siblings")) files.push_back(s.at("rfilename").get<std::string>());
  } catch (const std::exception&) {
    throw HubError("the hub's listing of " + repo +
                   " is not the JSON expected (siblings[].rfilename)");
  }
  return files;
}

FileInfo HubClient::file_info(const std::string& repo, const std::string& revision,
                              const std::string& filename) const {
  Easy e;
  Headers h;
  setup(e, file_url(repo, revision, filename), options_);
  curl_easy_setopt(e.handle, CURLOPT_NOBODY, 1L);
  curl_easy_setopt(e.handle, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e.handle, CURLOPT_HEADERDATA, &h);
  curl_easy_setopt(e.handle, CURLOPT_TIMEOUT, 120L);
  check(curl_easy_perform(e.handle), e, repo + "/" + filename);
  FileInfo info;
  std::string etag = h.linked_etag;
  if (etag.rfind("W/", 0) == 0) etag.erase(0, 2);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"')
    etag = etag.substr(1, etag.size() - 2);
  etag = lower(etag);
  if (etag.size() == 64 && etag.find_first_not_of("0123456789abcdef") == std::string::npos)
    info.sha256 = etag;
  const std::string& size = !h.linked_size.empty() ? h.linked_size : h.content_length;
  try {
    info.size = size.empty() ? 0 : std::stoull(size);
  } catch (const std::exception&) {
  }
  return info;
}

namespace {

struct DownloadState {
  FILE* file = nullptr;
  Sha256* hash = nullptr;
  uint64_t written = 0;
  bool accept = false;  // the final response is the body we want (200 or 206)
  bool truncate_first = false;
  const std::function<void(uint64_t)>* on_bytes = nullptr;
  const std::atomic<bool>* cancel = nullptr;
  CURL* handle = nullptr;
};

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<DownloadState*>(user);
  if (!s->accept) {
    long status = 0;
    curl_easy_getinfo(s->handle, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 400) return size * n;  // an error body: swallowed, reported by check()
    s->accept = true;
  }
  if (fwrite(data, 1, size * n, s->file) != size * n) return 0;  // disk full: abort
  s->hash->update(data, size * n);
  s->written += size * n;
  if (*s->on_bytes) (*s->on_bytes)(s->written);
  return size * n;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<DownloadState*>(user)->cancel->load() ? 1 : 0;
}

}  // namespace

std::string HubClient::download(const std::string& repo, const std::string& revision,
                                const std::string& filename, const std::string& part_path,
                                const std::function<void(uint64_t)>& on_bytes,
                                const std::atomic<bool>& cancel) const {
  Sha256 hash;
  // Bytes already downloaded are hashed again (the file is not trusted to be ours otherwise).
  const uint64_t have = hash.update_from_file(part_path);
  Easy e;
  setup(e, file_url(repo, revision, filename), options_);
  if (have > 0)
    curl_easy_setopt(e.handle, CURLOPT_RESUME_FROM_LARGE, static_cast<curl_off_t>(have));
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(part_path.c_str(), "ab"), std::fclose);
  if (!file) throw HubError("cannot write " + part_path);
  DownloadState state;
  state.file = file.get();
  state.hash = &hash;
  state.written = have;
  state.on_bytes = &on_bytes;
  state.cancel = &cancel;
  state.handle = e.handle;
  curl_easy_setopt(e.handle, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e.handle, CURLOPT_WRITEDATA, &state);
  curl_easy_setopt(e.handle, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(e.handle, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(e.handle, CURLOPT_XFERINFODATA, &state);
  // A server that ignores Range answers 200 with the whole file: libcurl then fails with
  // CURLE_RANGE_ERROR, and the download starts over below.
  CURLcode rc = curl_easy_perform(e.handle);
  if (rc == CURLE_RANGE_ERROR && have > 0) {
    file.reset(std::fopen(part_path.c_str(), "wb"));
    return download(repo, revision, filename, part_path, on_bytes, cancel);
  }
  if (rc == CURLE_ABORTED_BY_CALLBACK && cancel.load()) throw HubError("cancelled");
  if (std::fflush(file.get()) != 0) throw HubError("cannot write " + part_path + " (disk full?)");
  check(rc, e, repo + "/" + filename);
  return hash.hex_digest();
}

}  // namespace ember::pull
