// Writes the seed corpus for fuzz_gguf into the directory given as argv[1].
#include <cstdio>
#include <fstream>
#include <string>

#include "tests/gguf/sample_files.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_gguf_corpus DIR\n");
    return 2;
  }
  auto save = [&](const std::string& name, const std::vector<uint8_t>& bytes) {
    std::ofstream(std::string(argv[1]) + "/" + name, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
  };
  gguf::Writer w = ember::test::sample_writer();
  save("sample_v3.gguf", w.to_bytes());
  w.set_version(2);
  w.set_alignment(64);
  save("sample_v2_align64.gguf", w.to_bytes());
  gguf::Writer vocab;
  vocab.set_string("tokenizer.ggml.model", "gpt2");
  vocab.set_strings("tokenizer.ggml.tokens", {"a", "b", "ab"});
  vocab.set_strings("tokenizer.ggml.merges", {"a b"});
  save("vocab_only.gguf", vocab.to_bytes());
  return 0;
}
