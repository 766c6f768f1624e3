// PeerStore lifecycle (issue 21 parts 1, 4, 5): released chunks stay
// readable until their grace is over, then Collect removes them and the
// repack gives the disk back (exact bytes); a chunk sent again while
// released is kept; roots generations are kept for the grace; departed
// owners are listed, purged only when gone from the directory, and deleted
// by Collect after their own grace; a repack never runs beside a put.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "sparetime/base/bytes.h"
#include "sparetime/peerstore/peer_store.h"
#include "testutil/fake_clock.h"
#include "testutil/testutil.h"

namespace sparetime::peerstore {
namespace {

using std::chrono::hours;
constexpr int64_t kDay = 86400;
constexpr int64_t kGrace = 7 * kDay;
constexpr int64_t kDeparted = 30 * kDay;
constexpr size_t kBlob = 10000;

std::vector<std::byte> Blob(uint64_t n) { return testing::RandomBytes(kBlob, n + 1000); }
std::vector<std::byte> Bytes(const std::string& s) {
  auto b = AsBytes(s);
  return {b.begin(), b.end()};
}

class PeerLifecycleTest : public ::testing::Test {
 protected:
  std::unique_ptr<PeerStore> Open() {
    auto s = PeerStore::Open(dir_ / "held", PeerStoreLimits{1 << 30, 0}, Env::Default(), clock_);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }
  void PutChunks(PeerStore& s, const std::string& owner, uint64_t first, uint64_t n) {
    for (uint64_t i = first; i < first + n; ++i) {
      std::vector<std::byte> b = Blob(i);
      ASSERT_TRUE(s.Put(owner, testing::TestChunkId(i), b, HashBlob(b)).ok());
    }
    ASSERT_TRUE(s.Flush(owner).ok());
  }
  std::vector<ChunkId> Ids(uint64_t first, uint64_t n) {
    std::vector<ChunkId> ids;
    for (uint64_t i = first; i < first + n; ++i) ids.push_back(testing::TestChunkId(i));
    return ids;
  }
  // Every chunk in [first, first+n) reads back byte-equal.
  void ExpectReadable(PeerStore& s, uint64_t first, uint64_t n) {
    for (uint64_t i = first; i < first + n; ++i) {
      auto got = s.Get("alpha", testing::TestChunkId(i));
      ASSERT_TRUE(got.ok()) << i << ": " << got.status().ToString();
      EXPECT_EQ(*got, Blob(i)) << i;
    }
  }
  // Bytes of alpha's pack files.
  uint64_t PackBytes() {
    uint64_t n = 0;
    for (const std::string& p : testing::PackFiles(dir_ / "held/alpha/chunks")) {
      n += std::filesystem::file_size(p);
    }
    return n;
  }
  testing::TempDir dir_;
  testing::FakeClock clock_;
};

TEST_F(PeerLifecycleTest, ReleasedChunksStayUntilTheGraceThenTheRepackFreesTheDisk) {
  auto s = Open();
  PutChunks(*s, "alpha", 0, 20);
  const uint64_t disk_full = s->DiskBytes("alpha");
  const uint64_t packs_full = PackBytes();
  EXPECT_EQ(s->Usage("alpha")->chunk_bytes, 20 * kBlob);
  EXPECT_EQ(*s->Release("alpha", Ids(0, 15)), 15u);
  // Within the grace: still held, readable, counted as released.
  OwnerUsage u = *s->Usage("alpha");
  EXPECT_EQ(u.chunks, 20u);
  EXPECT_EQ(u.chunk_bytes, 20 * kBlob);
  EXPECT_EQ(u.released_chunks, 15u);
  EXPECT_EQ(u.released_bytes, 15 * kBlob);
  // Has answers for the owner: released is not held; Get still serves.
  EXPECT_EQ(*s->Has("alpha", Ids(0, 20)),
            [] { std::vector<bool> v(20, false); std::fill(v.begin() + 15, v.end(), true); return v; }());
  ExpectReadable(*s, 0, 20);
  clock_.Advance(hours(24 * 6));
  CollectReport early = *s->Collect("alpha", kGrace, 0.5, kDeparted);
  EXPECT_EQ(early.chunks_dropped, 0u);
  EXPECT_EQ(early.chunks_still_released, 15u);
  ExpectReadable(*s, 0, 20);
  // A restart keeps the releases and their times.
  s.reset();
  s = Open();
  EXPECT_EQ(s->Usage("alpha")->released_chunks, 15u);
  clock_.Advance(hours(24));
  CollectReport r = *s->Collect("alpha", kGrace, 0.5, kDeparted);
  EXPECT_EQ(r.chunks_dropped, 15u);
  EXPECT_EQ(r.bytes_dropped, 15 * kBlob);
  EXPECT_EQ(r.chunks_still_released, 0u);
  EXPECT_EQ(r.repack.packs_rewritten + r.repack.packs_deleted, 1u);
  EXPECT_EQ(r.repack.chunks_moved, 5u);
  u = *s->Usage("alpha");
  EXPECT_EQ(u.chunks, 5u);
  EXPECT_EQ(u.chunk_bytes, 5 * kBlob);
  EXPECT_EQ(u.released_chunks, 0u);
  EXPECT_EQ(s->TotalUsed(), 5 * kBlob);
  EXPECT_EQ(*s->Has("alpha", Ids(0, 20)),
            [] { std::vector<bool> v(20, false); std::fill(v.begin() + 15, v.end(), true); return v; }());
  ExpectReadable(*s, 15, 5);
  // The pack files hold exactly the 5 live records now (docs/storage.md:
  // a 20-byte file header, 40 bytes per record header), down from 20.
  EXPECT_EQ(packs_full, 20 + 20 * (40 + kBlob));
  EXPECT_EQ(PackBytes(), 20 + 5 * (40 + kBlob));
  EXPECT_GE(disk_full - r.disk_after, 15 * (40 + kBlob));
  EXPECT_EQ(r.disk_after, s->DiskBytes("alpha"));
  // Works again after a restart (the new pack is indexed durably).
  s.reset();
  s = Open();
  ExpectReadable(*s, 15, 5);
  EXPECT_EQ(s->Usage("alpha")->chunk_bytes, 5 * kBlob);
}

TEST_F(PeerLifecycleTest, AChunkSentAgainWhileReleasedIsKept) {
  auto s = Open();
  PutChunks(*s, "alpha", 0, 4);
  ASSERT_EQ(*s->Release("alpha", Ids(0, 4)), 4u);
  // The owner's bug or a new backup meeting the same content: chunk 1 is
  // stored again within the grace.
  std::vector<std::byte> b = Blob(1);
  EXPECT_FALSE(*s->Put("alpha", testing::TestChunkId(1), b, HashBlob(b)));  // "stored"
  ASSERT_TRUE(s->Flush("alpha").ok());
  EXPECT_EQ(s->Usage("alpha")->released_chunks, 3u);
  EXPECT_EQ(s->Usage("alpha")->chunk_bytes, 4 * kBlob);  // kept, not stored twice
  EXPECT_EQ(*s->Has("alpha", Ids(0, 4)), (std::vector<bool>{false, true, false, false}));
  s.reset();
  s = Open();  // the 'K' record survives the restart
  EXPECT_EQ(s->Usage("alpha")->released_chunks, 3u);
  clock_.Advance(hours(24 * 8));
  CollectReport r = *s->Collect("alpha", kGrace, 0.5, kDeparted);
  EXPECT_EQ(r.chunks_dropped, 3u);
  EXPECT_EQ(*s->Has("alpha", Ids(0, 4)), (std::vector<bool>{false, true, false, false}));
  ExpectReadable(*s, 1, 1);
}

TEST_F(PeerLifecycleTest, ReleaseOfChunksStillInUseIsUndoneByTheNextBackupWithinGrace) {
  // The owner's bug: it releases chunks a kept snapshot still uses. Within
  // the grace every one of them still reads, so a restore works and the
  // owner's next backup (or repair) that sends them keeps them.
  auto s = Open();
  PutChunks(*s, "alpha", 0, 6);
  ASSERT_EQ(*s->Release("alpha", Ids(0, 6)), 6u);
  clock_.Advance(hours(24 * 3));
  ExpectReadable(*s, 0, 6);
  PutChunks(*s, "alpha", 0, 6);  // the re-send
  clock_.Advance(hours(24 * 30));
  CollectReport r = *s->Collect("alpha", kGrace, 0.5, kDeparted);
  EXPECT_EQ(r.chunks_dropped, 0u);
  EXPECT_EQ(r.repack.chunks_moved, 0u);
  ExpectReadable(*s, 0, 6);
}

TEST_F(PeerLifecycleTest, ADamagedReleasedCopySentAgainIsReplaced) {
  auto s = Open();
  PutChunks(*s, "alpha", 0, 1);
  ASSERT_EQ(*s->Release("alpha", Ids(0, 1)), 1u);
  std::vector<std::string> packs = testing::PackFiles(dir_ / "held/alpha/chunks");
  ASSERT_EQ(packs.size(), 1u);
  {
    std::fstream f(packs[0], std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-10, std::ios::end);
    f.put('\x5a');
  }
  std::vector<std::byte> b = Blob(0);
  // Stored anew: the held copy failed its check and is replaced.
  EXPECT_FALSE(*s->Put("alpha", testing::TestChunkId(0), b, HashBlob(b)));
  ASSERT_TRUE(s->Flush("alpha").ok());
  ExpectReadable(*s, 0, 1);
  EXPECT_EQ(s->Usage("alpha")->released_chunks, 0u);
}

TEST_F(PeerLifecycleTest, RootsGenerationsAreKeptForTheGrace) {
  auto s = Open();
  ASSERT_TRUE(s->PutRoots("alpha", 1, Bytes("one")).ok());
  clock_.Advance(hours(24));
  ASSERT_TRUE(s->PutRoots("alpha", 2, Bytes("two!")).ok());
  clock_.Advance(hours(24 * 3));
  ASSERT_TRUE(s->PutRoots("alpha", 5, Bytes("five5")).ok());
  const int64_t t0 = ToUnixSeconds(clock_.WallNow());
  std::vector<RootsGeneration> h = *s->RootsHistory("alpha");
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[0].generation, 5u);
  EXPECT_EQ(h[0].replaced_at, 0);
  EXPECT_EQ(h[0].bytes, 5u);
  EXPECT_EQ(h[1].generation, 2u);
  EXPECT_EQ(h[1].replaced_at, t0);
  EXPECT_EQ(h[2].generation, 1u);
  EXPECT_EQ(h[2].replaced_at, t0 - 3 * kDay);
  EXPECT_EQ(s->GetRootsGeneration("alpha", 1)->data, Bytes("one"));
  EXPECT_EQ(s->GetRootsGeneration("alpha", 2)->data, Bytes("two!"));
  EXPECT_EQ(s->GetRootsGeneration("alpha", 5)->data, Bytes("five5"));
  Result<Roots> missing = s->GetRootsGeneration("alpha", 3);
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(missing.status().message().find("held: 5, 2, 1"), std::string::npos)
      << missing.status().ToString();
  // Usage counts them: key-less owner, roots 8+5, history (8+8+4) + (8+8+3).
  EXPECT_EQ(s->Usage("alpha")->record_bytes, 13u + 20u + 19u);
  clock_.Advance(hours(24 * 4));  // generation 1 was replaced 7 days ago
  CollectReport r = *s->Collect("alpha", kGrace, 0.5, kDeparted);
  EXPECT_EQ(r.generations_dropped, 1u);
  h = *s->RootsHistory("alpha");
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[1].generation, 2u);
  EXPECT_EQ(s->Usage("alpha")->record_bytes, 13u + 20u);
  // Roots still only move forward.
  EXPECT_EQ(s->PutRoots("alpha", 2, Bytes("x")).code(), ErrorCode::kFailedPrecondition);
}

TEST_F(PeerLifecycleTest, DepartedOwnersAreListedPurgedOnRequestAndCollectedAfterTheirGrace) {
  auto s = Open();
  PutChunks(*s, "alpha", 0, 3);
  PutChunks(*s, "gamma", 10, 2);
  PutChunks(*s, "delta", 20, 1);
  ASSERT_TRUE(s->PutKey("gamma", Bytes("gamma's wrapped key")).ok());
  const std::set<std::string> all = {"alpha", "Gamma", "delta"};
  ASSERT_TRUE(s->NoteDirectory(all).ok());
  EXPECT_TRUE(s->Orphans().empty());
  // gamma and delta leave the directory.
  ASSERT_TRUE(s->NoteDirectory({"alpha"}).ok());
  const int64_t gone_at = ToUnixSeconds(clock_.WallNow());
  clock_.Advance(hours(24));
  ASSERT_TRUE(s->NoteDirectory({"alpha"}).ok());  // does not move "since"
  std::vector<Orphan> orphans = s->Orphans();
  ASSERT_EQ(orphans.size(), 2u);
  EXPECT_EQ(orphans[0].owner, "delta");
  EXPECT_EQ(orphans[0].bytes, kBlob);
  EXPECT_EQ(orphans[0].since, gone_at);
  EXPECT_EQ(orphans[1].owner, "gamma");
  EXPECT_EQ(orphans[1].bytes, 2 * kBlob + 19);
  // alpha is in the directory: refused, nothing deleted.
  Status refused = s->Purge("alpha", {"alpha"});
  EXPECT_EQ(refused.code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(refused.message().find("alpha is in the directory"), std::string::npos);
  EXPECT_EQ(s->Usage("alpha")->chunks, 3u);
  // delta came back meanwhile (the caller's fresh directory read has it).
  EXPECT_EQ(s->Purge("delta", {"alpha", "delta"}).code(), ErrorCode::kFailedPrecondition);
  // gamma purged early: quota freed, directory gone.
  const uint64_t total = s->TotalUsed();
  ASSERT_TRUE(s->Purge("gamma", {"alpha"}).ok());
  EXPECT_EQ(s->TotalUsed(), total - (2 * kBlob + 19));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "held/gamma"));
  EXPECT_EQ(*s->Has("gamma", Ids(10, 2)), (std::vector<bool>{false, false}));
  // A back owner's mark is cleared.
  ASSERT_TRUE(s->NoteDirectory({"alpha", "delta"}).ok());
  EXPECT_TRUE(s->Orphans().empty());
  ASSERT_TRUE(s->NoteDirectory({"alpha"}).ok());
  const int64_t delta_gone = ToUnixSeconds(clock_.WallNow());
  clock_.Advance(hours(24 * 29));
  CollectReport kept = *s->Collect("delta", kGrace, 0.5, kDeparted);
  EXPECT_FALSE(kept.purged);
  ExpectReadable(*s, 0, 3);
  clock_.Advance(hours(24));
  ASSERT_EQ(ToUnixSeconds(clock_.WallNow()) - delta_gone, kDeparted);
  CollectReport gone = *s->Collect("delta", kGrace, 0.5, kDeparted);
  EXPECT_TRUE(gone.purged);
  EXPECT_EQ(s->TotalUsed(), 3 * kBlob);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "held/delta"));
  EXPECT_EQ(s->Owners(), (std::vector<std::string>{"alpha"}));
  // A new owner of the same name starts empty.
  PutChunks(*s, "delta", 30, 1);
  EXPECT_EQ(s->Usage("delta")->chunks, 1u);
}

TEST_F(PeerLifecycleTest, CollectNeverRunsBesidePutsAndReadsOfTheSameOwner) {
  auto s = Open();
  PutChunks(*s, "alpha", 0, 40);
  ASSERT_EQ(*s->Release("alpha", Ids(0, 30)), 30u);
  clock_.Advance(hours(24 * 8));
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::thread reader([&] {
    while (!stop.load()) {
      for (uint64_t i = 30; i < 40; ++i) {
        auto got = s->Get("alpha", testing::TestChunkId(i));
        if (!got.ok() || *got != Blob(i)) ++bad;
      }
    }
  });
  std::thread writer([&] {
    for (uint64_t i = 100; i < 140; ++i) {
      std::vector<std::byte> b = Blob(i);
      if (!s->Put("alpha", testing::TestChunkId(i), b, HashBlob(b)).ok()) ++bad;
      if (!s->Flush("alpha").ok()) ++bad;
    }
  });
  for (int round = 0; round < 5; ++round) {
    ASSERT_TRUE(s->Collect("alpha", kGrace, 0.9, kDeparted).ok());
  }
  writer.join();
  stop.store(true);
  reader.join();
  EXPECT_EQ(bad.load(), 0);
  ASSERT_TRUE(s->Collect("alpha", kGrace, 0.9, kDeparted).ok());
  ExpectReadable(*s, 30, 10);
  ExpectReadable(*s, 100, 40);
  EXPECT_EQ(s->Usage("alpha")->chunks, 50u);
  EXPECT_EQ(s->Usage("alpha")->chunk_bytes, 50 * kBlob);
}

}  // namespace
}  // namespace sparetime::peerstore
