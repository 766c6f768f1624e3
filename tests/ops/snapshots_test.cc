// ops use cases over a real local repository (real files, SQLite catalog,
// pack store): backup, list, "latest" of one device, restore without
// shrinking the target, forget, verify with a damaged chunk (an injected
// storage fault in a Backups decorator), repair's refusal and texts, and the
// byte-rate limit on a backup without a JobController.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "sparetime/imaging/manifest.h"
#include "sparetime/imaging/repository.h"
#include "sparetime/ops/backup.h"
#include "sparetime/ops/backups.h"
#include "sparetime/ops/maintenance.h"
#include "sparetime/ops/snapshots.h"
#include "testutil/testutil.h"

namespace sparetime::ops {
namespace {

using sparetime::testing::RandomBytes;
using sparetime::testing::ReadFileOrDie;
using sparetime::testing::TempDir;
using sparetime::testing::WriteFileOrDie;

constexpr uint32_t kChunk = 64 << 10;

SecretBuffer Passphrase() {
  const std::string_view s = "correct horse";
  SecretBuffer b(s.size());
  std::memcpy(b.span().data(), s.data(), s.size());
  return b;
}

class OpsSnapshotsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    OpenOptions o;
    o.where = LocalRepository{dir_ / "repo"};
    InitSettings settings{.chunk_size = kChunk, .zstd_level = 1};
    ASSERT_TRUE(Init(o, Passphrase(), settings, KdfLimits::FastForTests()).ok());
    Result<std::unique_ptr<Backups>> opened = Open(o, Passphrase());
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    backups_ = std::move(*opened);
  }

  // A file of `size` pseudo-random bytes at dir_/name.
  std::string Device(const std::string& name, size_t size, uint64_t seed) {
    WriteFileOrDie(dir_ / name, RandomBytes(size, seed));
    return dir_ / name;
  }

  Snapshot BackupOf(const std::string& device) {
    BackupRequest r;
    r.device = device;
    r.buffered = true;
    Result<Snapshot> s = Backup(*backups_, r);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *s : Snapshot{};
  }

  TempDir dir_;
  std::unique_ptr<Backups> backups_;
};

TEST_F(OpsSnapshotsTest, BackupListRestoreRoundTrip) {
  const std::string dev = Device("disk.img", 5 * kChunk + 100, 1);
  Snapshot s = BackupOf(dev);
  Result<std::vector<Snapshot>> list = ListSnapshots(*backups_);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].id, s.id);
  EXPECT_EQ(s.size, 5u * kChunk + 100);

  RestoreRequest r;
  r.snapshot = "latest";
  r.target = dir_ / "out.img";
  r.buffered = true;
  Result<RestoreReport> report = RestoreSnapshot(*backups_, r);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->snapshot.id, s.id);
  EXPECT_EQ(report->image_size, 5u * kChunk + 100);
  EXPECT_EQ(report->stats.chunks_written, 6u);
  EXPECT_EQ(ReadFileOrDie(dir_ / "out.img"), ReadFileOrDie(dev));
}

TEST_F(OpsSnapshotsTest, LatestIsOfOneDeviceAndAskedForWhenSeveral) {
  const std::string big = Device("big.img", 4 * kChunk, 2);
  const std::string small = Device("small.img", 1 * kChunk, 3);
  Snapshot of_big = BackupOf(big);
  Snapshot of_small = BackupOf(small);  // newer, another device

  Result<Snapshot> latest = FindSnapshot(*backups_, "latest");
  ASSERT_FALSE(latest.ok());
  EXPECT_EQ(latest.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(latest.status().message().find(big), std::string::npos) << latest.status().message();
  EXPECT_NE(latest.status().message().find(small), std::string::npos);
  EXPECT_NE(latest.status().message().find("--device"), std::string::npos);

  Result<Snapshot> by_path = FindSnapshot(*backups_, "latest", big);
  ASSERT_TRUE(by_path.ok()) << by_path.status().ToString();
  EXPECT_EQ(by_path->id, of_big.id);
  Result<Snapshot> by_key = FindSnapshot(*backups_, "latest", of_small.device.Key());
  ASSERT_TRUE(by_key.ok());
  EXPECT_EQ(by_key->id, of_small.id);
  Result<Snapshot> none = FindSnapshot(*backups_, "latest", dir_ / "other.img");
  EXPECT_EQ(none.status().code(), ErrorCode::kNotFound);
  // An id names its snapshot whatever the device; a contradicting --device is refused.
  EXPECT_EQ(FindSnapshot(*backups_, of_small.id).value().id, of_small.id);
  EXPECT_EQ(FindSnapshot(*backups_, of_small.id, big).status().code(),
            ErrorCode::kInvalidArgument);

  // The restore of "latest" writes nothing when the device is not named.
  const std::string target = Device("target.img", 4 * kChunk, 9);
  const std::vector<std::byte> before = ReadFileOrDie(target);
  RestoreRequest r;
  r.target = target;
  r.buffered = true;
  EXPECT_EQ(RestoreSnapshot(*backups_, r).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ReadFileOrDie(target), before);
  r.device = big;
  ASSERT_TRUE(RestoreSnapshot(*backups_, r).ok());
  EXPECT_EQ(ReadFileOrDie(target), ReadFileOrDie(big));
}

TEST_F(OpsSnapshotsTest, RestoreKeepsALargerTargetFileUnlessTruncateIsAsked) {
  const std::string dev = Device("disk.img", 2 * kChunk, 4);
  BackupOf(dev);
  const std::string target = Device("target.img", 8 * kChunk, 5);
  const std::vector<std::byte> old = ReadFileOrDie(target);

  RestoreRequest r;
  r.target = target;
  r.buffered = true;
  Result<RestoreReport> kept = RestoreSnapshot(*backups_, r);
  ASSERT_TRUE(kept.ok()) << kept.status().ToString();
  EXPECT_EQ(kept->target_size, 8u * kChunk);
  std::vector<std::byte> now = ReadFileOrDie(target);
  ASSERT_EQ(now.size(), 8u * kChunk);
  const std::vector<std::byte> image = ReadFileOrDie(dev);
  EXPECT_TRUE(std::equal(image.begin(), image.end(), now.begin()));
  EXPECT_TRUE(std::equal(old.begin() + 2 * kChunk, old.end(), now.begin() + 2 * kChunk))
      << "the bytes past the image are the target's own";

  r.truncate = true;
  Result<RestoreReport> cut = RestoreSnapshot(*backups_, r);
  ASSERT_TRUE(cut.ok()) << cut.status().ToString();
  EXPECT_EQ(ReadFileOrDie(target), image);
}

TEST_F(OpsSnapshotsTest, ForgetRemovesExactlyOneSnapshot) {
  const std::string dev = Device("disk.img", 2 * kChunk, 6);
  Snapshot first = BackupOf(dev);
  Snapshot second = BackupOf(dev);
  Result<Snapshot> gone = ForgetSnapshot(*backups_, first.id);
  ASSERT_TRUE(gone.ok());
  EXPECT_EQ(gone->id, first.id);
  Result<std::vector<Snapshot>> list = ListSnapshots(*backups_);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].id, second.id);
  EXPECT_EQ(ForgetSnapshot(*backups_, first.id).status().code(), ErrorCode::kNotFound);
}

// Backups whose source damages the sealed bytes of one chunk (a storage fault).
class DamagedSource final : public ChunkSource {
 public:
  DamagedSource(ChunkSource& inner, ChunkId bad) : inner_(inner), bad_(bad) {}
  Result<std::vector<std::byte>> Get(const ChunkId& id) override {
    ST_ASSIGN_OR_RETURN(std::vector<std::byte> blob, inner_.Get(id));
    if (id == bad_) blob[blob.size() / 2] ^= std::byte{0x40};
    return blob;
  }

 private:
  ChunkSource& inner_;
  ChunkId bad_;
};

class DamagedBackups final : public Backups {
 public:
  DamagedBackups(Backups& inner, ChunkId bad) : inner_(inner), source_(inner.source(), bad) {}
  const RepositoryConfig& config() const override { return inner_.config(); }
  const Codec& codec() const override { return inner_.codec(); }
  ChunkSink& sink() override { return inner_.sink(); }
  ChunkSource& source() override { return source_; }
  Catalog& catalog() override { return inner_.catalog(); }
  std::string where() const override { return inner_.where(); }
  Result<PruneReport> Prune(const RetentionPolicy& p, const PruneOptions& o) override {
    return inner_.Prune(p, o);
  }

 private:
  Backups& inner_;
  DamagedSource source_;
};

TEST_F(OpsSnapshotsTest, VerifyReportsEachSnapshotWithItsBadChunks) {
  const std::string dev = Device("disk.img", 4 * kChunk, 7);
  Snapshot first = BackupOf(dev);
  // The second snapshot shares chunks 0..3 and adds one.
  std::vector<std::byte> grown = ReadFileOrDie(dev);
  std::vector<std::byte> more = RandomBytes(kChunk, 8);
  grown.insert(grown.end(), more.begin(), more.end());
  WriteFileOrDie(dev, grown);
  Snapshot second = BackupOf(dev);

  Result<VerifyBackupsReport> clean = VerifyBackups(*backups_, {});
  ASSERT_TRUE(clean.ok()) << clean.status().ToString();
  ASSERT_EQ(clean->snapshots.size(), 2u);
  EXPECT_EQ(clean->damaged(), 0u);
  EXPECT_TRUE(VerifyVerdict(*clean).ok());
  uint64_t checked = 0, known = 0;
  for (const SnapshotVerdict& v : clean->snapshots) {
    checked += v.chunks_checked;
    known += v.chunks_known;
  }
  EXPECT_EQ(checked, 5u) << "every distinct chunk is read once";
  EXPECT_EQ(known, 4u) << "the shared ones are known for the later snapshot";

  // Damage a chunk both snapshots use: each snapshot reports it, and it
  // counts once (issue 26: it used to count twice, its prefix doubled).
  Result<Manifest> m = LoadManifest(first.manifest_root, backups_->codec(), backups_->source());
  ASSERT_TRUE(m.ok());
  DamagedBackups damaged(*backups_, m->chunks[1]);
  Result<VerifyBackupsReport> report = VerifyBackups(damaged, {});
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->snapshots.size(), 2u);
  EXPECT_EQ(report->damaged(), 1u);
  ASSERT_EQ(report->chunks.size(), 1u);
  EXPECT_EQ(report->chunks[0].id, m->chunks[1]);
  ASSERT_EQ(report->chunks[0].snapshots.size(), 2u) << "it names every snapshot using it";
  std::vector<std::string> users = {report->chunks[0].snapshots[0].first,
                                    report->chunks[0].snapshots[1].first};
  std::sort(users.begin(), users.end());
  std::vector<std::string> both = {first.id, second.id};
  std::sort(both.begin(), both.end());
  EXPECT_EQ(users, both);
  for (const SnapshotVerdict& v : report->snapshots) {
    ASSERT_EQ(v.bad.size(), 1u) << v.snapshot.id;
    EXPECT_EQ(v.bad[0].id, m->chunks[1]);
    EXPECT_EQ(v.bad[0].offset, uint64_t{kChunk});
    EXPECT_FALSE(v.ok());
    const std::string where = "chunk at offset " + std::to_string(kChunk);
    const std::string msg = v.bad[0].error.message();
    EXPECT_EQ(msg.find(where), 0u) << msg;
    EXPECT_EQ(msg.find(where, 1), std::string::npos) << "the offset prefix once: " << msg;
  }
  Status verdict = VerifyVerdict(*report);
  EXPECT_EQ(verdict.code(), ErrorCode::kCorruption);
  EXPECT_NE(verdict.message().find("1 damaged chunk(s)"), std::string::npos) << verdict.message();

  // One snapshot by id.
  VerifyRequest one;
  one.snapshot = second.id;
  Result<VerifyBackupsReport> only = VerifyBackups(damaged, one);
  ASSERT_TRUE(only.ok());
  ASSERT_EQ(only->snapshots.size(), 1u);
  EXPECT_EQ(only->snapshots[0].snapshot.id, second.id);
  EXPECT_EQ(only->snapshots[0].chunks_checked, 5u);
}

TEST_F(OpsSnapshotsTest, RepairOfAHealthyLocalRepositoryAndTheTypedReport) {
  BackupOf(Device("disk.img", 3 * kChunk, 11));
  Result<RepairReport> r = Repair(*backups_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->local);
  EXPECT_EQ(r->chunks, 3u);
  EXPECT_EQ(r->copied, 0u);
  EXPECT_EQ(r->lost, 0u);
  EXPECT_EQ(RepairText(*r), "3 chunks checked: 0 damaged, 0 stored again from the source "
                            "device, 0 lost");
  EXPECT_EQ(Repair(*backups_, {.source = "", .cancel = nullptr}).status().code(), ErrorCode::kOk);
  RepairReport report;
  report.chunks = 10;
  report.copied = 3;
  report.dropped = 2;
  report.lost = 1;
  EXPECT_EQ(RepairText(report),
            "10 chunks checked: 3 new replicas made, 2 stale records dropped, 1 chunks lost "
            "(no live peer has a good copy)");
  EXPECT_EQ(RepairVerdict(report).code(), ErrorCode::kCorruption);
  report.lost = 0;
  EXPECT_TRUE(RepairVerdict(report).ok());
  EXPECT_TRUE(backups_->Warnings().empty());
}

TEST(OpsWarnings, TextsAndWhatNeedsARepair) {
  EXPECT_EQ(WarningText(Warning::PeerSkipped("beta: connection refused")),
            "peer skipped for this run: beta: connection refused");
  EXPECT_EQ(WarningText(Warning::Count(Warning::Kind::kUnderReplicated, 4)),
            "4 chunk(s) are on fewer peers than the policy's replica count; run `sparetime "
            "repair` when the peers are back");
  EXPECT_FALSE(NeedsRepair({Warning::About(Warning::Kind::kPeerEvent, "x")}));
  EXPECT_TRUE(NeedsRepair({Warning::Count(Warning::Kind::kBadReplicas, 1)}));
  EXPECT_TRUE(NeedsRepair({Warning::PeerSkipped("gamma")}));
}

// The byte-rate limit holds without a JobController: 2 MiB at 1 MiB/s is
// one second's burst plus one second of waiting.
TEST_F(OpsSnapshotsTest, BackupHonoursTheByteRateWithoutAController) {
  const std::string dev = Device("disk.img", 2 << 20, 10);
  BackupRequest r;
  r.device = dev;
  r.buffered = true;
  r.bytes_per_second = 1 << 20;
  const auto start = std::chrono::steady_clock::now();
  Result<Snapshot> s = Backup(*backups_, r);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_GE(seconds, 0.85) << "2 MiB at 1 MiB/s";
  EXPECT_LT(seconds, 30.0);

  // And a stop request ends the wait.
  std::atomic<bool> stop{true};
  RateGate gate(1024, SystemClock(), &stop);
  EXPECT_EQ(gate.WaitWhilePaused(1 << 20).code(), ErrorCode::kCancelled);
}

}  // namespace
}  // namespace sparetime::ops
