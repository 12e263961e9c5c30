// The one exception type of the GGUF module: its message says what is wrong with the file in
// words a user can act on (the caller adds the file name).
#pragma once

#include <stdexcept>
#include <string>

namespace gguf {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace gguf
