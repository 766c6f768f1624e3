// status.json: the scheduler's idle section and jobs round-trip, and a file
// written before that section existed still reads (without it).
#include "sparetime/config/status_file.h"

#include <gtest/gtest.h>

#include "sparetime/base/fd.h"
#include "testutil/testutil.h"

namespace sparetime::config {
namespace {

TEST(StatusFile, IdleSectionAndJobsRoundTrip) {
  testing::TempDir dir;
  AgentStatus s;
  s.agent = "alpha";
  s.pid = 42;
  s.idle.known = true;
  s.idle.idle = false;
  s.idle.since = 1700000000;
  s.idle.reasons = {"user active on pts/3 12 s ago", "io pressure 34% > 10%"};
  s.idle.warnings = {"cpu sensor: corruption: /proc/stat line 1: ..."};
  s.jobs.push_back({"backup /dev/sdb", "paused", 1700000005, 3 << 20, 8 << 20, 2,
                    "user active on pts/3 0 s ago"});
  std::string path = StatusPath(dir.path());
  ASSERT_TRUE(WriteStatus(path, s).ok());

  Result<AgentStatus> r = ReadStatus(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->idle.known);
  EXPECT_FALSE(r->idle.idle);
  EXPECT_EQ(r->idle.since, 1700000000);
  EXPECT_EQ(r->idle.reasons, s.idle.reasons);
  EXPECT_EQ(r->idle.warnings, s.idle.warnings);
  ASSERT_EQ(r->jobs.size(), 1u);
  const JobStatus& j = r->jobs[0];
  EXPECT_EQ(j.name, "backup /dev/sdb");
  EXPECT_EQ(j.state, "paused");
  EXPECT_EQ(j.since, 1700000005);
  EXPECT_EQ(j.bytes_done, 3u << 20);
  EXPECT_EQ(j.bytes_total, 8u << 20);
  EXPECT_EQ(j.pauses, 2);
  EXPECT_EQ(j.detail, "user active on pts/3 0 s ago");
}

// Issue 27: the PID namespace, NSpid and the site warning round-trip; a file
// without them (an older sparetimed) reads with them empty.
TEST(StatusFile, PidNamespaceAndSiteWarningRoundTrip) {
  testing::TempDir dir;
  AgentStatus s;
  s.agent = "alpha";
  s.pid = 1;
  s.pid_namespace = "pid:[4026532301]";
  s.ns_pids = {5120, 1};
  s.site_warning = "[agent] site is \"building-c\" but ...";
  std::string path = StatusPath(dir.path());
  ASSERT_TRUE(WriteStatus(path, s).ok());
  Result<AgentStatus> r = ReadStatus(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->pid, 1);
  EXPECT_EQ(r->pid_namespace, "pid:[4026532301]");
  EXPECT_EQ(r->ns_pids, (std::vector<int64_t>{5120, 1}));
  EXPECT_EQ(r->site_warning, s.site_warning);
}

TEST(StatusFile, AFileWithoutTheIdleSectionStillReads) {
  testing::TempDir dir;
  std::string path = StatusPath(dir.path());
  ASSERT_TRUE(WriteFileAtomic(path, R"({"agent":"alpha","pid":1,"started":1,"updated":2,
    "directory":{"source":"s","fetched_at":1,"from_cache":false,"error":"","warnings":[]},
    "registration":{"ok":true,"at":1,"error":""},"peers":[],
    "policy":{"applied":[],"warnings":[]}})").ok());
  Result<AgentStatus> r = ReadStatus(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->idle.known);
  EXPECT_TRUE(r->jobs.empty());
  EXPECT_EQ(r->pid_namespace, "");
  EXPECT_TRUE(r->ns_pids.empty());
  EXPECT_EQ(r->site_warning, "");
}

TEST(StatusFile, AMalformedIdleSectionIsCorruption) {
  testing::TempDir dir;
  AgentStatus s;
  std::string path = StatusPath(dir.path());
  ASSERT_TRUE(WriteStatus(path, s).ok());
  Result<std::string> text = ReadFileToString(path);
  ASSERT_TRUE(text.ok());
  std::string broken = *text;
  broken.replace(broken.find("\"known\": false"), 14, "\"known\": 7");
  ASSERT_TRUE(WriteFileAtomic(path, broken).ok());
  Result<AgentStatus> r = ReadStatus(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kCorruption);
}

}  // namespace
}  // namespace sparetime::config
