// PackStore recovery tests: torn tails (partial records, garbage,
// oversized lengths, a torn file header, a pack never flushed) are
// re-indexed or cut on Open with exact counts, packs held by a live writer
// are left alone, and a full disk (a 2 MiB tmpfs) gives kNoSpace and leaves
// a store that reopens intact.
#include "sparetime/imaging/pack_store.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "imaging/pack_store_testing.h"

// In sparetime::testing, next to the helpers of testutil.h and
// pack_store_testing.h.
namespace sparetime::testing {
namespace {

TEST(PackStoreTest, RecoversCompleteRecordsAndCutsTornTail) {
  TempDir t;
  {
    auto s = MustCreate(t.path());
    for (uint64_t n = 0; n < 3; ++n) MustPut(*s, n, 500);
    ASSERT_TRUE(s->Flush().ok());
    MustPut(*s, 3, 700);
    MustPut(*s, 4, 800);
    // Destroyed without Flush: records 3 and 4 are in the pack, not the index.
  }
  const std::string pack = PackFiles(t.path()).at(0);
  const uint64_t good = kHeader + 3 * (kRec + 500) + (kRec + 700) + (kRec + 800);
  ASSERT_EQ(FileSize(pack), good);
  // A torn record: valid header, only part of the blob.
  std::vector<std::byte> torn = RecordBytes(TestChunkId(5), TestBlob(5, 1000));
  torn.resize(kRec + 10);
  AppendToFile(pack, torn);

  auto s = MustOpen(t.path());
  EXPECT_EQ(s->recovery().packs_repaired, 1u);
  EXPECT_EQ(s->recovery().records_recovered, 2u);
  EXPECT_EQ(s->recovery().bytes_truncated, kRec + 10);
  EXPECT_EQ(FileSize(pack), good);
  for (uint64_t n = 0; n < 3; ++n) ExpectChunk(*s, n, 500);
  ExpectChunk(*s, 3, 700);
  ExpectChunk(*s, 4, 800);
  EXPECT_FALSE(*s->Contains(TestChunkId(5)));
  EXPECT_EQ(SqlInt(t / "index.db", "SELECT committed_size FROM packs WHERE id = 1"),
            static_cast<int64_t>(good));
  s.reset();
  s = MustOpen(t.path());
  EXPECT_EQ(s->recovery().packs_repaired, 0u);
  EXPECT_EQ(s->recovery().records_recovered, 0u);
  EXPECT_EQ(s->recovery().bytes_truncated, 0u);
  // The store keeps working: new puts go to a new pack.
  MustPut(*s, 6, 100);
  ASSERT_TRUE(s->Flush().ok());
  ExpectChunk(*s, 6, 100);
  EXPECT_EQ(PackFiles(t.path()).size(), 2u);
}

TEST(PackStoreTest, RecoveryStopsAtGarbageAndOversizedRecords) {
  TempDir t;
  PackStoreOptions o;
  o.max_blob_bytes = 4096;
  {
    auto s = MustCreate(t.path(), o);
    MustPut(*s, 1, 100);
    ASSERT_TRUE(s->Flush().ok());
  }
  const std::string pack = PackFiles(t.path()).at(0);
  const uint64_t committed = FileSize(pack);
  // A complete record for a known id (kept, not counted), a complete new
  // one, then one claiming more than max_blob_bytes, then more valid data
  // that must go too: the scan stops at the first bad record.
  AppendToFile(pack, RecordBytes(TestChunkId(1), TestBlob(1, 100)));
  AppendToFile(pack, RecordBytes(TestChunkId(2), TestBlob(2, 200)));
  std::vector<std::byte> oversized = RecordBytes(TestChunkId(3), TestBlob(3, 5000));
  AppendToFile(pack, oversized);
  AppendToFile(pack, RecordBytes(TestChunkId(4), TestBlob(4, 50)));
  const uint64_t kept = committed + 2 * kRec + 300;

  auto s = MustOpen(t.path(), o);
  EXPECT_EQ(s->recovery().packs_repaired, 1u);
  EXPECT_EQ(s->recovery().records_recovered, 1u);
  EXPECT_EQ(s->recovery().bytes_truncated, oversized.size() + kRec + 50);
  EXPECT_EQ(FileSize(pack), kept);
  ExpectChunk(*s, 1, 100);
  ExpectChunk(*s, 2, 200);
  EXPECT_FALSE(*s->Contains(TestChunkId(3)));
  EXPECT_FALSE(*s->Contains(TestChunkId(4)));
  s.reset();

  // Plain garbage (no magic) is cut entirely.
  AppendToFile(pack, RandomBytes(333, 9));
  s = MustOpen(t.path(), o);
  EXPECT_EQ(s->recovery().records_recovered, 0u);
  EXPECT_EQ(s->recovery().bytes_truncated, 333u);
  EXPECT_EQ(FileSize(pack), kept);
}

TEST(PackStoreTest, RecoversAPackThatWasNeverFlushed) {
  TempDir t;
  {
    auto s = MustCreate(t.path());
    for (uint64_t n = 0; n < 4; ++n) MustPut(*s, n, 300);
  }
  const std::string db = t / "index.db";
  EXPECT_EQ(SqlInt(db, "SELECT committed_size FROM packs"), 0);
  auto s = MustOpen(t.path());
  EXPECT_EQ(s->recovery().packs_repaired, 1u);
  EXPECT_EQ(s->recovery().records_recovered, 4u);
  EXPECT_EQ(s->recovery().bytes_truncated, 0u);
  for (uint64_t n = 0; n < 4; ++n) ExpectChunk(*s, n, 300);
  EXPECT_EQ(SqlInt(db, "SELECT committed_size FROM packs"),
            static_cast<int64_t>(kHeader + 4 * (kRec + 300)));
}

TEST(PackStoreTest, RecoveryOfAPackWithATornHeader) {
  TempDir t;
  {
    auto s = MustCreate(t.path());
    MustPut(*s, 1, 100);
  }
  // As if the writer crashed while creating the pack: nothing committed and
  // only part of the header written.
  const std::string pack = PackFiles(t.path()).at(0);
  std::filesystem::resize_file(pack, 11);
  auto s = MustOpen(t.path());
  EXPECT_EQ(s->recovery().packs_repaired, 1u);
  EXPECT_EQ(s->recovery().records_recovered, 0u);
  EXPECT_EQ(s->recovery().bytes_truncated, 11u);
  EXPECT_EQ(FileSize(pack), 0u);
  EXPECT_FALSE(*s->Contains(TestChunkId(1)));
}

TEST(PackStoreTest, OpenSkipsPacksHeldByALiveWriter) {
  TempDir t;
  auto writer = MustCreate(t.path());
  MustPut(*writer, 1, 100);
  MustPut(*writer, 2, 100);  // unflushed: beyond committed_size, but not torn
  const std::string pack = PackFiles(t.path()).at(0);
  const uint64_t size = FileSize(pack);

  auto other = MustOpen(t.path());
  EXPECT_EQ(other->recovery().packs_repaired, 0u);
  EXPECT_EQ(FileSize(pack), size);
  EXPECT_FALSE(*other->Contains(TestChunkId(1)));  // not flushed yet

  ASSERT_TRUE(writer->Flush().ok());
  EXPECT_TRUE(*other->Contains(TestChunkId(1)));
  ExpectChunk(*other, 2, 100);
  // The other instance writes its own pack and dedups against the index.
  MustPut(*other, 1, 100, /*existed=*/true);
  MustPut(*other, 3, 100);
  ASSERT_TRUE(other->Flush().ok());
  EXPECT_EQ(PackFiles(t.path()).size(), 2u);
  ExpectChunk(*writer, 3, 100);
}

// A 2 MiB tmpfs, unmounted on destruction.
class SmallTmpfs {
 public:
  explicit SmallTmpfs(const std::string& dir) : dir_(dir) {
    std::filesystem::create_directories(dir);
    mounted_ =
        IsRoot() && RunCommand("mount -t tmpfs -o size=2m tmpfs " + ShellQuote(dir)).exit_code == 0;
  }
  ~SmallTmpfs() {
    if (mounted_) RunCommand("umount " + ShellQuote(dir_));
  }
  bool mounted() const { return mounted_; }

 private:
  std::string dir_;
  bool mounted_ = false;
};

TEST(PackStoreTest, DiskFullIsNoSpaceAndLeavesTheStoreConsistent) {
  TempDir t;
  SmallTmpfs fs(t / "mnt");
  if (!fs.mounted()) GTEST_SKIP() << "needs root to mount a tmpfs";
  const std::string dir = t / "mnt/store";
  constexpr size_t kBlob = 64 << 10;
  auto s = MustCreate(dir);
  for (uint64_t n = 0; n < 4; ++n) MustPut(*s, n, kBlob);
  ASSERT_TRUE(s->Flush().ok());
  WriteFileOrDie(t / "mnt/filler", std::vector<std::byte>(640 << 10));

  uint64_t stored = 0;
  Status failure;
  for (uint64_t n = 100; n < 140 && failure.ok(); ++n) {
    Result<bool> r = s->Put(TestChunkId(n), TestBlob(n, kBlob));
    if (r.ok())
      ++stored;
    else
      failure = r.status();
  }
  ASSERT_FALSE(failure.ok()) << "the tmpfs never filled up";
  EXPECT_EQ(failure.code(), ErrorCode::kNoSpace) << failure.ToString();
  EXPECT_NE(failure.message().find(".pack"), std::string::npos) << failure.message();
  // The partial record was cut straight away.
  const std::string pack = PackFiles(dir).at(0);
  EXPECT_EQ(FileSize(pack), kHeader + (4 + stored) * (kRec + kBlob));
  // Flushing may fail too (the index needs space); either way nothing breaks.
  Status flushed = s->Flush();
  EXPECT_TRUE(flushed.ok() || flushed.code() == ErrorCode::kNoSpace) << flushed.ToString();
  s.reset();

  std::filesystem::remove(t / "mnt/filler");
  s = MustOpen(dir);
  EXPECT_EQ(s->recovery().bytes_truncated, 0u);
  EXPECT_EQ(s->recovery().records_recovered, flushed.ok() ? 0u : stored);
  for (uint64_t n = 0; n < 4; ++n) ExpectChunk(*s, n, kBlob);
  for (uint64_t n = 100; n < 100 + stored; ++n) ExpectChunk(*s, n, kBlob);
  MustPut(*s, 500, kBlob);
  ASSERT_TRUE(s->Flush().ok());
  ExpectChunk(*s, 500, kBlob);
}
}  // namespace
}  // namespace sparetime::testing
