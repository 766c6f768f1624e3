// PeerStore: chunks, keys and records held for owners; hash checked on
// receive and on scrub; quotas per owner and in total, also under
// concurrent puts; usage survives reopening.
#include "sparetime/peerstore/peer_store.h"

#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "sparetime/base/fd.h"
#include "testutil/testutil.h"

namespace sparetime::peerstore {
namespace {

std::vector<std::byte> Blob(size_t n, uint64_t seed) { return testing::RandomBytes(n, seed); }

class PeerStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<PeerStore> Open(uint64_t capacity, uint64_t quota = 0) {
    auto s = PeerStore::Open(dir_ / "held", PeerStoreLimits{capacity, quota});
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }
  // Flips a byte 10 bytes before the end of alpha's only pack: inside the
  // blob written last.
  void FlipByteNearPackEnd() {
    std::vector<std::string> packs = testing::PackFiles(dir_ / "held/alpha/chunks");
    ASSERT_EQ(packs.size(), 1u);
    std::fstream f(packs[0], std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-10, std::ios::end);
    char c;
    f.get(c);
    f.seekp(-10, std::ios::end);
    f.put(static_cast<char>(c ^ 0x40));
  }
  testing::TempDir dir_;
};

TEST_F(PeerStoreTest, PutGetHasReleasePerOwner) {
  auto store = Open(1 << 20);
  auto blob = Blob(1000, 1);
  auto put = store->Put("Alpha", testing::TestChunkId(1), blob, HashBlob(blob));
  ASSERT_TRUE(put.ok()) << put.status().ToString();
  EXPECT_FALSE(*put);
  EXPECT_TRUE(*store->Put("alpha", testing::TestChunkId(1), blob, HashBlob(blob)));  // idempotent
  ASSERT_TRUE(store->Flush("alpha").ok());
  std::vector<ChunkId> ids = {testing::TestChunkId(1), testing::TestChunkId(2)};
  EXPECT_EQ(*store->Has("alpha", ids), (std::vector<bool>{true, false}));
  EXPECT_EQ(*store->Has("beta", ids), (std::vector<bool>{false, false}));  // owners are separate
  EXPECT_EQ(*store->Get("alpha", testing::TestChunkId(1)), blob);
  EXPECT_EQ(store->Get("beta", testing::TestChunkId(1)).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store->Usage("alpha")->chunk_bytes, 1000u);
  EXPECT_EQ(*store->Release("alpha", ids), 1u);
  EXPECT_EQ(*store->Has("alpha", ids), (std::vector<bool>{false, false}));
  // Released bytes count until a Collect after the grace (here 0) drops them.
  EXPECT_EQ(store->Usage("alpha")->chunk_bytes, 1000u);
  EXPECT_EQ(store->Usage("alpha")->released_bytes, 1000u);
  ASSERT_TRUE(store->Collect("alpha", /*grace_seconds=*/0, 0.5, 30 * 86400).ok());
  EXPECT_EQ(store->Usage("alpha")->chunk_bytes, 0u);
  EXPECT_EQ(store->TotalUsed(), 0u);
}

TEST_F(PeerStoreTest, DamagedOnArrivalIsRefused) {
  auto store = Open(1 << 20);
  auto blob = Blob(500, 2);
  BlobHash hash = HashBlob(blob);
  blob[17] ^= std::byte{1};
  auto put = store->Put("alpha", testing::TestChunkId(1), blob, hash);
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.status().code(), ErrorCode::kCorruption);
  EXPECT_NE(put.status().message().find("arrived damaged"), std::string::npos);
  EXPECT_EQ(store->TotalUsed(), 0u);
}

TEST_F(PeerStoreTest, QuotaPerOwnerAndCapacity) {
  auto store = Open(/*capacity=*/3000, /*quota=*/2000);
  auto blob = Blob(900, 3);
  ASSERT_TRUE(store->Put("alpha", testing::TestChunkId(1), blob, HashBlob(blob)).ok());
  ASSERT_TRUE(store->Put("alpha", testing::TestChunkId(2), blob, HashBlob(blob)).ok());
  auto over = store->Put("alpha", testing::TestChunkId(3), blob, HashBlob(blob));
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.status().code(), ErrorCode::kNoSpace);
  EXPECT_NE(over.status().message().find("over quota"), std::string::npos);
  EXPECT_NE(over.status().message().find("2000"), std::string::npos);
  // Another owner has its own quota, but the total capacity binds.
  ASSERT_TRUE(store->Put("beta", testing::TestChunkId(1), blob, HashBlob(blob)).ok());
  auto full = store->Put("beta", testing::TestChunkId(2), blob, HashBlob(blob));
  ASSERT_FALSE(full.ok());
  EXPECT_NE(full.status().message().find("peer full"), std::string::npos);
  // Releasing makes room again once the release is collected.
  std::vector<ChunkId> one = {testing::TestChunkId(1)};
  ASSERT_TRUE(store->Release("alpha", one).ok());
  EXPECT_FALSE(store->Put("beta", testing::TestChunkId(2), blob, HashBlob(blob)).ok());
  ASSERT_TRUE(store->Collect("alpha", /*grace_seconds=*/0, 0.5, 30 * 86400).ok());
  EXPECT_TRUE(store->Put("beta", testing::TestChunkId(2), blob, HashBlob(blob)).ok());
}

TEST_F(PeerStoreTest, ConcurrentPutsNeverOvershootTheQuota) {
  auto store = Open(/*capacity=*/100 * 1000, /*quota=*/10 * 1000);
  std::vector<std::thread> threads;
  std::atomic<int> stored{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        auto blob = Blob(1000, 100 + t * 10 + i);
        auto r = store->Put("alpha", testing::TestChunkId(100 + t * 10 + i), blob, HashBlob(blob));
        if (r.ok()) ++stored;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(stored.load(), 10);
  EXPECT_EQ(store->Usage("alpha")->chunk_bytes, 10000u);
}

TEST_F(PeerStoreTest, KeysAndRootsCountAndSurviveReopen) {
  {
    auto store = Open(1 << 20);
    auto key = Blob(120, 4);
    ASSERT_TRUE(store->PutKey("alpha", key).ok());
    EXPECT_EQ(*store->GetKey("alpha"), key);
    EXPECT_EQ(store->GetKey("beta").status().code(), ErrorCode::kNotFound);
    EXPECT_EQ(store->GetRoots("alpha").status().code(), ErrorCode::kNotFound);
    ASSERT_TRUE(store->PutRoots("alpha", 1, Blob(300, 5)).ok());
    ASSERT_TRUE(store->PutRoots("alpha", 2, Blob(200, 6)).ok());  // replaces
    EXPECT_FALSE(store->PutKey("alpha", Blob(5000, 8)).ok());
    EXPECT_FALSE(store->PutRoots("alpha", 3, Blob((1 << 20) + 1, 8)).ok());
    auto blob = Blob(1000, 9);
    ASSERT_TRUE(store->Put("alpha", testing::TestChunkId(1), blob, HashBlob(blob)).ok());
    ASSERT_TRUE(store->Flush("alpha").ok());
    // Key, roots (8 + 200) and the replaced generation 1 kept for the
    // grace (8-byte time + 8 + 300, peer_store.h "Lifecycle").
    EXPECT_EQ(store->Usage("alpha")->record_bytes, 120u + 8 + 200 + 316);
  }
  auto store = Open(1 << 20);
  OwnerUsage u = *store->Usage("alpha");
  EXPECT_EQ(u.record_bytes, 644u);
  EXPECT_EQ(u.chunk_bytes, 1000u);
  EXPECT_EQ(u.chunks, 1u);
  EXPECT_EQ(store->TotalUsed(), 1644u);
  auto roots = store->GetRoots("alpha");
  ASSERT_TRUE(roots.ok());
  EXPECT_EQ(roots->generation, 2u);
  EXPECT_EQ(roots->data, Blob(200, 6));
  EXPECT_EQ(store->Owners(), std::vector<std::string>{"alpha"});
}

// A replayed or stale writer cannot roll the roots back.
TEST_F(PeerStoreTest, RootsOnlyMoveForward) {
  auto store = Open(1 << 20);
  ASSERT_TRUE(store->PutRoots("alpha", 5, Blob(10, 1)).ok());
  for (uint64_t stale : {5u, 4u, 0u}) {
    Status s = store->PutRoots("alpha", stale, Blob(10, 2));
    EXPECT_EQ(s.code(), ErrorCode::kFailedPrecondition) << stale;
    EXPECT_NE(s.message().find("not newer"), std::string::npos);
  }
  EXPECT_EQ(store->GetRoots("alpha")->data, Blob(10, 1));
}

TEST_F(PeerStoreTest, ScrubFindsAByteFlippedOnDisk) {
  auto store = Open(1 << 20);
  auto blob = Blob(4000, 10);
  ASSERT_TRUE(store->Put("alpha", testing::TestChunkId(1), blob, HashBlob(blob)).ok());
  ASSERT_TRUE(store->Flush("alpha").ok());
  store.reset();
  ASSERT_NO_FATAL_FAILURE(FlipByteNearPackEnd());  // inside the only blob
  store = Open(1 << 20);
  int bad = 0;
  auto checked = store->Scrub("alpha", [&](const ChunkId& id, const Status& s) {
    EXPECT_EQ(id, testing::TestChunkId(1));
    EXPECT_EQ(s.code(), ErrorCode::kCorruption);
    ++bad;
  });
  ASSERT_TRUE(checked.ok());
  EXPECT_EQ(*checked, 1u);
  EXPECT_EQ(bad, 1);
  // The scrub dropped the damaged copy (issue 26): gone, its bytes freed,
  // and the owner's good copy is stored again instead of "already held".
  std::vector<ChunkId> one = {testing::TestChunkId(1)};
  EXPECT_EQ(*store->Has("alpha", one), (std::vector<bool>{false}));
  EXPECT_EQ(store->Get("alpha", testing::TestChunkId(1)).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store->Usage("alpha")->chunk_bytes, 0u);
  EXPECT_EQ(store->Usage("alpha")->chunks, 0u);
  auto again = store->Put("alpha", testing::TestChunkId(1), blob, HashBlob(blob));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_FALSE(*again);
  ASSERT_TRUE(store->Flush("alpha").ok());
  EXPECT_EQ(*store->Get("alpha", testing::TestChunkId(1)), blob);
  EXPECT_EQ(store->Usage("alpha")->chunk_bytes, 4000u);
}

// A Get that meets a damaged copy drops it too (no scrub needed): the owner
// then finds the chunk missing and re-sends it, which is stored anew.
TEST_F(PeerStoreTest, GetOfADamagedCopyDropsIt) {
  auto store = Open(1 << 20);
  auto blob = Blob(4000, 12);
  auto other = Blob(3000, 13);
  ASSERT_TRUE(store->Put("alpha", testing::TestChunkId(1), blob, HashBlob(blob)).ok());
  ASSERT_TRUE(store->Put("alpha", testing::TestChunkId(2), other, HashBlob(other)).ok());
  ASSERT_TRUE(store->Flush("alpha").ok());
  store.reset();
  ASSERT_NO_FATAL_FAILURE(FlipByteNearPackEnd());  // chunk 2 was written last
  store = Open(1 << 20);
  auto got = store->Get("alpha", testing::TestChunkId(2));
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), ErrorCode::kCorruption);
  EXPECT_NE(got.status().message().find("this peer dropped its damaged copy"), std::string::npos)
      << got.status().ToString();
  std::vector<ChunkId> ids = {testing::TestChunkId(1), testing::TestChunkId(2)};
  EXPECT_EQ(*store->Has("alpha", ids), (std::vector<bool>{true, false}));
  EXPECT_EQ(store->Usage("alpha")->chunks, 1u);
  EXPECT_EQ(store->Usage("alpha")->chunk_bytes, 4000u);
  EXPECT_EQ(*store->Get("alpha", testing::TestChunkId(1)), blob);  // the good one stays
  auto again = store->Put("alpha", testing::TestChunkId(2), other, HashBlob(other));
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);  // stored, not "already held"
  ASSERT_TRUE(store->Flush("alpha").ok());
  EXPECT_EQ(*store->Get("alpha", testing::TestChunkId(2)), other);
}

TEST_F(PeerStoreTest, OwnerNamesAreHostNames) {
  EXPECT_TRUE(PeerStore::CheckOwnerName("alpha.example.org").ok());
  EXPECT_TRUE(PeerStore::CheckOwnerName("Beta-2").ok());
  const std::vector<std::string> bad_names = {"",   "..",     "../x",  "a/b",
                                              ".hidden", "-x", "sp ace", std::string(254, 'a')};
  for (const std::string& bad : bad_names) {
    EXPECT_FALSE(PeerStore::CheckOwnerName(bad).ok()) << bad;
  }
  auto store = Open(1 << 20);
  auto blob = Blob(10, 11);
  EXPECT_EQ(store->Put("../etc", testing::TestChunkId(1), blob, HashBlob(blob)).status().code(),
            ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace sparetime::peerstore
