// `init --id-hash` through the real `sparetime` binary: each chunk-id
// function backs up and restores byte for byte and dedups; init, the config
// and `snapshots` say which one is in use; the stored chunks are named by
// exactly that function (recomputed here from the unlocked key, with the
// other function as the counter-check); a repository in the format written
// before HMAC ids existed (config.json without "id_hash", version 1 — the
// exact bytes the old serialiser wrote) keeps working as BLAKE2b; and a bad
// --id-hash is refused without creating anything.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "sparetime/base/fd.h"
#include "sparetime/imaging/codec.h"
#include "sparetime/imaging/key_file.h"
#include "sparetime/imaging/keys.h"
#include "sparetime/imaging/pack_store.h"
#include "sparetime/imaging/repository.h"
#include "testutil/cli_runner.h"
#include "testutil/testutil.h"

namespace sparetime::testing {
namespace {

constexpr size_t kChunk = 65536;
constexpr size_t kChunks = 48;
constexpr char kPassphrase[] = "id hash test";

SecretBuffer Pass() {
  const std::string s = kPassphrase;
  SecretBuffer b(s.size());
  std::memcpy(b.data(), s.data(), s.size());
  return b;
}

// 48 chunks of 64 KiB: random ones, two zero chunks (holes) and a repeat
// (deduplicated within the image).
std::vector<std::byte> Image() {
  std::vector<std::byte> img = RandomBytes(kChunks * kChunk, 20);
  std::fill(img.begin() + 5 * kChunk, img.begin() + 7 * kChunk, std::byte{0});
  std::copy(img.begin(), img.begin() + kChunk, img.begin() + 9 * kChunk);
  return img;
}

class CliIdHash : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(InitCrypto().ok());
    image_ = Image();
    WriteFileOrDie(tmp_ / "disk.img", image_);
  }

  // Backs up disk.img, checks the new/hole counts, restores, compares.
  void RoundTrip(const CliRunner& cli) {
    nlohmann::json s1 = cli.Backup(tmp_ / "disk.img");
    ASSERT_TRUE(s1.contains("stats")) << s1.dump();
    EXPECT_EQ(s1["stats"]["chunks"], kChunks);
    EXPECT_EQ(s1["stats"]["holes"], 2u);
    EXPECT_EQ(s1["stats"]["new_chunks"], kChunks - 3);  // two holes, one repeat
    nlohmann::json s2 = cli.Backup(tmp_ / "disk.img");
    EXPECT_EQ(s2["stats"]["new_chunks"], 0u) << "the same image again stores nothing";
    CommandResult r = cli.Run("restore " + s1["id"].get<std::string>() + " --to " +
                              tmp_ / "restored.img");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(SameBytes(tmp_ / "disk.img", tmp_ / "restored.img", image_.size()));
    (void)RunCommand("rm -f " + tmp_ / "restored.img");
  }

  // Every non-zero chunk is stored under `want`'s id and none under the
  // other function's: ids recomputed from the unlocked key, not asked of
  // the repository.
  void ChunksAreNamedBy(const std::string& repo, IdHash want) {
    Result<std::string> key_text = ReadFileToString(Repository::KeyFilePath(repo));
    ASSERT_TRUE(key_text.ok());
    Result<KeyFile> key_file = KeyFile::FromJson(*key_text);
    ASSERT_TRUE(key_file.ok()) << key_file.status().ToString();
    Result<UnlockedKey> unlocked = UnlockKeyFile(*key_file, Pass(), nullptr);
    ASSERT_TRUE(unlocked.ok()) << unlocked.status().ToString();
    auto keys = KeySet::Derive(unlocked->master);
    const IdHash other = want == IdHash::kBlake2b ? IdHash::kHmacSha256 : IdHash::kBlake2b;
    Codec right(keys, {.id_hash = want}), wrong(keys, {.id_hash = other});
    Result<std::unique_ptr<Repository>> opened = Repository::Open(repo, Pass());
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    EXPECT_EQ((*opened)->config().id_hash, want);
    size_t found = 0;
    for (size_t i = 0; i < kChunks; ++i) {
      if (i == 5 || i == 6) continue;  // holes
      auto chunk = std::span(image_).subspan(i * kChunk, kChunk);
      Result<bool> has = (*opened)->store().Contains(right.Id(chunk));
      ASSERT_TRUE(has.ok());
      found += *has;
      Result<bool> has_other = (*opened)->store().Contains(wrong.Id(chunk));
      ASSERT_TRUE(has_other.ok());
      EXPECT_FALSE(*has_other) << "chunk " << i;
    }
    EXPECT_EQ(found, kChunks - 2);
  }

  TempDir tmp_;
  std::vector<std::byte> image_;
};

TEST_F(CliIdHash, EachFunctionRoundTripsAndIsShown) {
  for (const std::string name : {"blake2b", "hmac-sha256"}) {
    SCOPED_TRACE(name);
    const std::string repo = tmp_ / ("repo-" + name);
    CliRunner cli(repo, kPassphrase);
    CommandResult init = cli.Run("init --kdf min --chunk-size 65536 --id-hash " + name);
    ASSERT_EQ(init.exit_code, 0) << init.err;
    EXPECT_NE(init.out.find("\nchunk ids: " + name + "\n"), std::string::npos) << init.out;
    Result<std::string> config = ReadFileToString(repo + "/config.json");
    ASSERT_TRUE(config.ok());
    EXPECT_NE(config->find("\"id_hash\": \"" + name + "\""), std::string::npos) << *config;
    EXPECT_NE(config->find(name == "blake2b" ? "\"version\": 1" : "\"version\": 2"),
              std::string::npos)
        << *config;
    RoundTrip(cli);
    CommandResult list = cli.Run("snapshots");
    ASSERT_EQ(list.exit_code, 0) << list.err;
    EXPECT_NE(list.out.find("\nchunk ids: " + name + "\n"), std::string::npos) << list.out;
    ChunksAreNamedBy(repo, name == "blake2b" ? IdHash::kBlake2b : IdHash::kHmacSha256);
  }
}

TEST_F(CliIdHash, AutoFollowsTheCpuAndSaysSo) {
  CliRunner cli(tmp_ / "repo", kPassphrase);
  CommandResult init = cli.Run("--json init --kdf min");
  ASSERT_EQ(init.exit_code, 0) << init.err;
  const std::string want(IdHashName(AutoIdHash()));
  EXPECT_EQ(nlohmann::json::parse(init.out)["id_hash"], want);
  Result<std::string> config = ReadFileToString(tmp_ / "repo/config.json");
  ASSERT_TRUE(config.ok());
  EXPECT_NE(config->find("\"id_hash\": \"" + want + "\""), std::string::npos) << *config;
}

// config.json byte for byte as sparetime wrote it before this field existed
// (git show 3a4a210:imaging/src/repository_config.cc: nlohmann's dump(2) of
// format, version, chunk_size, zstd_level, keys sorted).
TEST_F(CliIdHash, ARepositoryInTheOldFormatKeepsWorkingAsBlake2b) {
  const std::string repo = tmp_ / "old";
  CliRunner cli(repo, kPassphrase);
  cli.Init("--chunk-size 65536 --id-hash blake2b");
  const std::string old_config =
      "{\n  \"chunk_size\": 65536,\n  \"format\": \"sparetime-repository\",\n"
      "  \"version\": 1,\n  \"zstd_level\": 3\n}\n";
  ASSERT_TRUE(WriteFileAtomic(repo + "/config.json", old_config, 0600).ok());
  RoundTrip(cli);
  CommandResult list = cli.Run("snapshots");
  EXPECT_NE(list.out.find("\nchunk ids: blake2b\n"), std::string::npos) << list.out;
  ChunksAreNamedBy(repo, IdHash::kBlake2b);
  // Read, never rewritten.
  EXPECT_EQ(ReadFileToString(repo + "/config.json").value(), old_config);
}

TEST_F(CliIdHash, AnUnknownFunctionIsRefusedAndNothingIsCreated) {
  CliRunner cli(tmp_ / "repo", kPassphrase);
  CommandResult r = cli.Run("init --kdf min --id-hash sha1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--id-hash"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("hmac-sha256"), std::string::npos) << r.err;
  struct stat sb;
  EXPECT_NE(::stat((tmp_ / "repo").c_str(), &sb), 0) << "init made the repository anyway";
}

}  // namespace
}  // namespace sparetime::testing
