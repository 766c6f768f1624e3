// PackStore tests on real files and a real SQLite index: ids, the record
// format, pending vs flushed chunks, pack rolling, damage detection
// (Get, Scrub, missing packs), Remove, concurrent writers (threads,
// instances, processes) and the speed a backup needs. Recovery of torn
// tails and the full-disk case are in pack_store_recovery_test.cc.
#include "sparetime/imaging/pack_store.h"

#include <gtest/gtest.h>
#include <sodium.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <set>
#include <thread>

#include "imaging/pack_store_testing.h"

// In sparetime::testing, next to the helpers of testutil.h and
// pack_store_testing.h.
namespace sparetime::testing {
namespace {

TEST(ChunkIdTest, HexRoundTrip) {
  ChunkId id = TestChunkId(5);
  std::string hex = id.hex();
  ASSERT_EQ(hex.size(), 64u);
  EXPECT_EQ(hex, ToHex(id.bytes));
  EXPECT_EQ(ChunkId::FromHex(hex), id);
  std::string upper = hex;
  std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
  EXPECT_EQ(ChunkId::FromHex(upper), id);
  EXPECT_EQ(id.short_hex(), hex.substr(0, 8));
  EXPECT_FALSE(ChunkId::FromHex(hex.substr(0, 62)).has_value());
  EXPECT_FALSE(ChunkId::FromHex(hex + "00").has_value());
  EXPECT_FALSE(ChunkId::FromHex(std::string(63, 'a') + "g").has_value());
  EXPECT_EQ(kHoleId.hex(), std::string(64, '0'));
}

TEST(PackStoreTest, CreateOpenAndMissingStore) {
  TempDir t;
  auto missing = PackStore::Open(t / "none");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(missing.status().message().find(t / "none"), std::string::npos);

  ASSERT_NE(MustCreate(t / "s"), nullptr);
  auto again = PackStore::Create(t / "s");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), ErrorCode::kAlreadyExists);
  EXPECT_NE(MustOpen(t / "s"), nullptr);
}

TEST(PackStoreTest, PutContainsGetFlush) {
  TempDir t;
  auto s = MustCreate(t.path());
  ASSERT_NE(s, nullptr);
  EXPECT_FALSE(*s->Contains(TestChunkId(1)));
  MustPut(*s, 1, 1000);
  MustPut(*s, 2, 0);  // an empty blob is a valid blob
  MustPut(*s, 1, 1000, /*existed=*/true);
  EXPECT_TRUE(*s->Contains(TestChunkId(1)));  // pending, not yet flushed
  ExpectChunk(*s, 1, 1000);              // read back from the pack file
  ExpectChunk(*s, 2, 0);
  // Nothing is in the index before Flush.
  EXPECT_EQ(SqlInt(t / "index.db", "SELECT COUNT(*) FROM chunks"), 0);
  PackStoreStats st = s->Stats();
  EXPECT_EQ(st.chunks, 2u);
  EXPECT_EQ(st.stored_bytes, 1000u);
  EXPECT_EQ(st.packs, 1u);

  ASSERT_TRUE(s->Flush().ok());
  EXPECT_EQ(SqlInt(t / "index.db", "SELECT COUNT(*) FROM chunks"), 2);
  MustPut(*s, 1, 1000, /*existed=*/true);  // now found in the index
  ExpectChunk(*s, 1, 1000);
  Result<std::vector<std::byte>> none = s->Get(TestChunkId(3));
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(none.status().message().find(TestChunkId(3).hex()), std::string::npos);

  auto big = s->Put(TestChunkId(9), std::vector<std::byte>((8u << 20) + 1));
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().code(), ErrorCode::kInvalidArgument);

  s.reset();
  s = MustOpen(t.path());
  EXPECT_EQ(s->recovery().packs_repaired, 0u);
  ExpectChunk(*s, 1, 1000);
  ExpectChunk(*s, 2, 0);
  st = s->Stats();
  EXPECT_EQ(st.chunks, 2u);
  EXPECT_EQ(st.stored_bytes, 1000u);
}

TEST(PackStoreTest, OnDiskFormatAndIndexRows) {
  TempDir t;
  auto s = MustCreate(t.path());
  const ChunkId id = TestChunkId(7);
  const std::vector<std::byte> blob = TestBlob(7, 300);
  ASSERT_TRUE(s->Put(id, blob).ok());
  ASSERT_TRUE(s->Flush().ok());

  std::vector<std::string> packs = PackFiles(t.path());
  ASSERT_EQ(packs.size(), 1u);
  EXPECT_EQ(packs[0], t / "packs/01/00000001.pack");
  std::vector<std::byte> file = ReadFileOrDie(packs[0]);
  ASSERT_EQ(file.size(), kHeader + kRec + blob.size());
  EXPECT_EQ(std::memcmp(file.data(), "SPARETIME-PACK\0\0", 16), 0);
  EXPECT_EQ(GetLe32(file.data() + 16), 1u);
  EXPECT_EQ(std::memcmp(file.data() + kHeader, "SPK1", 4), 0);
  EXPECT_EQ(GetLe32(file.data() + kHeader + 4), blob.size());
  EXPECT_EQ(std::memcmp(file.data() + kHeader + 8, id.bytes.data(), 32), 0);
  EXPECT_EQ(std::memcmp(file.data() + kHeader + kRec, blob.data(), blob.size()), 0);

  const std::string db = t / "index.db";
  EXPECT_EQ(SqlInt(db, "SELECT offset FROM chunks"), static_cast<int64_t>(kHeader));
  EXPECT_EQ(SqlInt(db, "SELECT length FROM chunks"), 300);
  EXPECT_EQ(SqlInt(db, "SELECT pack FROM chunks"), 1);
  EXPECT_EQ(SqlInt(db, "SELECT committed_size FROM packs WHERE id = 1"),
            static_cast<int64_t>(file.size()));
  unsigned char hash[32];
  crypto_generichash(hash, 32, reinterpret_cast<const unsigned char*>(blob.data()), blob.size(),
                     nullptr, 0);
  EXPECT_EQ(
      SqlInt(db, "SELECT hash = x'" + ToHex(std::as_bytes(std::span(hash))) + "' FROM chunks"), 1);
  EXPECT_EQ(SqlInt(db,
                   "SELECT COUNT(*) FROM sqlite_master WHERE name = 'chunks' AND "
                   "sql LIKE '%WITHOUT ROWID%'"),
            1);
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "wal");
  sqlite3_finalize(st);
  sqlite3_close(h);
}

TEST(PackStoreTest, RollsToNewPacksAndCommitsTheOldOne) {
  TempDir t;
  PackStoreOptions o;
  o.target_pack_bytes = kHeader + 3 * (kRec + 1000);  // three records per pack
  auto s = MustCreate(t.path(), o);
  const std::string db = t / "index.db";
  const int64_t full = static_cast<int64_t>(o.target_pack_bytes);
  const int64_t one = static_cast<int64_t>(kHeader + kRec + 1000);
  for (uint64_t n = 0; n < 3; ++n) MustPut(*s, n, 1000);
  EXPECT_EQ(SqlInt(db, "SELECT COUNT(*) FROM chunks"), 0);
  // The fourth record does not fit: pack 1 is closed and everything so far
  // (including the record that opened pack 2) is committed.
  MustPut(*s, 3, 1000);
  EXPECT_EQ(SqlInt(db, "SELECT committed_size FROM packs WHERE id = 1"), full);
  EXPECT_EQ(SqlInt(db, "SELECT COUNT(*) FROM chunks WHERE pack = 1"), 3);
  EXPECT_EQ(SqlInt(db, "SELECT committed_size FROM packs WHERE id = 2"), one);
  EXPECT_EQ(SqlInt(db, "SELECT COUNT(*) FROM chunks"), 4);
  MustPut(*s, 4, 1000);
  MustPut(*s, 5, 1000);
  EXPECT_EQ(SqlInt(db, "SELECT COUNT(*) FROM chunks"), 4);
  MustPut(*s, 6, 1000);
  EXPECT_EQ(SqlInt(db, "SELECT committed_size FROM packs WHERE id = 2"), full);
  EXPECT_EQ(SqlInt(db, "SELECT COUNT(*) FROM chunks WHERE pack = 2"), 3);
  EXPECT_EQ(SqlInt(db, "SELECT COUNT(*) FROM chunks"), 7);
  std::vector<std::string> packs = PackFiles(t.path());
  ASSERT_EQ(packs.size(), 3u);
  EXPECT_EQ(FileSize(packs[0]), static_cast<uint64_t>(full));
  EXPECT_EQ(FileSize(packs[2]), static_cast<uint64_t>(one));
  ASSERT_TRUE(s->Flush().ok());
  s.reset();
  s = MustOpen(t.path(), o);
  for (uint64_t n = 0; n < 7; ++n) ExpectChunk(*s, n, 1000);
  EXPECT_EQ(s->Stats().packs, 3u);
}

TEST(PackStoreTest, GetAndScrubDetectAFlippedByte) {
  TempDir t;
  auto s = MustCreate(t.path());
  for (uint64_t n = 0; n < 5; ++n) MustPut(*s, n, 400);
  ASSERT_TRUE(s->Flush().ok());
  uint64_t checked_clean = 0;
  auto clean = s->Scrub([&](const ChunkId&, const Status&) { ++checked_clean; });
  ASSERT_TRUE(clean.ok());
  EXPECT_EQ(*clean, 5u);
  EXPECT_EQ(checked_clean, 0u);

  const std::string pack = PackFiles(t.path()).at(0);
  const uint64_t offset = kHeader + 2 * (kRec + 400);  // chunk 2's record
  std::vector<std::byte> file = ReadFileOrDie(pack);
  file[offset + kRec + 123] ^= std::byte{0x01};
  WriteFileOrDie(pack, file);

  Result<std::vector<std::byte>> got = s->Get(TestChunkId(2));
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), ErrorCode::kCorruption);
  EXPECT_EQ(got.status().message(), "pack " + pack + " offset " + std::to_string(offset) +
                                        ": chunk " + TestChunkId(2).hex() +
                                        " is damaged (stored hash mismatch)");
  ExpectChunk(*s, 1, 400);

  std::vector<ChunkId> bad;
  auto checked = s->Scrub([&](const ChunkId& id, const Status& st) {
    EXPECT_EQ(st.code(), ErrorCode::kCorruption);
    bad.push_back(id);
  });
  ASSERT_TRUE(checked.ok());
  EXPECT_EQ(*checked, 5u);
  EXPECT_EQ(bad, std::vector<ChunkId>{TestChunkId(2)});
}

TEST(PackStoreTest, HashCheckOffLeavesBlobsToTheCodecButNotScrub) {
  TempDir t;
  {
    auto s = MustCreate(t.path());
    for (uint64_t n = 0; n < 3; ++n) MustPut(*s, n, 400);
    ASSERT_TRUE(s->Flush().ok());
  }
  const std::string pack = PackFiles(t.path()).at(0);
  std::vector<std::byte> file = ReadFileOrDie(pack);
  file[kHeader + (kRec + 400) + kRec + 7] ^= std::byte{0x01};  // chunk 1's blob
  file[kHeader + 2 * (kRec + 400) + 4] ^= std::byte{0x01};     // chunk 2's header
  WriteFileOrDie(pack, file);

  auto opened = PackStore::Open(t.path(), {.hash_check_on_get = false});
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  PackStore& s = **opened;
  // The damaged blob comes back as stored: the caller's AEAD check is what catches it.
  Result<std::vector<std::byte>> blob = s.Get(TestChunkId(1));
  ASSERT_TRUE(blob.ok()) << blob.status().ToString();
  EXPECT_EQ(blob->size(), 400u);
  // A record header that does not match the index is still refused.
  Result<std::vector<std::byte>> header = s.Get(TestChunkId(2));
  ASSERT_FALSE(header.ok());
  EXPECT_NE(header.status().message().find("record header does not match"), std::string::npos);
  ExpectChunk(s, 0, 400);
  // Scrub reads without any key: it checks every hash whatever the option.
  std::set<ChunkId> bad;
  auto checked = s.Scrub([&](const ChunkId& id, const Status&) { bad.insert(id); });
  ASSERT_TRUE(checked.ok());
  EXPECT_EQ(bad, (std::set<ChunkId>{TestChunkId(1), TestChunkId(2)}));
}

TEST(PackStoreTest, MissingAndShortPacksAreReportedNotFatal) {
  TempDir t;
  PackStoreOptions o;
  o.target_pack_bytes = kHeader + 2 * (kRec + 100);  // two records per pack
  {
    auto s = MustCreate(t.path(), o);
    for (uint64_t n = 0; n < 6; ++n) MustPut(*s, n, 100);
    ASSERT_TRUE(s->Flush().ok());
  }
  std::vector<std::string> packs = PackFiles(t.path());
  ASSERT_EQ(packs.size(), 3u);
  std::filesystem::remove(packs[0]);                                  // chunks 0 and 1
  std::filesystem::resize_file(packs[1], kHeader + kRec + 100 + 30);  // chunk 3 cut

  auto s = MustOpen(t.path(), o);
  EXPECT_EQ(s->recovery().packs_repaired, 0u);
  EXPECT_EQ(FileSize(packs[1]), kHeader + kRec + 100 + 30);  // left alone
  Result<std::vector<std::byte>> gone = s->Get(TestChunkId(0));
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.status().code(), ErrorCode::kCorruption);
  EXPECT_NE(gone.status().message().find(packs[0]), std::string::npos);
  EXPECT_NE(gone.status().message().find("missing"), std::string::npos);
  ExpectChunk(*s, 2, 100);
  Result<std::vector<std::byte>> cut = s->Get(TestChunkId(3));
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.status().code(), ErrorCode::kCorruption);
  EXPECT_NE(cut.status().message().find(packs[1]), std::string::npos);
  ExpectChunk(*s, 4, 100);

  std::set<ChunkId> bad;
  auto checked = s->Scrub([&](const ChunkId& id, const Status&) { bad.insert(id); });
  ASSERT_TRUE(checked.ok());
  EXPECT_EQ(*checked, 6u);
  EXPECT_EQ(bad, (std::set<ChunkId>{TestChunkId(0), TestChunkId(1), TestChunkId(3)}));
}

TEST(PackStoreTest, RemoveDropsIndexRowsForGood) {
  TempDir t;
  auto s = MustCreate(t.path());
  for (uint64_t n = 0; n < 3; ++n) MustPut(*s, n, 100);
  ASSERT_TRUE(s->Flush().ok());
  MustPut(*s, 3, 100);  // pending
  const std::vector<ChunkId> gone = {TestChunkId(1), TestChunkId(3)};
  ASSERT_TRUE(s->Remove(gone).ok());
  EXPECT_FALSE(*s->Contains(TestChunkId(1)));
  EXPECT_FALSE(*s->Contains(TestChunkId(3)));
  EXPECT_EQ(s->Get(TestChunkId(1)).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(s->Stats().chunks, 2u);
  s.reset();  // no Flush: the removed pending chunk must not come back either
  // The bytes stay in the pack (until a repack) but are not resurrected.
  s = MustOpen(t.path());
  EXPECT_EQ(s->recovery().records_recovered, 0u);
  EXPECT_FALSE(*s->Contains(TestChunkId(1)));
  EXPECT_FALSE(*s->Contains(TestChunkId(3)));
  ExpectChunk(*s, 0, 100);
  ExpectChunk(*s, 2, 100);
  // A removed chunk can be stored again.
  MustPut(*s, 1, 100);
  ASSERT_TRUE(s->Flush().ok());
  ExpectChunk(*s, 1, 100);
}

TEST(PackStoreTest, ManyThreadsOnOneInstance) {
  TempDir t;
  PackStoreOptions o;
  o.target_pack_bytes = 256 << 10;  // several rolls while threads race
  auto s = MustCreate(t.path(), o);
  constexpr int kThreads = 8, kPerThread = 150;
  // Thread i puts chunks [i*100, i*100 + 150): neighbours overlap by 50.
  std::atomic<int> fresh{0}, failures{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (int k = 0; k < kPerThread; ++k) {
        const uint64_t n = static_cast<uint64_t>(i * 100 + k);
        Result<bool> r = s->Put(TestChunkId(n), TestBlob(n, 1000 + n % 700));
        if (!r.ok())
          ++failures;
        else if (!*r)
          ++fresh;
        if (k % 37 == 0 && !s->Flush().ok()) ++failures;
        if (!*s->Contains(TestChunkId(n))) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  const int unique = (kThreads - 1) * 100 + kPerThread;
  EXPECT_EQ(fresh.load(), unique);
  ASSERT_TRUE(s->Flush().ok());
  EXPECT_EQ(SqlInt(t / "index.db", "SELECT COUNT(*) FROM chunks"), unique);
  s.reset();
  s = MustOpen(t.path(), o);
  EXPECT_EQ(s->recovery().packs_repaired, 0u);
  for (int n = 0; n < unique; ++n) ExpectChunk(*s, n, 1000 + n % 700);
  EXPECT_EQ(s->Stats().chunks, static_cast<uint64_t>(unique));
}

TEST(PackStoreTest, TwoInstancesWriteConcurrently) {
  TempDir t;
  ASSERT_NE(MustCreate(t.path()), nullptr);
  auto a = MustOpen(t.path());
  auto b = MustOpen(t.path());
  auto run = [](PackStore& s, uint64_t first) {
    for (uint64_t n = first; n < first + 200; ++n) {
      ASSERT_TRUE(s.Put(TestChunkId(n), TestBlob(n, 2000)).ok());
      if (n % 50 == 0) {
        ASSERT_TRUE(s.Flush().ok());
      }
    }
    ASSERT_TRUE(s.Flush().ok());
  };
  std::thread ta([&] { run(*a, 0); });
  std::thread tb([&] { run(*b, 150); });  // 50 ids in common
  ta.join();
  tb.join();
  a.reset();
  b.reset();
  auto c = MustOpen(t.path());
  EXPECT_EQ(c->recovery().packs_repaired, 0u);
  for (uint64_t n = 0; n < 350; ++n) ExpectChunk(*c, n, 2000);
  EXPECT_EQ(c->Stats().chunks, 350u);
  EXPECT_GE(PackFiles(t.path()).size(), 2u);
}

TEST(PackStoreTest, ForkedProcessesWriteConcurrently) {
  TempDir t;
  ASSERT_NE(MustCreate(t.path()), nullptr);  // closed again before fork
  int go[2];
  ASSERT_EQ(::pipe(go), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    char c;
    if (::read(go[0], &c, 1) != 1) ::_exit(2);
    auto s = PackStore::Open(t.path());
    if (!s.ok()) ::_exit(3);
    for (uint64_t n = 1000; n < 1300; ++n) {
      if (!(*s)->Put(TestChunkId(n), TestBlob(n, 3000)).ok()) ::_exit(4);
      if (n % 64 == 0 && !(*s)->Flush().ok()) ::_exit(5);
    }
    ::_exit((*s)->Flush().ok() ? 0 : 6);
  }
  auto s = MustOpen(t.path());
  ASSERT_EQ(::write(go[1], "g", 1), 1);
  for (uint64_t n = 1200; n < 1500; ++n) {  // 100 ids in common with the child
    ASSERT_TRUE(s->Put(TestChunkId(n), TestBlob(n, 3000)).ok());
    if (n % 64 == 0) {
      ASSERT_TRUE(s->Flush().ok());
    }
  }
  ASSERT_TRUE(s->Flush().ok());
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  ::close(go[0]);
  ::close(go[1]);
  s.reset();

  auto c = MustOpen(t.path());
  EXPECT_EQ(c->recovery().packs_repaired, 0u);
  for (uint64_t n = 1000; n < 1500; ++n) ExpectChunk(*c, n, 3000);
  EXPECT_EQ(c->Stats().chunks, 500u);
  auto checked = c->Scrub([](const ChunkId& id, const Status& st) {
    ADD_FAILURE() << id.hex() << ": " << st.ToString();
  });
  ASSERT_TRUE(checked.ok());
  EXPECT_EQ(*checked, 500u);
}

TEST(PackStoreTest, ContainsAndPutAreFastEnoughForABackup) {
  TempDir t;
  auto s = MustCreate(t.path());
  constexpr uint64_t kChunks = 2000;
  const std::vector<std::byte> blob = TestBlob(0, 16 << 10);
  auto start = std::chrono::steady_clock::now();
  for (uint64_t n = 0; n < kChunks; ++n) ASSERT_TRUE(s->Put(TestChunkId(n), blob).ok());
  ASSERT_TRUE(s->Flush().ok());
  const double put_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  start = std::chrono::steady_clock::now();
  for (uint64_t n = 0; n < kChunks; ++n) ASSERT_TRUE(*s->Contains(TestChunkId(n)));
  for (uint64_t n = kChunks; n < 2 * kChunks; ++n) ASSERT_FALSE(*s->Contains(TestChunkId(n)));
  const double contains_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  RecordProperty("put_seconds", std::to_string(put_s));
  RecordProperty("contains_seconds", std::to_string(contains_s));
  // Generous bounds: a per-put fsync or an unprepared query would blow them.
  EXPECT_LT(put_s, 10.0);
  EXPECT_LT(contains_s, 1.0);
}

TEST(PackStoreTest, NewerSchemaIsRefused) {
  TempDir t;
  ASSERT_NE(MustCreate(t.path()), nullptr);
  SqlExec(t / "index.db", "UPDATE meta SET value = 2 WHERE key = 'schema_version'");
  auto s = PackStore::Open(t.path());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(s.status().message().find("upgrade sparetime"), std::string::npos);
}

}  // namespace
}  // namespace sparetime::testing
