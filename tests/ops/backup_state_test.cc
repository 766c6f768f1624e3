// ops::BackupState over a real catalog and chunk-location database (SQLite
// files as the agent keeps them in <state_dir>/backup), and the metrics file
// it feeds: the Prometheus text is parsed back and every sample compared
// (exact names, labels and values); the file is replaced atomically; a
// missing textfile directory is a clear error and writes nothing.
#include "sparetime/ops/backup_state.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <map>
#include <regex>
#include <sstream>

#include "sparetime/base/fd.h"
#include "sparetime/imaging/catalog.h"
#include "sparetime/replication/chunk_locations.h"
#include "testutil/testutil.h"
#include "directory/fleet_state_testing.h"

namespace sparetime::ops {
namespace {

using sparetime::testing::TempDir;

Snapshot Snap(const std::string& path, int64_t time, uint64_t size, double seconds, uint64_t stored) {
  Snapshot s;
  s.label = "scheduled";
  s.time = time;
  s.device.path = path;
  s.device.kind = "file";
  s.device.size = size;
  s.device.real_path = path;
  s.size = size;
  s.chunk_size = 1 << 20;
  s.stats.seconds = seconds;
  s.stats.stored_bytes = stored;
  s.consistency = "direct";
  return s;
}

using directory::testing::Dev;
using directory::testing::Health;

ChunkId Id(uint8_t n) {
  ChunkId id;
  id.bytes.fill(std::byte{n});
  return id;
}

class BackupStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::mkdir((dir_ / "backup").c_str(), 0700), 0);
    auto catalog = Catalog::Open(dir_ / "backup/catalog.db");
    ASSERT_TRUE(catalog.ok()) << catalog.status().ToString();
    // Two of /dev/vdb (the newer counts), one of another device.
    ASSERT_TRUE((*catalog)->AddSnapshot(Snap("/dev/vdb", 1765000000, 1000, 10.4, 100)).ok());
    auto newest = (*catalog)->AddSnapshot(Snap("/dev/vdb", 1765100000, 2000, 12.6, 300));
    ASSERT_TRUE(newest.ok()) << newest.status().ToString();
    vdb_id_ = newest->id;
    ASSERT_TRUE((*catalog)->AddSnapshot(Snap("/dev/other", 1765200000, 5, 1, 1)).ok());
    auto locations = replication::ChunkLocations::Open(dir_ / "backup/locations.db");
    ASSERT_TRUE(locations.ok()) << locations.status().ToString();
    // Chunk 1 on three peers, 2 on two, 3 and 4 on one.
    std::vector<replication::ChunkLocation> rows = {
        {Id(1), "a", {}}, {Id(1), "b", {}}, {Id(1), "c", {}}, {Id(2), "a", {}},
        {Id(2), "b", {}}, {Id(3), "c", {}}, {Id(4), "a", {}}};
    ASSERT_TRUE((*locations)->Add(rows).ok());
  }
  BackupStateRequest Request() const {
    BackupStateRequest r;
    r.state_dir = dir_.path();
    r.devices = {"/dev/vdb", "/dev/vdc"};
    r.replicas = 2;
    r.last_verify = 1765050000;
    r.last_error = "verify: 1 damaged chunk";
    r.last_error_time = 1765060000;
    r.forced = {"/dev/vdb"};
    return r;
  }
  TempDir dir_;
  std::string vdb_id_;
};

TEST_F(BackupStateTest, ReadsTheCatalogAndTheReplicaCounts) {
  Result<BackupStateReport> r = BackupState(Request());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->devices.size(), 2u);
  EXPECT_EQ(r->devices[0], Dev("/dev/vdb", 1765100000, 2000, vdb_id_, 13, 300, true));
  EXPECT_EQ(r->devices[1], Dev("/dev/vdc"));  // never
  EXPECT_EQ(r->health, Health(2, 2, 2, 1765050000, "verify: 1 damaged chunk", 1765060000));
  BackupStateRequest three = Request();
  three.replicas = 3;
  EXPECT_EQ(BackupState(three)->health.healthy, 1u);
  EXPECT_EQ(BackupState(three)->health.under_replicated, 3u);
}

TEST(BackupStateFresh, NoBackupsYetIsNotAnError) {
  TempDir dir;
  BackupStateRequest r;
  r.state_dir = dir.path();
  r.devices = {"/dev/sda"};
  Result<BackupStateReport> report = BackupState(r);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->devices, std::vector<directory::DeviceBackupState>{Dev("/dev/sda")});
  EXPECT_EQ(report->health.healthy + report->health.under_replicated, 0u);
  struct stat st;
  EXPECT_NE(::stat((dir / "backup").c_str(), &st), 0);  // nothing created
}

// name{labels} -> value, checking that every sample's family has HELP and
// TYPE gauge lines before it (the exposition format, version 0.0.4).
std::map<std::string, int64_t> ParseExposition(const std::string& text) {
  std::map<std::string, int64_t> out;
  std::map<std::string, int> declared;
  std::istringstream in(text);
  const std::regex help(R"(^# HELP ([a-z_]+) .+$)"), type(R"(^# TYPE ([a-z_]+) gauge$)"),
      sample(R"(^([a-z_]+)\{((?:[a-z]+="(?:[^"\\]|\\.)*",?)*)\} (-?[0-9]+)$)");
  std::string line;
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_match(line, m, help)) {
      EXPECT_EQ(declared[m[1]], 0) << line;
      declared[m[1]] = 1;
    } else if (std::regex_match(line, m, type)) {
      EXPECT_EQ(declared[m[1]], 1) << line;
      declared[m[1]] = 2;
    } else if (std::regex_match(line, m, sample)) {
      EXPECT_EQ(declared[m[1]], 2) << "sample before HELP/TYPE: " << line;
      EXPECT_TRUE(out.emplace(std::string(m[1]) + "{" + std::string(m[2]) + "}",
                              std::stoll(m[3])).second) << "duplicate: " << line;
    } else {
      ADD_FAILURE() << "not exposition format: \"" << line << "\"";
    }
  }
  return out;
}

TEST_F(BackupStateTest, MetricsFileIsExactAndAtomic) {
  Result<BackupStateReport> r = BackupState(Request());
  ASSERT_TRUE(r.ok());
  TempDir textfile;
  const int64_t now = 1765100000 + 3 * 86400 + 1;  // /dev/vdb just overdue at 3 d
  ASSERT_TRUE(WriteMetrics(textfile.path(), MetricsText("alpha", *r, now, 3 * 86400)).ok());
  Result<std::string> text = ReadFileToString(textfile / "sparetime.prom");
  ASSERT_TRUE(text.ok());
  const std::string vdb = R"(host="alpha",device="/dev/vdb")", vdc = R"(host="alpha",device="/dev/vdc")",
                    h = R"(host="alpha")";
  const std::map<std::string, int64_t> expected = {
      {"sparetime_last_success_timestamp_seconds{" + vdb + "}", 1765100000},
      {"sparetime_last_success_timestamp_seconds{" + vdc + "}", 0},
      {"sparetime_last_backup_size_bytes{" + vdb + "}", 2000},
      {"sparetime_last_backup_size_bytes{" + vdc + "}", 0},
      {"sparetime_last_backup_duration_seconds{" + vdb + "}", 13},
      {"sparetime_last_backup_duration_seconds{" + vdc + "}", 0},
      {"sparetime_last_backup_stored_bytes{" + vdb + "}", 300},
      {"sparetime_last_backup_stored_bytes{" + vdc + "}", 0},
      {"sparetime_overdue{" + vdb + "}", 1},
      {"sparetime_overdue{" + vdc + "}", 1},
      {"sparetime_last_backup_forced{" + vdb + "}", 1},
      {"sparetime_last_backup_forced{" + vdc + "}", 0},
      {"sparetime_max_age_seconds{" + h + "}", 3 * 86400},
      {"sparetime_chunks_replicated{" + h + "}", 2},
      {"sparetime_chunks_under_replicated{" + h + "}", 2},
      {"sparetime_last_verify_timestamp_seconds{" + h + "}", 1765050000},
      {"sparetime_last_error_timestamp_seconds{" + h + "}", 1765060000},
  };
  EXPECT_EQ(ParseExposition(*text), expected);
  // One second earlier /dev/vdb is not overdue yet.
  EXPECT_EQ(ParseExposition(MetricsText("alpha", *r, now - 1, 3 * 86400))
                .at("sparetime_overdue{" + vdb + "}"),
            0);
  // Labels are escaped.
  std::map<std::string, int64_t> odd =
      ParseExposition(MetricsText("a\"b\\c", BackupStateReport{}, now, 3600));
  EXPECT_EQ(odd.at(R"(sparetime_max_age_seconds{host="a\"b\\c"})"), 3600);
  // Rewritten in place: only the .prom file is left, no temporary.
  ASSERT_TRUE(WriteMetrics(textfile.path(), "# nothing\n").ok());
  EXPECT_EQ(*ReadFileToString(textfile / "sparetime.prom"), "# nothing\n");
  auto entries = testing::RunCommand("ls -A " + textfile.path());
  EXPECT_EQ(entries.out, "sparetime.prom\n");
}

// The bad-input row "the textfile directory missing".
TEST(Metrics, AMissingTextfileDirectoryIsAClearErrorAndWritesNothing) {
  TempDir dir;
  Status s = WriteMetrics(dir / "node-exporter", "x 1\n");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), ErrorCode::kNotFound);
  EXPECT_EQ(s.message(), "the metrics directory " + (dir / "node-exporter") +
                             " does not exist (node_exporter's textfile collector: apt install "
                             "prometheus-node-exporter, or set [metrics] textfile_dir in "
                             "sparetime.conf, empty to write no metrics)");
  struct stat st;
  EXPECT_NE(::stat((dir / "node-exporter").c_str(), &st), 0);
}

}  // namespace
}  // namespace sparetime::ops
