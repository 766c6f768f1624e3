// Crash test for Repository::Init: config.json is written last, so a power
// cut at any sync point of an init leaves either a complete repository
// (when Init had returned OK) or a directory that Open refuses as "not a
// sparetime repository" — never one that opens half made (a key without a
// store, a store without a catalog) or opens with another key.
#include <gtest/gtest.h>

#include <filesystem>

#include "crash_testing.h"
#include "keys_testing.h"
#include "sparetime/imaging/repository.h"
#include "testutil/fault_env.h"
#include "testutil/testutil.h"

namespace sparetime {
namespace {

using testing::CrashPoint;
using testing::FaultEnv;
using testing::Secret;
using testing::TempDir;

TEST(CrashRepositoryTest, InitCutAtEverySyncPointLeavesAWholeRepositoryOrNone) {
  TempDir tmp;
  const std::string dir = tmp / "repo";
  FaultEnv env;
  const SecretBuffer pass = Secret("correct horse");
  Status init;
  uint64_t complete = 0, refused = 0;
  auto reset = [&] { std::filesystem::remove_all(dir); };
  auto run = [&] {
    init = Repository::Init(dir, pass, RepositoryConfig{.chunk_size = 64 << 10},
                            KdfLimits::FastForTests(), nullptr, &env);
  };
  auto check = [&](const CrashPoint&) {
    Result<std::unique_ptr<Repository>> repo = Repository::Open(dir, pass);
    if (repo.ok()) {
      ++complete;
      EXPECT_EQ((*repo)->config().chunk_size, 64u << 10);
      Result<std::vector<Snapshot>> snaps = (*repo)->catalog().ListSnapshots();
      ASSERT_TRUE(snaps.ok()) << snaps.status().message();
      EXPECT_TRUE(snaps->empty());
      EXPECT_EQ((*repo)->store().Stats().chunks, 0u);
      return;
    }
    ++refused;
    EXPECT_FALSE(init.ok()) << "Init returned OK but the repository does not open: "
                            << repo.status().message();
    // Either the directory is gone or it holds no config.json: both say to init.
    EXPECT_EQ(repo.status().code(), ErrorCode::kNotFound) << repo.status().message();
    EXPECT_NE(repo.status().message().find("init`"), std::string::npos)
        << repo.status().message();
  };
  const uint64_t points = testing::CrashAtEverySyncPoint(env, reset, run, check);
  // Init syncs the key, the store's index, the catalog and the config at least.
  EXPECT_GE(points, 4u);
  if (std::getenv("SPARETIME_CRASH_POINT") == nullptr) {
    EXPECT_EQ(complete + refused, points + 1);
    EXPECT_GE(refused, 1u);   // a cut before the config's sync leaves none
    EXPECT_GE(complete, 1u);  // a cut after the last sync leaves a whole one
  }
}

}  // namespace
}  // namespace sparetime
