// Crash tests for a whole backup: the imager writing into a PackStore and a
// Catalog (snapshots and the backup journal), both over one FaultEnv. Two
// backups of a 1 MiB image (the second after changing some chunks), with a
// checkpoint every 256 KiB, run with the power cut at every sync point.
// After the cut, with the real code: every snapshot the catalog lists loads,
// verifies (every chunk reads back and authenticates) and restores to the
// exact image it was taken of; an acknowledged snapshot is never lost;
// every chunk the journal names is in the store; and the interrupted backup
// resumes to a correct snapshot.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "crash_testing.h"
#include "sparetime/imaging/catalog.h"
#include "sparetime/imaging/codec.h"
#include "sparetime/imaging/device.h"
#include "sparetime/imaging/imager.h"
#include "sparetime/imaging/keys.h"
#include "sparetime/imaging/manifest.h"
#include "sparetime/imaging/pack_store.h"
#include "sparetime/imaging/restorer.h"
#include "testutil/fault_env.h"
#include "testutil/testutil.h"

namespace sparetime {
namespace {

using testing::CrashPoint;
using testing::FaultEnv;
using testing::TempDir;

constexpr uint32_t kChunk = 64 << 10;
constexpr uint64_t kChunks = 16;

std::shared_ptr<const KeySet> Keys() {
  SecretBuffer master(32);
  for (size_t i = 0; i < 32; ++i) master.data()[i] = std::byte(i * 5 + 3);
  return KeySet::Derive(master);
}

// Version 1: random with two holes; version 2: chunks 3 and 9 changed.
std::vector<std::byte> Image(int version) {
  std::vector<std::byte> img = testing::RandomBytes(kChunks * kChunk, 7);
  std::memset(img.data() + 5 * kChunk, 0, kChunk);
  std::memset(img.data() + 12 * kChunk, 0, kChunk);
  if (version == 2) {
    for (uint64_t c : {3, 9}) {
      std::vector<std::byte> fresh = testing::RandomBytes(kChunk, 100 + c);
      std::memcpy(img.data() + c * kChunk, fresh.data(), kChunk);
    }
  }
  return img;
}

class CrashBackupTest : public ::testing::Test {
 protected:
  std::string store_dir() const { return tmp_ / "store"; }
  std::string catalog_path() const { return tmp_ / "catalog.db"; }
  std::string image_path() const { return tmp_ / "disk.img"; }

  void Reset() {
    std::filesystem::remove_all(store_dir());
    for (const char* s : {"", "-wal", "-shm"}) std::filesystem::remove(catalog_path() + s);
    testing::WriteFileOrDie(image_path(), Image(1));
  }

  // One backup of the image as it is now, through `env`.
  Result<Snapshot> BackupNow(PackStore& store, Catalog& catalog, const std::string& label) {
    auto device = OpenBlockDevice(image_path());
    if (!device.ok()) return device.status();
    BackupOptions options;
    options.chunk_size = kChunk;
    options.label = label;
    options.threads = 2;
    options.checkpoint_bytes = 4 * kChunk;
    BackupEnv benv{codec_, store, catalog, catalog};
    return Backup(**device, benv, options);
  }

  void Run() {
    acked_ = 0;
    PackStoreOptions so;
    so.target_pack_bytes = 300 << 10;
    so.env = &env_;
    auto store = PackStore::Open(store_dir(), so);
    if (!store.ok()) store = PackStore::Create(store_dir(), so);
    if (!store.ok()) return;
    auto catalog = Catalog::Open(catalog_path(), {.env = &env_});
    if (!catalog.ok()) return;
    if (!BackupNow(**store, **catalog, "v1").ok()) return;
    acked_ = 1;
    testing::WriteFileOrDie(image_path(), Image(2));
    if (!BackupNow(**store, **catalog, "v2").ok()) return;
    acked_ = 2;
  }

  void CheckReopened() {
    auto store = PackStore::Open(store_dir());
    if (!store.ok() && acked_ == 0) {
      EXPECT_EQ(store.status().code(), ErrorCode::kNotFound) << store.status().ToString();
      return;
    }
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto catalog = Catalog::Open(catalog_path());
    ASSERT_TRUE(catalog.ok()) << catalog.status().ToString();
    auto snaps = (*catalog)->ListSnapshots();
    ASSERT_TRUE(snaps.ok()) << snaps.status().ToString();
    EXPECT_GE(snaps->size(), static_cast<size_t>(acked_)) << "an acknowledged snapshot was lost";
    for (const Snapshot& s : *snaps) {
      SCOPED_TRACE("snapshot " + s.label);
      auto manifest = LoadManifest(s.manifest_root, codec_, **store);
      ASSERT_TRUE(manifest.ok()) << manifest.status().ToString();
      auto report = Verify(*manifest, codec_, **store, {});
      ASSERT_TRUE(report.ok()) << report.status().ToString();
      EXPECT_TRUE(report->bad.empty()) << report->bad.front().error.ToString();
      const std::string out = tmp_ / "restored.img";
      std::filesystem::remove(out);
      auto target = OpenRestoreTarget(out, manifest->size);
      ASSERT_TRUE(target.ok()) << target.status().ToString();
      ASSERT_TRUE(Restore(*manifest, codec_, **store, **target, {}).ok());
      target->reset();
      EXPECT_TRUE(testing::ReadFileOrDie(out) == Image(s.label == "v1" ? 1 : 2));
    }
    // The journal names only chunks the store holds.
    auto journaled = (*catalog)->JournalChunkIds();
    ASSERT_TRUE(journaled.ok()) << journaled.status().ToString();
    for (const ChunkId& id : *journaled) {
      if (id == ChunkId{}) continue;  // a hole: journaled, never stored
      auto sealed = (*store)->Get(id);
      EXPECT_TRUE(sealed.ok()) << "journaled chunk " << id.hex() << ": "
                               << sealed.status().ToString();
    }
    // The interrupted backup resumes to a correct snapshot.
    if (acked_ < 2) {
      auto snap = BackupNow(**store, **catalog, "resumed");
      ASSERT_TRUE(snap.ok()) << snap.status().ToString();
      auto manifest = LoadManifest(snap->manifest_root, codec_, **store);
      ASSERT_TRUE(manifest.ok());
      auto report = Verify(*manifest, codec_, **store, {});
      ASSERT_TRUE(report.ok());
      EXPECT_TRUE(report->bad.empty());
    }
  }

  TempDir tmp_;
  FaultEnv env_;
  Codec codec_{Keys(), {.zstd_level = 1}};
  int acked_ = 0;
};

TEST_F(CrashBackupTest, PowerCutAtEverySyncPointLosesNoSnapshotAndResumes) {
  const uint64_t points = testing::CrashAtEverySyncPoint(
      env_, [&] { Reset(); }, [&] { Run(); },
      [&](const CrashPoint& p) {
        if (p.k == p.total) {
          EXPECT_EQ(acked_, 2);
        }
        CheckReopened();
      });
  EXPECT_GE(points, 20u);
}

}  // namespace
}  // namespace sparetime
