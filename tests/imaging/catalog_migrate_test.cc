// Catalog migration 1 -> 2 (device keys) on real SQLite files built with the
// schema-1 code's SQL and device JSON: clones and files re-keyed by path,
// partitions re-keyed from the live device (through the probe seam) or kept
// under their legacy key, ambiguous legacy groups marked and kept by
// retention, resume journals re-keyed, and the migration done once.
#include "../../imaging/src/catalog_migrate.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "sparetime/base/sqlite_db.h"
#include "sparetime/imaging/catalog.h"
#include "sparetime/imaging/retention.h"
#include "testutil/testutil.h"

namespace sparetime {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

// catalog.cc's schema at version 1, verbatim.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE snapshots(
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  label TEXT NOT NULL,
  time INTEGER NOT NULL,
  device TEXT NOT NULL,
  size INTEGER NOT NULL,
  chunk_size INTEGER NOT NULL,
  manifest_root BLOB NOT NULL,
  chunks INTEGER NOT NULL,
  holes INTEGER NOT NULL,
  new_chunks INTEGER NOT NULL,
  new_bytes INTEGER NOT NULL,
  stored_bytes INTEGER NOT NULL,
  resumed_chunks INTEGER NOT NULL,
  seconds REAL NOT NULL);
CREATE INDEX snapshots_by_time ON snapshots(time, seq);
CREATE TABLE jobs(
  job_key TEXT PRIMARY KEY,
  started INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE progress(
  job_key TEXT NOT NULL REFERENCES jobs(job_key),
  idx INTEGER NOT NULL,
  id BLOB NOT NULL,
  PRIMARY KEY(job_key, idx)) WITHOUT ROWID;
)sql";

constexpr uint64_t kSize = 1 << 20;
constexpr const char* kUuid = "3f1c9a52-7b1e-4d2a-9c11-0123456789ab";
constexpr const char* kWwid = "naa.5000c500a1b2c3d4";

// A device record as schema-1 DeviceIdentity::ToJson wrote it (8 fields).
std::string OldDevice(const std::string& path, const std::string& kind, const std::string& wwid,
                      const std::string& backing, const std::string& fs_uuid) {
  return nlohmann::json{{"path", path},        {"kind", kind},       {"size", kSize},
                        {"logical_block_size", 512}, {"serial", ""}, {"wwid", wwid},
                        {"backing_file", backing}, {"fs_uuid", fs_uuid}}
      .dump();
}

class CatalogMigrateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(db_path_, SqliteDb::Mode::kCreate);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    db_ = std::move(*db);
    ASSERT_TRUE(db_->EnsureSchema(1, kSchemaV1).ok());
  }
  // Inserts a snapshot row the way schema-1 Catalog::AddSnapshot did.
  void AddOld(const std::string& id, int64_t time, const std::string& device) {
    Result<SqliteStmt> st = db_->Prepare(
        "INSERT INTO snapshots(id, label, time, device, size, chunk_size, manifest_root, chunks, "
        "holes, new_chunks, new_bytes, stored_bytes, resumed_chunks, seconds) "
        "VALUES(?, 'old', ?, ?, ?, 65536, ?, 16, 0, 16, 1048576, 1000, 0, 1.5)");
    ASSERT_TRUE(st.ok()) << st.status().ToString();
    ChunkId root = testing::TestChunkId(static_cast<uint64_t>(time));
    ASSERT_TRUE(st->Query()
                    .Bind(1, id)
                    .Bind(2, time)
                    .Bind(3, device)
                    .Bind(4, static_cast<int64_t>(kSize))
                    .Bind(5, root.bytes)
                    .Run()
                    .ok());
  }
  void AddJob(const std::string& key, int chunks) {
    ASSERT_TRUE(db_->Exec("INSERT INTO jobs VALUES('" + key + "', 1700000000)").ok());
    for (int i = 0; i < chunks; ++i) {
      Result<SqliteStmt> st = db_->Prepare("INSERT INTO progress VALUES(?, ?, ?)");
      ASSERT_TRUE(st.ok());
      ASSERT_TRUE(st->Query().Bind(1, key).Bind(2, int64_t{i}).Bind(3, testing::TestChunkId(i).bytes).Run().ok());
    }
  }
  int64_t Version() {
    Result<SqliteStmt> st = db_->Prepare("SELECT value FROM meta WHERE key='schema_version'");
    SqliteQuery q = st->Query();
    EXPECT_TRUE(*q.Step());
    return q.Int(0);
  }
  // id -> device, through the real Catalog.
  std::map<std::string, DeviceIdentity> Devices(Catalog& c) {
    std::map<std::string, DeviceIdentity> out;
    Result<std::vector<Snapshot>> all = c.ListSnapshots();
    EXPECT_TRUE(all.ok()) << all.status().ToString();
    for (const Snapshot& s : *all) out[s.id] = s.device;
    return out;
  }
  // An image file holding an ext4 superblock with kUuid, kSize bytes.
  std::string ExtImage(const std::string& name) {
    std::vector<std::byte> data(kSize);
    data[1080] = std::byte{0x53};
    data[1081] = std::byte{0xEF};
    const std::byte uuid[16] = {std::byte{0x3f}, std::byte{0x1c}, std::byte{0x9a}, std::byte{0x52},
                                std::byte{0x7b}, std::byte{0x1e}, std::byte{0x4d}, std::byte{0x2a},
                                std::byte{0x9c}, std::byte{0x11}, std::byte{0x01}, std::byte{0x23},
                                std::byte{0x45}, std::byte{0x67}, std::byte{0x89}, std::byte{0xab}};
    std::copy(std::begin(uuid), std::end(uuid), data.begin() + 1128);
    testing::WriteFileOrDie(tmp_ / name, data);
    return tmp_ / name;
  }

  TempDir tmp_;
  std::string db_path_ = tmp_ / "catalog.db";
  std::unique_ptr<SqliteDb> db_;
};

TEST_F(CatalogMigrateTest, OldCatalogIsRekeyedWherePossibleAndAmbiguityIsKept) {
  // What schema 1 wrote: every pair below shared one key.
  const std::string a = ExtImage("a.img"), b = ExtImage("b.img");  // clones: one fs UUID
  AddOld("00000000000000a1", 100, OldDevice(a, "file", "", "", kUuid));
  AddOld("00000000000000b1", 200, OldDevice(b, "file", "", "", kUuid));
  AddOld("0000000000000011", 300, OldDevice("/dev/st-gone1", "block", kWwid, "", ""));
  AddOld("0000000000000012", 400, OldDevice("/dev/st-gone2", "block", kWwid, "", ""));
  AddOld("00000000000000d1", 500, OldDevice("/dev/st-disk", "block", "naa.disk", "", ""));
  AddOld("00000000000000d2", 600, OldDevice("/dev/st-disk", "block", "naa.disk", "", ""));
  AddOld("0000000000000071", 700, OldDevice("/dev/st-loop7", "block", "", "/srv/x.img", ""));
  AddOld("0000000000000072", 800, OldDevice("/dev/st-loop7", "block", "", "/srv/x.img", ""));
  AddOld("00000000000000e1", 900, OldDevice("rel.img", "file", "", "", kUuid));
  AddOld("00000000000000f1", 950, OldDevice("/dev/st-plain", "block", "", "", kUuid));
  const std::string fsuuid_key = std::string("fsuuid:") + kUuid + ":size=1048576";
  AddJob(fsuuid_key + ":path=" + a + ":chunk=65536", 3);
  AddJob("wwid:" + std::string(kWwid) + ":size=1048576:path=/dev/st-gone1:chunk=65536", 2);
  db_.reset();

  Result<std::unique_ptr<Catalog>> c = Catalog::Open(db_path_);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  std::map<std::string, DeviceIdentity> d = Devices(**c);
  ASSERT_EQ(d.size(), 10u);
  const std::string size = ":size=1048576";
  // Clones: each its own canonical path; no legacy key.
  EXPECT_EQ(d["00000000000000a1"].Key(), "path:" + fs::canonical(a).string() + size);
  EXPECT_EQ(d["00000000000000b1"].Key(), "path:" + fs::canonical(b).string() + size);
  EXPECT_EQ(d["00000000000000a1"].legacy_key, "");
  // Two paths under one serial, the disk gone: legacy and ambiguous.
  for (const char* id : {"0000000000000011", "0000000000000012"}) {
    EXPECT_EQ(d[id].Key(), "wwid:" + std::string(kWwid) + size) << id;
    EXPECT_TRUE(d[id].legacy_ambiguous) << id;
  }
  // One path under one WWID: legacy but one device (what a whole disk's key is anyway).
  for (const char* id : {"00000000000000d1", "00000000000000d2"}) {
    EXPECT_EQ(d[id].Key(), "wwid:naa.disk" + size) << id;
    EXPECT_FALSE(d[id].legacy_ambiguous) << id;
  }
  // A loop's offset was never stored: its snapshots may be of several devices.
  EXPECT_EQ(d["0000000000000071"].Key(), "loopfile:/srv/x.img" + size);
  EXPECT_TRUE(d["0000000000000071"].legacy_ambiguous);
  EXPECT_TRUE(d["0000000000000072"].legacy_ambiguous);
  // A relative path cannot be made canonical: legacy, alone so not ambiguous.
  EXPECT_EQ(d["00000000000000e1"].Key(), fsuuid_key);
  EXPECT_FALSE(d["00000000000000e1"].legacy_ambiguous);
  // A block device without hardware identity: its path.
  EXPECT_EQ(d["00000000000000f1"].Key(), "path:/dev/st-plain" + size);

  // Retention keeps one of each clone and every ambiguous snapshot.
  Result<std::vector<Snapshot>> all = (*c)->ListSnapshots();
  ASSERT_TRUE(all.ok());
  std::map<std::string, bool> keep;
  for (const RetentionDecision& r : ApplyRetention(*all, {.keep_last = 1})) keep[r.snapshot.id] = r.keep;
  EXPECT_TRUE(keep["00000000000000a1"]);
  EXPECT_TRUE(keep["00000000000000b1"]);
  EXPECT_TRUE(keep["0000000000000011"]);
  EXPECT_TRUE(keep["0000000000000012"]);
  EXPECT_TRUE(keep["0000000000000071"]);
  EXPECT_TRUE(keep["0000000000000072"]);
  EXPECT_FALSE(keep["00000000000000d1"]);
  EXPECT_TRUE(keep["00000000000000d2"]);

  // The clone's journal follows its new key (what the imager asks for now);
  // the gone disk's stays where it was.
  Result<std::unique_ptr<BlockDevice>> dev = OpenBlockDevice(a);
  ASSERT_TRUE(dev.ok());
  const std::string job = (*dev)->identity().Key() + ":path=" + a + ":chunk=65536";
  Result<std::optional<JobProgress>> p = (*c)->LoadProgress(job);
  ASSERT_TRUE(p.ok() && p->has_value()) << job;
  EXPECT_EQ((*p)->done.size(), 3u);
  EXPECT_EQ((*p)->done[2].second, testing::TestChunkId(2));
  EXPECT_FALSE((*(*c)->LoadProgress(fsuuid_key + ":path=" + a + ":chunk=65536")).has_value());
  EXPECT_EQ((*(*c)->LoadProgress("wwid:" + std::string(kWwid) + size +
                                 ":path=/dev/st-gone1:chunk=65536"))->done.size(), 2u);
  EXPECT_EQ((*c)->JournalChunkIds()->size(), 3u);

  // Done once: reopening changes nothing, and the version is 3 (2 -> 3 added
  // the consistency column, '' for these old snapshots).
  c->reset();
  c = Catalog::Open(db_path_);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  std::map<std::string, DeviceIdentity> again = Devices(**c);
  for (auto& [id, dev_id] : d) EXPECT_EQ(again[id].ToJson(), dev_id.ToJson()) << id;
  c->reset();
  Result<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(db_path_, SqliteDb::Mode::kExisting);
  ASSERT_TRUE(db.ok());
  db_ = std::move(*db);
  EXPECT_EQ(Version(), 3);
}

TEST_F(CatalogMigrateTest, PartitionsAreRekeyedFromTheLiveDeviceOnlyWhenItIsTheSameDisk) {
  AddOld("0000000000000011", 100, OldDevice("/dev/sdz1", "block", kWwid, "", ""));
  AddOld("0000000000000012", 200, OldDevice("/dev/sdz2", "block", kWwid, "", ""));
  AddOld("0000000000000013", 300, OldDevice("/dev/sdz3", "block", kWwid, "", ""));
  AddOld("0000000000000014", 400, OldDevice("/dev/sdz4", "block", kWwid, "", ""));
  AddOld("0000000000000015", 500, OldDevice("/dev/sdz1", "block", kWwid, "", ""));
  // The probe seam: what the kernel says each path is now. sdz3 is now on
  // another disk; sdz4 is gone.
  int probes = 0;
  detail::DeviceProbe probe = [&](const std::string& path) -> Result<DeviceIdentity> {
    ++probes;
    if (path == "/dev/sdz4") return NotFound(path + " does not exist");
    DeviceIdentity id{path, "block", kSize, 512, "", kWwid, "", ""};
    id.partition = static_cast<uint32_t>(path.back() - '0');
    id.start = id.partition * (uint64_t{1} << 20);
    if (path == "/dev/sdz3") id.wwid = "naa.other";
    return id;
  };
  Result<detail::MigrationReport> r = detail::MigrateCatalog(*db_, 2, probe);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->from_version, 1);
  EXPECT_EQ(r->rekeyed, 3u);
  EXPECT_EQ(r->legacy, 2u);
  EXPECT_EQ(r->ambiguous, 2u);  // sdz3 and sdz4: two paths, one old key
  EXPECT_EQ(probes, 4) << "one probe per distinct path";
  EXPECT_EQ(Version(), 2);
  db_.reset();

  Result<std::unique_ptr<Catalog>> c = Catalog::Open(db_path_);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  std::map<std::string, DeviceIdentity> d = Devices(**c);
  const std::string w = "wwid:" + std::string(kWwid);
  EXPECT_EQ(d["0000000000000011"].Key(), w + ":part=1:start=1048576:size=1048576");
  EXPECT_EQ(d["0000000000000015"].Key(), d["0000000000000011"].Key());
  EXPECT_EQ(d["0000000000000012"].Key(), w + ":part=2:start=2097152:size=1048576");
  EXPECT_EQ(d["0000000000000013"].Key(), w + ":size=1048576");
  EXPECT_TRUE(d["0000000000000013"].legacy_ambiguous);
  EXPECT_TRUE(d["0000000000000014"].legacy_ambiguous);

  // A second run is a no-op (the catalog is at 2 now).
  Result<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(db_path_, SqliteDb::Mode::kExisting);
  ASSERT_TRUE(db.ok());
  probes = 0;
  r = detail::MigrateCatalog(**db, 2, probe);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->from_version, 0);
  EXPECT_EQ(probes, 0);
}

TEST_F(CatalogMigrateTest, SchemaTwoGainsTheConsistencyColumn) {
  AddOld("0000000000000021", 100, OldDevice("/dev/sdz1", "block", "", "", ""));
  detail::DeviceProbe probe = [](const std::string& path) -> Result<DeviceIdentity> {
    return NotFound(path + " does not exist");
  };
  ASSERT_TRUE(detail::MigrateCatalog(*db_, 2, probe).ok());
  ASSERT_EQ(Version(), 2);
  Result<detail::MigrationReport> r = detail::MigrateCatalog(*db_, 3, probe);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->from_version, 2);
  EXPECT_EQ(r->rekeyed + r->legacy, 0u) << "2 -> 3 re-keys nothing";
  EXPECT_EQ(Version(), 3);
  db_.reset();
  Result<std::unique_ptr<Catalog>> c = Catalog::Open(db_path_);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  Result<std::vector<Snapshot>> list = (*c)->ListSnapshots();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ(list->at(0).consistency, "");
  EXPECT_FALSE(list->at(0).inconsistent());
  Snapshot s = list->at(0);
  s.id.clear();
  s.consistency = "crash";
  Result<Snapshot> added = (*c)->AddSnapshot(s);
  ASSERT_TRUE(added.ok()) << added.status().ToString();
  Result<Snapshot> back = (*c)->FindSnapshot(added->id);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->consistency, "crash");
  EXPECT_TRUE(back->inconsistent());
}

TEST_F(CatalogMigrateTest, FreshCatalogIsCreatedAtVersionThree) {
  TempDir t;
  Result<std::unique_ptr<Catalog>> c = Catalog::Open(t / "new.db");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  c->reset();
  Result<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(t / "new.db", SqliteDb::Mode::kExisting);
  ASSERT_TRUE(db.ok());
  db_ = std::move(*db);
  EXPECT_EQ(Version(), 3);
}

TEST(SchemaOneKeyTest, IsTheOldFormula) {
  DeviceIdentity id{"/dev/loop3", "block", 100, 512, "", "", "/x.img", "u"};
  id.partition = 1;  // schema 1 knew nothing of these
  id.loop_offset = 9;
  EXPECT_EQ(detail::SchemaOneKey(id), "fsuuid:u:size=100");
  id.fs_uuid.clear();
  EXPECT_EQ(detail::SchemaOneKey(id), "loopfile:/x.img:size=100");
  id.serial = "S";
  EXPECT_EQ(detail::SchemaOneKey(id), "serial:S:size=100");
}

}  // namespace
}  // namespace sparetime
