// The policy's sparetimeChunkSize and sparetimeCompressionLevel: applied at
// init of backups on peers (InitConfig), a differing chunk size later is a
// warning saying what to do (PolicyWarnings), and new chunks on peers use
// the policy's compression level (AgentPeerOptions -> zstd_level).
#include <gtest/gtest.h>

#include "sparetime/directory/policy.h"
#include "sparetime/ops/agent_peers.h"
#include "sparetime/ops/backups.h"

namespace sparetime::ops {
namespace {

TEST(PolicySettings, InitTakesThePolicysChunkSizeAndLevelUnlessGiven) {
  directory::EffectivePolicy policy;
  policy.chunk_size = 256 << 10;
  policy.compression_level = 9;
  RepositoryConfig from_policy = InitConfig({}, &policy);
  EXPECT_EQ(from_policy.chunk_size, 256u << 10);
  EXPECT_EQ(from_policy.zstd_level, 9);

  RepositoryConfig given = InitConfig({.chunk_size = 65536, .zstd_level = 0}, &policy);
  EXPECT_EQ(given.chunk_size, 65536u);
  EXPECT_EQ(given.zstd_level, 0);

  // A local repository has no policy: the built-in defaults.
  RepositoryConfig local = InitConfig({}, nullptr);
  EXPECT_EQ(local.chunk_size, 0u) << "0: the repository's kDefaultChunkSize";
  EXPECT_EQ(local.zstd_level, CodecOptions::kDefaultZstdLevel);
}

TEST(PolicySettings, ADifferingChunkSizeWarnsAndSaysWhatToDo) {
  directory::EffectivePolicy policy;
  policy.chunk_size = 1 << 20;
  RepositoryConfig config;
  config.chunk_size = 1 << 20;
  config.zstd_level = 3;
  EXPECT_TRUE(PolicyWarnings(policy, config).empty());
  policy.compression_level = 12;  // follows the policy for new chunks: no warning
  EXPECT_TRUE(PolicyWarnings(policy, config).empty());

  policy.chunk_size = 4 << 20;
  std::vector<Warning> w = PolicyWarnings(policy, config);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].kind, Warning::Kind::kPolicyDiffers);
  const std::string text = WarningText(w[0]);
  EXPECT_NE(text.find("4194304"), std::string::npos) << text;
  EXPECT_NE(text.find("keep 1048576"), std::string::npos) << text;
  EXPECT_NE(text.find("sparetime init"), std::string::npos) << text;
  EXPECT_FALSE(NeedsRepair(w)) << "a policy difference is no work for repair";
}

TEST(PolicySettings, NewChunksOnPeersUseThePolicysCompressionLevel) {
  config::AgentConfig config;
  config.name = "alpha";
  config.state_dir = "/nonexistent";
  directory::DirectoryView view;  // no policy entries: the built-in policy
  replication::PeerRepositoryOptions o =
      AgentPeerOptions(config, view, nullptr, "", std::chrono::system_clock::now(), {});
  ASSERT_TRUE(o.zstd_level.has_value());
  EXPECT_EQ(*o.zstd_level, directory::EffectivePolicy{}.compression_level);
  EXPECT_EQ(o.self_name, "alpha");
  EXPECT_TRUE(o.peers.empty());
}

}  // namespace
}  // namespace sparetime::ops
