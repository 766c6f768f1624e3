// Repack on a full disk (issue 26): wholly dead packs go first (deleting
// needs no room), and a rewrite that meets ENOSPC stops cleanly — the new
// packs cut back to what the index holds, what was freed kept, the report
// OK with `stopped` saying why. On a real loop-mounted ext4 filled to the
// last block, and with ENOSPC injected through the FaultEnv.
//
// The layout: four packs of three chunks; pack 1 keeps one live chunk,
// packs 2 and 3 none, pack 4 one. Before issue 26 repack went in pack order
// and pack 1's rewrite met ENOSPC first: nothing was freed.
#include <gtest/gtest.h>
#include <sys/statvfs.h>

#include <filesystem>

#include "pack_store_testing.h"
#include "sparetime/imaging/pack_store.h"
#include "testutil/fault_env.h"
#include "testutil/testutil.h"

namespace sparetime {
namespace {

using testing::FaultEnv;
using testing::FaultRule;
using testing::TempDir;
using testing::TestChunkId;

constexpr uint64_t kChunks = 12;  // three per pack
bool Live(uint64_t n) { return n == 0 || n == 9; }

PackStoreOptions Options(size_t blob, Env* env = Env::Default()) {
  PackStoreOptions o;
  o.target_pack_bytes = 3 * (blob + testing::kRec) + testing::kHeader;
  o.env = env;
  return o;
}

// Builds the layout in `dir`; returns the pack files' sizes.
void BuildLayout(const std::string& dir, size_t blob) {
  auto store = testing::MustCreate(dir, Options(blob));
  ASSERT_NE(store, nullptr);
  for (uint64_t n = 0; n < kChunks; ++n) testing::MustPut(*store, n, blob);
  ASSERT_TRUE(store->Flush().ok());
  std::vector<ChunkId> dead;
  for (uint64_t n = 0; n < kChunks; ++n)
    if (!Live(n)) dead.push_back(TestChunkId(n));
  ASSERT_TRUE(store->Remove(dead).ok());
  ASSERT_EQ(store->Stats().packs, 4u);
  ASSERT_EQ(testing::PackFiles(dir).size(), 4u);
}

void ExpectLiveChunksOnly(PackStore& store, size_t blob) {
  for (uint64_t n = 0; n < kChunks; ++n) {
    if (Live(n)) {
      testing::ExpectChunk(store, n, blob);
    } else {
      EXPECT_FALSE(*store.Contains(TestChunkId(n))) << "removed chunk " << n << " came back";
    }
  }
  uint64_t bad = 0;
  ASSERT_TRUE(store.Scrub([&](const ChunkId&, const Status&) { ++bad; }).ok());
  EXPECT_EQ(bad, 0u);
}

uint64_t FreeBytes(const std::string& dir) {
  struct statvfs v {};
  EXPECT_EQ(::statvfs(dir.c_str(), &v), 0);
  return static_cast<uint64_t>(v.f_bavail) * v.f_frsize;
}

TEST(RepackFullDisk, NoRoomAtAllStillDeletesTheDeadPacksAndStopsCleanly) {
  TempDir tmp;
  constexpr size_t kBlob = 600;
  BuildLayout(tmp / "store", kBlob);
  FaultEnv env;
  // Every write to a pack fails: not even a new pack's header fits.
  env.SetFault({.ops = testing::kOpWrite, .path_contains = "/packs/", .nth = 0, .error = ENOSPC,
                .sticky = true});
  {
    auto store = testing::MustOpen(tmp / "store", Options(kBlob, &env));
    ASSERT_NE(store, nullptr);
    Result<RepackReport> r = store->Repack(0.5);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->packs_deleted, 2u);
    EXPECT_EQ(r->packs_rewritten, 0u);
    EXPECT_EQ(r->bytes_freed, 2 * (3 * (kBlob + testing::kRec) + testing::kHeader));
    EXPECT_EQ(r->stopped.code(), ErrorCode::kNoSpace) << r->stopped.ToString();
    EXPECT_NE(r->ToString().find("run `sparetime prune` again"), std::string::npos)
        << r->ToString();
    EXPECT_EQ(testing::PackFiles(tmp / "store").size(), 2u) << "no partial pack is left";
    ExpectLiveChunksOnly(*store, kBlob);
  }
  env.ClearFault();
  auto store = testing::MustOpen(tmp / "store", Options(kBlob, &env));
  ASSERT_NE(store, nullptr);
  Result<RepackReport> again = store->Repack(0.5);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(again->stopped.ok());
  EXPECT_EQ(again->packs_rewritten, 2u);
  EXPECT_EQ(testing::PackFiles(tmp / "store").size(), 1u);
  ExpectLiveChunksOnly(*store, kBlob);
}

TEST(RepackFullDisk, EnospcMidRewriteKeepsTheFinishedPackAndCutsThePartialOne) {
  TempDir tmp;
  constexpr size_t kBlob = 600;
  BuildLayout(tmp / "store", kBlob);
  FaultEnv env;
  // Pack writes: the new pack's header (0), chunk 0's record (1), then
  // chunk 9's record (2) fails.
  env.SetFault({.ops = testing::kOpWrite, .path_contains = "/packs/", .nth = 2, .error = ENOSPC,
                .sticky = true});
  auto store = testing::MustOpen(tmp / "store", Options(kBlob, &env));
  ASSERT_NE(store, nullptr);
  Result<RepackReport> r = store->Repack(0.5);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->packs_deleted, 2u);
  EXPECT_EQ(r->packs_rewritten, 1u);
  EXPECT_EQ(r->chunks_moved, 1u);
  EXPECT_EQ(r->stopped.code(), ErrorCode::kNoSpace);
  const std::vector<std::string> packs = testing::PackFiles(tmp / "store");
  ASSERT_EQ(packs.size(), 2u) << "pack 4 and the new one";
  EXPECT_EQ(std::filesystem::file_size(packs.back()), testing::kHeader + kBlob + testing::kRec)
      << "the new pack holds exactly the record the index points at";
  ExpectLiveChunksOnly(*store, kBlob);
}

// A real ext4 on a loop device, filled to the last block.
class RepackOnFullExt4 : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::IsRoot()) GTEST_SKIP() << "needs root for a loop mount";
    image_ = tmp_ / "fs.img";
    mnt_ = tmp_ / "mnt";
    ASSERT_EQ(testing::RunCommand("truncate -s 24M " + image_ + " && mkfs.ext4 -q -m 0 " +
                                  image_ + " && mkdir " + mnt_ + " && mount -o loop " + image_ +
                                  " " + mnt_)
                  .exit_code,
              0);
    mounted_ = true;
  }
  void TearDown() override {
    if (mounted_) (void)testing::RunCommand("umount " + mnt_);
  }
  void FillUp() {
    (void)testing::RunCommand("dd if=/dev/zero of=" + mnt_ + "/fill1 bs=1M 2>/dev/null; "
                              "dd if=/dev/zero of=" + mnt_ + "/fill2 bs=4k 2>/dev/null; sync");
    ASSERT_LT(FreeBytes(mnt_), 8192u) << "the filesystem is full";
  }

  TempDir tmp_;
  std::string image_, mnt_;
  bool mounted_ = false;
};

TEST_F(RepackOnFullExt4, DeadPacksGiveTheRoomTheRewriteNeeds) {
  constexpr size_t kBlob = 256 << 10;
  const std::string dir = mnt_ + "/store";
  BuildLayout(dir, kBlob);
  auto store = testing::MustOpen(dir, Options(kBlob));  // as prune does: open, then repack
  ASSERT_NE(store, nullptr);
  FillUp();
  const uint64_t before = FreeBytes(mnt_);
  Result<RepackReport> r = store->Repack(0.5);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->stopped.ok()) << r->stopped.ToString();
  EXPECT_EQ(r->packs_deleted, 2u);
  EXPECT_EQ(r->packs_rewritten, 2u);
  EXPECT_EQ(r->chunks_moved, 2u);
  EXPECT_EQ(testing::PackFiles(dir).size(), 1u);
  EXPECT_GT(FreeBytes(mnt_), before + (2u << 20)) << "two dead packs and 2 x 2 dead records";
  ExpectLiveChunksOnly(*store, kBlob);
}

TEST_F(RepackOnFullExt4, NoDeadPackAndNoRoomStopsCleanlyAndLeavesNothingBehind) {
  constexpr size_t kBlob = 256 << 10;
  const std::string dir = mnt_ + "/store";
  BuildLayout(dir, kBlob);
  {
    // Packs 2 and 3 deleted by a first repack with room; then the disk fills.
    auto store = testing::MustOpen(dir, Options(kBlob));
    ASSERT_NE(store, nullptr);
    Result<RepackReport> r = store->Repack(0.0);  // only wholly dead packs qualify
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->packs_deleted, 2u);
    EXPECT_EQ(r->packs_rewritten, 0u);
  }
  auto store = testing::MustOpen(dir, Options(kBlob));
  ASSERT_NE(store, nullptr);
  FillUp();
  const std::vector<std::string> packs = testing::PackFiles(dir);
  ASSERT_EQ(packs.size(), 2u);
  std::vector<uint64_t> sizes;
  for (const std::string& p : packs) sizes.push_back(std::filesystem::file_size(p));
  for (int run = 0; run < 3; ++run) {  // each retry stops cleanly, none eats the last bytes
    const uint64_t before = FreeBytes(mnt_);
    Result<RepackReport> r = store->Repack(0.5);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->stopped.code(), ErrorCode::kNoSpace) << "run " << run;
    EXPECT_EQ(r->packs_rewritten, 0u);
    EXPECT_EQ(testing::PackFiles(dir), packs) << "run " << run;
    for (size_t i = 0; i < packs.size(); ++i) {
      EXPECT_EQ(std::filesystem::file_size(packs[i]), sizes[i]) << "run " << run;
    }
    // index.db's WAL may take a block for the pack row added and dropped.
    EXPECT_GE(FreeBytes(mnt_) + 16384, before) << "run " << run;
    ExpectLiveChunksOnly(*store, kBlob);
  }
}

}  // namespace
}  // namespace sparetime
