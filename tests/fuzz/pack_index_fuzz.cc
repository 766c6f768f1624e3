// libFuzzer target: index rows (imaging/src/pack_index.h). index.db lives on
// the same disk as the packs and may be damaged or edited; SQLite checks its
// own pages, the PackIndex must check the values in them. The input is a
// list of rows written into a real index.db (SQLite columns are typed per
// value, so any type can land in any column):
//   0 id-len id pack offset length hash-len hash   a chunks row
//   1 id name-len name committed                  a packs row
//   2 id-len id text-len text                     a chunks row with text values
// (integers i64 little-endian, lengths one byte). Then every read the store
// does runs over them; a row that is returned must have been checked
// (32-byte id and hash, offset and length in range), else __builtin_trap.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "fuzz_util.h"
#include "pack_index.h"
#include "sparetime/base/bytes.h"
#include "sparetime/base/env.h"
#include "sparetime/base/sqlite_db.h"

using namespace sparetime;

namespace {

class Reader {
 public:
  explicit Reader(std::span<const std::byte> in) : in_(in) {}
  bool done() const { return pos_ >= in_.size(); }
  uint8_t U8() { return pos_ < in_.size() ? static_cast<uint8_t>(in_[pos_++]) : 0; }
  int64_t I64() {
    if (in_.size() - pos_ < 8) {
      pos_ = in_.size();
      return 0;
    }
    int64_t v = static_cast<int64_t>(GetLe64(in_.data() + pos_));
    pos_ += 8;
    return v;
  }
  std::span<const std::byte> Take(size_t n) {
    n = std::min(n, in_.size() - pos_);
    auto s = in_.subspan(pos_, n);
    pos_ += n;
    return s;
  }

 private:
  std::span<const std::byte> in_;
  size_t pos_ = 0;
};

struct Db {
  std::unique_ptr<PackIndex> index;
  std::unique_ptr<SqliteDb> raw;  // a second connection, for writing any row
};

Db& Open() {
  static Db* db = [] {
    auto* d = new Db;
    auto index = PackIndex::Open(fuzz::ScratchDir(), SqliteDb::Mode::kCreate, nullptr);
    if (!index.ok()) std::abort();
    d->index = std::move(*index);
    auto raw = SqliteDb::Open(fuzz::ScratchDir() + "/index.db", SqliteDb::Mode::kExisting);
    if (!raw.ok()) std::abort();
    d->raw = std::move(*raw);
    return d;
  }();
  return *db;
}

// Offsets come from signed SQLite integers: a negative one must have been
// refused, not turned into a huge unsigned offset.
// A path built from a name column stays a pack file inside the store
// (issue 26: "../", absolute paths and other names are kCorruption).
void CheckPackPath(const std::string& path) {
  if (path.empty()) return;
  if (path.find("/../") != std::string::npos || path.find("/packs/") == std::string::npos ||
      !path.ends_with(".pack")) {
    __builtin_trap();
  }
}

void CheckRow(const IndexRow& r) {
  if (r.loc.offset > static_cast<uint64_t>(INT64_MAX)) __builtin_trap();
  CheckPackPath(r.loc.pack_path);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Db& db = Open();
  if (!db.raw->Exec("DELETE FROM chunks; DELETE FROM packs;").ok()) std::abort();
  Reader in(fuzz::Bytes(data, size));
  std::vector<std::vector<std::byte>> ids;
  std::vector<int64_t> packs;
  for (int rows = 0; !in.done() && rows < 64; ++rows) {
    uint8_t tag = in.U8() % 3;
    if (tag == 0) {
      auto id = in.Take(in.U8());
      int64_t pack = in.I64(), offset = in.I64(), length = in.I64();
      auto hash = in.Take(in.U8());
      auto stmt = db.raw->Prepare("INSERT OR IGNORE INTO chunks VALUES(?,?,?,?,?)");
      if (!stmt.ok()) std::abort();
      stmt->Query().Bind(1, id).Bind(2, pack).Bind(3, offset).Bind(4, length).Bind(5, hash).Run().IgnoreError();
      ids.emplace_back(id.begin(), id.end());
      packs.push_back(pack);
    } else if (tag == 1) {
      int64_t id = in.I64();
      auto name = in.Take(in.U8());
      int64_t committed = in.I64();
      auto stmt = db.raw->Prepare("INSERT OR IGNORE INTO packs VALUES(?,?,?)");
      if (!stmt.ok()) std::abort();
      std::string_view text(reinterpret_cast<const char*>(name.data()), name.size());
      stmt->Query().Bind(1, id).Bind(2, text).Bind(3, committed).Run().IgnoreError();
      packs.push_back(id);
    } else {
      auto id = in.Take(in.U8());
      auto t = in.Take(in.U8());
      std::string_view text(reinterpret_cast<const char*>(t.data()), t.size());
      auto stmt = db.raw->Prepare("INSERT OR IGNORE INTO chunks VALUES(?,?,?,?,?)");
      if (!stmt.ok()) std::abort();
      stmt->Query().Bind(1, id).Bind(2, text).Bind(3, text).Bind(4, text).Bind(5, text).Run().IgnoreError();
      ids.emplace_back(id.begin(), id.end());
    }
  }
  PackIndex& index = *db.index;
  for (const auto& raw : ids) {
    if (raw.size() != ChunkId::kSize) continue;
    ChunkId id = ChunkId::FromBytes(std::span<const std::byte, ChunkId::kSize>(raw.data(), ChunkId::kSize));
    index.Contains(id).status().IgnoreError();
    auto found = index.Find(id);
    if (found.ok() && *found) CheckRow(**found);
  }
  for (int64_t p : packs) {
    auto rows = index.RowsInPack(static_cast<uint64_t>(p));
    if (rows.ok()) for (const IndexRow& r : *rows) CheckRow(r);
    index.CommittedSize(static_cast<uint64_t>(p)).status().IgnoreError();
  }
  auto page = index.Page({}, 100);
  if (page.ok()) for (const IndexRow& r : *page) CheckRow(r);
  auto usage = index.Usage();
  if (usage.ok()) for (const PackUsage& u : *usage) CheckPackPath(u.pack.path);
  auto listed = index.ListPacks();
  if (listed.ok()) for (const PackInfo& p : *listed) CheckPackPath(p.path);
  (void)index.Counts();
  return 0;
}
