// Bump allocation of a backend's activations (model/backend.h's scratch) from chunks that are
// kept between forward passes and rewound, so steady-state steps neither allocate nor fault pages
// in. The arena only does the bookkeeping in floats; the backend owns the chunks' memory (host
// arrays, device buffers) and adds one whenever place() asks for it.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace ember::model {

class ScratchArena {
 public:
  struct Place {
    size_t chunk;   // index of the chunk, in the order add_chunk was called
    size_t offset;  // floats from the chunk's start
  };
  static constexpr size_t kAlign = 16;  // floats: tensors start 64 bytes apart

  // Room for n floats. When no chunk from the current one on has room, calls
  // add_chunk(at_least) → the new chunk's size in floats (≥ at_least).
  template <class AddChunk>
  Place place(size_t n, AddChunk&& add_chunk) {
    n = (n + kAlign - 1) / kAlign * kAlign;
    while (current_ < chunks_.size() && chunks_[current_].used + n > chunks_[current_].size)
      ++current_;
    if (current_ == chunks_.size()) chunks_.push_back({add_chunk(n), 0});
    Chunk& c = chunks_[current_];
    const Place p{current_, c.used};
    c.used += n;
    return p;
  }
  // A mark is the chunk index in the high bits and the floats used in it in the low 40 bits.
  size_t mark() const {
    const size_t used = current_ < chunks_.size() ? chunks_[current_].used : 0;
    return (current_ << 40) | used;
  }
  void rewind(size_t mark) {
    current_ = mark >> 40;
    for (size_t i = current_; i < chunks_.size(); ++i)
      chunks_[i].used = i == current_ ? (mark & ((size_t(1) << 40) - 1)) : 0;
  }

 private:
  struct Chunk {
    size_t size, used;  // floats
  };
  std::vector<Chunk> chunks_;
  size_t current_ = 0;
};

}  // namespace ember::model
