// libFuzzer target for the HTTP/1.1 request parser: any bytes, delivered in pieces whose sizes
// come from the input, must parse into requests or fail with a status in 400-599 — never
// crash, read out of bounds, or grow without bound.
#include <cstdint>
#include <string>
#include <string_view>

#include "server/http/request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t step = 1 + data[0] % 64;  // delivery piece size
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  ember::http::ParserLimits limits;
  limits.max_header_bytes = 1024;
  limits.max_body_bytes = 2048;
  ember::http::RequestParser parser(limits);
  std::string pending;
  for (size_t pos = 0; pos < input.size() && !parser.failed(); pos += step) {
    pending.append(input.substr(pos, step));
    while (!pending.empty() && !parser.failed()) {
      const size_t used = parser.feed(pending);
      if (used > pending.size()) __builtin_trap();
      pending.erase(0, used);
      if (parser.done()) {
        ember::http::Request r = parser.take();
        if (r.body.size() > limits.max_body_bytes) __builtin_trap();
      } else if (used == 0) {
        break;
      }
    }
  }
  if (parser.failed() && (parser.error_status() < 400 || parser.error_status() > 599))
    __builtin_trap();
  return 0;
}
