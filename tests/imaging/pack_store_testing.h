// Helpers shared by the PackStore tests: deterministic ids and blobs,
// store shortcuts that fail the test on errors, a side SQLite connection
// onto index.db, and raw pack-file access for damaging packs on purpose.
#ifndef SPARETIME_TESTS_IMAGING_PACK_STORE_TESTING_H_
#define SPARETIME_TESTS_IMAGING_PACK_STORE_TESTING_H_

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "sparetime/base/bytes.h"
#include "sparetime/base/fd.h"
#include "sparetime/imaging/pack_store.h"
#include "testutil/testutil.h"

namespace sparetime::testing {

inline constexpr size_t kHeader = 20;  // pack file header
inline constexpr size_t kRec = 40;     // record header

inline std::vector<std::byte> TestBlob(uint64_t n, size_t size) {
  return RandomBytes(size, n + 1000003);
}

inline std::unique_ptr<PackStore> MustCreate(const std::string& dir, PackStoreOptions o = {}) {
  auto s = PackStore::Create(dir, o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(*s) : nullptr;
}

inline std::unique_ptr<PackStore> MustOpen(const std::string& dir, PackStoreOptions o = {}) {
  auto s = PackStore::Open(dir, o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(*s) : nullptr;
}

inline void MustPut(PackStore& s, uint64_t n, size_t size, bool existed = false) {
  Result<bool> r = s.Put(TestChunkId(n), TestBlob(n, size));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, existed) << "chunk " << n;
}

inline void ExpectChunk(PackStore& s, uint64_t n, size_t size) {
  Result<std::vector<std::byte>> got = s.Get(TestChunkId(n));
  ASSERT_TRUE(got.ok()) << "chunk " << n << ": " << got.status().ToString();
  EXPECT_EQ(*got, TestBlob(n, size)) << "chunk " << n;
}

// A separate SQLite connection onto index.db, for inspecting and tampering.
inline int64_t SqlInt(const std::string& db, const std::string& sql) {
  sqlite3* h = nullptr;
  EXPECT_EQ(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sql;
  EXPECT_EQ(sqlite3_step(st), SQLITE_ROW) << sql;
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(h);
  return v;
}

inline void SqlExec(const std::string& db, const std::string& sql) {
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(h, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sql;
  sqlite3_close(h);
}

inline uint64_t FileSize(const std::string& path) { return std::filesystem::file_size(path); }

inline void AppendToFile(const std::string& path, const std::vector<std::byte>& b) {
  std::ofstream f(path, std::ios::binary | std::ios::app);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  ASSERT_TRUE(f.good());
}

inline std::vector<std::byte> RecordBytes(const ChunkId& id, const std::vector<std::byte>& blob) {
  std::vector<std::byte> r;
  AppendBytes(r, AsBytes("SPK1"));
  AppendLe32(r, static_cast<uint32_t>(blob.size()));
  AppendBytes(r, id.bytes);
  AppendBytes(r, blob);
  return r;
}

}  // namespace sparetime::testing

#endif  // SPARETIME_TESTS_IMAGING_PACK_STORE_TESTING_H_
