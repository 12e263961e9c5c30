// The incremental HTTP/1.1 request parser: framing (Content-Length, chunked, pipelining),
// byte-at-a-time delivery, limits and malformed input with the status a client should see.
#include <gtest/gtest.h>

#include "server/http/request.h"

using ember::http::ParserLimits;
using ember::http::Request;
using ember::http::RequestParser;

namespace {

// Feeds `data` in pieces of `step` bytes; returns the requests completed and what was left.
std::vector<Request> parse_all(const std::string& data, size_t step, RequestParser& p,
                               size_t* consumed = nullptr) {
  std::vector<Request> out;
  size_t pos = 0;
  std::string pending;
  while (pos < data.size() && !p.failed()) {
    pending += data.substr(pos, step);
    pos += step;
    while (!pending.empty() && !p.failed()) {
      const size_t used = p.feed(pending);
      pending.erase(0, used);
      if (p.done())
        out.push_back(p.take());
      else if (used == 0)
        break;
    }
  }
  if (consumed) *consumed = data.size() - pending.size();
  return out;
}

}  // namespace

TEST(HttpParser, SimpleGetAndHeaders) {
  RequestParser p;
  auto r = parse_all("GET /v1/models?x=1 HTTP/1.1\r\nHost: a\r\nX-Thing:  spaced value \r\n\r\n",
                     1000, p);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].method, "GET");
  EXPECT_EQ(r[0].path, "/v1/models");
  EXPECT_EQ(r[0].query, "x=1");
  EXPECT_EQ(*r[0].header("x-thing"), "spaced value");
  EXPECT_TRUE(r[0].keep_alive);
  EXPECT_TRUE(r[0].body.empty());
}

TEST(HttpParser, BodyByteAtATimeAndPipelined) {
  const std::string two =
      "POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloPOST /b HTTP/1.1\r\nTransfer-Encoding: "
      "chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nTrailer: x\r\n\r\nGET /c HTTP/1.0\r\n\r\n";
  for (size_t step : {size_t(1), size_t(2), size_t(7), size_t(1000)}) {
    RequestParser p;
    auto r = parse_all(two, step, p);
    ASSERT_EQ(r.size(), 3u) << "step " << step;
    EXPECT_EQ(r[0].body, "hello");
    EXPECT_EQ(r[1].path, "/b");
    EXPECT_EQ(r[1].body, "abcde");
    EXPECT_EQ(r[2].path, "/c");
    EXPECT_FALSE(r[2].keep_alive);  // HTTP/1.0 without keep-alive
  }
}

TEST(HttpParser, ConnectionCloseExpectContinueAndPercentPaths) {
  RequestParser p;
  auto r = parse_all(
      "POST /api/models/a%2Fb HTTP/1.1\r\nConnection: close\r\nExpect: 100-continue\r\n"
      "Content-Length: 2\r\n\r\nok",
      1000, p);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_FALSE(r[0].keep_alive);
  EXPECT_TRUE(r[0].expect_continue);
  EXPECT_EQ(r[0].path, "/api/models/a/b");
}

TEST(HttpParser, ErrorsCarryTheRightStatus) {
  struct Case {
    std::string input;
    int status;
  } cases[] = {
      {"GARBAGE\r\n\r\n", 400},
      {"GET / HTTP/2.0\r\n\r\n", 505},
      {"GET / FTP/1.1\r\n\r\n", 400},
      {"GE(T / HTTP/1.1\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\n folded\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 12x\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
      {"POST / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", 413},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", 400},
      {"GET /%zz HTTP/1.1\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nExpect: something\r\n\r\n", 417},
  };
  for (const Case& c : cases) {
    RequestParser p;
    parse_all(c.input, 3, p);
    EXPECT_TRUE(p.failed()) << c.input;
    EXPECT_EQ(p.error_status(), c.status) << c.input;
    EXPECT_FALSE(p.error_message().empty());
  }
}

TEST(HttpParser, LimitsOnHeadersAndBodies) {
  ParserLimits limits;
  limits.max_header_bytes = 256;
  limits.max_headers = 4;
  limits.max_body_bytes = 10;
  {
    RequestParser p(limits);
    parse_all("GET / HTTP/1.1\r\nX: " + std::string(300, 'a') + "\r\n\r\n", 5, p);
    EXPECT_EQ(p.error_status(), 431);
  }
  {
    RequestParser p(limits);
    std::string many = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < 5; ++i) many += "H" + std::to_string(i) + ": v\r\n";
    parse_all(many + "\r\n", 1000, p);
    EXPECT_EQ(p.error_status(), 431);
  }
  {
    RequestParser p(limits);
    parse_all("POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", 1000, p);
    EXPECT_EQ(p.error_status(), 413);
  }
  {
    RequestParser p(limits);
    parse_all("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n6\r\n", 1000, p);
    EXPECT_EQ(p.error_status(), 413);
  }
  {  // a request line that never ends
    RequestParser p(limits);
    parse_all("GET /" + std::string(1000, 'a'), 10, p);
    EXPECT_EQ(p.error_status(), 431);
  }
}

TEST(HttpParser, IncompleteRequestsWait) {
  RequestParser p;
  size_t consumed = 0;
  auto r = parse_all("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", 4, p, &consumed);
  EXPECT_TRUE(r.empty());
  EXPECT_FALSE(p.failed());
  EXPECT_TRUE(p.in_body());
  EXPECT_GT(p.pending(), 0u);
}
