// SnapshotReader over a real backup (real codec, pack store, catalog): byte
// equality at every kind of offset, holes without fetches, the cache bound,
// parallel read-ahead, and a damaged chunk failing only its own range.
// The source is the real pack store seen through a counting wrapper (the
// damage is a flipped byte in a real sealed blob: the codec refuses it).
#include "sparetime/imaging/snapshot_reader.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <set>

#include "sparetime/imaging/catalog.h"
#include "sparetime/imaging/device.h"
#include "sparetime/imaging/imager.h"
#include "sparetime/imaging/pack_store.h"
#include "testutil/testutil.h"

namespace sparetime {
namespace {

using testing::RandomBytes;
using testing::TempDir;

constexpr uint32_t kChunk = 64 << 10;
constexpr uint64_t kChunks = 100;  // plus a short 101st chunk of 777 random bytes

SnapshotReaderOptions Opts(uint64_t cache_bytes, unsigned readahead, unsigned threads = 8) {
  SnapshotReaderOptions o;
  o.cache_bytes = cache_bytes;
  o.readahead_chunks = readahead;
  o.fetch_threads = threads;
  return o;
}

std::shared_ptr<const KeySet> TestKeys() {
  SecretBuffer master(32);
  for (size_t i = 0; i < 32; ++i) master.data()[i] = std::byte(i * 5 + 3);
  return KeySet::Derive(master);
}

// Counts Gets (and the most in flight at once), can hold each Get until two
// are in flight, and can damage one chunk's sealed bytes.
class WatchedSource final : public ChunkSource {
 public:
  Result<std::vector<std::byte>> Get(const ChunkId& id) override {
    {
      std::unique_lock lock(mu_);
      ++gets;
      ids.insert(id);
      max_in_flight = std::max(max_in_flight, ++in_flight_);
      cv_.notify_all();
      if (wait_for_two && max_in_flight < 2) {
        cv_.wait_for(lock, std::chrono::seconds(10), [&] { return max_in_flight >= 2; });
      }
    }
    Result<std::vector<std::byte>> blob = inner->Get(id);
    std::lock_guard lock(mu_);
    --in_flight_;
    if (blob.ok() && id == damaged) (*blob)[blob->size() / 2] ^= std::byte{1};
    return blob;
  }
  std::mutex mu_;
  int gets = 0;
  int max_in_flight = 0;
  bool wait_for_two = false;
  ChunkId damaged{};
  std::set<ChunkId> ids;
  ChunkSource* inner = nullptr;

 private:
  std::condition_variable cv_;
  int in_flight_ = 0;
};

class SnapshotReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    image_ = RandomBytes(kChunks * kChunk + 777, 7);  // a short last chunk
    for (uint64_t i = 0; i < kChunks; i += 4) std::memset(&image_[i * kChunk], 0, kChunk);  // 25 holes
    testing::WriteFileOrDie(tmp_ / "disk.img", image_);
    auto store = PackStore::Create(tmp_ / "store");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    source_.inner = store_.get();
    auto catalog = Catalog::Open(tmp_ / "catalog.db");
    ASSERT_TRUE(catalog.ok());
    catalog_ = std::move(*catalog);
    auto device = OpenBlockDevice(tmp_ / "disk.img");
    ASSERT_TRUE(device.ok());
    BackupEnv env{codec_, *store_, *catalog_, *catalog_};
    BackupOptions options;
    options.chunk_size = kChunk;
    auto snap = Backup(**device, env, options);
    ASSERT_TRUE(snap.ok()) << snap.status().ToString();
    auto manifest = LoadManifest(snap->manifest_root, codec_, *store_);
    ASSERT_TRUE(manifest.ok());
    manifest_ = *manifest;
  }

  std::unique_ptr<SnapshotReader> Reader(SnapshotReaderOptions o = {}) {
    return std::make_unique<SnapshotReader>(manifest_, codec_, source_, std::move(o));
  }

  void ExpectBytes(SnapshotReader& r, uint64_t offset, size_t len) {
    std::vector<std::byte> out(len);
    Result<size_t> n = r.ReadAt(offset, out);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    size_t want = offset >= image_.size() ? 0 : std::min<uint64_t>(len, image_.size() - offset);
    ASSERT_EQ(*n, want) << "at " << offset;
    EXPECT_EQ(std::memcmp(out.data(), image_.data() + std::min<uint64_t>(offset, image_.size()), want), 0)
        << "at " << offset;
  }

  TempDir tmp_;
  std::vector<std::byte> image_;
  Codec codec_{TestKeys(), {.zstd_level = 1}};
  std::unique_ptr<PackStore> store_;
  std::unique_ptr<Catalog> catalog_;
  Manifest manifest_;
  WatchedSource source_;
};

TEST_F(SnapshotReaderTest, EveryKindOfRangeReadsTheImageBytes) {
  auto r = Reader(Opts(64 << 20, 0));
  EXPECT_EQ(r->size(), image_.size());
  ExpectBytes(*r, 0, 4096);
  ExpectBytes(*r, kChunk - 100, 200);             // across a hole/data boundary
  ExpectBytes(*r, 5 * kChunk + 1, 3 * kChunk);    // three chunks, unaligned
  ExpectBytes(*r, kChunks * kChunk - 10, 10000);  // into the short tail, cut at the end
  ExpectBytes(*r, image_.size(), 10);             // at the end: 0 bytes
  ExpectBytes(*r, image_.size() + kChunk, 10);    // past it
  ExpectBytes(*r, 0, image_.size());              // everything
}

TEST_F(SnapshotReaderTest, HolesAreZeroesWithoutAFetch) {
  auto r = Reader(Opts(64 << 20, 0));
  for (uint64_t i = 0; i < kChunks; i += 4) ExpectBytes(*r, i * kChunk, kChunk);
  EXPECT_EQ(source_.gets, 0);
  EXPECT_EQ(r->stats().holes, 25u);
  ExpectBytes(*r, 1 * kChunk, kChunk);
  EXPECT_EQ(source_.gets, 1);
}

TEST_F(SnapshotReaderTest, CacheServesRepeatsAndStaysWithinItsBound) {
  auto r = Reader(Opts(4 * kChunk, 0));
  ExpectBytes(*r, 1 * kChunk + 10, 100);
  ExpectBytes(*r, 1 * kChunk + 5000, 100);
  EXPECT_EQ(source_.gets, 1);
  EXPECT_EQ(r->stats().cache_hits, 1u);
  for (uint64_t off = 0; off < image_.size(); off += 128 << 10) ExpectBytes(*r, off, 128 << 10);
  SnapshotReaderStats s = r->stats();
  EXPECT_LE(s.peak_cached_bytes, 4u * kChunk);
  EXPECT_LE(s.cached_bytes, 4u * kChunk);
  EXPECT_EQ(source_.gets, 76);  // 76 data chunks (75 + the short tail), chunk 1 still cached
}

TEST_F(SnapshotReaderTest, SequentialReadsFetchAheadInParallel) {
  source_.wait_for_two = true;
  auto r = Reader(Opts(16 * kChunk, 8, 4));
  EXPECT_EQ(r->readahead_chunks(), 8u);
  for (uint64_t off = 0; off < image_.size(); off += 32 << 10) ExpectBytes(*r, off, 32 << 10);
  SnapshotReaderStats s = r->stats();
  EXPECT_GE(source_.max_in_flight, 2);
  EXPECT_GT(s.readahead, 0u);
  EXPECT_EQ(s.fetches, 76u);  // each data chunk once, whoever fetched it
  EXPECT_EQ(source_.gets, 76);
  EXPECT_LE(s.peak_cached_bytes, 16u * kChunk);
}

TEST_F(SnapshotReaderTest, RandomReadsDoNotReadAhead) {
  auto r = Reader(Opts(64 << 20, 8));
  for (uint64_t i : {97u, 3u, 51u, 22u, 70u, 9u}) ExpectBytes(*r, i * kChunk + 4096, 4096);
  EXPECT_EQ(r->stats().readahead, 0u);
  EXPECT_EQ(source_.gets, 6);
}

TEST_F(SnapshotReaderTest, ReadaheadIsCutToWhatTheCacheHolds) {
  EXPECT_EQ(Reader(Opts(6 * kChunk, 16))->readahead_chunks(), 4u);
  EXPECT_EQ(Reader(Opts(2 * kChunk, 16))->readahead_chunks(), 0u);
}

TEST_F(SnapshotReaderTest, ADamagedChunkFailsOnlyItsRangeAndIsReportedWithItsOffset) {
  source_.damaged = manifest_.chunks[10];
  std::vector<std::pair<uint64_t, Status>> damage;
  std::mutex mu;
  SnapshotReaderOptions o = Opts(64 << 20, 0);
  o.on_damage = [&](uint64_t off, const ChunkId&, const Status& st) {
    std::lock_guard lock(mu);
    damage.emplace_back(off, st);
  };
  auto r = Reader(o);
  std::vector<std::byte> out(4096);
  for (int attempt = 0; attempt < 2; ++attempt) {  // not cached: fails (and is fetched) again
    Result<size_t> n = r->ReadAt(10 * kChunk + 100, out);
    ASSERT_FALSE(n.ok());
    EXPECT_EQ(n.status().code(), ErrorCode::kCorruption);
    EXPECT_NE(n.status().message().find("chunk at offset " + std::to_string(10 * kChunk)),
              std::string::npos)
        << n.status().message();
  }
  ExpectBytes(*r, 9 * kChunk, kChunk);   // the chunk before
  ExpectBytes(*r, 11 * kChunk, kChunk);  // and after still read
  ASSERT_EQ(damage.size(), 2u);
  EXPECT_EQ(damage[0].first, 10u * kChunk);
  EXPECT_EQ(r->stats().failures, 2u);
}

}  // namespace
}  // namespace sparetime
