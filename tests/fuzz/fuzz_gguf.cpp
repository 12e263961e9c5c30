// libFuzzer target for the GGUF reader: any input must parse or fail with gguf::Error, and
// everything a successful parse hands out must be readable (sanitizers check each access).
#include <cstddef>
#include <cstdint>

#include "gguf/error.h"
#include "gguf/reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    gguf::Contents c = gguf::parse({data, size});
    size_t sink = 0;
    for (const gguf::KeyValue& kv : c.metadata.entries())
      sink += kv.value.to_display_string(4).size();
    for (const gguf::TensorInfo& t : c.tensors) {
      if (t.bytes > 0) sink += t.data[0] + t.data[t.bytes - 1];
    }
    volatile size_t keep = sink;
    (void)keep;
  } catch (const gguf::Error&) {
  }
  return 0;
}
