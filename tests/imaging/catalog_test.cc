// Catalog tests on a real SQLite file: snapshot round trips and ordering,
// FindSnapshot's specs (latest, device filter, ids, prefixes, ambiguity),
// forgetting, backup progress, persistence, schema versioning, and
// concurrent use from threads and from a second connection.
#include "sparetime/imaging/catalog.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

#include "testutil/testutil.h"

namespace sparetime {
namespace {

using testing::RandomBytes;
using testing::TempDir;

DeviceIdentity Disk(const std::string& serial, uint64_t size) {
  DeviceIdentity d;
  d.path = "/dev/sdz";
  d.kind = "block";
  d.size = size;
  d.logical_block_size = 4096;
  d.serial = serial;
  d.wwid = "";
  d.backing_file = "";
  d.fs_uuid = "0b4c6a8e-1111-2222-3333-444455556666";
  return d;
}

Snapshot MakeSnapshot(const std::string& label, int64_t time, const DeviceIdentity& dev) {
  Snapshot s;
  s.label = label;
  s.time = time;
  s.device = dev;
  s.size = dev.size;
  s.chunk_size = 1 << 20;
  s.manifest_root = testing::TestChunkId(static_cast<uint64_t>(time));
  s.stats = {.chunks = 100,
             .holes = 7,
             .new_chunks = 40,
             .new_bytes = 40u << 20,
             .stored_bytes = 12345678,
             .resumed_chunks = 3,
             .seconds = 12.5};
  return s;
}

std::unique_ptr<Catalog> MustOpen(const std::string& path) {
  auto c = Catalog::Open(path);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? std::move(*c) : nullptr;
}

Snapshot MustAdd(Catalog& c, Snapshot s) {
  Result<Snapshot> r = c.AddSnapshot(std::move(s));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : Snapshot{};
}

std::vector<std::string> Ids(const std::vector<Snapshot>& v) {
  std::vector<std::string> ids;
  for (const Snapshot& s : v) ids.push_back(s.id);
  return ids;
}

void SqlExec(const std::string& db, const std::string& sql) {
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(h, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sql;
  sqlite3_close(h);
}

TEST(CatalogTest, AddListRoundTripsEveryField) {
  TempDir t;
  auto c = MustOpen(t / "catalog.db");
  const DeviceIdentity dev = Disk("SER1", 2ull << 30);
  Snapshot a = MustAdd(*c, MakeSnapshot("first", 100, dev));
  Snapshot b = MustAdd(*c, MakeSnapshot("third", 300, dev));
  Snapshot m = MustAdd(*c, MakeSnapshot("second", 200, dev));
  for (const Snapshot& s : {a, b, m}) {
    ASSERT_EQ(s.id.size(), 16u);
    EXPECT_TRUE(std::all_of(s.id.begin(), s.id.end(), [](char ch) {
      return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
    })) << s.id;
  }
  EXPECT_EQ((std::set<std::string>{a.id, b.id, m.id}).size(), 3u);

  Result<std::vector<Snapshot>> list = c->ListSnapshots();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  EXPECT_EQ(Ids(*list), (std::vector<std::string>{b.id, m.id, a.id}));
  const Snapshot& got = (*list)[1];
  EXPECT_EQ(got.label, "second");
  EXPECT_EQ(got.time, 200);
  EXPECT_EQ(got.size, 2ull << 30);
  EXPECT_EQ(got.chunk_size, 1u << 20);
  EXPECT_EQ(got.manifest_root, testing::TestChunkId(200));
  EXPECT_EQ(got.device.path, "/dev/sdz");
  EXPECT_EQ(got.device.kind, "block");
  EXPECT_EQ(got.device.size, 2ull << 30);
  EXPECT_EQ(got.device.logical_block_size, 4096u);
  EXPECT_EQ(got.device.serial, "SER1");
  EXPECT_EQ(got.device.fs_uuid, "0b4c6a8e-1111-2222-3333-444455556666");
  EXPECT_EQ(got.device.Key(), dev.Key());
  EXPECT_EQ(got.stats.chunks, 100u);
  EXPECT_EQ(got.stats.holes, 7u);
  EXPECT_EQ(got.stats.new_chunks, 40u);
  EXPECT_EQ(got.stats.new_bytes, 40u << 20);
  EXPECT_EQ(got.stats.stored_bytes, 12345678u);
  EXPECT_EQ(got.stats.resumed_chunks, 3u);
  EXPECT_DOUBLE_EQ(got.stats.seconds, 12.5);

  // Persisted: a new connection sees the same.
  c.reset();
  c = MustOpen(t / "catalog.db");
  list = c->ListSnapshots();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(Ids(*list), (std::vector<std::string>{b.id, m.id, a.id}));
}

TEST(CatalogTest, EqualTimesAreOrderedByInsertion) {
  TempDir t;
  auto c = MustOpen(t / "c.db");
  const DeviceIdentity dev = Disk("S", 1000);
  Snapshot s1 = MustAdd(*c, MakeSnapshot("a", 50, dev));
  Snapshot s2 = MustAdd(*c, MakeSnapshot("b", 50, dev));
  Snapshot s3 = MustAdd(*c, MakeSnapshot("c", 50, dev));
  EXPECT_EQ(Ids(*c->ListSnapshots()), (std::vector<std::string>{s3.id, s2.id, s1.id}));
  Result<Snapshot> latest = c->FindSnapshot("latest");
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->id, s3.id);
}

TEST(CatalogTest, FindLatestPerDevice) {
  TempDir t;
  auto c = MustOpen(t / "c.db");
  const DeviceIdentity d1 = Disk("ONE", 1000), d2 = Disk("TWO", 1000);
  Snapshot old1 = MustAdd(*c, MakeSnapshot("d1 old", 10, d1));
  Snapshot new2 = MustAdd(*c, MakeSnapshot("d2 new", 30, d2));
  Snapshot new1 = MustAdd(*c, MakeSnapshot("d1 new", 20, d1));
  EXPECT_EQ(c->FindSnapshot("latest")->id, new2.id);
  EXPECT_EQ(c->FindSnapshot("latest", d1.Key())->id, new1.id);
  EXPECT_EQ(c->FindSnapshot("latest", d2.Key())->id, new2.id);
  Result<Snapshot> none = c->FindSnapshot("latest", Disk("THREE", 1000).Key());
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(none.status().message().find("run `sparetime snapshots` to list them"),
            std::string::npos);
  (void)old1;

  TempDir empty;
  auto e = MustOpen(empty / "c.db");
  Result<Snapshot> nothing = e->FindSnapshot("latest");
  ASSERT_FALSE(nothing.ok());
  EXPECT_EQ(nothing.status().code(), ErrorCode::kNotFound);
}

TEST(CatalogTest, FindByIdAndPrefix) {
  TempDir t;
  auto c = MustOpen(t / "c.db");
  const DeviceIdentity dev = Disk("S", 1000);
  Snapshot x1 = MakeSnapshot("x1", 1, dev);
  x1.id = "abcd000000000001";
  Snapshot x2 = MakeSnapshot("x2", 2, dev);
  x2.id = "abcd000000000002";
  Snapshot y = MakeSnapshot("y", 3, dev);
  y.id = "abce000000000000";
  MustAdd(*c, x1);
  MustAdd(*c, x2);
  EXPECT_EQ(MustAdd(*c, y).id, "abce000000000000");  // a given id is kept

  auto label = [&](const std::string& spec) {
    Result<Snapshot> r = c->FindSnapshot(spec);
    return r.ok() ? r->label : r.status().ToString();
  };
  EXPECT_EQ(label("abcd000000000001"), "x1");
  EXPECT_EQ(label("abcd000000000002"), "x2");
  EXPECT_EQ(label("abce"), "y");
  EXPECT_EQ(label("ABCE"), "y");
  EXPECT_EQ(label("abce00000"), "y");

  Result<Snapshot> ambiguous = c->FindSnapshot("abcd");
  ASSERT_FALSE(ambiguous.ok());
  EXPECT_EQ(ambiguous.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(ambiguous.status().message().find("abcd000000000001"), std::string::npos);
  EXPECT_NE(ambiguous.status().message().find("abcd000000000002"), std::string::npos);
  EXPECT_EQ(ambiguous.status().message().find("abce000000000000"), std::string::npos);

  for (const std::string bad : {"abc", "", "zzzz", "abcd0000000000011", "abcd-0"}) {
    Result<Snapshot> r = c->FindSnapshot(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument) << bad;
  }
  Result<Snapshot> missing = c->FindSnapshot("ffff");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(missing.status().message().find("run `sparetime snapshots` to list them"),
            std::string::npos);
}

TEST(CatalogTest, GivenIdsAreValidatedAndUnique) {
  TempDir t;
  auto c = MustOpen(t / "c.db");
  Snapshot s = MakeSnapshot("s", 1, Disk("S", 1000));
  s.id = "0123456789abcdef";
  MustAdd(*c, s);
  Result<Snapshot> dup = c->AddSnapshot(s);
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.status().code(), ErrorCode::kAlreadyExists);
  for (const std::string bad : {"0123456789ABCDEF", "0123", "0123456789abcdeg"}) {
    s.id = bad;
    Result<Snapshot> r = c->AddSnapshot(s);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(c->ListSnapshots()->size(), 1u);
}

TEST(CatalogTest, ForgetSnapshot) {
  TempDir t;
  auto c = MustOpen(t / "c.db");
  Snapshot a = MustAdd(*c, MakeSnapshot("a", 1, Disk("S", 1000)));
  Snapshot b = MustAdd(*c, MakeSnapshot("b", 2, Disk("S", 1000)));
  ASSERT_TRUE(c->ForgetSnapshot(b.id).ok());
  EXPECT_EQ(Ids(*c->ListSnapshots()), std::vector<std::string>{a.id});
  Status again = c->ForgetSnapshot(b.id);
  EXPECT_EQ(again.code(), ErrorCode::kNotFound);
  EXPECT_NE(again.message().find(b.id), std::string::npos);
  EXPECT_EQ(c->FindSnapshot(b.id).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(c->FindSnapshot("latest")->id, a.id);
}

TEST(CatalogTest, ProgressIsRecordedLoadedAndCleared) {
  TempDir t;
  auto c = MustOpen(t / "c.db");
  Result<std::optional<JobProgress>> none = c->LoadProgress("job-a");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());

  const std::vector<std::pair<uint64_t, ChunkId>> first = {{5, testing::TestChunkId(5)}, {0, testing::TestChunkId(0)}};
  const std::vector<std::pair<uint64_t, ChunkId>> second = {{3, testing::TestChunkId(3)},
                                                            {1ull << 40, testing::TestChunkId(9)}};
  ASSERT_TRUE(c->RecordProgress("job-a", first).ok());
  ASSERT_TRUE(c->RecordProgress("job-a", second).ok());
  ASSERT_TRUE(c->RecordProgress("job-b", std::vector<std::pair<uint64_t, ChunkId>>{}).ok());

  Result<std::optional<JobProgress>> a = c->LoadProgress("job-a");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(a->has_value());
  EXPECT_EQ((*a)->job_key, "job-a");
  EXPECT_GT((*a)->started, 1600000000);
  const std::vector<std::pair<uint64_t, ChunkId>> want = {
      {0, testing::TestChunkId(0)}, {3, testing::TestChunkId(3)}, {5, testing::TestChunkId(5)}, {1ull << 40, testing::TestChunkId(9)}};
  EXPECT_EQ((*a)->done, want);

  Result<std::optional<JobProgress>> b = c->LoadProgress("job-b");
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(b->has_value());
  EXPECT_TRUE((*b)->done.empty());

  // Survives reopening.
  c.reset();
  c = MustOpen(t / "c.db");
  EXPECT_EQ((*c->LoadProgress("job-a"))->done, want);

  ASSERT_TRUE(c->ClearProgress("job-a").ok());
  EXPECT_FALSE(c->LoadProgress("job-a")->has_value());
  EXPECT_TRUE(c->LoadProgress("job-b")->has_value());
  ASSERT_TRUE(c->ClearProgress("never-recorded").ok());
}

TEST(CatalogTest, NewerSchemaIsRefused) {
  TempDir t;
  ASSERT_NE(MustOpen(t / "c.db"), nullptr);
  SqlExec(t / "c.db", "UPDATE meta SET value = 7 WHERE key = 'schema_version'");
  auto c = Catalog::Open(t / "c.db");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(c.status().message().find(t / "c.db"), std::string::npos);
}

TEST(CatalogTest, NotADatabaseIsCorruption) {
  TempDir t;
  testing::WriteFileOrDie(t / "c.db", RandomBytes(8192, 3));
  auto c = Catalog::Open(t / "c.db");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), ErrorCode::kCorruption) << c.status().ToString();
  EXPECT_NE(c.status().message().find(t / "c.db"), std::string::npos);
}

TEST(CatalogTest, DamagedDeviceRecordIsReported) {
  TempDir t;
  auto c = MustOpen(t / "c.db");
  Snapshot s = MustAdd(*c, MakeSnapshot("s", 1, Disk("S", 1000)));
  SqlExec(t / "c.db", "UPDATE snapshots SET device = '{not json'");
  Result<std::vector<Snapshot>> list = c->ListSnapshots();
  ASSERT_FALSE(list.ok());
  EXPECT_EQ(list.status().code(), ErrorCode::kCorruption);
  EXPECT_NE(list.status().message().find(s.id), std::string::npos);
  SqlExec(t / "c.db", "UPDATE snapshots SET device = '{\"path\": 1}'");
  EXPECT_EQ(c->FindSnapshot(s.id).status().code(), ErrorCode::kCorruption);
}

TEST(CatalogTest, ConcurrentThreadsAndConnections) {
  TempDir t;
  auto c1 = MustOpen(t / "c.db");
  auto c2 = MustOpen(t / "c.db");  // as another process would
  constexpr int kThreads = 4, kEach = 25;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      Catalog& c = (i % 2 == 0) ? *c1 : *c2;
      const std::string job = "job-" + std::to_string(i);
      for (int k = 0; k < kEach; ++k) {
        if (!c.AddSnapshot(MakeSnapshot("t", i * 1000 + k, Disk("S", 1000))).ok()) ++failures;
        const std::pair<uint64_t, ChunkId> done[] = {{uint64_t(k), testing::TestChunkId(k)}};
        if (!c.RecordProgress(job, done).ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  Result<std::vector<Snapshot>> list = c1->ListSnapshots();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), static_cast<size_t>(kThreads * kEach));
  std::vector<std::string> ids = Ids(*list);
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size());
  for (int i = 0; i < kThreads; ++i) {
    auto p = c2->LoadProgress("job-" + std::to_string(i));
    ASSERT_TRUE(p.ok() && p->has_value());
    EXPECT_EQ((*p)->done.size(), static_cast<size_t>(kEach));
  }
}

}  // namespace
}  // namespace sparetime
