// Talking to a Hugging Face hub (HF_ENDPOINT, default https://huggingface.co) with libcurl:
// the file list of a repo, a file's size and sha256 (X-Linked-Size / X-Linked-Etag, sent with
// the redirect to the CDN), and a download into NAME.part that resumes with Range.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace ember::pull {

struct HubOptions {
  std::string endpoint = "https://huggingface.co";
  std::string token;  // HF_TOKEN: sent as a bearer token to the hub
  static HubOptions from_environment();
};

class HubError : public std::runtime_error {
 public:
  HubError(const std::string& message, int http_status = 0)
      : std::runtime_error(message), http_status(http_status) {}
  int http_status;  // the hub's answer, 0 for network errors
};

struct FileInfo {
  uint64_t size = 0;   // 0 when unknown
  std::string sha256;  // lower-case hex from X-Linked-Etag, empty when the hub sent none
};

class HubClient {
 public:
  explicit HubClient(HubOptions options);

  // rfilename of every file in the repo at `revision`.
  std::vector<std::string> list_files(const std::string& repo, const std::string& revision) const;
  FileInfo file_info(const std::string& repo, const std::string& revision,
                     const std::string& filename) const;

  // Downloads into `part_path`, appending to what is there (Range) when the hub allows it.
  // `on_bytes(total_so_far)` is called as data arrives; `cancel` stops the transfer. The
  // sha256 of the whole file (existing bytes included) is returned. Throws HubError.
  std::string download(const std::string& repo, const std::string& revision,
                       const std::string& filename, const std::string& part_path,
                       const std::function<void(uint64_t)>& on_bytes,
                       const std::atomic<bool>& cancel) const;

  std::string file_url(const std::string& repo, const std::string& revision,
                       const std::string& filename) const;

 private:
  HubOptions options_;
};

}  // namespace ember::pull
