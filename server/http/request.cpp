#include "server/http/request.h"

#include <algorithm>
#include <cctype>

namespace ember::http {
namespace {

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A comma-separated header value contains `token` (case-insensitively).
bool has_token(std::string_view value, std::string_view token) {
  size_t start = 0;
  while (start <= value.size()) {
    size_t end = value.find(',', start);
    if (end == std::string_view::npos) end = value.size();
    if (lower(trim(value.substr(start, end - start))) == token) return true;
    start = end + 1;
  }
  return false;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

const std::string* Request::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return &v;
  return nullptr;
}

bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    if (i + 2 >= in.size() || hex_digit(in[i + 1]) < 0 || hex_digit(in[i + 2]) < 0) return false;
    out += static_cast<char>(hex_digit(in[i + 1]) * 16 + hex_digit(in[i + 2]));
    i += 2;
  }
  return true;
}

size_t RequestParser::fail(int status, std::string message) {
  state_ = State::kError;
  error_status_ = status;
  error_message_ = std::move(message);
  return 0;
}

Request RequestParser::take() {
  Request out = std::move(request_);
  request_ = Request();
  head_.clear();
  line_.clear();
  state_ = State::kHead;
  remaining_ = trailer_bytes_ = 0;
  return out;
}

size_t RequestParser::feed(std::string_view data) {
  size_t used = 0;
  while (used < data.size() && state_ != State::kDone && state_ != State::kError) {
    std::string_view rest = data.substr(used);
    switch (state_) {
      case State::kHead: {
        // Blank lines before a request line are allowed (RFC 9112 §2.2).
        if (head_.empty() && (rest[0] == '\r' || rest[0] == '\n')) {
          ++used;
          break;
        }
        const size_t before = head_.size();
        const size_t take = std::min(rest.size(), limits_.max_header_bytes + 4 - before);
        head_.append(rest.substr(0, take));
        // The head ends at the first empty line; search from just before the new bytes.
        size_t end = head_.find("\r\n\r\n", before >= 3 ? before - 3 : 0);
        size_t end_len = 4;
        const size_t lf = head_.find("\n\n", before >= 1 ? before - 1 : 0);
        if (lf != std::string::npos && (end == std::string::npos || lf < end))
          end = lf, end_len = 2;
        if (end == std::string::npos) {
          if (head_.size() > limits_.max_header_bytes)
            return fail(431, "the request headers are larger than " +
                                 std::to_string(limits_.max_header_bytes) + " bytes");
          used += take;
          break;
        }
        if (end + end_len > limits_.max_header_bytes + 4)
          return fail(431, "the request headers are larger than " +
                               std::to_string(limits_.max_header_bytes) + " bytes");
        used += end + end_len - before;
        head_.resize(end);
        if (!parse_head()) return used;
        break;
      }
      case State::kBody:  // Content-Length bytes, or one chunk's: then what follows them
      case State::kChunkData: {
        const size_t take = std::min(rest.size(), remaining_);
        request_.body.append(rest.substr(0, take));
        used += take;
        remaining_ -= take;
        if (remaining_ == 0) state_ = state_ == State::kBody ? State::kDone : State::kChunkEnd;
        break;
      }
      case State::kChunkSize:
      case State::kTrailers:
      case State::kChunkEnd: {
        const size_t nl = rest.find('\n');
        const size_t take = nl == std::string_view::npos ? rest.size() : nl + 1;
        if (line_.size() + take > 4096) return fail(400, "a chunk header line is too long");
        line_.append(rest.substr(0, take));
        used += take;
        if (nl == std::string_view::npos) break;
        std::string_view line(line_);
        line.remove_suffix(1);  // '\n'
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (state_ == State::kChunkEnd) {
          if (!line.empty()) return fail(400, "a chunk is longer than its size says");
          state_ = State::kChunkSize;
        } else if (state_ == State::kTrailers) {
          trailer_bytes_ += line_.size();
          if (trailer_bytes_ > limits_.max_header_bytes)
            return fail(431, "the trailers are too large");
          if (line.empty()) state_ = State::kDone;  // trailers are read and dropped
        } else {
          const size_t ext = line.find(';');  // chunk extensions are ignored
          std::string_view digits = trim(line.substr(0, ext));
          if (digits.empty() || digits.size() > 15) return fail(400, "a chunk size is malformed");
          size_t size = 0;
          for (char c : digits) {
            const int d = hex_digit(c);
            if (d < 0) return fail(400, "a chunk size is malformed");
            size = size * 16 + static_cast<size_t>(d);
          }
          if (request_.body.size() + size > limits_.max_body_bytes)
            return fail(413, "the request body is larger than " +
                                 std::to_string(limits_.max_body_bytes) + " bytes");
          remaining_ = size;
          state_ = size == 0 ? State::kTrailers : State::kChunkData;
        }
        line_.clear();
        break;
      }
      case State::kDone:
      case State::kError:
        break;
    }
  }
  return used;
}

bool RequestParser::parse_head() {
  std::string_view head(head_);
  auto next_line = [&]() {
    size_t nl = head.find('\n');
    std::string_view line = head.substr(0, nl);
    head.remove_prefix(nl == std::string_view::npos ? head.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
  };

  // Request line: METHOD SP TARGET SP HTTP/1.x
  std::string_view line = next_line();
  const size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) {
    fail(400, "the request line is malformed");
    return false;
  }
  std::string_view method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1),
                   version = line.substr(sp2 + 1);
  if (method.empty() || !std::all_of(method.begin(), method.end(), is_token_char)) {
    fail(400, "the request method is malformed");
    return false;
  }
  if (target.empty() || std::any_of(target.begin(), target.end(), [](char c) {
        return static_cast<unsigned char>(c) <= ' ' || c == 0x7f;
      })) {
    fail(400, "the request target is malformed");
    return false;
  }
  if (version.size() != 8 || version.substr(0, 7) != "HTTP/1." || version[7] < '0' ||
      version[7] > '9') {
    fail(version.substr(0, 5) == "HTTP/" ? 505 : 400, "only HTTP/1.x is supported");
    return false;
  }
  request_.method = std::string(method);
  request_.target = std::string(target);
  request_.minor_version = version[7] - '0';
  const size_t q = target.find('?');
  std::string_view path = target.substr(0, q);
  if (q != std::string_view::npos) request_.query = std::string(target.substr(q + 1));
  if (path.substr(0, 7) == "http://" || path.substr(0, 8) == "https://") {  // absolute form
    const size_t slash = path.find('/', path.find("//") + 2);
    path = slash == std::string_view::npos ? std::string_view("/") : path.substr(slash);
  }
  if (!percent_decode(path, request_.path)) {
    fail(400, "the request path has a malformed %-escape");
    return false;
  }

  // Headers.
  while (!head.empty()) {
    line = next_line();
    if (line.empty()) continue;
    if (line[0] == ' ' || line[0] == '\t') {
      fail(400, "folded header lines are not accepted");
      return false;
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0 ||
        !std::all_of(line.begin(), line.begin() + colon, is_token_char)) {
      fail(400, "a header line is malformed");
      return false;
    }
    if (request_.headers.size() >= limits_.max_headers) {
      fail(431, "the request has more than " + std::to_string(limits_.max_headers) + " headers");
      return false;
    }
    request_.headers.emplace_back(lower(line.substr(0, colon)),
                                  std::string(trim(line.substr(colon + 1))));
  }

  const std::string* connection = request_.header("connection");
  request_.keep_alive = request_.minor_version >= 1
                            ? !(connection && has_token(*connection, "close"))
                            : (connection && has_token(*connection, "keep-alive"));
  const std::string* expect = request_.header("expect");
  if (expect) {
    if (lower(*expect) != "100-continue") {
      fail(417, "only 'Expect: 100-continue' is supported");
      return false;
    }
    request_.expect_continue = request_.minor_version >= 1;
  }

  // Body framing: chunked, or Content-Length, never both (a request-smuggling vector).
  const std::string* te = request_.header("transfer-encoding");
  std::string content_length;
  for (const auto& [k, v] : request_.headers) {
    if (k != "content-length") continue;
    if (!content_length.empty() && content_length != v) {
      fail(400, "conflicting Content-Length headers");
      return false;
    }
    content_length = v;
  }
  if (te) {
    if (!content_length.empty()) {
      fail(400, "a request may not have both Transfer-Encoding and Content-Length");
      return false;
    }
    if (lower(trim(*te)) != "chunked") {
      fail(501, "only the chunked transfer coding is supported");
      return false;
    }
    state_ = State::kChunkSize;
    return true;
  }
  size_t length = 0;
  if (!content_length.empty()) {
    if (content_length.size() > 15 || !std::all_of(content_length.begin(), content_length.end(),
                                                   [](char c) { return c >= '0' && c <= '9'; })) {
      fail(400, "the Content-Length header is malformed");
      return false;
    }
    length = std::stoull(content_length);
  }
  if (length > limits_.max_body_bytes) {
    fail(413,
         "the request body is larger than " + std::to_string(limits_.max_body_bytes) + " bytes");
    return false;
  }
  request_.body.reserve(length);
  remaining_ = length;
  state_ = length == 0 ? State::kDone : State::kBody;
  return true;
}

}  // namespace ember::http
