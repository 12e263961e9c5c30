// Talking to a Hugging Face hub (HF_ENDPOINT, default https://huggingface.co) with libcurl:
// the file list of a repo, a file's size and sha256 (X-Linked-Size / X-Linked-Etag, sent with
// the redirect to the CDN), and a download into NAME.part that resumes with Range. Every call
// can be cancelled (polled from libcurl's progress callback, so a hanging request ends within
// about a second) and retries 429 and 5xx answers with exponential back-off, honouring
// Retry-After, a bounded number of times.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace ember::pull {

struct HubOptions {
  std::string endpoint = "https://huggingface.co";
  std::string token;         // sent as a bearer token to the hub (libcurl keeps it off the CDN)
  std::string token_source;  // where the token came from ("HF_TOKEN", a file), for messages
  int attempts = 4;          // tries per request when the hub answers 429 or 5xx
  // HF_ENDPOINT; HF_TOKEN, else the file huggingface-cli login writes: $HF_TOKEN_PATH, else
  // $HF_HOME/token (HF_HOME defaults to $XDG_CACHE_HOME/huggingface, ~/.cache/huggingface).
  static HubOptions from_environment();
};

class HubError : public std::runtime_error {
 public:
  enum class Kind {
    kNetwork,    // no answer, or the connection broke
    kHttp,       // the hub answered an error status
    kCancelled,  // Transfer::cancelled said so
    kDisk,       // the part file could not be written (message says "disk full" when it is)
    kMismatch,   // the bytes already in a part differ from the hub's (Range overlap check)
  };
  HubError(const std::string& message, Kind kind = Kind::kNetwork, int http_status = 0,
           double retry_after_s = -1)
      : std::runtime_error(message),
        kind(kind),
        http_status(http_status),
        retry_after_s(retry_after_s) {}
  Kind kind;
  int http_status;       // the hub's answer, 0 when there was none
  double retry_after_s;  // the answer's Retry-After, -1 when absent
};

struct FileInfo {
  uint64_t size = 0;   // 0 when unknown
  std::string sha256;  // lower-case hex from X-Linked-Etag, empty when the hub sent none
};

// What the caller hands to each request.
struct Transfer {
  std::function<bool()> cancelled;                 // true: stop now (HubError kCancelled)
  std::function<void(const std::string&)> notice;  // "…HTTP 503; retrying in 2 s (2 of 4)"
  std::function<void(uint64_t)> on_bytes;          // a download's bytes in the part file so far
};

class HubClient {
 public:
  explicit HubClient(HubOptions options);

  // rfilename of every file in the repo at `revision`.
  std::vector<std::string> list_files(const std::string& repo, const std::string& revision,
                                      const Transfer& transfer) const;
  FileInfo file_info(const std::string& repo, const std::string& revision,
                     const std::string& filename, const Transfer& transfer) const;

  // Appends the rest of the file to `part_path` (Range from its current size; from the start
  // when the server ignores Range). With `overlap` > 0 the last `overlap` bytes already there
  // are fetched again and compared first: a part that no sha256 can check is resumed only when
  // its tail is the hub's (HubError kMismatch otherwise, nothing written). Throws HubError.
  void download(const std::string& repo, const std::string& revision, const std::string& filename,
                const std::string& part_path, uint64_t overlap, const Transfer& transfer) const;

  std::string file_url(const std::string& repo, const std::string& revision,
                       const std::string& filename) const;
  const HubOptions& options() const { return options_; }

 private:
  HubOptions options_;
};

}  // namespace ember::pull
