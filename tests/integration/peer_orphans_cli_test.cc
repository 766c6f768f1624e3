// `sparetime peers --orphans` and `--purge HOST` on a peer (issue 21 part
// 4): the real CLI over a real LDIF directory and a real peer store in the
// agent's state directory. Only owners gone from the directory are listed
// and purged; a purge of an owner still in the directory, of one nothing is
// held for, or of a bad name is refused and deletes nothing.
#include <gtest/gtest.h>

#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "sparetime/peerstore/peer_store.h"
#include "testutil/agent_process.h"
#include "testutil/testutil.h"

namespace sparetime::testing {
namespace {

using nlohmann::json;

class PeerOrphansCli : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteExampleDirectory(ldif_, false);
    config_ = WriteAgentConfig(dir_.path(), "alpha", ldif_, "127.0.0.1:0");
    auto store = peerstore::PeerStore::Open(held_, {1 << 30, 0});
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto put = [&](const std::string& owner, uint64_t first, uint64_t n) {
      for (uint64_t i = first; i < first + n; ++i) {
        std::vector<std::byte> b = RandomBytes(1000, i);
        ASSERT_TRUE((*store)->Put(owner, TestChunkId(i), b, HashBlob(b)).ok());
      }
      ASSERT_TRUE((*store)->Flush(owner).ok());
    };
    put("gamma", 0, 3);  // not in the example directory
    put("beta", 10, 2);  // in it
    ASSERT_TRUE((*store)->PutKey("gamma", RandomBytes(90, 7)).ok());
  }
  CommandResult Cli(const std::string& args) {
    return RunCommand(std::string(SPARETIME_CLI) + " --config " + ShellQuote(config_) + " " + args);
  }
  TempDir dir_;
  std::string ldif_ = dir_ / "directory.ldif";
  std::string config_;
  std::string held_ = dir_ / "state-alpha/held";
};

TEST_F(PeerOrphansCli, ListsAndPurgesOnlyOwnersGoneFromTheDirectory) {
  const int64_t before = std::time(nullptr);
  CommandResult list = Cli("peers --orphans --json");
  ASSERT_EQ(list.exit_code, 0) << list.err;
  json orphans = json::parse(list.out, nullptr, false);
  ASSERT_TRUE(orphans.is_array()) << list.out;
  ASSERT_EQ(orphans.size(), 1u) << orphans.dump(2);
  EXPECT_EQ(orphans[0]["owner"], "gamma");
  EXPECT_EQ(orphans[0]["bytes"].get<uint64_t>(), 3 * 1000u + 90u);
  const int64_t since = orphans[0]["since"].get<int64_t>();
  EXPECT_GE(since, before);
  EXPECT_LE(since, std::time(nullptr));
  EXPECT_EQ(orphans[0]["deleted_after"].get<int64_t>(), since + 30 * 86400);  // the default

  CommandResult text = Cli("peers --orphans");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("gamma"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("3090"), std::string::npos) << text.out;

  CommandResult present = Cli("peers --purge beta");
  EXPECT_EQ(present.exit_code, 1) << present.out << present.err;
  EXPECT_NE(present.err.find("beta is in the directory: only the data of an owner whose entry is "
                             "gone is purged"), std::string::npos) << present.err;
  CommandResult nothing = Cli("peers --purge nobody");
  EXPECT_EQ(nothing.exit_code, 1) << nothing.err;
  EXPECT_NE(nothing.err.find("this agent holds nothing for nobody"), std::string::npos)
      << nothing.err;
  CommandResult bad = Cli("peers --purge ../beta");
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("is not a host name"), std::string::npos) << bad.err;
  EXPECT_TRUE(std::filesystem::exists(held_ + "/beta/chunks/index.db"));

  CommandResult purge = Cli("peers --purge GAMMA");
  ASSERT_EQ(purge.exit_code, 0) << purge.err;
  EXPECT_NE(purge.out.find("deleted everything held for GAMMA"), std::string::npos) << purge.out;
  EXPECT_FALSE(std::filesystem::exists(held_ + "/gamma"));
  auto store = peerstore::PeerStore::Open(held_, {1 << 30, 0});
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ((*store)->Owners(), std::vector<std::string>{"beta"});
  EXPECT_EQ((*store)->TotalUsed(), 2000u);
  for (uint64_t i = 10; i < 12; ++i) EXPECT_EQ(*(*store)->Get("beta", TestChunkId(i)), RandomBytes(1000, i));

  CommandResult none = Cli("peers --orphans");
  ASSERT_EQ(none.exit_code, 0) << none.err;
  EXPECT_NE(none.out.find("no data held for owners gone from the directory"), std::string::npos)
      << none.out;
}

}  // namespace
}  // namespace sparetime::testing
