// sparetimed's own jobs, end to end: three agents in network namespaces, a
// file directory whose host policy lists a real loop device for alpha, and
// alpha's sparetime.conf with a [backup] passphrase file. Without `init` the
// scheduled backup fails with a clear error; after it, alpha backs the
// device up to its peers by itself once the box is idle and pauses when a
// user logs in on a real pseudo-terminal and types; stopped while paused and
// restarted after the user left, it completes the backup, then prunes, repairs
// and verifies; the snapshot restores byte-identical with the CLI; a restarted
// agent does not repeat a backup that is not due. (Resuming within one run
// after the idle time is the JobController's, tested with the CLI in
// idle_backup_test; here the directory's minimum idle time is a minute.)
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <thread>
#include <nlohmann/json.hpp>

#include "scheduler/scheduler_testing.h"
#include "testutil/agent_process.h"
#include "testutil/test_network.h"
#include "testutil/testutil.h"

namespace sparetime::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using scheduler::testing::Pty;
using scheduler::testing::UtmpRecord;
using std::chrono::milliseconds;
using std::chrono::seconds;

const char* const kHosts[] = {"alpha", "beta", "gamma"};
constexpr int kAlpha = 0;
constexpr char kPassphrase[] = "scheduled backups passphrase";

// Two replicas, idle after a minute without input (the directory's minimum:
// the test's user is active only while logged in), any power, 2 MB/s.
std::string DirectoryLdif(const std::string& device) {
  std::string out = DomainLdif({std::begin(kHosts), std::end(kHosts)});
  out += "dn: cn=default,ou=policies,ou=sparetime,dc=example,dc=org\n"
         "objectClass: sparetimePolicy\ncn: default\nsparetimeDomainDefault: TRUE\n"
         "sparetimeReplicas: 2\nsparetimeIdleMinutes: 1\nsparetimeAcOnly: FALSE\n"
         "sparetimeBandwidthLimit: 2000000\n\n"
         "dn: cn=host-alpha,ou=policies,ou=sparetime,dc=example,dc=org\n"
         "objectClass: sparetimePolicy\ncn: host-alpha\nsparetimeAppliesToHost: alpha\n"
         "sparetimeDevice: " + device + "\n";
  return out;
}

class ScheduledJobsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!TestNetwork::Available()) GTEST_SKIP() << "needs root and ip netns";
    if (!pty_.ok()) GTEST_SKIP() << "no pseudo-terminals here";
    // 12 MiB of data and 4 MiB of zeros: about 6 s at the policy's 2 MB/s.
    std::string image = dir_ / "disk.img";
    WriteFileOrDie(image, RandomBytes(12 << 20, 7));
    fs::resize_file(image, 16 << 20);
    loop_ = std::make_unique<LoopDevice>(image);
    std::ofstream(ldif_, std::ios::trunc) << DirectoryLdif(loop_->path());
    std::ofstream(utmp_, std::ios::trunc);  // nobody logged in
    std::ofstream(passphrase_file_, std::ios::trunc) << kPassphrase << "\n";
    ASSERT_EQ(::chmod(passphrase_file_.c_str(), 0600), 0);

    net_ = std::make_unique<TestNetwork>(3);
    ASSERT_TRUE(net_->ok()) << net_->error();
    for (int h = 0; h < 3; ++h) {
      configs_[h] = WriteAgentConfig(dir_.path(), kHosts[h], ldif_, net_->address(h) + ":7401",
                                     "advertise_address = " + net_->address(h) +
                                         "\npeer_timeout = 2s\n");
    }
    std::ofstream(configs_[kAlpha], std::ios::app)
        << "\n[backup]\npassphrase_file = " << passphrase_file_
        << "\ninterval = 1h\nverify_interval = 1h\n\n[scheduler]\nsettle = 1s\n"
        << "resume_delay = 1s\nignore_load = yes\nutmp = " << utmp_ << "\n";
    for (int h = 0; h < 3; ++h) Start(h);
    ASSERT_TRUE(WaitUntil(
        [&] {
          json peers = Cli(kAlpha, "peers --json");
          return peers.is_object() && peers["peers"].size() == 2;
        },
        seconds(20)))
        << last_.err << Logs();
    // The peers' daemons have read alpha's key too (they refuse unknown ones).
    for (int h = 1; h < 3; ++h) {
      ASSERT_TRUE(net_->WaitForDaemonPeers(h, configs_[h], 2, seconds(20))) << Logs();
    }
  }

  void Start(int h) {
    agents_[h] = std::make_unique<AgentProcess>(
        configs_[h], dir_ / (std::string(kHosts[h]) + ".log"), net_->netns(h));
  }
  std::string Logs() const {
    std::string out;
    for (int h = 0; h < 3; ++h) {
      if (agents_[h]) out += std::string("\n--- ") + kHosts[h] + ":\n" + agents_[h]->Log();
    }
    return out;
  }
  CommandResult Run(int h, const std::string& args) {
    return last_ = net_->RunCli(h, configs_[h], kPassphrase, args);
  }
  json Cli(int h, const std::string& args) { return JsonOutput(Run(h, args + " --json")); }
  // alpha's jobs from `sparetime status` (status.json), or an empty array.
  json Jobs() {
    json status = Cli(kAlpha, "status");
    if (!status.is_object() || !status.contains("agent") || !status["agent"].is_object() ||
        !status["agent"].contains("jobs")) {
      return json::array();
    }
    return status["agent"]["jobs"];
  }
  // alpha's job named `name` from `sparetime status`, or null.
  json Job(const std::string& name) {
    json jobs = Jobs();
    json found = nullptr;
    for (const json& j : jobs) {
      if (j["name"] == name) found = j;  // the newest one
    }
    return found;
  }
  bool JobIn(const std::string& name, const std::string& state) {
    json j = Job(name);
    return j.is_object() && j["state"] == state;
  }

  TempDir dir_;
  Pty pty_;
  std::string ldif_ = dir_ / "directory.ldif";
  std::string utmp_ = dir_ / "utmp";
  std::string passphrase_file_ = dir_ / "backup.passphrase";
  std::unique_ptr<LoopDevice> loop_;
  std::unique_ptr<TestNetwork> net_;
  std::string configs_[3];
  std::unique_ptr<AgentProcess> agents_[3];
  CommandResult last_;
};

TEST_F(ScheduledJobsTest, BacksUpThePolicyDeviceWhenIdlePausesForAUserVerifiesAndRepairs) {
  const std::string backup = "backup " + loop_->path();
  // No backups on the peers yet: the job fails and says what to do.
  ASSERT_TRUE(WaitUntil([&] { return JobIn(backup, "failed"); }, seconds(30))) << Logs();
  EXPECT_NE(Job(backup)["detail"].get<std::string>().find("init"), std::string::npos)
      << Job(backup);
  EXPECT_NE(agents_[kAlpha]->Log().find(backup + " failed"), std::string::npos) << Logs();

  // After `init` (and a restart: a failed job waits before it is retried).
  ASSERT_EQ(Run(kAlpha, "init --kdf min").exit_code, 0) << last_.err;
  agents_[kAlpha]->Stop();
  Start(kAlpha);
  ASSERT_TRUE(WaitUntil(
      [&] {
        json j = Job(backup);
        return j.is_object() && j["state"] == "running" && j["bytes_done"].get<uint64_t>() > 0;
      },
      seconds(30)))
      << Job(backup) << Logs();

  // A user logs in and types: the job pauses, naming the terminal.
  std::ofstream(utmp_, std::ios::binary | std::ios::trunc)
      << UtmpRecord(USER_PROCESS, pty_.line(), "tester");
  pty_.Type("ls\n");
  ASSERT_TRUE(WaitUntil([&] { return JobIn(backup, "paused"); }, seconds(5))) << Job(backup);
  json paused = Job(backup);
  EXPECT_NE(paused["detail"].get<std::string>().find("user active on " + pty_.line()),
            std::string::npos)
      << paused;
  // Paused means paused: no progress while the user is there.
  uint64_t done_at_pause = paused["bytes_done"].get<uint64_t>();
  std::this_thread::sleep_for(seconds(2));
  EXPECT_LE(Job(backup)["bytes_done"].get<uint64_t>(), done_at_pause + (2u << 20));
  EXPECT_TRUE(JobIn(backup, "paused"));

  // The agent is stopped while the job is paused (a shutdown), the user logs
  // out; the restarted agent runs the backup again (from its journal, had
  // it reached a checkpoint) and completes it; verify and repair follow.
  EXPECT_EQ(agents_[kAlpha]->Stop(seconds(10)), 0) << Logs();
  std::ofstream(utmp_, std::ios::trunc);
  Start(kAlpha);
  ASSERT_TRUE(WaitUntil([&] { return JobIn(backup, "succeeded"); }, seconds(60)))
      << Job(backup) << Logs();
  ASSERT_TRUE(WaitUntil(
      [&] {
        return JobIn("prune", "succeeded") && JobIn("repair", "succeeded") &&
               JobIn("verify", "succeeded");
      },
      seconds(60)))
      << Jobs() << Logs();

  json snaps = Cli(kAlpha, "snapshots");
  ASSERT_TRUE(snaps.is_array()) << last_.err;
  ASSERT_EQ(snaps.size(), 1u);
  EXPECT_EQ(snaps[0]["label"], "scheduled");
  // One snapshot: the policy's keep-last 3 keeps it, nothing is released.
  EXPECT_NE(agents_[kAlpha]->Log().find("prune (last 3, daily 7, weekly 4, monthly 6): 0 "
                                        "snapshot(s) forgotten"),
            std::string::npos)
      << Logs();
  // peer-gc (docs/peers.md "Lifecycle") ran on alpha's idle time too, in
  // its first run (the restarted one finds it not due for a day): its
  // success is kept in jobs.json.
  std::ifstream jobs_file(dir_ / "state-alpha/jobs.json");
  const std::string jobs_json((std::istreambuf_iterator<char>(jobs_file)),
                              std::istreambuf_iterator<char>());
  EXPECT_NE(jobs_json.find("\"peer-gc\""), std::string::npos) << jobs_json << Logs();
  EXPECT_EQ(snaps[0]["device"], loop_->path());
  std::string restored = dir_ / "restored.img";
  ASSERT_EQ(Run(kAlpha, "restore latest --to " + restored).exit_code, 0) << last_.err;
  EXPECT_EQ(RunCommand("cmp " + ShellQuote(restored) + " " + ShellQuote(loop_->path())).exit_code,
            0);

  // Restarted: the backup is not due again for an hour, so no job is queued.
  agents_[kAlpha]->Stop();
  Start(kAlpha);
  ASSERT_TRUE(WaitUntil(
      [&] {
        json s = Cli(kAlpha, "status");
        return s.is_object() && s["running"] == true;
      },
      seconds(10)));
  std::this_thread::sleep_for(seconds(3));
  EXPECT_TRUE(Jobs().empty()) << Cli(kAlpha, "status");
  EXPECT_EQ(Cli(kAlpha, "snapshots").size(), 1u);

  // `backup --when-idle` with the agent config follows the directory's policy
  // and [scheduler]: the 1 s settle (not the built-in 60 s) and the policy's
  // 2 MB/s for the 16 MiB device (not unlimited).
  auto started = std::chrono::steady_clock::now();
  json idle = Cli(kAlpha, "backup " + loop_->path() + " --when-idle");
  auto took = std::chrono::steady_clock::now() - started;
  ASSERT_TRUE(idle.is_object()) << last_.err;
  EXPECT_EQ(idle["stats"]["new_chunks"], 0);
  EXPECT_EQ(idle["idle"]["pauses"], 0);
  EXPECT_GE(took, seconds(5));
  EXPECT_LT(took, seconds(50));
}

}  // namespace
}  // namespace sparetime::testing
