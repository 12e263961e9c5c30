// An HTTP/1.1 request as the parser delivers it, and the incremental parser itself: bytes go
// in as they arrive from the socket, complete requests come out. Handles Content-Length and
// chunked bodies, pipelining (bytes after a request stay for the next), Expect: 100-continue,
// and limits on header and body size with the status code a client should see.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ember::http {

struct Request {
  std::string method;     // "GET", "POST", ...
  std::string target;     // as sent: "/v1/models?x=1"
  std::string path;       // target without the query, percent-decoded
  std::string query;      // after '?', raw
  int minor_version = 1;  // HTTP/1.x
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  bool keep_alive = true;
  bool expect_continue = false;

  // The value of the first header named `name` (lower-case), or nullptr.
  const std::string* header(std::string_view name) const;
};

struct ParserLimits {
  size_t max_header_bytes = 16 * 1024;  // request line and headers together (431 beyond)
  size_t max_headers = 100;
  size_t max_body_bytes = 16 * 1024 * 1024;  // 413 beyond
};

class RequestParser {
 public:
  enum class State { kHead, kBody, kChunkSize, kChunkData, kChunkEnd, kTrailers, kDone, kError };

  explicit RequestParser(ParserLimits limits = {}) : limits_(limits) {}

  // Consumes bytes of `data` (stopping after a complete request) and returns how many.
  size_t feed(std::string_view data);

  State state() const { return state_; }
  bool done() const { return state_ == State::kDone; }
  bool failed() const { return state_ == State::kError; }
  // True once the head is parsed and the body not yet complete (a 100 Continue may be due).
  bool in_body() const { return state_ != State::kHead && !done() && !failed(); }
  // The status and message for a request that failed to parse.
  int error_status() const { return error_status_; }
  const std::string& error_message() const { return error_message_; }
  // Bytes of a request buffered so far (0 between requests): nonzero means one has begun.
  size_t pending() const { return head_.size() + request_.body.size(); }

  const Request& request() const { return request_; }
  // The finished request; the parser starts over for the next one.
  Request take();

 private:
  size_t fail(int status, std::string message);
  bool parse_head();  // false after fail()

  ParserLimits limits_;
  State state_ = State::kHead;
  std::string head_;      // request line and headers, until the blank line
  std::string line_;      // a chunk-size or trailer line being collected
  size_t remaining_ = 0;  // body or chunk bytes still to come
  size_t trailer_bytes_ = 0;
  Request request_;
  int error_status_ = 0;
  std::string error_message_;
};

// Percent-decoding of a path ("%2F" → "/"); false for a malformed escape.
bool percent_decode(std::string_view in, std::string& out);

}  // namespace ember::http
