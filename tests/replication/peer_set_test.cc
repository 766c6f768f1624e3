// Placement (pure) and the PeerSet against real PeerServers on 127.0.0.1:
// replicas land on distinct peers and are recorded, reads survive a stopped
// peer, a dead peer's chunks go to the next candidates, no live peer fails
// Flush clearly, chunks without records are located, and repair restores
// the replica count.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "sparetime/peer/peer_server.h"
#include "sparetime/peerstore/peer_store.h"
#include "sparetime/replication/peer_set.h"
#include "sparetime/replication/placement.h"
#include "replication/replication_testing.h"
#include "testutil/testutil.h"

namespace sparetime::replication {
namespace {

using transport::Identity;

std::vector<std::byte> BlobOf(uint64_t n) {
  auto text = testing::RandomBytes(1000 + n, n + 99);
  return std::vector<std::byte>(reinterpret_cast<const std::byte*>(text.data()),
                                reinterpret_cast<const std::byte*>(text.data()) + text.size());
}

TEST(PlacementTest, DeterministicSpreadOverSitesAndWeighted) {
  std::vector<PlacementPeer> peers = {{"a", "s1", 100}, {"b", "s1", 100}, {"c", "s2", 100}};
  for (uint64_t n = 0; n < 200; ++n) {
    std::vector<size_t> r = RankPeers(testing::TestChunkId(n), peers, 2);
    ASSERT_EQ(r.size(), 3u);
    EXPECT_EQ(r, RankPeers(testing::TestChunkId(n), peers, 2));
    // The two replicas are on different sites: one of them is c.
    EXPECT_TRUE(r[0] == 2 || r[1] == 2) << n;
  }
  // Shares follow the weights: x has three times y's free space.
  std::vector<PlacementPeer> weighted = {{"x", "", 300}, {"y", "", 100}, {"z", "", 0}};
  int firsts = 0;
  for (uint64_t n = 0; n < 4000; ++n) {
    std::vector<size_t> r = RankPeers(testing::TestChunkId(n), weighted, 1);
    ASSERT_EQ(r.size(), 2u);  // z offers nothing and is never a candidate
    firsts += r[0] == 0;
  }
  EXPECT_NEAR(firsts / 4000.0, 0.75, 0.04);
  // Removing a peer moves only the chunks it won.
  std::vector<PlacementPeer> four = {{"p", "", 1}, {"q", "", 1}, {"r", "", 1}, {"s", "", 1}};
  std::vector<PlacementPeer> three = {{"p", "", 1}, {"q", "", 1}, {"r", "", 1}};
  for (uint64_t n = 0; n < 500; ++n) {
    size_t before = RankPeers(testing::TestChunkId(n), four, 1)[0];
    if (before != 3) {
      EXPECT_EQ(RankPeers(testing::TestChunkId(n), three, 1)[0], before);
    }
  }
}

class PeerSetTest : public ::testing::Test {
 protected:
  using Server = testing::TestPeer;

  void SetUp() override {
    for (int i = 0; i < 4; ++i) AddServer("peer" + std::to_string(i));
    auto locations = ChunkLocations::Open(dir_ / "locations.db");
    ASSERT_TRUE(locations.ok()) << locations.status().ToString();
    locations_ = std::move(*locations);
  }

  void AddServer(const std::string& name) {
    ASSERT_NO_FATAL_FAILURE(testing::AddTestPeer(dir_.path(), name, owner_, &servers_));
  }
  void StartServer(Server& s) { ASSERT_NO_FATAL_FAILURE(testing::StartTestPeer(s, owner_)); }

  // A PeerSet over the first `count` servers.
  std::unique_ptr<PeerSet> Open(size_t count, PeerSetOptions o = {}) {
    std::vector<PeerSetPeer> peers;
    for (size_t i = 0; i < count; ++i) peers.push_back(servers_[i]->Endpoint());
    o.client.connect_timeout = std::chrono::milliseconds(1000);
    o.client.handshake_timeout = std::chrono::milliseconds(2000);
    o.client.io_timeout = std::chrono::milliseconds(2000);
    o.reconnect_attempts = 1;
    o.report = [this](const std::string& line) {
      std::lock_guard lock(mu_);
      reports_ += line + "\n";
    };
    auto set = PeerSet::Open(owner_, std::move(peers), *locations_, std::move(o));
    EXPECT_TRUE(set.ok()) << set.status().ToString();
    return set.ok() ? std::move(*set) : nullptr;
  }

  bool Held(size_t server, uint64_t n) {
    ChunkId id = testing::TestChunkId(n);
    auto has = servers_[server]->store->Has("owner", std::span(&id, 1));
    return has.ok() && (*has)[0];
  }
  // How many servers hold chunk n.
  int Holders(uint64_t n) {
    int count = 0;
    for (size_t s = 0; s < servers_.size(); ++s) count += Held(s, n);
    return count;
  }

  testing::TempDir dir_;
  Identity owner_ = Identity::Generate();
  std::vector<std::unique_ptr<Server>> servers_;
  std::unique_ptr<ChunkLocations> locations_;
  std::mutex mu_;
  std::string reports_;
};

TEST_F(PeerSetTest, ReplicasOnDistinctPeersRecordedAndReadable) {
  auto set = Open(3);
  ASSERT_TRUE(set);
  for (uint64_t n = 0; n < 30; ++n) {
    auto existed = set->Put(testing::TestChunkId(n), BlobOf(n));
    ASSERT_TRUE(existed.ok()) << existed.status().ToString();
    EXPECT_FALSE(*existed);
  }
  EXPECT_TRUE(*set->Put(testing::TestChunkId(3), BlobOf(3)));  // pending counts as held
  ASSERT_TRUE(set->Flush().ok());
  for (uint64_t n = 0; n < 30; ++n) {
    EXPECT_EQ(Holders(n), 2) << n;
    auto rows = locations_->Holders(testing::TestChunkId(n));
    ASSERT_TRUE(rows.ok());
    ASSERT_EQ(rows->size(), 2u);
    EXPECT_EQ((*rows)[0].hash, HashBlob(BlobOf(n)));
    EXPECT_TRUE(*set->Contains(testing::TestChunkId(n)));
    EXPECT_TRUE(*set->Put(testing::TestChunkId(n), BlobOf(n)));  // dedup: already held
  }
  EXPECT_EQ(set->stats().chunks_sent, 60u);
  // Reads survive any one peer stopping.
  servers_[1]->server->Stop();
  for (uint64_t n = 0; n < 30; ++n) {
    auto blob = set->Get(testing::TestChunkId(n));
    ASSERT_TRUE(blob.ok()) << n << ": " << blob.status().ToString();
    EXPECT_EQ(*blob, BlobOf(n));
  }
  EXPECT_EQ(set->Get(testing::TestChunkId(999)).status().code(), ErrorCode::kNotFound);
}

TEST_F(PeerSetTest, DeadPeerChunksGoToTheNextCandidates) {
  servers_[0]->server->Stop();
  auto set = Open(3);
  ASSERT_TRUE(set);
  for (uint64_t n = 0; n < 20; ++n) ASSERT_TRUE(set->Put(testing::TestChunkId(n), BlobOf(n)).ok());
  ASSERT_TRUE(set->Flush().ok());
  for (uint64_t n = 0; n < 20; ++n) EXPECT_EQ(Holders(n), 2) << n;
  PeerSetStats stats = set->stats();
  ASSERT_EQ(stats.peers_down.size(), 1u);
  EXPECT_NE(stats.peers_down[0].find("peer0"), std::string::npos);
  EXPECT_EQ(stats.under_replicated, 0u);
  EXPECT_NE(reports_.find("peer0 given up"), std::string::npos) << reports_;
}

TEST_F(PeerSetTest, NoLivePeerFailsFlushAndRecordsNothing) {
  servers_[0]->server->Stop();
  servers_[1]->server->Stop();
  auto set = Open(2);
  ASSERT_TRUE(set);
  Status put = set->Put(testing::TestChunkId(1), BlobOf(1)).status();
  Status flushed = set->Flush();
  // Either the put or the flush says so; nothing is recorded as stored.
  EXPECT_FALSE(put.ok() && flushed.ok());
  EXPECT_EQ(put.ok() ? flushed.code() : put.code(), ErrorCode::kUnavailable);
  EXPECT_NE((put.ok() ? flushed : put).message().find("peer0"), std::string::npos);
  EXPECT_TRUE(locations_->Holders(testing::TestChunkId(1))->empty());
}

TEST_F(PeerSetTest, UnrecordedChunksAreLocatedAndVerified) {
  {
    auto set = Open(3);
    ASSERT_TRUE(set);
    for (uint64_t n = 0; n < 10; ++n) ASSERT_TRUE(set->Put(testing::TestChunkId(n), BlobOf(n)).ok());
    ASSERT_TRUE(set->Flush().ok());
  }
  // A fresh box: no location records; the verify hook checks what comes back.
  auto fresh = ChunkLocations::Open(dir_ / "fresh.db");
  ASSERT_TRUE(fresh.ok());
  locations_ = std::move(*fresh);
  int verified = 0;
  PeerSetOptions o;
  o.verify = [&](const ChunkId& id, std::span<const std::byte> blob) {
    ++verified;
    for (uint64_t n = 0; n < 10; ++n) {
      if (testing::TestChunkId(n) == id) {
        std::vector<std::byte> expected = BlobOf(n);
        return std::equal(blob.begin(), blob.end(), expected.begin(), expected.end())
                   ? Status::Ok()
                   : Corruption("not the chunk");
      }
    }
    return Corruption("unknown");
  };
  auto set = Open(3, o);
  ASSERT_TRUE(set);
  std::vector<ChunkId> ids;
  for (uint64_t n = 0; n < 10; ++n) ids.push_back(testing::TestChunkId(n));
  ASSERT_TRUE(set->Locate(ids).ok());
  for (uint64_t n = 0; n < 10; ++n) {
    auto blob = set->Get(testing::TestChunkId(n));
    ASSERT_TRUE(blob.ok()) << blob.status().ToString();
    EXPECT_EQ(*blob, BlobOf(n));
  }
  EXPECT_EQ(verified, 10);
}

// A bare-metal restore locates a snapshot's chunk list, in which a chunk
// that occurs twice (a repeated region) is listed twice: every occurrence
// must still find its holders (issue 19: the second one used to erase them).
TEST_F(PeerSetTest, LocateWithRepeatedIdsKeepsTheirHolders) {
  {
    auto set = Open(3);
    ASSERT_TRUE(set);
    for (uint64_t n = 0; n < 3; ++n) ASSERT_TRUE(set->Put(testing::TestChunkId(n), BlobOf(n)).ok());
    ASSERT_TRUE(set->Flush().ok());
  }
  auto fresh = ChunkLocations::Open(dir_ / "fresh.db");
  ASSERT_TRUE(fresh.ok());
  locations_ = std::move(*fresh);
  auto set = Open(3);
  ASSERT_TRUE(set);
  const ChunkId a = testing::TestChunkId(0), b = testing::TestChunkId(1), c = testing::TestChunkId(2);
  std::vector<ChunkId> ids = {a, b, a, a, c, b};
  ASSERT_TRUE(set->Locate(ids).ok());
  for (uint64_t n : {0, 1, 2, 0, 1}) {
    auto blob = set->Get(testing::TestChunkId(n));
    ASSERT_TRUE(blob.ok()) << n << ": " << blob.status().ToString();
    EXPECT_EQ(*blob, BlobOf(n));
  }
}

// The owner seals a chunk again (new nonce: different bytes, same id) after
// losing its records; the peers keep their first copy. The stale hash is not
// taken for damage: the verify hook (the AEAD in real use) decides, and the
// record is corrected. Without a hook the mismatch is an error.
TEST_F(PeerSetTest, ResealedChunkIsVerifiedNotRejected) {
  const ChunkId id = testing::TestChunkId(1);
  const std::vector<std::byte> first = BlobOf(1), second = BlobOf(2);
  {
    auto set = Open(2);
    ASSERT_TRUE(set);
    ASSERT_TRUE(set->Put(id, first).ok());
    ASSERT_TRUE(set->Flush().ok());
  }
  auto fresh = ChunkLocations::Open(dir_ / "fresh.db");
  ASSERT_TRUE(fresh.ok());
  locations_ = std::move(*fresh);
  {
    auto set = Open(2);
    ASSERT_TRUE(set);
    ASSERT_TRUE(set->Put(id, second).ok());
    ASSERT_TRUE(set->Flush().ok());
    EXPECT_EQ((*locations_->Holders(id))[0].hash, HashBlob(second));
    EXPECT_EQ(set->Get(id).status().code(), ErrorCode::kCorruption);
  }
  PeerSetOptions o;
  o.verify = [&](const ChunkId&, std::span<const std::byte> blob) {
    return std::equal(blob.begin(), blob.end(), first.begin(), first.end()) ? Status::Ok()
                                                                             : Corruption("forged");
  };
  auto set = Open(2, o);
  ASSERT_TRUE(set);
  auto blob = set->Get(id);
  ASSERT_TRUE(blob.ok()) << blob.status().ToString();
  EXPECT_EQ(*blob, first);
  EXPECT_EQ((*locations_->Holders(id))[0].hash, HashBlob(first));
}

// Issue 26: a replica that fails the owner's check (here: the record's hash
// is not the copy's, and there is no verify hook) or that its holder says
// it lacks is found by a Get that checks every replica, even behind a good
// one; DropDamagedReplicas drops exactly those rows and tells the holder of
// the damaged copy to release it; Contains is then false (fewer than R
// recorded, spare live peers left), and a Put re-sends the chunk to exactly
// the missing number of peers.
TEST_F(PeerSetTest, DamagedAndMissingReplicasAreDroppedAndSentAgain) {
  auto set = Open(3);
  ASSERT_TRUE(set);
  for (uint64_t n = 0; n < 10; ++n) ASSERT_TRUE(set->Put(testing::TestChunkId(n), BlobOf(n)).ok());
  ASSERT_TRUE(set->Flush().ok());
  auto index_of = [](const std::string& peer) { return static_cast<size_t>(peer.back() - '0'); };
  const ChunkId missing = testing::TestChunkId(0), damaged = testing::TestChunkId(1);
  std::vector<ChunkLocation> rows0 = *locations_->Holders(missing);
  std::vector<ChunkLocation> rows1 = *locations_->Holders(damaged);
  ASSERT_EQ(rows0.size(), 2u);
  ASSERT_EQ(rows1.size(), 2u);
  const std::string lost_on = rows0[1].peer, bad_on = rows1[0].peer;
  ASSERT_EQ(*servers_[index_of(lost_on)]->store->Drop("owner", std::span(&missing, 1)), 1u);
  ChunkLocation wrong = rows1[0];
  wrong.hash[0] ^= std::byte{1};
  ASSERT_TRUE(locations_->Add(std::span(&wrong, 1)).ok());

  set->CheckEveryReplica(true);
  for (uint64_t n = 0; n < 10; ++n) {
    auto blob = set->Get(testing::TestChunkId(n));
    ASSERT_TRUE(blob.ok()) << n << ": " << blob.status().ToString();
    EXPECT_EQ(*blob, BlobOf(n));
  }
  auto dropped = set->DropDamagedReplicas();
  ASSERT_TRUE(dropped.ok()) << dropped.status().ToString();
  ASSERT_EQ(dropped->size(), 2u);
  std::map<ChunkId, DamagedReplica> by_id;
  for (const DamagedReplica& d : *dropped) by_id[d.id] = d;
  ASSERT_EQ(by_id.count(missing), 1u);
  ASSERT_EQ(by_id.count(damaged), 1u);
  EXPECT_EQ(by_id[missing].peer, lost_on);
  EXPECT_FALSE(by_id[missing].damaged);
  EXPECT_EQ(by_id[damaged].peer, bad_on);
  EXPECT_TRUE(by_id[damaged].damaged);
  EXPECT_NE(by_id[damaged].error.find("does not match the hash recorded"), std::string::npos)
      << by_id[damaged].error;
  EXPECT_EQ(set->DropDamagedReplicas()->size(), 0u) << "each is reported once";
  EXPECT_EQ(locations_->Holders(missing)->size(), 1u);
  EXPECT_EQ(locations_->Holders(damaged)->size(), 1u);
  EXPECT_FALSE(Held(index_of(bad_on), 1)) << "told to drop its copy";
  EXPECT_EQ(Holders(0), 1);
  EXPECT_EQ(Holders(1), 1);

  // The next backup that meets them re-sends them; the rest stay deduped.
  EXPECT_FALSE(*set->Contains(missing));
  EXPECT_FALSE(*set->Contains(damaged));
  EXPECT_TRUE(*set->Contains(testing::TestChunkId(2)));
  const uint64_t sent = set->stats().chunks_sent;
  for (uint64_t n = 0; n < 10; ++n) {
    auto existed = set->Put(testing::TestChunkId(n), BlobOf(n));
    ASSERT_TRUE(existed.ok());
    EXPECT_EQ(*existed, n >= 2) << n;
  }
  ASSERT_TRUE(set->Flush().ok());
  EXPECT_EQ(set->stats().chunks_sent - sent, 2u);
  for (uint64_t n = 0; n < 10; ++n) {
    EXPECT_EQ(Holders(n), 2) << n;
    EXPECT_EQ(locations_->Holders(testing::TestChunkId(n))->size(), 2u) << n;
  }
  EXPECT_EQ(set->stats().under_replicated, 0u);
}

// A re-send of an under-replicated chunk that no peer takes leaves it
// under-replicated, not the backup failed; once no live peer without it is
// left, it counts as held (backups do not re-seal it every time).
TEST_F(PeerSetTest, UnderReplicatedReSendThatNoPeerTakesIsNotAFailure) {
  const ChunkId id = testing::TestChunkId(1);
  {
    auto set = Open(2);
    ASSERT_TRUE(set);
    ASSERT_TRUE(set->Put(id, BlobOf(1)).ok());
    ASSERT_TRUE(set->Flush().ok());
  }
  ASSERT_EQ(locations_->Holders(id)->size(), 2u);
  ASSERT_TRUE(locations_->Remove(id, "peer0").ok());
  servers_[0]->server->Stop();
  auto set = Open(2);
  ASSERT_TRUE(set);
  EXPECT_FALSE(*set->Contains(id)) << "peer0's link connects lazily: not known down yet";
  auto existed = set->Put(id, BlobOf(1));
  ASSERT_TRUE(existed.ok()) << existed.status().ToString();
  EXPECT_FALSE(*existed);
  Status flushed = set->Flush();
  EXPECT_TRUE(flushed.ok()) << flushed.ToString();
  EXPECT_EQ(set->stats().under_replicated, 1u);
  EXPECT_EQ(set->stats().peers_down.size(), 1u);
  EXPECT_EQ(locations_->Holders(id)->size(), 1u);
  EXPECT_TRUE(*set->Contains(id)) << "no live peer without it is left";
  EXPECT_TRUE(*set->Put(id, BlobOf(1)));
}

TEST_F(PeerSetTest, RepairRestoresTheReplicaCount) {
  {
    auto set = Open(3);
    ASSERT_TRUE(set);
    for (uint64_t n = 0; n < 20; ++n) ASSERT_TRUE(set->Put(testing::TestChunkId(n), BlobOf(n)).ok());
    ASSERT_TRUE(set->Flush().ok());
  }
  // peer2 dies for good; peer3 joins.
  servers_[2]->server->Stop();
  auto set = Open(4);
  ASSERT_TRUE(set);
  auto report = set->Repair();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->chunks, 20u);
  EXPECT_EQ(report->lost, 0u);
  EXPECT_GT(report->copied, 0u);
  for (uint64_t n = 0; n < 20; ++n) {
    int live = 0;
    for (size_t s : {0, 1, 3}) live += Held(s, n);
    EXPECT_EQ(live, 2) << n;
  }
  // A second repair has nothing to do.
  auto again = set->Repair();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->copied, 0u);
}


// Repair batches: every copy is queued before any is sent, so each peer
// that gains replicas gets all of them in ONE PutChunks request (one store
// flush), and the set flushes once — not once per chunk.
TEST_F(PeerSetTest, RepairSendsEachNewHolderItsCopiesInOneRequest) {
  constexpr uint64_t kChunks = 40;
  {
    auto set = Open(3);
    ASSERT_TRUE(set);
    for (uint64_t n = 0; n < kChunks; ++n) {
      ASSERT_TRUE(set->Put(testing::TestChunkId(n), BlobOf(n)).ok());
    }
    ASSERT_TRUE(set->Flush().ok());
  }
  uint64_t on_peer2 = 0;
  for (uint64_t n = 0; n < kChunks; ++n) on_peer2 += Held(2, n);
  ASSERT_GT(on_peer2, 1u);  // with 3 peers and 2 replicas, about 27 of 40
  servers_[2]->server->Stop();
  auto set = Open(4);
  ASSERT_TRUE(set);
  const std::vector<size_t> live = {0, 1, 3};
  std::map<size_t, uint64_t> puts_before, held_before;
  for (size_t s : live) {
    puts_before[s] = servers_[s]->server->put_requests();
    for (uint64_t n = 0; n < kChunks; ++n) held_before[s] += Held(s, n);
  }
  auto report = set->Repair();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->chunks, kChunks);
  EXPECT_EQ(report->copied, on_peer2);  // exactly the replicas peer2 took with it
  EXPECT_EQ(report->lost, 0u);
  uint64_t gained_total = 0, expected_requests = 0, requests = 0;
  for (size_t s : live) {
    uint64_t held = 0;
    for (uint64_t n = 0; n < kChunks; ++n) held += Held(s, n);
    const uint64_t gained = held - held_before[s];
    const uint64_t got = servers_[s]->server->put_requests() - puts_before[s];
    EXPECT_EQ(got, gained > 0 ? 1u : 0u) << "peer" << s << " gained " << gained;
    gained_total += gained;
    expected_requests += gained > 0;
    requests += got;
  }
  EXPECT_EQ(gained_total, on_peer2);
  EXPECT_EQ(requests, expected_requests);
  EXPECT_LT(requests, on_peer2);  // one request per chunk is what this replaced
  for (uint64_t n = 0; n < kChunks; ++n) {
    EXPECT_EQ(Held(0, n) + Held(1, n) + Held(3, n), 2) << n;
    EXPECT_EQ(locations_->Holders(testing::TestChunkId(n))->size(), 2u + Held(2, n)) << n;
  }
}

// The imager's workers may Put the same chunk at once (a repeated region):
// exactly one of them is told it is new, so new_chunks counts it once.
TEST_F(PeerSetTest, RacingPutsOfOneChunkReportItNewExactlyOnce) {
  auto set = Open(3);
  ASSERT_TRUE(set);
  constexpr uint64_t kIds = 40;
  std::atomic<int> fresh{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (uint64_t n = 0; n < kIds; ++n) {
        auto existed = set->Put(testing::TestChunkId(n), BlobOf(n));
        ASSERT_TRUE(existed.ok()) << existed.status().ToString();
        fresh += !*existed;
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(set->Flush().ok());
  EXPECT_EQ(fresh.load(), static_cast<int>(kIds));
  EXPECT_EQ(set->stats().chunks_sent, 2 * kIds);
  for (uint64_t n = 0; n < kIds; ++n) EXPECT_EQ(Holders(n), 2) << n;
}

// A set opened for another owner reads but never writes: the one
// read-only check refuses Put, RemoveStored and Repair alike.
TEST_F(PeerSetTest, AnotherOwnersSetIsReadOnly) {
  PeerSetOptions o;
  o.owner = "someone-else";
  auto set = Open(2, o);
  ASSERT_TRUE(set);
  const ChunkId id = testing::TestChunkId(1);
  EXPECT_EQ(set->Put(id, BlobOf(1)).status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(set->RemoveStored(std::span(&id, 1)).status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(set->Repair().status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(Holders(1), 0);
}

// Locate and Release ask every peer on the worker pool: with five peers and
// one worker thread, both still reach every peer.
TEST_F(PeerSetTest, OneWorkerServesLocateAndReleaseOverFivePeers) {
  AddServer("peer4");
  {
    auto set = Open(5);
    ASSERT_TRUE(set);
    for (uint64_t n = 0; n < 25; ++n) ASSERT_TRUE(set->Put(testing::TestChunkId(n), BlobOf(n)).ok());
    ASSERT_TRUE(set->Flush().ok());
  }
  auto fresh = ChunkLocations::Open(dir_ / "fresh.db");
  ASSERT_TRUE(fresh.ok());
  std::unique_ptr<ChunkLocations> recorded = std::move(locations_);
  locations_ = std::move(*fresh);
  PeerSetOptions o;
  o.workers = 1;
  {
    auto set = Open(5, o);
    ASSERT_TRUE(set);
    std::vector<ChunkId> ids;
    for (uint64_t n = 0; n < 25; ++n) ids.push_back(testing::TestChunkId(n));
    ASSERT_TRUE(set->Locate(ids).ok());
    for (uint64_t n = 0; n < 25; ++n) {
      auto blob = set->Get(testing::TestChunkId(n));
      ASSERT_TRUE(blob.ok()) << n << ": " << blob.status().ToString();
      EXPECT_EQ(*blob, BlobOf(n));
    }
  }
  locations_ = std::move(recorded);
  auto set = Open(5, o);
  ASSERT_TRUE(set);
  std::vector<ChunkId> ids;
  for (uint64_t n = 0; n < 25; ++n) ids.push_back(testing::TestChunkId(n));
  auto released = set->RemoveStored(ids);
  ASSERT_TRUE(released.ok()) << released.status().ToString();
  for (uint64_t n = 0; n < 25; ++n) EXPECT_EQ(Holders(n), 0) << n;
  EXPECT_TRUE(locations_->All()->empty());
  EXPECT_EQ(set->stats().unreleased, 0u);
}

}  // namespace
}  // namespace sparetime::replication
