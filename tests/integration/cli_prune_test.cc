// `sparetime prune` through the real binary on a local repository with a
// file device: dry run changes nothing, --keep-last forgets the oldest and
// frees its unshared chunks, the kept snapshots still restore bit for bit
// and verify, the built-in policy applies without flags, and JSON and text
// output name each verdict with its reasons.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "testutil/cli_runner.h"
#include "testutil/testutil.h"

namespace sparetime::testing {
namespace {

constexpr size_t kChunk = 64 << 10;
constexpr size_t kChunks = 64;

class CliPrune : public ::testing::Test {
 protected:
  void SetUp() override {
    cli_.Init("--chunk-size 65536");
    // Three versions of one 4 MiB disk, each changing a quarter of it.
    std::vector<std::byte> disk = RandomBytes(kChunks * kChunk, 1);
    for (int v = 0; v < 3; ++v) {
      if (v > 0) {
        std::vector<std::byte> fresh = RandomBytes(kChunks / 4 * kChunk, 10 + v);
        std::memcpy(disk.data() + v * (kChunks / 4) * kChunk, fresh.data(), fresh.size());
      }
      versions_.push_back(disk);
      WriteFileOrDie(tmp_ / "disk.img", disk);
      ids_.push_back(cli_.Backup(tmp_ / "disk.img", "--label v" + std::to_string(v))["id"]);
    }
  }

  nlohmann::json Json(const std::string& args) {
    CommandResult r = cli_.Run("--json " + args);
    EXPECT_EQ(r.exit_code, 0) << args << "\n" << r.err;
    return nlohmann::json::parse(r.out, nullptr, false);
  }

  TempDir tmp_;
  CliRunner cli_{tmp_ / "repo", "prune passphrase"};
  std::vector<std::vector<std::byte>> versions_;
  std::vector<std::string> ids_;
};

TEST_F(CliPrune, DryRunThenKeepLastFreesTheOldestAndTheRestRestores) {
  nlohmann::json dry = Json("prune --keep-last 1 --dry-run");
  ASSERT_FALSE(dry.is_discarded());
  EXPECT_TRUE(dry["dry_run"]);
  EXPECT_EQ(dry["policy"]["source"], "command line");
  EXPECT_EQ(dry["snapshots_forgotten"], 2);
  EXPECT_EQ(dry["snapshots"][0]["id"], ids_[2]);
  EXPECT_EQ(dry["snapshots"][0]["reasons"], nlohmann::json::array({"last 1"}));
  EXPECT_FALSE(dry["snapshots"][2]["keep"]);
  EXPECT_GT(dry["chunks_removed"].get<uint64_t>(), 0u);
  EXPECT_EQ(Json("snapshots").size(), 3u);

  nlohmann::json done = Json("prune --keep-last 2");
  EXPECT_FALSE(done["dry_run"]);
  EXPECT_EQ(done["snapshots_forgotten"], 1);
  // v0's unshared chunks: the quarter v1 replaced, plus v0's manifest.
  EXPECT_EQ(done["chunks_removed"], kChunks / 4 + 2);
  EXPECT_GT(done["bytes_removed"].get<uint64_t>(), kChunks / 4 * kChunk);
  nlohmann::json left = Json("snapshots");
  ASSERT_EQ(left.size(), 2u);
  for (int v : {1, 2}) {
    const std::string out = tmp_ / ("restored-v" + std::to_string(v));
    CommandResult r = cli_.Run("restore " + ids_[v] + " --to " + out);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(ReadFileOrDie(out), versions_[v]);
  }
  CommandResult verify = cli_.Run("verify");
  EXPECT_EQ(verify.exit_code, 0) << verify.err;
}

TEST_F(CliPrune, WithoutFlagsTheBuiltInPolicyAppliesAndTextNamesTheVerdicts) {
  CommandResult r = cli_.Run("prune");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("last 3, daily 7, weekly 4, monthly 6 (built-in default)"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("3 snapshot(s) kept, 0 were forgotten"), std::string::npos) << r.out;

  r = cli_.Run("prune --keep-daily 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("keep    " + ids_[2]), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("daily "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("forget  " + ids_[0]), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2 were forgotten"), std::string::npos) << r.out;
  EXPECT_EQ(Json("snapshots").size(), 1u);
}

TEST_F(CliPrune, BadFlagsAreUsageErrors) {
  EXPECT_EQ(cli_.Run("prune --keep-last -1").exit_code, 2);
  EXPECT_EQ(cli_.Run("prune --keep-last many").exit_code, 2);
}

}  // namespace
}  // namespace sparetime::testing
