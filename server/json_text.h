// JSON as the server writes it, and the random ids its APIs hand out (chatcmpl-…, msg_…,
// resp_…): helpers every API file shares.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <string_view>

namespace ember::server {

// Compact JSON. Invalid UTF-8 in a string (a model's broken bytes) becomes U+FFFD rather than
// an exception.
inline std::string dump(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

// `prefix` and `n` characters drawn from `alphabet`.
inline std::string random_id(
    std::string_view prefix, size_t n,
    std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string id(prefix);
  for (size_t i = 0; i < n; ++i) id += alphabet[rng() % alphabet.size()];
  return id;
}

}  // namespace ember::server
