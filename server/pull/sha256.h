// SHA-256 (FIPS 180-4), incremental: downloads are hashed as they arrive, so a pulled file is
// checked against the hub's X-Linked-Etag without reading it again.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ember::pull {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  void update(std::string_view s) { update(s.data(), s.size()); }
  // Hashes the contents of a file (nothing when it does not exist); returns the bytes read.
  uint64_t update_from_file(const std::string& path);
  std::string hex_digest();  // finishes; the object is spent afterwards

 private:
  void compress(const uint8_t* block);
  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_{};
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

}  // namespace ember::pull
