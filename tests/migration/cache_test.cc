// MigrationCache: a source's cache is created on first use, kept while under
// its size limit, dropped (deleted from disk) by Trim once over it, and
// DropStale drops caches not written for longer than max_age while keeping
// recent ones.
#include "sparetime/migration/cache.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "testutil/testutil.h"

namespace sparetime::migration {
namespace {

namespace fs = std::filesystem;
using sparetime::testing::TempDir;

void PutChunk(PackStore& store, uint8_t seed, size_t bytes) {
  ChunkId id;
  id.bytes[0] = std::byte{seed};
  id.bytes[1] = std::byte{1};
  ASSERT_TRUE(store.Put(id, sparetime::testing::RandomBytes(bytes, seed)).ok());
  ASSERT_TRUE(store.Flush().ok());
}

TEST(MigrationCacheTest, TrimDropsASourceOverItsLimitOnly) {
  TempDir tmp;
  MigrationCache caches(tmp.path() + "/migration", CacheLimits{.max_bytes = 100000, .max_age = std::chrono::hours(1)});
  auto alpha = caches.Open("alpha");
  ASSERT_TRUE(alpha.ok()) << alpha.error().ToString();
  auto beta = caches.Open("beta");
  ASSERT_TRUE(beta.ok());
  PutChunk(**alpha, 1, 60000);
  PutChunk(**beta, 2, 60000);
  auto trimmed = caches.Trim("alpha");
  ASSERT_TRUE(trimmed.ok()) << trimmed.error().ToString();
  EXPECT_FALSE(*trimmed);  // 60 kB <= 100 kB: kept
  PutChunk(**alpha, 3, 60000);
  trimmed = caches.Trim("alpha");
  ASSERT_TRUE(trimmed.ok());
  EXPECT_TRUE(*trimmed);
  EXPECT_FALSE(fs::exists(tmp.path() + "/migration/from-alpha"));
  EXPECT_TRUE(fs::exists(tmp.path() + "/migration/from-beta"));
  // The next migration starts an empty cache.
  auto again = caches.Open("alpha");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->Stats().chunks, 0u);
}

TEST(MigrationCacheTest, DropStaleDropsOnlyCachesUnusedForMaxAge) {
  TempDir tmp;
  const std::string dir = tmp.path() + "/migration";
  {
    MigrationCache caches(dir);
    for (const char* source : {"old", "new"}) {
      auto c = caches.Open(source);
      ASSERT_TRUE(c.ok());
      PutChunk(**c, 4, 1000);
    }
  }
  const auto long_ago = fs::file_time_type::clock::now() - std::chrono::hours(24 * 40);
  for (const auto& e : fs::recursive_directory_iterator(dir + "/from-old")) fs::last_write_time(e.path(), long_ago);
  MigrationCache caches(dir, CacheLimits{.max_bytes = 1ull << 30, .max_age = std::chrono::hours(24 * 30)});
  auto dropped = caches.DropStale();
  ASSERT_TRUE(dropped.ok()) << dropped.error().ToString();
  EXPECT_EQ(*dropped, std::vector<std::string>{"old"});
  EXPECT_FALSE(fs::exists(dir + "/from-old"));
  EXPECT_TRUE(fs::exists(dir + "/from-new"));
  // No migration directory at all: nothing to do.
  MigrationCache none(tmp.path() + "/absent");
  auto nothing = none.DropStale();
  ASSERT_TRUE(nothing.ok()) << nothing.error().ToString();
  EXPECT_TRUE(nothing->empty());
}

}  // namespace
}  // namespace sparetime::migration
