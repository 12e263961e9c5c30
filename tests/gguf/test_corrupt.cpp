// Corrupt and hostile GGUF input: each is rejected with gguf::Error carrying a message that
// names the problem, and nothing reads outside the buffer (the sanitizer build checks that).
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "gguf/error.h"
#include "gguf/reader.h"
#include "tests/gguf/sample_files.h"

namespace {

// Builds GGUF bytes by hand, for files the writer refuses to produce.
struct Bytes {
  std::vector<uint8_t> b;
  template <class T>
  Bytes& put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof v);
    return *this;
  }
  Bytes& u32(uint32_t v) { return put(v); }
  Bytes& u64(uint64_t v) { return put(v); }
  Bytes& str(std::string_view s) {
    u64(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& header(uint64_t tensors, uint64_t kvs, uint32_t version = 3) {
    return u32(gguf::kMagic).u32(version).u64(tensors).u64(kvs);
  }
  // A tensor info: name, dims, type, offset.
  Bytes& tensor(std::string_view name, std::vector<uint64_t> dims, uint32_t type, uint64_t offset) {
    str(name).u32(static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) u64(d);
    return u32(type).u64(offset);
  }
  Bytes& pad_to(size_t alignment, size_t extra_bytes = 0) {
    b.resize((b.size() + alignment - 1) / alignment * alignment + extra_bytes, 0);
    return *this;
  }
};

std::string parse_error(const std::vector<uint8_t>& bytes) {
  try {
    gguf::parse(bytes);
  } catch (const gguf::Error& e) {
    return e.what();
  }
  return "(parsed without error)";
}

#define EXPECT_REJECTED(bytes, fragment) \
  EXPECT_NE(parse_error(bytes).find(fragment), std::string::npos) << parse_error(bytes)

constexpr uint32_t kF32 = 0, kQ4_0 = 2;

}  // namespace

TEST(GgufCorrupt, HeaderProblems) {
  EXPECT_REJECTED(std::vector<uint8_t>{}, "truncated");
  EXPECT_REJECTED(Bytes().u32(0x58554747).u32(3).u64(0).u64(0).b, "not a GGUF file");
  EXPECT_REJECTED(Bytes().header(0, 0, 1).b, "version 1 is obsolete");
  EXPECT_REJECTED(Bytes().header(0, 0, 4).b, "unsupported GGUF version 4");
  EXPECT_REJECTED(Bytes().header(0, 0, 0x03000000).b, "big-endian");
  EXPECT_REJECTED(Bytes().header(0, 1ull << 62).b, "metadata entries, more than the file");
  EXPECT_REJECTED(Bytes().header(1ull << 60, 0).b, "tensors, more than the file");
  EXPECT_REJECTED(Bytes().u32(gguf::kMagic).u32(3).u64(0).b, "truncated");
  EXPECT_EQ(parse_error(Bytes().header(0, 0).b), "(parsed without error)");
}

TEST(GgufCorrupt, MetadataProblems) {
  EXPECT_REJECTED(Bytes().header(0, 1).u64(1ull << 40).pad_to(8, 16).b,
                  "claims 1099511627776 bytes");
  EXPECT_REJECTED(Bytes().header(0, 1).str("k").u32(13).u32(0).b, "unknown value type 13");
  EXPECT_REJECTED(Bytes().header(0, 1).str("k").u32(9).u32(99).u64(0).b,
                  "unknown array element type 99");
  EXPECT_REJECTED(Bytes().header(0, 1).str("k").u32(9).u32(4).u64(1ull << 61).b, "array claims");
  EXPECT_REJECTED(Bytes().header(0, 1).str("k").u32(9).u32(8).u64(1000).str("a").pad_to(8, 64).b,
                  "array claims 1000 elements");
  Bytes deep = Bytes().header(0, 1).str("k").u32(9);
  for (int i = 0; i < 20; ++i) deep.u32(9).u64(1);
  EXPECT_REJECTED(deep.b, "nested deeper");
  EXPECT_REJECTED(Bytes().header(0, 2).str("k").u32(4).u32(1).str("k").u32(4).u32(2).b,
                  "'k' appears twice");
  EXPECT_REJECTED(Bytes().header(0, 1).str("general.alignment").u32(10).u64(32).b,
                  "must be a uint32");
  EXPECT_REJECTED(Bytes().header(0, 1).str("general.alignment").u32(4).u32(48).b, "power of two");
  EXPECT_REJECTED(Bytes().header(0, 1).str("general.alignment").u32(4).u32(0).b, "power of two");
  EXPECT_REJECTED(Bytes().header(0, 1).str("k").u32(8).u64(5).b, "claims 5 bytes");
}

TEST(GgufCorrupt, TensorInfoProblems) {
  EXPECT_REJECTED(Bytes().header(1, 0).tensor("t", {}, kF32, 0).pad_to(32, 64).b,
                  "has 0 dimensions");
  EXPECT_REJECTED(Bytes().header(1, 0).tensor("t", {1, 1, 1, 1, 1}, kF32, 0).b, "has 5 dimensions");
  EXPECT_REJECTED(Bytes().header(1, 0).tensor("t", {1ull << 63}, kF32, 0).pad_to(32, 64).b,
                  "negative or absurd dimension");
  EXPECT_REJECTED(Bytes().header(1, 0).tensor("t", {1ull << 40, 1ull << 40}, kF32, 0).b,
                  "more elements than fit");
  EXPECT_REJECTED(Bytes().header(1, 0).tensor("t", {4}, 4, 0).pad_to(32, 32).b,
                  "unknown tensor type id 4");
  EXPECT_REJECTED(Bytes().header(1, 0).tensor("t", {33}, kQ4_0, 0).pad_to(32, 64).b,
                  "not a multiple of the block size 32");
  EXPECT_REJECTED(Bytes().header(1, 0).tensor("t", {4}, kF32, 4).pad_to(32, 32).b,
                  "not a multiple of the alignment");
  EXPECT_REJECTED(Bytes().header(1, 0).tensor("t", {16}, kF32, 0).pad_to(32, 32).b,
                  "lies outside the file");
  EXPECT_REJECTED(Bytes().header(1, 0).tensor("t", {4}, kF32, 1ull << 62).pad_to(32, 32).b,
                  "lies outside the file");
  EXPECT_REJECTED(Bytes().header(1, 0).tensor("t", {4}, kF32, 0).b, "truncated");
  EXPECT_REJECTED(
      Bytes().header(2, 0).tensor("a", {16}, kF32, 0).tensor("b", {8}, kF32, 32).pad_to(32, 96).b,
      "tensors 'a' and 'b' overlap");
  EXPECT_REJECTED(
      Bytes().header(2, 0).tensor("a", {8}, kF32, 0).tensor("a", {8}, kF32, 32).pad_to(32, 64).b,
      "tensor name 'a' appears twice");
  // The same shapes placed properly parse.
  EXPECT_EQ(parse_error(Bytes()
                            .header(2, 0)
                            .tensor("a", {8}, kF32, 0)
                            .tensor("b", {8}, kF32, 32)
                            .pad_to(32, 64)
                            .b),
            "(parsed without error)");
}

TEST(GgufCorrupt, EveryTruncationIsRejected) {
  std::vector<uint8_t> bytes = ember::test::sample_bytes();
  gguf::Contents whole = gguf::parse(bytes);
  uint64_t needed = 0;  // the file may lose its trailing padding, nothing more
  for (const gguf::TensorInfo& t : whole.tensors)
    needed = std::max(needed, t.file_offset + t.bytes);
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + n);
    std::string error = parse_error(prefix);
    if (n < needed)
      EXPECT_NE(error, "(parsed without error)") << "prefix of " << n << " bytes";
    else
      EXPECT_EQ(error, "(parsed without error)") << "prefix of " << n << " bytes";
  }
}

// Flipped and random bytes: the parser may accept the result (a changed value is still a valid
// file) but must only ever fail with gguf::Error; any other exception fails the test.
TEST(GgufCorrupt, FlippedBytesNeverEscapeAsOtherErrors) {
  std::vector<uint8_t> bytes = ember::test::sample_bytes();
  uint64_t header = gguf::parse(bytes).header_bytes;
  for (size_t i = 0; i < header; ++i) {
    for (uint8_t replacement : {uint8_t(0), uint8_t(0xff), uint8_t(bytes[i] ^ 0x80)}) {
      std::vector<uint8_t> mutated = bytes;
      mutated[i] = replacement;
      EXPECT_NO_THROW(parse_error(mutated)) << "byte " << i;
    }
  }
  std::mt19937 rng(1234);
  for (int round = 0; round < 3000; ++round) {
    std::vector<uint8_t> mutated = bytes;
    int flips = 1 + rng() % 8;
    for (int k = 0; k < flips; ++k) mutated[rng() % header] = static_cast<uint8_t>(rng());
    if (rng() % 4 == 0) mutated.resize(rng() % mutated.size());
    EXPECT_NO_THROW(parse_error(mutated)) << "round " << round;
  }
}
