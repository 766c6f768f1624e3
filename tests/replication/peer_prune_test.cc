// PeerRepository::Prune against real PeerServers on 127.0.0.1: retention
// forgets, the peers stop holding exactly the released chunks (and their
// location rows go), the new snapshot list reaches the peers, the kept
// snapshot restores; a peer that is down keeps its rows and the next prune
// releases its copies; a dry run changes nothing; another open user makes
// prune refuse.
#include <gtest/gtest.h>

#include <cstring>
#include <unordered_set>

#include "sparetime/imaging/device.h"
#include "sparetime/imaging/imager.h"
#include "sparetime/imaging/manifest.h"
#include "sparetime/imaging/restorer.h"
#include "sparetime/peer/peer_server.h"
#include "sparetime/peerstore/peer_store.h"
#include "sparetime/replication/peer_repository.h"
#include "replication/replication_testing.h"
#include "imaging/prune_testing.h"
#include "testutil/testutil.h"

namespace sparetime::replication {
namespace {

using transport::Identity;
using testing::IdSet;

constexpr uint32_t kChunk = 64 << 10;

SecretBuffer Passphrase() {
  SecretBuffer s(10);
  std::memcpy(s.data(), "peer-prune", 10);
  return s;
}

// A: 24 random chunks. B: A's first 8 chunks, then 16 others.
std::vector<std::byte> ImageA() { return testing::RandomBytes(24 * kChunk, 11); }
std::vector<std::byte> ImageB() {
  std::vector<std::byte> b = ImageA();
  std::vector<std::byte> other = testing::RandomBytes(16 * kChunk, 12);
  std::memcpy(b.data() + 8 * kChunk, other.data(), other.size());
  return b;
}

class PeerPruneTest : public ::testing::Test {
 protected:
  using Server = testing::TestPeer;

  void SetUp() override {
    for (int i = 0; i < 3; ++i) {
      ASSERT_NO_FATAL_FAILURE(
          testing::AddTestPeer(dir_.path(), "peer" + std::to_string(i), owner_, &servers_));
    }
    RepositoryConfig config;
    config.chunk_size = kChunk;
    Status init = PeerRepository::Init(Options(dir_ / "state"), Passphrase(), config,
                                       KdfLimits::FastForTests());
    ASSERT_TRUE(init.ok()) << init.ToString();
  }

  void Start(Server& s) { ASSERT_NO_FATAL_FAILURE(testing::StartTestPeer(s, owner_)); }

  PeerRepositoryOptions Options(const std::string& state_dir) {
    PeerRepositoryOptions o;
    o.state_dir = state_dir;
    o.self_name = "owner";
    o.identity = &owner_;
    for (const auto& s : servers_) o.peers.push_back(s->Endpoint());
    o.set.replicas = 2;
    o.set.reconnect_attempts = 1;
    o.set.client.connect_timeout = std::chrono::milliseconds(1000);
    o.set.client.handshake_timeout = std::chrono::milliseconds(2000);
    o.set.client.io_timeout = std::chrono::milliseconds(2000);
    o.set.report = [](const std::string&) {};
    return o;
  }

  std::unique_ptr<PeerRepository> Open(const std::string& state_dir) {
    auto repo = PeerRepository::Open(Options(state_dir), Passphrase());
    EXPECT_TRUE(repo.ok()) << repo.status().ToString();
    return repo.ok() ? std::move(*repo) : nullptr;
  }

  Snapshot BackUp(PeerRepository& repo, const std::vector<std::byte>& image) {
    testing::WriteFileOrDie(dir_ / "disk.img", image);
    auto dev = OpenBlockDevice(dir_ / "disk.img");
    EXPECT_TRUE(dev.ok());
    BackupEnv env{repo.codec(), repo.store(), repo.catalog(), repo.catalog()};
    BackupOptions options;
    options.chunk_size = kChunk;
    auto snap = Backup(**dev, env, options);
    EXPECT_TRUE(snap.ok()) << snap.status().ToString();
    EXPECT_TRUE(repo.PublishRoots().ok());
    return *snap;
  }

  static IdSet Referenced(PeerRepository& repo, const Snapshot& s) {
    return testing::ReferencedChunks(repo.codec(), repo.store(), s);
  }

  // How many servers hold `id` for the owner.
  int Holders(const ChunkId& id) {
    int n = 0;
    for (const auto& s : servers_) {
      auto has = s->store->Has("owner", std::span(&id, 1));
      n += has.ok() && (*has)[0];
    }
    return n;
  }

  std::vector<std::byte> RestoreBytes(PeerRepository& repo, const Snapshot& s) {
    auto m = LoadManifest(s.manifest_root, repo.codec(), repo.store());
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    const std::string path = dir_ / ("restored-" + s.id);
    auto target = OpenRestoreTarget(path, m->size);
    EXPECT_TRUE(target.ok());
    auto stats = Restore(*m, repo.codec(), repo.store(), **target, {});
    EXPECT_TRUE(stats.ok()) << stats.status().ToString();
    target->reset();
    return testing::ReadFileOrDie(path);
  }

  static PruneOptions Prune(bool dry_run) {
    PruneOptions o;
    o.dry_run = dry_run;
    o.utc_offset = [](int64_t) { return 0; };
    o.lock_wait = std::chrono::milliseconds(200);
    return o;
  }

  testing::TempDir dir_;
  Identity owner_ = Identity::Generate();
  std::vector<std::unique_ptr<Server>> servers_;
  const RetentionPolicy keep_newest_{.keep_last = 1, .keep_daily = 0, .keep_weekly = 0,
                                     .keep_monthly = 0};
};

TEST_F(PeerPruneTest, PeersStopHoldingReleasedChunksAndTheKeptSnapshotRestores) {
  auto repo = Open(dir_ / "state");
  ASSERT_NE(repo, nullptr);
  Snapshot a = BackUp(*repo, ImageA());
  Snapshot b = BackUp(*repo, ImageB());
  const IdSet in_a = Referenced(*repo, a), in_b = Referenced(*repo, b);
  std::vector<ChunkId> only_a;
  for (const ChunkId& id : in_a)
    if (!in_b.contains(id)) only_a.push_back(id);
  ASSERT_EQ(only_a.size(), 16u + 2u);
  for (const ChunkId& id : only_a) ASSERT_EQ(Holders(id), 2) << id.hex();

  // A dry run changes nothing.
  auto dry = repo->Prune(keep_newest_, Prune(true));
  ASSERT_TRUE(dry.ok()) << dry.status().ToString();
  EXPECT_EQ(dry->chunks_removed, only_a.size());
  EXPECT_EQ(repo->catalog().ListSnapshots()->size(), 2u);
  for (const ChunkId& id : only_a) EXPECT_EQ(Holders(id), 2);

  auto report = repo->Prune(keep_newest_, Prune(false));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->snapshots_forgotten, 1u);
  EXPECT_EQ(report->chunks_removed, only_a.size());
  EXPECT_GT(report->bytes_removed, 2u * 16u * kChunk);  // two replicas of 16 random chunks
  EXPECT_TRUE(report->notes.empty());
  for (const ChunkId& id : only_a) EXPECT_EQ(Holders(id), 0) << id.hex();
  for (const ChunkId& id : in_b) EXPECT_EQ(Holders(id), 2) << id.hex();
  auto rows = repo->store().ListStored();
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->size(), in_b.size());
  EXPECT_EQ(RestoreBytes(*repo, b), ImageB());

  // The peers got the new snapshot list: a wiped state directory sees B only.
  repo.reset();
  auto fresh = Open(dir_ / "wiped");
  ASSERT_NE(fresh, nullptr);
  auto snaps = fresh->catalog().ListSnapshots();
  ASSERT_TRUE(snaps.ok());
  ASSERT_EQ(snaps->size(), 1u);
  EXPECT_EQ(snaps->front().id, b.id);
  ASSERT_TRUE(fresh->store().Locate(LoadManifest(b.manifest_root, fresh->codec(), fresh->store())->chunks).ok());
  EXPECT_EQ(RestoreBytes(*fresh, b), ImageB());
}

TEST_F(PeerPruneTest, APeerThatIsDownKeepsItsRowsAndTheNextPruneReleasesThem) {
  auto repo = Open(dir_ / "state");
  ASSERT_NE(repo, nullptr);
  Snapshot a = BackUp(*repo, ImageA());
  Snapshot b = BackUp(*repo, ImageB());
  const IdSet in_b = Referenced(*repo, b);
  std::vector<ChunkId> only_a;
  for (const ChunkId& id : Referenced(*repo, a))
    if (!in_b.contains(id)) only_a.push_back(id);
  repo.reset();

  servers_[0]->server->Stop();
  repo = Open(dir_ / "state");
  ASSERT_NE(repo, nullptr);
  auto report = repo->Prune(keep_newest_, Prune(false));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->notes.size(), 1u);
  EXPECT_NE(report->notes[0].find("not confirmed"), std::string::npos) << report->notes[0];
  size_t on_down_peer = 0;
  for (const ChunkId& id : only_a) {
    on_down_peer += Holders(id);  // only peer0 may still have it
    auto has = servers_[0]->store->Has("owner", std::span(&id, 1));
    EXPECT_EQ(Holders(id), has.ok() && (*has)[0] ? 1 : 0);
  }
  EXPECT_GT(on_down_peer, 0u);
  repo.reset();

  Start(*servers_[0]);
  repo = Open(dir_ / "state");
  ASSERT_NE(repo, nullptr);
  report = repo->Prune(keep_newest_, Prune(false));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->snapshots_forgotten, 0u);
  EXPECT_EQ(report->chunks_removed, on_down_peer);
  EXPECT_TRUE(report->notes.empty());
  for (const ChunkId& id : only_a) EXPECT_EQ(Holders(id), 0);
  EXPECT_EQ(RestoreBytes(*repo, b), ImageB());
}

TEST_F(PeerPruneTest, PruneRefusesWhileAnotherUserHasTheBackupsOpen) {
  auto repo = Open(dir_ / "state");
  ASSERT_NE(repo, nullptr);
  BackUp(*repo, ImageA());
  {
    auto other = Open(dir_ / "state");  // another user of this host's backups
    ASSERT_NE(other, nullptr);
    auto report = repo->Prune(keep_newest_, Prune(false));
    ASSERT_FALSE(report.ok());
    EXPECT_EQ(report.status().code(), ErrorCode::kUnavailable);
    EXPECT_NE(report.status().message().find("prune later"), std::string::npos);
  }
  auto report = repo->Prune(keep_newest_, Prune(false));
  EXPECT_TRUE(report.ok()) << report.status().ToString();
}

}  // namespace
}  // namespace sparetime::replication
