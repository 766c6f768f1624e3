// The backup and restore pipelines over the real codec, pack store and
// catalog on regular files: ordering under many threads, holes, dedup within
// and across runs, cancel + resume, chunks known unchanged taken unread, and
// restore/verify refusals.
#include "sparetime/imaging/imager.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>

#include "sparetime/base/fd.h"
#include "sparetime/imaging/catalog.h"
#include "sparetime/imaging/chunker.h"
#include "sparetime/imaging/codec.h"
#include "sparetime/imaging/device.h"
#include "sparetime/imaging/manifest.h"
#include "sparetime/imaging/pack_store.h"
#include "sparetime/imaging/restorer.h"
#include "testutil/testutil.h"

namespace sparetime {
namespace {

using testing::RandomBytes;
using testing::TempDir;

constexpr uint32_t kChunk = 64 << 10;

std::shared_ptr<const KeySet> TestKeys() {
  SecretBuffer master(32);
  for (size_t i = 0; i < 32; ++i) master.data()[i] = std::byte(i * 7 + 1);
  return KeySet::Derive(master);
}

// An image of 200 chunks: random ones, zero ones, and repeats of chunk 0.
std::vector<std::byte> MixedImage() {
  std::vector<std::byte> img = RandomBytes(200 * kChunk + 1234, 42);
  for (uint64_t i = 0; i < 200; ++i) {
    std::byte* c = img.data() + i * kChunk;
    if (i % 5 == 1) {
      std::memset(c, 0, kChunk);  // 40 holes
    } else if (i % 7 == 3) {
      std::memcpy(c, img.data(), kChunk);  // repeats of chunk 0
    }
  }
  return img;
}

// Passes everything to the real store and raises `cancel` after `limit` puts:
// a deterministic "Ctrl-C in the middle of the backup".
class CancelAfterPuts final : public ChunkSink {
 public:
  CancelAfterPuts(ChunkSink& inner, int limit, std::atomic<bool>& cancel)
      : inner_(inner), left_(limit), cancel_(cancel) {}
  Result<bool> Contains(const ChunkId& id) override { return inner_.Contains(id); }
  Result<bool> Put(const ChunkId& id, std::span<const std::byte> sealed) override {
    if (--left_ <= 0) cancel_ = true;
    return inner_.Put(id, sealed);
  }
  Status Flush() override { return inner_.Flush(); }

 private:
  ChunkSink& inner_;
  std::atomic<int> left_;
  std::atomic<bool>& cancel_;
};

// Passes everything to a real device; tests override ReadAt to watch it.
class DeviceWrapper : public BlockDevice {
 public:
  explicit DeviceWrapper(std::unique_ptr<BlockDevice> inner) : inner_(std::move(inner)) {}
  const DeviceIdentity& identity() const override { return inner_->identity(); }
  Result<size_t> ReadAt(uint64_t offset, std::span<std::byte> buf) override {
    return inner_->ReadAt(offset, buf);
  }
  void DoneWith(uint64_t offset, uint64_t len) override { inner_->DoneWith(offset, len); }
  uint64_t NextDataOffset(uint64_t offset) override { return inner_->NextDataOffset(offset); }

 private:
  std::unique_ptr<BlockDevice> inner_;
};

// Counts the reads.
class CountingDevice final : public DeviceWrapper {
 public:
  using DeviceWrapper::DeviceWrapper;
  Result<size_t> ReadAt(uint64_t offset, std::span<std::byte> buf) override {
    ++reads;
    return DeviceWrapper::ReadAt(offset, buf);
  }
  std::atomic<int> reads{0};
};

// Records how many reads overlap; reads wait until two have been in flight
// at once (giving up after 10 s), so a pipeline that reads one chunk at a
// time shows up as a maximum of 1.
class OverlapDevice final : public DeviceWrapper {
 public:
  using DeviceWrapper::DeviceWrapper;
  Result<size_t> ReadAt(uint64_t offset, std::span<std::byte> buf) override {
    {
      std::unique_lock lock(mu_);
      max_in_flight_ = std::max(max_in_flight_, ++in_flight_);
      cv_.notify_all();
      if (!gave_up_) {
        gave_up_ =
            !cv_.wait_for(lock, std::chrono::seconds(10), [&] { return max_in_flight_ >= 2; });
      }
    }
    Result<size_t> got = DeviceWrapper::ReadAt(offset, buf);
    std::lock_guard lock(mu_);
    --in_flight_;
    return got;
  }
  int max_in_flight() {
    std::lock_guard lock(mu_);
    return max_in_flight_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int in_flight_ = 0;
  int max_in_flight_ = 0;
  bool gave_up_ = false;
};

class ImagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    image_ = MixedImage();
    testing::WriteFileOrDie(tmp_ / "disk.img", image_);
    auto store = PackStore::Create(tmp_ / "store");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    auto catalog = Catalog::Open(tmp_ / "catalog.db");
    ASSERT_TRUE(catalog.ok()) << catalog.status().ToString();
    catalog_ = std::move(*catalog);
  }

  Result<Snapshot> RunBackup(BackupOptions options, ChunkSink* sink = nullptr) {
    auto device = OpenBlockDevice(tmp_ / "disk.img");
    if (!device.ok()) return device.status();
    return BackupOf(**device, options, sink);
  }

  Result<Snapshot> BackupOf(BlockDevice& device, BackupOptions options = {},
                            ChunkSink* sink = nullptr) {
    options.chunk_size = kChunk;
    BackupEnv env{codec_, sink ? *sink : *store_, *catalog_, *catalog_};
    return Backup(device, env, options);
  }

  // The key the imager journals the disk image's progress under.
  std::string JobKey() {
    auto dev = OpenBlockDevice(tmp_ / "disk.img");
    return (*dev)->identity().Key() + ":path=" + (*dev)->identity().path +
           ":chunk=" + std::to_string(kChunk);
  }

  std::vector<std::byte> RestoreToFile(const Snapshot& s, const std::string& name) {
    auto manifest = LoadManifest(s.manifest_root, codec_, *store_);
    EXPECT_TRUE(manifest.ok()) << manifest.status().ToString();
    auto target = OpenRestoreTarget(tmp_ / name, manifest->size);
    EXPECT_TRUE(target.ok()) << target.status().ToString();
    auto stats = Restore(*manifest, codec_, *store_, **target, {});
    EXPECT_TRUE(stats.ok()) << stats.status().ToString();
    return testing::ReadFileOrDie(tmp_ / name);
  }

  TempDir tmp_;
  std::vector<std::byte> image_;
  Codec codec_{TestKeys(), {.zstd_level = 1}};
  std::unique_ptr<PackStore> store_;
  std::unique_ptr<Catalog> catalog_;
};

TEST_F(ImagerTest, ManyThreadsKeepChunkOrderHolesAndDedup) {
  BackupOptions options;
  options.threads = 4;
  options.chunks_in_flight = 3;
  auto snap = RunBackup(options);
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_EQ(snap->stats.chunks, 201u);
  EXPECT_EQ(snap->stats.holes, 40u);
  // Distinct non-zero chunks: 201 - 40 holes - repeats of chunk 0 that are not holes.
  uint64_t repeats = 0;
  for (uint64_t i = 1; i < 200; ++i) repeats += (i % 7 == 3 && i % 5 != 1);
  EXPECT_EQ(snap->stats.new_chunks, 201u - 40u - repeats);
  EXPECT_EQ(RestoreToFile(*snap, "out.img"), image_);
}

TEST_F(ImagerTest, HolesOfSparseFilesAreNeverRead) {
  // 1000 chunks, data written in chunks 3, 500 (partly) and 999 only.
  std::string path = tmp_ / "sparse.img";
  {
    auto fd = OpenFile(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    ASSERT_TRUE(fd.ok());
    ASSERT_EQ(::ftruncate(fd->get(), 1000 * kChunk), 0);
    for (uint64_t at : {3 * kChunk, 500 * kChunk + 4096, 999 * kChunk + kChunk - 10}) {
      ASSERT_TRUE(WriteFullAt(fd->get(), RandomBytes(10, at), at).ok());
    }
  }
  auto inner = OpenBlockDevice(path);
  ASSERT_TRUE(inner.ok());
  CountingDevice device(std::move(*inner));
  auto snap = BackupOf(device);
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_EQ(device.reads, 3);
  EXPECT_EQ(snap->stats.holes, 997u);
  EXPECT_EQ(RestoreToFile(*snap, "sparse-out.img"), testing::ReadFileOrDie(path));
}

TEST_F(ImagerTest, TwoReadsAreInFlight) {
  // O_DIRECT reads get no kernel readahead: the imager overlaps them itself.
  auto inner = OpenBlockDevice(tmp_ / "disk.img");
  ASSERT_TRUE(inner.ok());
  OverlapDevice device(std::move(*inner));
  auto snap = BackupOf(device);
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_EQ(device.max_in_flight(), 2);
  EXPECT_EQ(RestoreToFile(*snap, "out.img"), image_);
}

TEST_F(ImagerTest, SecondRunStoresNothingNew) {
  ASSERT_TRUE(RunBackup({}).ok());
  auto again = RunBackup({});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->stats.new_chunks, 0u);
  EXPECT_EQ(again->stats.stored_bytes, 0u);
}

TEST_F(ImagerTest, UnchangedChunksAreTakenUnreadWhenTheStoreHoldsThem) {
  auto first = RunBackup({});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto manifest = LoadManifest(first->manifest_root, codec_, *store_);
  ASSERT_TRUE(manifest.ok());
  // Chunks 10 and 11 change on disk; the list calls 11 unchanged (so it must
  // not be read: the image keeps its old bytes) and gives 12 an id the store
  // lacks (so it must be read). Chunk 10 is not in the list.
  const std::vector<std::byte> old = image_;
  std::vector<std::byte> fresh = RandomBytes(2 * kChunk, 7);
  std::memcpy(image_.data() + 10 * kChunk, fresh.data(), fresh.size());
  testing::WriteFileOrDie(tmp_ / "disk.img", image_);
  std::vector<std::pair<uint64_t, ChunkId>> unchanged;
  for (uint64_t i = 0; i < manifest->chunk_count(); ++i) {
    if (i == 10) continue;
    unchanged.emplace_back(i, i == 12 ? codec_.Id(RandomBytes(100, 9)) : manifest->chunks[i]);
  }
  auto inner = OpenBlockDevice(tmp_ / "disk.img");
  ASSERT_TRUE(inner.ok());
  CountingDevice device(std::move(*inner));
  BackupOptions options;
  options.unchanged = &unchanged;
  auto second = BackupOf(device, options);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(device.reads, 2);  // chunks 10 and 12
  EXPECT_EQ(second->stats.holes, 40u);
  EXPECT_EQ(second->stats.new_chunks, 1u);  // chunk 10; chunk 12 is stored already
  std::vector<std::byte> want = image_;
  std::memcpy(want.data() + 11 * kChunk, old.data() + 11 * kChunk, kChunk);
  EXPECT_EQ(RestoreToFile(*second, "out.img"), want);
}

TEST_F(ImagerTest, CancelledBackupResumesWhereItStopped) {
  std::atomic<bool> cancel{false};
  BackupOptions first;
  first.threads = 2;
  first.checkpoint_bytes = 4 * kChunk;
  first.cancel = &cancel;
  CancelAfterPuts sink(*store_, 60, cancel);
  auto stopped = RunBackup(first, &sink);
  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ(stopped.error().code(), ErrorCode::kCancelled);
  auto listed = catalog_->ListSnapshots();
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty()) << "no snapshot for an interrupted backup";

  auto journaled = catalog_->LoadProgress(JobKey());
  ASSERT_TRUE(journaled.ok());
  ASSERT_TRUE(journaled->has_value()) << "an interrupted backup leaves its progress";
  EXPECT_GE((*journaled)->done.size(), 60u);

  auto resumed = RunBackup({});
  ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
  EXPECT_GT(resumed->stats.resumed_chunks, 60u);  // 60 puts plus holes and repeats
  EXPECT_LT(resumed->stats.resumed_chunks, 201u);
  EXPECT_EQ(RestoreToFile(*resumed, "out.img"), image_);
  // The journal is cleared once the snapshot exists.
  auto job = catalog_->LoadProgress(JobKey());
  ASSERT_TRUE(job.ok());
  EXPECT_FALSE(job->has_value());
}

TEST_F(ImagerTest, ResumeRereadsChunksTheStoreNoLongerHolds) {
  std::atomic<bool> cancel{false};
  BackupOptions first;
  first.threads = 1;
  first.checkpoint_bytes = kChunk;
  first.cancel = &cancel;
  CancelAfterPuts sink(*store_, 30, cancel);
  ASSERT_FALSE(RunBackup(first, &sink).ok());
  // Drop the first chunk's id from the store: the resume must read it again.
  ChunkId id0 = codec_.Id(std::span(image_).first(kChunk));
  ASSERT_TRUE(store_->Remove(std::span(&id0, 1)).ok());
  auto resumed = RunBackup({});
  ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
  EXPECT_EQ(RestoreToFile(*resumed, "out.img"), image_);
}

TEST_F(ImagerTest, RestoreRefusesASmallerTarget) {
  auto snap = RunBackup({});
  ASSERT_TRUE(snap.ok());
  auto manifest = LoadManifest(snap->manifest_root, codec_, *store_);
  ASSERT_TRUE(manifest.ok());
  testing::WriteFileOrDie(tmp_ / "small.img", RandomBytes(1000, 1));
  auto target = OpenRestoreTarget(tmp_ / "small.img", manifest->size);
  ASSERT_FALSE(target.ok());
  EXPECT_EQ(target.error().code(), ErrorCode::kFailedPrecondition);
}

TEST_F(ImagerTest, VerifyFindsEveryDamagedChunkAndItsOffset) {
  auto snap = RunBackup({});
  ASSERT_TRUE(snap.ok());
  auto manifest = LoadManifest(snap->manifest_root, codec_, *store_);
  ASSERT_TRUE(manifest.ok());
  auto report = Verify(*manifest, codec_, *store_, {});
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok());
  EXPECT_EQ(report->chunks_checked, snap->stats.new_chunks);

  // A wrong key finds every chunk bad, each named by offset.
  SecretBuffer other(32);
  Codec wrong(KeySet::Derive(other), {});
  auto bad = Verify(*manifest, wrong, *store_, {});
  ASSERT_TRUE(bad.ok());
  ASSERT_EQ(bad->bad.size(), snap->stats.new_chunks);
  EXPECT_EQ(bad->bad[0].offset, 0u);
  EXPECT_EQ(bad->bad[0].error.code(), ErrorCode::kCorruption);
  EXPECT_NE(bad->bad[1].error.message().find("offset " + std::to_string(bad->bad[1].offset)),
            std::string::npos);
}

TEST_F(ImagerTest, VerifyCacheReadsSharedChunksOnceAndStillReportsDamage) {
  auto snap = RunBackup({});
  ASSERT_TRUE(snap.ok());
  auto manifest = LoadManifest(snap->manifest_root, codec_, *store_);
  ASSERT_TRUE(manifest.ok());
  uint64_t distinct = snap->stats.new_chunks;

  VerifyCache cache;
  auto first = Verify(*manifest, codec_, *store_, {}, &cache);
  auto second = Verify(*manifest, codec_, *store_, {}, &cache);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->chunks_checked, distinct);
  EXPECT_EQ(first->chunks_known, 0u);
  EXPECT_EQ(second->chunks_checked, 0u);
  EXPECT_EQ(second->chunks_known, distinct);
  EXPECT_TRUE(second->ok());

  SecretBuffer other(32);
  Codec wrong(KeySet::Derive(other), {});
  VerifyCache bad_cache;
  auto bad1 = Verify(*manifest, wrong, *store_, {}, &bad_cache);
  auto bad2 = Verify(*manifest, wrong, *store_, {}, &bad_cache);
  ASSERT_TRUE(bad1.ok() && bad2.ok());
  EXPECT_EQ(bad2->chunks_checked, 0u);
  ASSERT_EQ(bad2->bad.size(), distinct) << "a damaged chunk is reported in every snapshot";
  EXPECT_EQ(bad2->bad[0].error.code(), ErrorCode::kCorruption);
}

}  // namespace
}  // namespace sparetime
