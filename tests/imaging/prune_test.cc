// Prune on a real local repository (codec, pack store, catalog): retention
// forgets, exactly the unshared chunks go, the kept snapshot still restores
// and verifies, journal chunks stay, a dry run changes nothing, the
// repository lock keeps prune and other users apart, and repack gives the
// space back — also when killed at any point.
#include "sparetime/imaging/prune.h"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <thread>
#include <unordered_set>

#include "sparetime/imaging/device.h"
#include "sparetime/imaging/imager.h"
#include "sparetime/imaging/manifest.h"
#include "sparetime/imaging/repository.h"
#include "sparetime/imaging/restorer.h"
#include "imaging/prune_testing.h"
#include "testutil/testutil.h"

namespace sparetime {
namespace {

using testing::RandomBytes;
using testing::TempDir;
using testing::IdSet;

constexpr uint32_t kChunk = 64 << 10;
constexpr size_t kChunks = 40;

SecretBuffer Passphrase() {
  SecretBuffer s(12);
  std::memcpy(s.data(), "prune-secret", 12);
  return s;
}

// Image A: 40 random chunks. Image B: A's first 10 chunks, then 30 others.
std::vector<std::byte> ImageA() { return RandomBytes(kChunks * kChunk, 1); }
std::vector<std::byte> ImageB() {
  std::vector<std::byte> b = ImageA();
  std::vector<std::byte> other = RandomBytes(30 * kChunk, 2);
  std::memcpy(b.data() + 10 * kChunk, other.data(), other.size());
  return b;
}

class PruneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RepositoryConfig config;
    config.chunk_size = kChunk;
    ASSERT_TRUE(Repository::Init(repo_dir_, Passphrase(), config, KdfLimits::FastForTests()).ok());
  }

  std::unique_ptr<Repository> Open() {
    auto repo = Repository::Open(repo_dir_, Passphrase());
    EXPECT_TRUE(repo.ok()) << repo.status().ToString();
    return repo.ok() ? std::move(*repo) : nullptr;
  }

  // Writes `image` to the (one) device file and backs it up.
  Snapshot BackUp(Repository& repo, const std::vector<std::byte>& image) {
    testing::WriteFileOrDie(device_, image);
    auto dev = OpenBlockDevice(device_);
    EXPECT_TRUE(dev.ok());
    BackupEnv env{repo.codec(), repo.store(), repo.catalog(), repo.catalog()};
    BackupOptions options;
    options.chunk_size = kChunk;
    auto snap = Backup(**dev, env, options);
    EXPECT_TRUE(snap.ok()) << snap.status().ToString();
    return *snap;
  }

  static IdSet Referenced(Repository& repo, const Snapshot& s) {
    return testing::ReferencedChunks(repo.codec(), repo.store(), s);
  }

  static std::vector<std::byte> RestoreBytes(Repository& repo, const Snapshot& s,
                                             const std::string& path) {
    auto m = LoadManifest(s.manifest_root, repo.codec(), repo.store());
    EXPECT_TRUE(m.ok());
    auto target = OpenRestoreTarget(path, m->size);
    EXPECT_TRUE(target.ok());
    auto stats = Restore(*m, repo.codec(), repo.store(), **target, {});
    EXPECT_TRUE(stats.ok()) << stats.status().ToString();
    target->reset();
    auto verify = Verify(*m, repo.codec(), repo.store(), {});
    EXPECT_TRUE(verify.ok() && verify->ok());
    return testing::ReadFileOrDie(path);
  }

  uint64_t PackFileBytes() const {
    uint64_t total = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(repo_dir_ + "/store/packs"))
      if (e.is_regular_file()) total += e.file_size();
    return total;
  }

  static PruneOptions Options(bool dry_run) {
    PruneOptions o;
    o.dry_run = dry_run;
    o.utc_offset = [](int64_t) { return 0; };
    o.lock_wait = std::chrono::milliseconds(200);
    return o;
  }

  TempDir tmp_;
  const std::string repo_dir_ = tmp_ / "repo";
  const std::string device_ = tmp_ / "disk.img";
  const RetentionPolicy keep_newest_{.keep_last = 1, .keep_daily = 0, .keep_weekly = 0,
                                     .keep_monthly = 0};
};

TEST_F(PruneTest, RemovesExactlyTheUnsharedChunksAndTheKeptSnapshotRestores) {
  Snapshot a, b;
  {
    auto repo = Open();
    a = BackUp(*repo, ImageA());
  }
  auto repo = Open();  // a new writer: B's new chunks go to a second pack
  b = BackUp(*repo, ImageB());
  const IdSet in_a = Referenced(*repo, a), in_b = Referenced(*repo, b);
  IdSet only_a;
  for (const ChunkId& id : in_a)
    if (!in_b.contains(id)) only_a.insert(id);
  ASSERT_EQ(only_a.size(), 30u + 2u);  // 30 data chunks, A's manifest root and piece
  const uint64_t chunks_before = repo->store().Stats().chunks;
  const uint64_t bytes_before = PackFileBytes();

  auto report = repo->Prune(keep_newest_, Options(false));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->decisions.size(), 2u);
  EXPECT_EQ(report->decisions[0].snapshot.id, b.id);
  EXPECT_TRUE(report->decisions[0].keep);
  EXPECT_EQ(report->decisions[0].reasons, std::vector<std::string>{"last 1"});
  EXPECT_FALSE(report->decisions[1].keep);
  EXPECT_EQ(report->snapshots_forgotten, 1u);
  EXPECT_EQ(report->chunks_stored, chunks_before);
  EXPECT_EQ(report->chunks_referenced, in_b.size());
  EXPECT_EQ(report->chunks_removed, only_a.size());
  EXPECT_GT(report->bytes_removed, 30u * kChunk / 2);  // random data barely compresses

  auto snaps = repo->catalog().ListSnapshots();
  ASSERT_TRUE(snaps.ok());
  ASSERT_EQ(snaps->size(), 1u);
  EXPECT_EQ(snaps->front().id, b.id);
  EXPECT_EQ(repo->store().Stats().chunks, chunks_before - only_a.size());
  for (const ChunkId& id : only_a) EXPECT_FALSE(*repo->store().Contains(id));
  for (const ChunkId& id : in_b) EXPECT_TRUE(*repo->store().Contains(id));

  // A's pack was three quarters dead: repacked, and its space is back.
  ASSERT_EQ(report->notes.size(), 1u);
  EXPECT_NE(report->notes[0].find("repacked 1 pack(s) (10 chunks moved)"), std::string::npos)
      << report->notes[0];
  EXPECT_LT(PackFileBytes(), bytes_before - 20u * kChunk);
  EXPECT_EQ(RestoreBytes(*repo, b, tmp_ / "restored.img"), ImageB());

  // After a reopen (recovery scans every pack) nothing changed.
  repo.reset();
  repo = Open();
  EXPECT_EQ(repo->store().recovery().packs_repaired, 0u);
  EXPECT_EQ(RestoreBytes(*repo, b, tmp_ / "restored2.img"), ImageB());
  // A second prune has nothing left to do.
  auto again = repo->Prune(keep_newest_, Options(false));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->chunks_removed, 0u);
  EXPECT_EQ(again->snapshots_forgotten, 0u);
}

TEST_F(PruneTest, DryRunChangesNothing) {
  auto repo = Open();
  Snapshot a = BackUp(*repo, ImageA());
  Snapshot b = BackUp(*repo, ImageB());
  const PackStoreStats before = repo->store().Stats();
  const uint64_t bytes_before = PackFileBytes();
  auto report = repo->Prune(keep_newest_, Options(true));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->dry_run);
  EXPECT_EQ(report->snapshots_forgotten, 1u);
  EXPECT_EQ(report->chunks_removed, 32u);
  EXPECT_GT(report->bytes_removed, 0u);
  EXPECT_TRUE(report->notes.empty());
  EXPECT_EQ(repo->catalog().ListSnapshots()->size(), 2u);
  EXPECT_EQ(repo->store().Stats().chunks, before.chunks);
  EXPECT_EQ(PackFileBytes(), bytes_before);
  EXPECT_EQ(RestoreBytes(*repo, a, tmp_ / "a.img"), ImageA());
}

TEST_F(PruneTest, ChunksOfAnInterruptedBackupAreKept) {
  auto repo = Open();
  Snapshot a = BackUp(*repo, ImageA());
  Snapshot b = BackUp(*repo, ImageB());
  // An interrupted backup journaled chunk 20 of A (A-only) as done.
  auto m = LoadManifest(a.manifest_root, repo->codec(), repo->store());
  ASSERT_TRUE(m.ok());
  const ChunkId journaled = m->chunks[20];
  const std::pair<uint64_t, ChunkId> done[] = {{20, journaled}};
  ASSERT_TRUE(repo->catalog().RecordProgress("some-job", done).ok());

  auto report = repo->Prune(keep_newest_, Options(false));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->chunks_in_journals, 1u);
  EXPECT_EQ(report->chunks_removed, 31u);
  EXPECT_TRUE(*repo->store().Contains(journaled));
  auto blob = repo->store().Get(journaled);
  ASSERT_TRUE(blob.ok());  // still readable after the repack

  // Once the job is cleared, the next prune takes it.
  ASSERT_TRUE(repo->catalog().ClearProgress("some-job").ok());
  report = repo->Prune(keep_newest_, Options(false));
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->chunks_removed, 1u);
  EXPECT_FALSE(*repo->store().Contains(journaled));
}

TEST_F(PruneTest, AnUnreadableKeptManifestStopsThePruneBeforeAnyChange) {
  auto repo = Open();
  BackUp(*repo, ImageA());
  Snapshot b = BackUp(*repo, ImageB());
  const ChunkId root = b.manifest_root;
  ASSERT_TRUE(repo->store().Remove(std::span(&root, 1)).ok());
  const uint64_t chunks = repo->store().Stats().chunks;
  auto report = repo->Prune(keep_newest_, Options(false));
  ASSERT_FALSE(report.ok());
  EXPECT_NE(report.status().message().find("kept snapshot " + b.id), std::string::npos)
      << report.status().message();
  EXPECT_EQ(repo->catalog().ListSnapshots()->size(), 2u);
  EXPECT_EQ(repo->store().Stats().chunks, chunks);
}

TEST_F(PruneTest, PruneWaitsForOtherUsersAndBackupsWaitForPrune) {
  auto repo = Open();
  BackUp(*repo, ImageA());
  BackUp(*repo, ImageB());
  {
    auto other = Open();  // e.g. a backup in another process
    auto report = repo->Prune(keep_newest_, Options(false));
    ASSERT_FALSE(report.ok());
    EXPECT_EQ(report.status().code(), ErrorCode::kUnavailable);
    EXPECT_NE(report.status().message().find("prune later"), std::string::npos);
    EXPECT_EQ(repo->catalog().ListSnapshots()->size(), 2u);
  }
  // While a prune holds the lock exclusively, Open waits; once it is back
  // to shared, both are open together again.
  auto exclusive = RepoLock::Acquire(repo_dir_, RepoLock::Mode::kShared, std::chrono::seconds(1));
  ASSERT_TRUE(exclusive.ok());
  repo.reset();
  ASSERT_TRUE(exclusive->Convert(RepoLock::Mode::kExclusive, std::chrono::seconds(1)).ok());
  auto blocked = RepoLock::Acquire(repo_dir_, RepoLock::Mode::kShared, std::chrono::milliseconds(100));
  ASSERT_FALSE(blocked.ok());
  EXPECT_EQ(blocked.status().code(), ErrorCode::kUnavailable);
  std::thread release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    EXPECT_TRUE(exclusive->Convert(RepoLock::Mode::kShared, std::chrono::seconds(1)).ok());
  });
  repo = Open();  // waits for the conversion (up to kOpenLockWait)
  release.join();
  ASSERT_NE(repo, nullptr);
  auto shared = RepoLock::Acquire(repo_dir_, RepoLock::Mode::kShared, std::chrono::milliseconds(100));
  EXPECT_TRUE(shared.ok());
}

// --- Repack crash safety ------------------------------------------------------

// 400 chunks in ~25 packs; 3 of every 4 removed, so every pack is mostly dead.
TEST(RepackTest, KilledAtAnyPointLosesNothing) {
  TempDir tmp;
  const std::string dir = tmp / "store";
  PackStoreOptions options;
  options.target_pack_bytes = 1 << 20;
  std::vector<std::pair<ChunkId, std::vector<std::byte>>> live;
  {
    auto store = PackStore::Create(dir, options);
    ASSERT_TRUE(store.ok());
    std::vector<ChunkId> dead;
    for (uint64_t i = 0; i < 400; ++i) {
      ChunkId id = testing::TestChunkId(i);
      std::vector<std::byte> blob = RandomBytes(kChunk, 100 + i);
      ASSERT_TRUE((*store)->Put(id, blob).ok());
      if (i % 4 == 0) {
        live.emplace_back(id, std::move(blob));
      } else {
        dead.push_back(id);
      }
    }
    ASSERT_TRUE((*store)->Flush().ok());
    ASSERT_TRUE((*store)->Remove(dead).ok());
  }
  auto check_all = [&](PackStore& store) {
    EXPECT_EQ(store.Stats().chunks, live.size());
    for (const auto& [id, blob] : live) {
      auto got = store.Get(id);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      ASSERT_EQ(*got, blob);
    }
  };
  // Kill a repack after growing delays; every time, the store opens and
  // holds every live chunk.
  for (int delay_ms : {0, 2, 5, 10, 20, 40, 80}) {
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      auto store = PackStore::Open(dir, options);
      if (!store.ok()) ::_exit(2);
      ::_exit((*store)->Repack().ok() ? 0 : 1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    ::kill(child, SIGKILL);
    int wstatus = 0;
    ASSERT_EQ(::waitpid(child, &wstatus, 0), child);
    EXPECT_TRUE(WIFSIGNALED(wstatus) || (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0));
    auto store = PackStore::Open(dir, options);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    check_all(**store);
  }
  // A full repack afterwards: everything still there, and the dead space gone.
  auto store = PackStore::Open(dir, options);
  ASSERT_TRUE(store.ok());
  auto report = (*store)->Repack();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  check_all(**store);
  uint64_t pack_bytes = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir + "/packs"))
    if (e.is_regular_file()) pack_bytes += e.file_size();
  // 100 live chunks, plus at most one pack's worth of dead copies: a repack
  // killed mid-pack leaves a new pack whose moved rows committed and whose
  // others did not; once it is at least half live it is kept as it is.
  EXPECT_LT(pack_bytes, 100u * (kChunk + 40) + options.target_pack_bytes + 30u * 20);
  EXPECT_GE(pack_bytes, 100u * (kChunk + 40));
  EXPECT_EQ((*store)->Repack()->packs_rewritten, 0u);  // nothing mostly dead left
}

}  // namespace
}  // namespace sparetime
