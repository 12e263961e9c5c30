// Pieces of the pull machinery that need no network: SHA-256 against FIPS 180-4 vectors, the
// choice of file from a repo listing, and the name checks that keep files in the models folder.
#include <gtest/gtest.h>

#include "server/pull/pull_manager.h"
#include "server/pull/sha256.h"

using namespace ember::pull;

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(Sha256().hex_digest(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  Sha256 abc;
  abc.update("abc");
  EXPECT_EQ(abc.hex_digest(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256 two_blocks;
  two_blocks.update("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq");
  EXPECT_EQ(two_blocks.hex_digest(),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  Sha256 million;  // a million 'a's in uneven pieces
  std::string piece(777, 'a');
  size_t left = 1000000;
  while (left) {
    const size_t n = std::min(left, piece.size());
    million.update(piece.data(), n);
    left -= n;
  }
  EXPECT_EQ(million.hex_digest(),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(PullChoice, PrefersQ4KMThenTheNearest) {
  std::string reason;
  EXPECT_EQ(choose_file({"README.md", "m.Q8_0.gguf", "m.Q4_K_M.gguf", "m.Q4_K_S.gguf"}, &reason),
            "m.Q4_K_M.gguf");
  EXPECT_EQ(reason, "Q4_K_M");
  EXPECT_EQ(choose_file({"m-q8_0.gguf", "m-q4_k_s.gguf", "m-iq4_xs.gguf"}, &reason),
            "m-q4_k_s.gguf");
  EXPECT_NE(reason.find("Q4_K_S"), std::string::npos);
  EXPECT_EQ(choose_file({"m-f16.gguf", "m-q8_0.gguf"}), "m-q8_0.gguf");
  EXPECT_EQ(choose_file({"mmproj-q4_k_m.gguf", "m-q6_k.gguf"}), "m-q6_k.gguf");
  EXPECT_EQ(choose_file({"big-Q4_K_M-00002-of-00002.gguf", "big-Q4_K_M-00001-of-00002.gguf"}),
            "big-Q4_K_M-00001-of-00002.gguf");
  EXPECT_EQ(choose_file({"README.md", "config.json"}), "");
}

TEST(PullNames, TraversalAndOddNamesAreRejected) {
  EXPECT_NO_THROW(validate({"org/name", "sub/file-Q4_K_M.gguf", "main"}));
  EXPECT_NO_THROW(validate({"org/name", "", "v1.0"}));
  for (PullRequest bad : std::vector<PullRequest>{{"../x", "", "main"},
                                                  {"org", "", "main"},
                                                  {"org/name/extra", "", "main"},
                                                  {"org/name", "../../etc/passwd.gguf", "main"},
                                                  {"org/name", "/abs.gguf", "main"},
                                                  {"org/name", "file.bin", "main"},
                                                  {"org/name", "a//b.gguf", "main"},
                                                  {"org/name", "", "../main"},
                                                  {"org/name", "", ""},
                                                  {"org/na me", "", "main"}})
    EXPECT_THROW(validate(bad), PullRejected) << bad.repo << " " << bad.filename;
}
