// Device identity end to end, through the real `sparetime` binary (root
// only: loop devices): two equal-size partitions of one image reached as
// offset loops (`losetup -o`) are two devices, so `prune --keep-last 1` keeps
// one snapshot of each; two cloned ext4 images (one fs UUID) are two
// devices, so a dry run removes nothing of the other's only backup, and the
// real prune leaves it restorable bit for bit; a catalog written by schema 1
// is migrated on open, clones split and ambiguous loop snapshots all kept.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <string>

#include "sparetime/base/fd.h"
#include "sparetime/base/sqlite_db.h"
#include "testutil/cli_runner.h"
#include "testutil/testutil.h"

namespace sparetime::testing {
namespace {

constexpr size_t kChunk = 64 << 10;
constexpr size_t kMiB = 1 << 20;

// A loop device over [offset, offset + size) of `file`, detached on destruction.
class OffsetLoop {
 public:
  OffsetLoop(const std::string& file, uint64_t offset, uint64_t size) {
    CommandResult r = RunCommand("losetup --find --show -o " + std::to_string(offset) +
                                 " --sizelimit " + std::to_string(size) + " " + file);
    if (r.exit_code != 0) {
      ADD_FAILURE() << "losetup failed: " << r.err;
      return;
    }
    path_ = r.out.substr(0, r.out.find('\n'));
  }
  ~OffsetLoop() {
    if (!path_.empty()) (void)RunCommand("losetup -d " + path_);
  }
  OffsetLoop(const OffsetLoop&) = delete;
  OffsetLoop& operator=(const OffsetLoop&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class DeviceIdentityCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!IsRoot()) GTEST_SKIP() << "loop devices need root";
    cli_.Init("--chunk-size 65536");
  }
  nlohmann::json Json(const std::string& args) {
    CommandResult r = cli_.Run("--json " + args);
    EXPECT_EQ(r.exit_code, 0) << args << "\n" << r.err;
    nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.out;
    return j;
  }
  // Overwrites [offset, offset + bytes.size()) of `file` in place (pwrite and
  // fsync: a loop device over it reads through the file's page cache).
  static void Patch(const std::string& file, uint64_t offset, const std::vector<std::byte>& bytes) {
    Result<Fd> fd = OpenFile(file, O_WRONLY);
    ASSERT_TRUE(fd.ok()) << fd.status().ToString();
    ASSERT_TRUE(WriteFullAt(fd->get(), bytes, offset).ok());
    ASSERT_EQ(::fsync(fd->get()), 0);
  }
  // Restores snapshot `id` to a new file and returns its bytes.
  std::vector<std::byte> Restored(const std::string& id) {
    const std::string out = tmp_ / ("restored-" + id);
    CommandResult r = cli_.Run("restore " + id + " --to " + out);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? ReadFileOrDie(out) : std::vector<std::byte>{};
  }
  static std::vector<std::byte> Slice(const std::vector<std::byte>& v, size_t off, size_t len) {
    return {v.begin() + static_cast<ptrdiff_t>(off), v.begin() + static_cast<ptrdiff_t>(off + len)};
  }

  TempDir tmp_;
  CliRunner cli_{tmp_ / "repo", "device identity passphrase"};
};

TEST_F(DeviceIdentityCli, EqualSizePartitionsAsOffsetLoopsArePrunedApart) {
  // A 9 MiB disk image: 1 MiB of table, then two 4 MiB "partitions".
  constexpr uint64_t kPart = 4 * kMiB;
  const std::string disk = tmp_ / "disk.img";
  WriteFileOrDie(disk, RandomBytes(kMiB + 2 * kPart, 1));
  OffsetLoop p1(disk, kMiB, kPart), p2(disk, kMiB + kPart, kPart);
  ASSERT_FALSE(p1.path().empty());
  ASSERT_FALSE(p2.path().empty());

  nlohmann::json a1 = cli_.Backup(p1.path(), "--label a1");
  nlohmann::json b1 = cli_.Backup(p2.path(), "--label b1");
  ASSERT_NE(a1["device_key"], b1["device_key"]) << a1["device_key"];
  EXPECT_NE(a1["device_key"].get<std::string>().find(":offset=1048576:sizelimit=4194304:"),
            std::string::npos)
      << a1["device_key"];
  // Each partition changes 8 of its 64 chunks, then is backed up again.
  Patch(disk, kMiB, RandomBytes(8 * kChunk, 2));
  Patch(disk, kMiB + kPart + 16 * kChunk, RandomBytes(8 * kChunk, 3));
  (void)RunCommand("blockdev --flushbufs " + p1.path() + " " + p2.path());
  nlohmann::json a2 = cli_.Backup(p1.path(), "--label a2");
  nlohmann::json b2 = cli_.Backup(p2.path(), "--label b2");
  EXPECT_EQ(a2["device_key"], a1["device_key"]);
  EXPECT_EQ(b2["device_key"], b1["device_key"]);

  nlohmann::json done = Json("prune --keep-last 1");
  EXPECT_EQ(done["snapshots_forgotten"], 2);
  // a1's and b1's unshared chunks: the 8 each replaced, plus two manifests of 2.
  EXPECT_EQ(done["chunks_removed"], 8 + 8 + 2 + 2);
  nlohmann::json left = Json("snapshots");
  ASSERT_EQ(left.size(), 2u);
  std::set<std::string> ids;
  for (const nlohmann::json& s : left) ids.insert(s["id"].get<std::string>());
  EXPECT_EQ(ids, (std::set<std::string>{a2["id"].get<std::string>(), b2["id"].get<std::string>()}));

  std::vector<std::byte> now = ReadFileOrDie(disk);
  EXPECT_EQ(Restored(a2["id"].get<std::string>()), Slice(now, kMiB, kPart));
  EXPECT_EQ(Restored(b2["id"].get<std::string>()), Slice(now, kMiB + kPart, kPart));
  CommandResult verify = cli_.Run("verify");
  EXPECT_EQ(verify.exit_code, 0) << verify.err;
}

TEST_F(DeviceIdentityCli, ClonedImagesWithOneFsUuidKeepEachOthersBackups) {
  constexpr uint64_t kSize = 16 * kMiB;
  const std::string a = tmp_ / "a.img", b = tmp_ / "b.img";
  WriteFileOrDie(a, std::vector<std::byte>(kSize));
  CommandResult mkfs = RunCommand("mkfs.ext4 -q -F -U 3f1c9a52-7b1e-4d2a-9c11-0123456789ab " + a);
  ASSERT_EQ(mkfs.exit_code, 0) << mkfs.err;
  Patch(a, 8 * kMiB, RandomBytes(4 * kMiB, 4));  // "files" in the template
  ASSERT_EQ(RunCommand("cp " + a + " " + b).exit_code, 0);
  Patch(b, 12 * kMiB + 64 * kChunk / 2, RandomBytes(4 * kChunk, 5));
  // The "files" are raw bytes in ext4's free space: --all-blocks keeps them (issue 20).

  nlohmann::json a1 = cli_.Backup(a, "--all-blocks --label a1");
  Patch(a, 10 * kMiB, RandomBytes(4 * kChunk, 6));
  nlohmann::json a2 = cli_.Backup(a, "--all-blocks --label a2");
  nlohmann::json b1 = cli_.Backup(b, "--all-blocks --label b1");
  EXPECT_EQ(a1["identity"]["fs_uuid"], b1["identity"]["fs_uuid"]);
  EXPECT_EQ(a1["identity"]["fs_uuid"], "3f1c9a52-7b1e-4d2a-9c11-0123456789ab");
  EXPECT_NE(a1["device_key"], b1["device_key"]);
  EXPECT_EQ(a1["device_key"], a2["device_key"]);

  nlohmann::json dry = Json("prune --keep-last 1 --dry-run");
  EXPECT_TRUE(dry["dry_run"]);
  EXPECT_EQ(dry["snapshots_forgotten"], 1);
  for (const nlohmann::json& s : dry["snapshots"]) {
    EXPECT_EQ(s["keep"], s["id"] != a1["id"]) << s.dump();
  }
  // a1's data chunks are all still in b (the clone of a1's template) or a2;
  // only its manifest (root and one piece) would go.
  EXPECT_EQ(dry["chunks_removed"], 2);

  nlohmann::json done = Json("prune --keep-last 1");
  EXPECT_EQ(done["snapshots_forgotten"], 1);
  EXPECT_EQ(done["chunks_removed"], 2);
  EXPECT_EQ(Json("snapshots").size(), 2u);
  EXPECT_EQ(Restored(b1["id"].get<std::string>()), ReadFileOrDie(b));
  EXPECT_EQ(Restored(a2["id"].get<std::string>()), ReadFileOrDie(a));
}

// Turns the repository's catalog back into what schema 1 wrote: device JSON
// with the eight schema-1 fields, no consistency column, and schema_version 1.
void DowngradeCatalog(const std::string& db_path) {
  Result<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(db_path, SqliteDb::Mode::kExisting);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  Result<SqliteStmt> list = (*db)->Prepare("SELECT seq, device FROM snapshots");
  Result<SqliteStmt> put = (*db)->Prepare("UPDATE snapshots SET device = ? WHERE seq = ?");
  ASSERT_TRUE(list.ok() && put.ok());
  std::vector<std::pair<int64_t, std::string>> rows;
  {
    SqliteQuery q = list->Query();
    while (*q.Step()) {
      nlohmann::json j = nlohmann::json::parse(q.Text(1));
      nlohmann::json old;
      for (const char* f : {"path", "kind", "size", "logical_block_size", "serial", "wwid",
                            "backing_file", "fs_uuid"})
        old[f] = j[f];
      rows.emplace_back(q.Int(0), old.dump());
    }
  }
  for (const auto& [seq, json] : rows) ASSERT_TRUE(put->Query().Bind(1, json).Bind(2, seq).Run().ok());
  // Schema 3's column (how the snapshot was taken) did not exist either.
  ASSERT_TRUE((*db)->Exec("ALTER TABLE snapshots DROP COLUMN consistency").ok());
  ASSERT_TRUE((*db)->Exec("UPDATE meta SET value = 1 WHERE key = 'schema_version'").ok());
}

TEST_F(DeviceIdentityCli, AnOldCatalogIsMigratedAndItsAmbiguousLoopsAreAllKept) {
  constexpr uint64_t kPart = 2 * kMiB;
  const std::string disk = tmp_ / "disk.img";
  WriteFileOrDie(disk, RandomBytes(2 * kPart, 7));
  const std::string a = tmp_ / "a.img", b = tmp_ / "b.img";
  WriteFileOrDie(a, RandomBytes(kPart, 8));
  ASSERT_EQ(RunCommand("cp " + a + " " + b).exit_code, 0);
  std::string loops;
  {
    OffsetLoop p1(disk, 0, kPart), p2(disk, kPart, kPart);
    ASSERT_FALSE(p1.path().empty());
    ASSERT_FALSE(p2.path().empty());
    cli_.Backup(p1.path(), "--label p1");
    cli_.Backup(p2.path(), "--label p2");
    cli_.Backup(p1.path(), "--label p1-again");
  }
  nlohmann::json a1 = cli_.Backup(a, "--label a1");
  nlohmann::json a2 = cli_.Backup(a, "--label a2");
  nlohmann::json b1 = cli_.Backup(b, "--label b1");
  DowngradeCatalog(cli_.repo() + "/catalog.db");

  // Opening the catalog migrates it: the loops' offsets were never stored,
  // so their three snapshots stay under one old key, marked ambiguous.
  nlohmann::json dry = Json("prune --keep-last 1 --dry-run");
  EXPECT_EQ(dry["snapshots_forgotten"], 1);
  for (const nlohmann::json& s : dry["snapshots"]) {
    EXPECT_EQ(s["keep"], s["id"] != a1["id"]) << s.dump();
    if (s["device_key"].get<std::string>().starts_with("loopfile:")) {
      ASSERT_EQ(s["reasons"].size(), 1u);
      EXPECT_NE(s["reasons"][0].get<std::string>().find("ambiguous device"), std::string::npos);
    }
  }
  ASSERT_EQ(dry["notes"].size(), 1u);
  EXPECT_NE(dry["notes"][0].get<std::string>().find("warning: 3 snapshot(s)"), std::string::npos)
      << dry["notes"];
  nlohmann::json snaps = Json("snapshots");
  ASSERT_EQ(snaps.size(), 6u);
  std::set<std::string> keys;
  for (const nlohmann::json& s : snaps) keys.insert(s["device_key"].get<std::string>());
  EXPECT_EQ(keys.size(), 3u) << "one legacy loop key, and a and b apart";
  // A new backup of a clone lands in its migrated group.
  nlohmann::json b2 = cli_.Backup(b, "--label b2");
  EXPECT_EQ(b2["device_key"], b1["device_key"]);
  nlohmann::json done = Json("prune --keep-last 1");
  EXPECT_EQ(done["snapshots_forgotten"], 2);  // a1 and b1
  EXPECT_EQ(Json("snapshots").size(), 5u);
}

}  // namespace
}  // namespace sparetime::testing
