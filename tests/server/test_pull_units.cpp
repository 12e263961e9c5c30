// Pieces of the pull machinery that need no network: SHA-256 against FIPS 180-4 vectors, the
// choice of file from a repo listing, the names users type, the checks that keep files in the
// models folder, and the store's rules on disk (destination names, what a file in the way is,
// the one-writer lock and its takeover, renames that never replace).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "gguf/writer.h"
#include "server/pull/destination.h"
#include "server/pull/names.h"
#include "server/pull/sha256.h"
#include "tests/gguf/sample_files.h"

using namespace ember::pull;
namespace fs = std::filesystem;

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

std::string chosen(const std::vector<std::string>& listing, const std::string& quant = "") {
  const Choice c = choose_file(listing, quant);
  return c.files.empty() ? "" : c.files.front();
}

TEST(PullChoice, PrefersQ4KMThenTheNearest4BitThenMoreBits) {
  const Choice c = choose_file({"README.md", "m.Q8_0.gguf", "m.Q4_K_M.gguf", "m.Q4_K_S.gguf"});
  EXPECT_EQ(c.files, std::vector<std::string>{"m.Q4_K_M.gguf"});
  EXPECT_EQ(c.quant, "Q4_K_M");
  EXPECT_EQ(c.reason.rfind("Q4_K_M", 0), 0u) << c.reason;
  EXPECT_EQ(c.alternatives, (std::vector<std::string>{"Q4_K_S", "Q8_0"}));
  EXPECT_EQ(chosen({"m-q8_0.gguf", "m-q4_k_s.gguf", "m-iq4_xs.gguf"}), "m-q4_k_s.gguf");
  EXPECT_NE(choose_file({"m-q8_0.gguf", "m-q4_k_s.gguf"}).reason.find("Q4_K_S is the closest"),
            std::string::npos);
  // The 4-bit family in order, then 5-, 6-, 8-bit, then fewer bits, then unquantised.
  std::vector<std::string> listing = {"m-F16.gguf",    "m-Q3_K_M.gguf", "m-Q8_0.gguf",
                                      "m-Q6_K.gguf",   "m-Q5_K_M.gguf", "m-Q4_0.gguf",
                                      "m-IQ4_XS.gguf", "m-Q4_K_S.gguf", "m-UD-Q4_K_XL.gguf"};
  for (const char* expected :
       {"m-UD-Q4_K_XL.gguf", "m-Q4_K_S.gguf", "m-IQ4_XS.gguf", "m-Q4_0.gguf", "m-Q5_K_M.gguf",
        "m-Q6_K.gguf", "m-Q8_0.gguf", "m-Q3_K_M.gguf", "m-F16.gguf"}) {
    EXPECT_EQ(chosen(listing), expected);
    std::erase(listing, expected);
  }
  EXPECT_EQ(chosen({"m-f16.gguf", "m-q8_0.gguf"}), "m-q8_0.gguf");
  EXPECT_EQ(chosen({"mmproj-q4_k_m.gguf", "m-q6_k.gguf"}), "m-q6_k.gguf");
  EXPECT_EQ(chosen({"README.md", "config.json"}), "");
  EXPECT_EQ(choose_file({"README.md"}).reason, "no GGUF file");
}

TEST(PullChoice, SplitSetsAreOneCandidateAndSingleFilesWin) {
  const Choice split =
      choose_file({"big-Q4_K_M-00002-of-00002.gguf", "big-Q4_K_M-00001-of-00002.gguf"});
  EXPECT_EQ(split.files, (std::vector<std::string>{"big-Q4_K_M-00001-of-00002.gguf",
                                                   "big-Q4_K_M-00002-of-00002.gguf"}));
  EXPECT_EQ(chosen({"Q4_K_M/big-Q4_K_M-00001-of-00002.gguf",
                    "Q4_K_M/big-Q4_K_M-00002-of-00002.gguf", "big-Q4_K_M.gguf"}),
            "big-Q4_K_M.gguf");
  // A set with a part missing from the listing is not offered.
  EXPECT_EQ(chosen({"big-Q4_K_M-00001-of-00003.gguf", "big-Q4_K_M-00002-of-00003.gguf",
                    "small-Q8_0.gguf"}),
            "small-Q8_0.gguf");
}

TEST(PullChoice, AQuantisationAskedForAndTies) {
  const std::vector<std::string> listing = {"a-Q4_K_M.gguf", "a-Q8_0.gguf", "a-UD-Q6_K_XL.gguf",
                                            "b-Q4_K_M.gguf"};
  EXPECT_EQ(chosen(listing, "q8_0"), "a-Q8_0.gguf");
  EXPECT_EQ(chosen(listing, "Q6_K_XL"), "a-UD-Q6_K_XL.gguf");  // unsloth's UD- variant
  const Choice missing = choose_file(listing, "Q5_K_M");
  EXPECT_TRUE(missing.files.empty());
  EXPECT_EQ(missing.reason, "no Q5_K_M file; it offers Q4_K_M, UD-Q6_K_XL, Q8_0");
  const Choice tie = choose_file(listing);
  EXPECT_EQ(tie.files.front(), "a-Q4_K_M.gguf");
  EXPECT_NE(tie.reason.find("also Q4_K_M: b-Q4_K_M.gguf"), std::string::npos) << tie.reason;
}

TEST(PullNames, WhatUsersType) {
  auto spec = [](const std::string& s) {
    const PullRequest r = parse_model_spec(s);
    return r.repo + "|" + r.filename + "|" + r.quant;
  };
  EXPECT_EQ(spec("org/repo"), "org/repo||");
  EXPECT_EQ(spec("org/repo:sub/m-Q8_0.gguf"), "org/repo|sub/m-Q8_0.gguf|");
  EXPECT_EQ(spec("org/repo:Q4_K_M"), "org/repo||Q4_K_M");
  EXPECT_EQ(spec("hf.co/org/repo:q8_0"), "org/repo||q8_0");
  EXPECT_EQ(spec("https://huggingface.co/org/repo"), "org/repo||");
  EXPECT_EQ(spec("hf.co/org/repo:latest"), "org/repo||");
  EXPECT_EQ(quant_tag("Llama-3.2-1B-Instruct-Q4_K_M.gguf"), "Q4_K_M");
  EXPECT_EQ(quant_tag("UD-Q4_K_XL/m-UD-Q4_K_XL-00001-of-00002.gguf"), "UD-Q4_K_XL");
  EXPECT_EQ(quant_tag("Q8_0/model.gguf"), "Q8_0");
  EXPECT_EQ(quant_tag("qwen2.5-0.5b-instruct-fp16.gguf"), "F16");
  EXPECT_EQ(quant_tag("tiny-llama-iq4_xs.gguf"), "IQ4_XS");
  EXPECT_EQ(quant_tag("qwen3-4b.gguf"), "");
  EXPECT_EQ(split_set("d/m-00002-of-00003.gguf"),
            (std::vector<std::string>{"d/m-00001-of-00003.gguf", "d/m-00002-of-00003.gguf",
                                      "d/m-00003-of-00003.gguf"}));
  EXPECT_EQ(split_set("m.gguf"), std::vector<std::string>{"m.gguf"});
}

TEST(PullNames, TraversalAndOddNamesAreRejected) {
  EXPECT_NO_THROW(validate({"org/name", "sub/file-Q4_K_M.gguf", "", "main"}));
  EXPECT_NO_THROW(validate({"org/name", "", "UD-Q4_K_XL", "v1.0"}));
  for (PullRequest bad : std::vector<PullRequest>{{"../x", "", "", "main"},
                                                  {"org", "", "", "main"},
                                                  {"org/name/extra", "", "", "main"},
                                                  {"org/name", "../../etc/passwd.gguf", "", "main"},
                                                  {"org/name", "/abs.gguf", "", "main"},
                                                  {"org/name", "file.bin", "", "main"},
                                                  {"org/name", "a//b.gguf", "", "main"},
                                                  {"org/name", "", "../Q4", "main"},
                                                  {"org/name", "", "", "../main"},
                                                  {"org/name", "", "", ""},
                                                  {"org/na me", "", "", "main"}})
    EXPECT_THROW(validate(bad), PullRejected) << bad.repo << " " << bad.filename;
}

TEST(PullDestination, NamesAreDeterministicAndKeepSplitSuffixes) {
  EXPECT_EQ(destination_names("Q8_0/model.gguf", "1a2b3c4d"),
            (std::vector<std::string>{"model.gguf", "model-Q8_0.gguf", "model-1a2b3c4d.gguf"}));
  EXPECT_EQ(destination_names("m-Q8_0.gguf", "1a2b3c4d"),
            (std::vector<std::string>{"m-Q8_0.gguf", "m-Q8_0-1a2b3c4d.gguf"}));
  EXPECT_EQ(destination_names("Q4_K_M/m-00001-of-00002.gguf", "ab"),
            (std::vector<std::string>{"m-00001-of-00002.gguf", "m-Q4_K_M-00001-of-00002.gguf",
                                      "m-ab-00001-of-00002.gguf"}));
  EXPECT_EQ(part_name("m-ab-00001-of-00002.gguf", 2, 2), "m-ab-00002-of-00002.gguf");
  EXPECT_EQ(part_name("m.gguf", 1, 1), "m.gguf");
}

class PullStore : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ember_pull_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  static void write(const std::string& p, const std::vector<uint8_t>& bytes) {
    std::ofstream(p, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  }
  static std::string sha(const std::vector<uint8_t>& bytes) {
    Sha256 h;
    h.update(bytes.data(), bytes.size());
    return h.hex_digest();
  }
  fs::path dir_;
};

TEST_F(PullStore, ExamineTellsWhatIsInTheWay) {
  const std::vector<uint8_t> model = ember::test::sample_bytes();
  EXPECT_EQ(examine(path("none.gguf"), model.size(), sha(model)), OnDisk::kAbsent);
  write(path("empty.gguf"), {});
  EXPECT_EQ(examine(path("empty.gguf"), model.size(), sha(model)), OnDisk::kBroken);
  write(path("cut.gguf"), std::vector<uint8_t>(model.begin(), model.begin() + model.size() / 2));
  EXPECT_EQ(examine(path("cut.gguf"), model.size(), sha(model)), OnDisk::kBroken);
  write(path("same.gguf"), model);
  EXPECT_EQ(examine(path("same.gguf"), model.size(), sha(model)), OnDisk::kSame);
  // The same bytes but no sha256 from the hub: cannot be shown to be the one asked for.
  EXPECT_EQ(examine(path("same.gguf"), model.size(), ""), OnDisk::kOther);
  EXPECT_EQ(examine(path("same.gguf"), model.size(), std::string(64, '0')), OnDisk::kOther);
  EXPECT_EQ(examine(path("same.gguf"), model.size() + 1, sha(model)), OnDisk::kOther);
  // A whole model where part 2 of a set belongs is someone's model, not a broken part.
  EXPECT_EQ(examine(path("same.gguf"), model.size(), sha(model), 2, 3), OnDisk::kOther);
}

TEST_F(PullStore, RenamesNeverReplace) {
  write(path("a"), {1});
  write(path("b"), {2});
  EXPECT_FALSE(rename_no_replace(path("a"), path("b")));
  EXPECT_EQ(errno, EEXIST);
  EXPECT_TRUE(fs::exists(path("a")));
  EXPECT_TRUE(rename_no_replace(path("a"), path("c")));
  EXPECT_FALSE(fs::exists(path("a")));
}

TEST_F(PullStore, OneWriterPerDestination) {
  const std::string lock_path = path("m.gguf.part.lock");
  DestinationLock::Holder holder;
  {
    auto first = DestinationLock::try_acquire(lock_path, &holder);
    ASSERT_TRUE(first);
    EXPECT_FALSE(DestinationLock::try_acquire(lock_path, &holder));  // a live owner: wait
    EXPECT_EQ(holder.pid, long(getpid()));
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    EXPECT_EQ(holder.host, host);
    EXPECT_FALSE(first->lost());
  }
  EXPECT_FALSE(fs::exists(lock_path));  // released
}

TEST_F(PullStore, StaleLocksAreTakenOver) {
  const std::string lock_path = path("m.gguf.part.lock");
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  const pid_t child = fork();  // a pid that has surely exited
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);
  std::ofstream(lock_path) << child << " " << host << " 0123456789abcdef\n";
  std::string took_over;
  DestinationLock::Holder holder;
  auto lock = DestinationLock::try_acquire(lock_path, &holder, &took_over);
  ASSERT_TRUE(lock);
  EXPECT_NE(took_over.find("is gone"), std::string::npos) << took_over;
  lock.reset();
  // Another host's lock is judged by its heartbeat alone.
  std::ofstream(lock_path) << 1 << " elsewhere 0123456789abcdef\n";
  EXPECT_FALSE(DestinationLock::try_acquire(lock_path, &holder));
  EXPECT_EQ(holder.host, "elsewhere");
  const auto old =
      fs::file_time_type::clock::now() - DestinationLock::stale_after() - std::chrono::seconds(5);
  fs::last_write_time(lock_path, old);
  lock = DestinationLock::try_acquire(lock_path, &holder, &took_over);
  ASSERT_TRUE(lock);
  EXPECT_NE(took_over.find("no heartbeat"), std::string::npos) << took_over;
}
