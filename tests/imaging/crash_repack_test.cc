// Crash tests for Repack over a FaultEnv: a store (built outside the
// FaultEnv) with four packs, most of whose chunks were removed, is repacked
// with the power cut at every sync point (new pack fsyncs, the index
// transaction that moves the rows, the unlink of each old pack and its
// directory fsync), or with EIO/ENOSPC at every mutation. After the cut the
// reopened store must still hold every live chunk byte for byte, no removed
// chunk may come back, Scrub must find nothing, and a second repack must
// finish the job.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>

#include "crash_testing.h"
#include "pack_store_testing.h"
#include "sparetime/imaging/pack_store.h"
#include "testutil/fault_env.h"
#include "testutil/testutil.h"

namespace sparetime {
namespace {

using testing::CrashPoint;
using testing::FaultEnv;
using testing::TempDir;
using testing::TestBlob;
using testing::TestChunkId;

constexpr size_t kBlob = 600;
constexpr uint64_t kChunks = 12;  // three per pack: four packs

PackStoreOptions Options(Env* env) {
  PackStoreOptions o;
  o.target_pack_bytes = 2000;
  o.env = env;
  return o;
}

bool Live(uint64_t n) { return n % 3 == 0; }  // two of three removed: every pack mostly dead

class CrashRepackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The starting store, built once and copied before every run.
    auto store = testing::MustCreate(seed(), Options(Env::Default()));
    ASSERT_NE(store, nullptr);
    for (uint64_t n = 0; n < kChunks; ++n) testing::MustPut(*store, n, kBlob);
    ASSERT_TRUE(store->Flush().ok());
    std::vector<ChunkId> dead;
    for (uint64_t n = 0; n < kChunks; ++n)
      if (!Live(n)) dead.push_back(TestChunkId(n));
    ASSERT_TRUE(store->Remove(dead).ok());
    ASSERT_EQ(store->Stats().packs, 4u);
  }

  std::string seed() const { return tmp_ / "seed"; }
  std::string dir() const { return tmp_ / "store"; }

  void Reset() {
    std::filesystem::remove_all(dir());
    std::filesystem::copy(seed(), dir(), std::filesystem::copy_options::recursive);
  }

  void Run() {
    auto store = PackStore::Open(dir(), Options(&env_));
    if (!store.ok()) {
      result_ = store.status();
      return;
    }
    Result<RepackReport> r = (*store)->Repack(0.9);
    // A full disk stops the repack cleanly: OK, with `stopped` saying why.
    result_ = r.ok() ? r->stopped : r.status();
    if (r.ok()) report_ = *r;
  }

  void CheckReopened() {
    auto store = testing::MustOpen(dir(), Options(Env::Default()));
    ASSERT_NE(store, nullptr);
    for (uint64_t n = 0; n < kChunks; ++n) {
      if (Live(n)) {
        testing::ExpectChunk(*store, n, kBlob);
      } else {
        EXPECT_FALSE(*store->Contains(TestChunkId(n))) << "removed chunk " << n << " came back";
      }
    }
    Result<std::vector<StoredChunk>> listed = store->ListStored();
    ASSERT_TRUE(listed.ok());
    EXPECT_EQ(listed->size(), kChunks / 3);
    uint64_t bad = 0;
    ASSERT_TRUE(store->Scrub([&](const ChunkId&, const Status&) { ++bad; }).ok());
    EXPECT_EQ(bad, 0u);
    // A second repack finishes what the interrupted one started.
    Result<RepackReport> again = store->Repack(0.9);
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    for (uint64_t n = 0; n < kChunks; ++n)
      if (Live(n)) testing::ExpectChunk(*store, n, kBlob);
    EXPECT_LE(store->Stats().packs, 2u);
  }

  TempDir tmp_;
  FaultEnv env_;
  Status result_;
  RepackReport report_;
};

TEST_F(CrashRepackTest, PowerCutAtEverySyncPointKeepsEveryLiveChunk) {
  const uint64_t points = testing::CrashAtEverySyncPoint(
      env_, [&] { Reset(); }, [&] { Run(); },
      [&](const CrashPoint& p) {
        if (p.k == p.total) {
          ASSERT_TRUE(result_.ok()) << result_.ToString();
          EXPECT_EQ(report_.packs_rewritten, 4u);
          EXPECT_EQ(report_.chunks_moved, kChunks / 3);
        }
        CheckReopened();
      });
  // Per old pack: new-pack syncs or the move's WAL fsync, and the unlink's dir fsync.
  EXPECT_GE(points, 12u);
}

TEST_F(CrashRepackTest, EioAndEnospcAtEveryMutationSurfaceAndStayConsistent) {
  uint64_t surfaced = 0;
  const uint64_t mutations = testing::FailEveryMutation(
      env_, [&] { Reset(); }, [&] { Run(); },
      [&](const CrashPoint& p) {
        if (!result_.ok()) {
          ++surfaced;
          EXPECT_EQ(result_.code(), testing::CodeFor(p.error)) << result_.ToString();
        }
        CheckReopened();
      });
  EXPECT_GE(mutations, 12u);
  EXPECT_GT(surfaced, mutations / 2);
  std::cout << "repack: " << mutations << " mutations, " << surfaced << " faults surfaced\n";
}

}  // namespace
}  // namespace sparetime
