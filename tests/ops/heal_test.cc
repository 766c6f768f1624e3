// A local repository that heals itself (issue 26), over real files: one
// byte flipped in a real pack file. Verify records the damaged chunk, the
// next backup of the intact device stores it again, a keep-going restore
// writes every good chunk and zeroes for the bad one, repair re-stores it
// from the source device or names every snapshot range it leaves lost, and
// verify checks catalog.db with SQLite.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "sparetime/imaging/manifest.h"
#include "sparetime/imaging/repository.h"
#include "sparetime/ops/backup.h"
#include "sparetime/ops/backups.h"
#include "sparetime/ops/maintenance.h"
#include "sparetime/ops/snapshots.h"
#include "testutil/testutil.h"

namespace sparetime::ops {
namespace {

using sparetime::testing::PackFiles;
using sparetime::testing::RandomBytes;
using sparetime::testing::ReadFileOrDie;
using sparetime::testing::TempDir;
using sparetime::testing::WriteFileOrDie;

constexpr uint32_t kChunk = 64 << 10;
constexpr uint64_t kChunks = 6;

SecretBuffer Passphrase() {
  const std::string_view s = "correct horse";
  SecretBuffer b(s.size());
  std::memcpy(b.span().data(), s.data(), s.size());
  return b;
}

class HealTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.where = LocalRepository{repo()};
    InitSettings settings{.chunk_size = kChunk, .zstd_level = 1};
    ASSERT_TRUE(Init(options_, Passphrase(), settings, KdfLimits::FastForTests()).ok());
    Reopen();
    WriteFileOrDie(device(), RandomBytes(kChunks * kChunk, 26));
  }

  std::string repo() const { return dir_ / "repo"; }
  std::string device() const { return dir_ / "disk.img"; }

  void Reopen() {
    backups_.reset();
    Result<std::unique_ptr<Backups>> opened = Open(options_, Passphrase());
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    backups_ = std::move(*opened);
  }

  Snapshot BackupOfDevice() {
    BackupRequest r;
    r.device = device();
    r.buffered = true;
    Result<Snapshot> s = Backup(*backups_, r);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *s : Snapshot{};
  }

  // Flips one byte inside the first record of the (only) pack: a data chunk
  // (the manifest is stored after every data chunk).
  void FlipAByteInThePack() {
    std::vector<std::string> packs = PackFiles(repo() + "/store/packs");
    ASSERT_EQ(packs.size(), 1u);
    std::fstream f(packs[0], std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(4096);
    char c;
    f.get(c);
    f.seekp(4096);
    f.put(static_cast<char>(c ^ 0x20));
  }

  Result<VerifyBackupsReport> VerifyAll() { return VerifyBackups(*backups_, {}); }

  TempDir dir_;
  OpenOptions options_;
  std::unique_ptr<Backups> backups_;
};

TEST_F(HealTest, VerifyRecordsTheDamageAndTheNextBackupStoresTheChunkAgain) {
  Snapshot first = BackupOfDevice();
  EXPECT_EQ(first.stats.new_chunks, kChunks);
  FlipAByteInThePack();

  Result<VerifyBackupsReport> found = VerifyAll();
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  ASSERT_EQ(found->damaged(), 1u);
  ASSERT_EQ(found->chunks.size(), 1u);
  ASSERT_EQ(found->chunks[0].snapshots.size(), 1u);
  EXPECT_EQ(found->chunks[0].snapshots[0].first, first.id);

  // Before issue 26 this backup stored 0 new chunks (the index said the
  // damaged chunk was there) and the new snapshot was damaged from the start.
  Reopen();
  Snapshot second = BackupOfDevice();
  EXPECT_EQ(second.stats.new_chunks, 1u) << "the damaged chunk is stored again";
  Result<VerifyBackupsReport> healed = VerifyAll();
  ASSERT_TRUE(healed.ok()) << healed.status().ToString();
  EXPECT_EQ(healed->damaged(), 0u) << "both snapshots read the chunk stored again";
  EXPECT_TRUE(VerifyVerdict(*healed).ok());

  RestoreRequest r;
  r.snapshot = first.id;
  r.target = dir_ / "out.img";
  r.buffered = true;
  Result<RestoreReport> restored = RestoreSnapshot(*backups_, r);
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  EXPECT_EQ(ReadFileOrDie(dir_ / "out.img"), ReadFileOrDie(device()));
}

TEST_F(HealTest, KeepGoingRestoresEveryGoodChunkAndZeroesTheBadOne) {
  Snapshot snap = BackupOfDevice();
  FlipAByteInThePack();
  Result<VerifyBackupsReport> found = VerifyAll();
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->chunks.size(), 1u);
  const uint64_t bad_offset = found->chunks[0].snapshots[0].second;

  RestoreRequest r;
  r.snapshot = snap.id;
  r.target = dir_ / "stops.img";
  r.buffered = true;
  Result<RestoreReport> stops = RestoreSnapshot(*backups_, r);
  EXPECT_EQ(stops.status().code(), ErrorCode::kCorruption) << "without --keep-going it stops";

  r.target = dir_ / "out.img";
  r.keep_going = true;
  Result<RestoreReport> kept = RestoreSnapshot(*backups_, r);
  ASSERT_TRUE(kept.ok()) << kept.status().ToString();
  ASSERT_EQ(kept->stats.damaged.size(), 1u);
  EXPECT_EQ(kept->stats.damaged[0].offset, bad_offset);
  EXPECT_EQ(kept->stats.damaged[0].length, kChunk);
  EXPECT_EQ(kept->stats.damaged[0].error.code(), ErrorCode::kCorruption);
  EXPECT_EQ(kept->stats.chunks_written, kChunks - 1);

  std::vector<std::byte> want = ReadFileOrDie(device());
  std::fill(want.begin() + static_cast<ptrdiff_t>(bad_offset),
            want.begin() + static_cast<ptrdiff_t>(bad_offset + kChunk), std::byte{0});
  EXPECT_EQ(ReadFileOrDie(dir_ / "out.img"), want);
}

TEST_F(HealTest, RepairStoresTheChunkAgainFromTheSourceDevice) {
  Snapshot snap = BackupOfDevice();
  FlipAByteInThePack();
  Result<RepairReport> r = Repair(*backups_, {.source = device(), .cancel = nullptr});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->local);
  EXPECT_EQ(r->chunks, kChunks);
  EXPECT_EQ(r->copied, 1u);
  EXPECT_EQ(r->lost, 0u);
  EXPECT_TRUE(RepairVerdict(*r).ok());
  Result<VerifyBackupsReport> after = VerifyAll();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->damaged(), 0u);
}

TEST_F(HealTest, RepairWithoutTheDataNamesEverySnapshotRangeLost) {
  Snapshot first = BackupOfDevice();
  Snapshot second = BackupOfDevice();  // shares every chunk
  FlipAByteInThePack();
  // The device changed since: its bytes no longer hash to the lost chunk.
  WriteFileOrDie(device(), RandomBytes(kChunks * kChunk, 27));
  Result<RepairReport> r = Repair(*backups_, {.source = device(), .cancel = nullptr});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->copied, 0u);
  EXPECT_EQ(r->lost, 1u);
  ASSERT_EQ(r->lost_at.size(), 2u) << "one range in each snapshot";
  std::vector<std::string> ids = {r->lost_at[0].snapshot, r->lost_at[1].snapshot};
  std::vector<std::string> want = {first.id, second.id};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(ids, want);
  EXPECT_EQ(r->lost_at[0].offset, r->lost_at[1].offset);
  EXPECT_EQ(r->lost_at[0].length, kChunk);
  Status verdict = RepairVerdict(*r);
  EXPECT_EQ(verdict.code(), ErrorCode::kCorruption);
  EXPECT_NE(verdict.message().find(first.id + " at " + std::to_string(r->lost_at[0].offset)),
            std::string::npos)
      << verdict.message();

  // Without a source it reports the same.
  Result<RepairReport> bare = Repair(*backups_);
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->lost, 1u);
  EXPECT_EQ(bare->lost_at.size(), 2u);
}

TEST_F(HealTest, VerifyChecksTheCatalogDatabase) {
  BackupOfDevice();
  VerifyRequest full;
  full.full = true;
  Result<VerifyBackupsReport> clean = VerifyBackups(*backups_, full);
  ASSERT_TRUE(clean.ok());
  EXPECT_FALSE(clean->database_error);
  backups_.reset();
  // Overwrite the third page with garbage: the catalog still opens and
  // lists its snapshots (before issue 26 verify then passed).
  const std::string db = repo() + "/catalog.db";
  std::vector<std::byte> bytes = ReadFileOrDie(db);
  ASSERT_GE(bytes.size(), 3u * 4096);
  for (size_t i = 2 * 4096; i < 3 * 4096; ++i) bytes[i] = std::byte{0x5a};
  WriteFileOrDie(db, bytes);
  Result<std::unique_ptr<Backups>> opened = Open(options_, Passphrase());
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  backups_ = std::move(*opened);
  Result<VerifyBackupsReport> report = VerifyAll();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_TRUE(report->database_error);
  EXPECT_NE(report->database_error->find("catalog.db"), std::string::npos)
      << *report->database_error;
  EXPECT_GE(report->damaged(), 1u);
  EXPECT_EQ(VerifyVerdict(*report).code(), ErrorCode::kCorruption);
}

// Prune drops the damaged records (issue 26) of chunks no kept snapshot
// uses any more, and keeps those of chunks a kept snapshot still needs
// healed; a dry run only counts them.
TEST_F(HealTest, PruneDropsDamagedRecordsOfChunksNoSnapshotUses) {
  Snapshot first = BackupOfDevice();
  WriteFileOrDie(device(), RandomBytes(kChunks * kChunk, 27));  // nothing shared
  Snapshot second = BackupOfDevice();
  Result<Manifest> m1 = LoadManifest(first.manifest_root, backups_->codec(), backups_->source());
  Result<Manifest> m2 = LoadManifest(second.manifest_root, backups_->codec(), backups_->source());
  ASSERT_TRUE(m1.ok() && m2.ok());
  // What verify records: two chunks of the first snapshot, one of the second.
  const std::vector<DamagedChunk> damaged = {
      {m1->chunks[0], "test damage"}, {m1->chunks[3], "test damage"}, {m2->chunks[2], "test damage"}};
  ASSERT_TRUE(backups_->RecordDamaged(damaged).ok());
  Result<std::vector<ChunkId>> own =
      ManifestChunkIds(first.manifest_root, backups_->codec(), backups_->source());
  ASSERT_TRUE(own.ok());
  const uint64_t first_manifest_chunks = own->size();
  ASSERT_GE(first_manifest_chunks, 1u);
  ASSERT_TRUE(ForgetSnapshot(*backups_, first.id).ok());

  PruneOptions dry;
  dry.dry_run = true;
  Result<PruneReport> would = Prune(*backups_, RetentionPolicy{.keep_last = 10}, dry);
  ASSERT_TRUE(would.ok()) << would.status().ToString();
  EXPECT_EQ(would->damaged_forgotten, 2u);
  Result<PruneReport> pruned = Prune(*backups_, RetentionPolicy{.keep_last = 10}, PruneOptions{});
  ASSERT_TRUE(pruned.ok()) << pruned.status().ToString();
  EXPECT_EQ(pruned->damaged_forgotten, 2u);
  // 6 data chunks of the first snapshot minus its 2 damaged ones (no longer
  // stored), plus its manifest chunks.
  EXPECT_EQ(pruned->chunks_removed, kChunks - 2 + first_manifest_chunks);

  backups_.reset();
  Result<std::unique_ptr<Repository>> opened = Repository::Open(repo(), Passphrase());
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  Result<std::vector<DamagedChunk>> left = (*opened)->store().Damaged();
  ASSERT_TRUE(left.ok());
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ((*left)[0].id, m2->chunks[2]);
  EXPECT_EQ((*left)[0].error, "test damage");
  // A second prune has nothing more to drop.
  opened->reset();
  Reopen();
  Result<PruneReport> again = Prune(*backups_, RetentionPolicy{.keep_last = 10}, PruneOptions{});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->damaged_forgotten, 0u);
}

}  // namespace
}  // namespace sparetime::ops
