// Caretaker and scrub on peers (issue 21 parts 2, 3, 6), end to end: real
// sparetimed agents (alpha, the owner; beta, gamma, delta, its peers; rescue,
// a fresh box) each in their own network namespace, an LDIF directory with
// R=2 and a caretaker after 5 minutes of silence.
//
// alpha backs up 8 MiB and is killed (SIGKILL); gamma's copy of everything
// alpha had there is wiped; alpha's last heartbeat is set two days back (the
// test's clock seam: an admin-visible attribute, written under the agents'
// lock). Exactly one of beta/gamma/delta becomes alpha's caretaker and brings
// every chunk back to exactly 2 holders, copying sealed blobs; the others
// refuse nothing and do nothing. The peers' idle scrub has read every blob
// (status shows the pass per owner, bytes held, damage found). Then rescue,
// named in alpha's sparetimeRestoreFor, restores alpha's disk from the
// healed peers byte for byte; and alpha, back, learns the caretaker's
// copies in its next repair without copying anything.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/file.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "sparetime/base/fd.h"
#include "sparetime/base/sqlite_db.h"
#include "sparetime/ops/caretaker.h"
#include "testutil/agent_process.h"
#include "testutil/test_network.h"
#include "testutil/testutil.h"

namespace sparetime::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::seconds;

const char* const kHosts[] = {"alpha", "beta", "gamma", "delta", "rescue"};
constexpr int kAlpha = 0, kRescue = 4, kHostsN = 5;
constexpr char kPassphrase[] = "caretaker passphrase";
constexpr int kChunks = 8 + 2;  // 8 MiB of random data at 1 MiB, manifest root + piece
constexpr char kAlphaEntry[] = "cn=alpha,ou=agents,ou=sparetime,dc=example,dc=org";

// Rewrites one attribute of one entry of the file directory under the lock
// the agents' registrations take (directory/src/ldif_directory.cc).
void SetAttribute(const std::string& path, const std::string& dn, const std::string& attr,
                  const std::string& value) {
  Fd lock(::open((path + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  ASSERT_GE(lock.get(), 0);
  ASSERT_EQ(::flock(lock.get(), LOCK_EX), 0);
  std::ifstream in(path);
  std::string text, line, current;
  bool done = false;
  while (std::getline(in, line)) {
    if (line.starts_with("dn: ")) current = line.substr(4);
    if (current == dn && line.starts_with(attr + ":")) continue;
    text += line + "\n";
    if (line == "dn: " + dn) {
      text += attr + ": " + value + "\n";
      done = true;
    }
  }
  in.close();
  ASSERT_TRUE(done) << dn;
  ASSERT_TRUE(WriteFileAtomic(path, text, 0644).ok());
}

class CaretakerNetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!TestNetwork::Available()) GTEST_SKIP() << "needs root and ip netns";
    net_ = std::make_unique<TestNetwork>(kHostsN);
    ASSERT_TRUE(net_->ok()) << net_->error();
    std::string ldif = DomainLdif({std::begin(kHosts), std::end(kHosts)}, [](const std::string& h) {
      return "sparetimeSite: site-" + h + "\n" +
             (h == "alpha" ? std::string("sparetimeRestoreFor: rescue\n") : std::string());
    });
    ldif += "dn: cn=default,ou=policies,ou=sparetime,dc=example,dc=org\n"
            "objectClass: sparetimePolicy\ncn: default\nsparetimeDomainDefault: TRUE\n"
            "sparetimeReplicas: 2\nsparetimeIdleMinutes: 1\nsparetimeAcOnly: FALSE\n"
            "sparetimeCaretakerAfterMinutes: 5\n";
    std::ofstream(ldif_, std::ios::trunc) << ldif;
    std::ofstream(utmp_, std::ios::trunc);  // nobody logged in: idle
    for (int h = 0; h < kHostsN; ++h) {
      configs_[h] = WriteAgentConfig(dir_.path(), kHosts[h], ldif_, net_->address(h) + ":7401",
                                     "advertise_address = " + net_->address(h) +
                                         "\npeer_timeout = 5s\n");
      std::ofstream(configs_[h], std::ios::app)
          << "\n[scheduler]\nsettle = 1s\nresume_delay = 1s\nignore_load = yes\nutmp = " << utmp_
          << "\n";
    }
    for (int h = 0; h < kRescue; ++h) Start(h);
    for (int h = 1; h < kRescue; ++h) {
      ASSERT_TRUE(net_->WaitForDaemonPeers(h, configs_[h], kRescue - 1, seconds(20))) << Logs();
    }
    ASSERT_TRUE(net_->WaitForDaemonPeers(kAlpha, configs_[kAlpha], kRescue - 1, seconds(20)));
    image_ = dir_ / "disk.img";
    WriteFileOrDie(image_, RandomBytes(8 << 20, 2121));
    loop_ = std::make_unique<LoopDevice>(image_);
  }

  void Start(int h) {
    agents_[h] = std::make_unique<AgentProcess>(configs_[h], dir_ / (std::string(kHosts[h]) + ".log"),
                                                net_->netns(h));
  }
  CommandResult Run(int h, const std::string& args) {
    return last_ = net_->RunCli(h, configs_[h], kPassphrase, args);
  }
  std::string Logs() const {
    std::string out;
    for (int h = 0; h < kHostsN; ++h) {
      if (agents_[h]) out += std::string("\n--- ") + kHosts[h] + ":\n" + agents_[h]->Log();
    }
    return out;
  }
  fs::path Held(int h) const {
    return fs::path(dir_.path()) / ("state-" + std::string(kHosts[h])) / "held" / "alpha";
  }
  // Chunk id (hex) -> the peers whose index.db holds it for alpha.
  std::map<std::string, std::set<int>> Holders() {
    std::map<std::string, std::set<int>> out;
    for (int h = 1; h < kRescue; ++h) {
      fs::path db_path = Held(h) / "chunks" / "index.db";
      if (!fs::exists(db_path)) continue;
      auto db = SqliteDb::Open(db_path, SqliteDb::Mode::kExisting);
      if (!db.ok()) continue;
      auto stmt = (*db)->Prepare("SELECT hex(id) FROM chunks");
      if (!stmt.ok()) continue;
      SqliteQuery q = stmt->Query();
      for (;;) {
        Result<bool> row = q.Step();
        if (!row.ok() || !*row) break;
        out[q.Text(0)].insert(h);
      }
    }
    return out;
  }
  bool EveryChunkHeldTwice() {
    std::map<std::string, std::set<int>> holders = Holders();
    if (holders.size() != kChunks) return false;
    for (const auto& [id, hosts] : holders) {
      if (hosts.size() != 2) return false;
    }
    return true;
  }

  TempDir dir_;
  std::string ldif_ = dir_ / "directory.ldif";
  std::string utmp_ = dir_ / "utmp";
  std::unique_ptr<TestNetwork> net_;
  std::string configs_[kHostsN];
  std::unique_ptr<AgentProcess> agents_[kHostsN];
  std::unique_ptr<LoopDevice> loop_;
  std::string image_;
  CommandResult last_;
};

TEST_F(CaretakerNetnsTest, ACaretakerRestoresTheReplicasOfAKilledOwnerAfterAPeerIsWiped) {
  ASSERT_EQ(Run(kAlpha, "init --kdf min").exit_code, 0) << last_.err;
  ASSERT_EQ(Run(kAlpha, "backup " + loop_->path() + " --label first").exit_code, 0) << last_.err;
  ASSERT_TRUE(EveryChunkHeldTwice());
  const std::map<std::string, std::set<int>> recorded = Holders();  // what alpha's locations.db says

  // Who will be alpha's caretaker: the rule is a pure function of the
  // names (weight 1 each), so the test asks it; another peer is wiped.
  directory::DirectoryView names;
  for (int h = 0; h < kRescue; ++h) {
    directory::AgentRecord a;
    a.name = kHosts[h];
    a.last_seen = std::chrono::system_clock::now() - (h == kAlpha ? std::chrono::hours(48) : seconds(1));
    names.agents.push_back(a);
  }
  const std::string caretaker = ops::DecideCaretaker(names, "alpha", std::chrono::system_clock::now()).caretaker;
  int wiped = 0, other = 0;
  for (int h = 1; h < kRescue; ++h) {
    if (kHosts[h] == caretaker) continue;
    (wiped == 0 ? wiped : other) = h;
  }
  ASSERT_NE(other, 0) << caretaker;

  // 1. The owner dies; a peer that is not the caretaker loses everything
  // it held for alpha and stays down while the caretaker heals (so the
  // copies go to peers alpha never recorded for those chunks).
  ASSERT_EQ(::kill(agents_[kAlpha]->pid(), SIGKILL), 0);
  agents_[kAlpha]->WaitExit(seconds(5));
  agents_[kAlpha].reset();
  agents_[wiped]->Stop();
  fs::remove_all(Held(wiped));
  std::map<std::string, std::set<int>> before = Holders();
  size_t short_chunks = 0;
  for (const auto& [id, hosts] : before) short_chunks += hosts.size() < 2 ? 1 : 0;
  ASSERT_GT(short_chunks, 0u) << "gamma held none of alpha's chunks";

  // 2. Two days of silence: exactly one peer takes care of alpha.
  ASSERT_NO_FATAL_FAILURE(SetAttribute(ldif_, kAlphaEntry, "sparetimeLastSeen", "20000101000000Z"));
  ASSERT_TRUE(WaitUntil([&] { return EveryChunkHeldTwice(); }, seconds(40))) << Logs();
  int caretakers = 0;
  for (int h = 1; h < kRescue; ++h) {
    std::string log = agents_[h]->Log();
    if (log.find("caretaker alpha started") != std::string::npos) {
      EXPECT_EQ(kHosts[h], caretaker);
      ++caretakers;
      // The copies land before the caretaker logs its summary line.
      const std::string summary =
          std::to_string(short_chunks) + " below R, " + std::to_string(short_chunks) + " copy(ies) made";
      WaitUntil([&] { return agents_[h]->Log().find(summary) != std::string::npos; }, seconds(10));
      log = agents_[h]->Log();
      EXPECT_NE(log.find(summary), std::string::npos) << log;
    }
  }
  EXPECT_EQ(caretakers, 1) << Logs();

  // 3. The peers' idle scrub read what they hold; status shows it per owner.
  Start(wiped);  // back, empty
  for (int h = 1; h < kRescue; ++h) {
    if (h == wiped) continue;
    ASSERT_TRUE(WaitUntil(
        [&] {
          CommandResult st = net_->RunCli(h, configs_[h], "", "status --json");
          json j = JsonOutput(st);
          if (!j.is_object() || !j.contains("agent") || !j["agent"].contains("held")) return false;
          for (const json& o : j["agent"]["held"]) {
            if (o["owner"] == "alpha" && o["scrub_passes"].get<int>() >= 1 && o["damaged"] == 0 &&
                o["chunks"].get<int>() > 0 && o["live_bytes"].get<int64_t>() > 0) {
              return true;
            }
          }
          return false;
        },
        seconds(20)))
        << kHosts[h] << Logs();
  }
  CommandResult text = net_->RunCli(other, configs_[other], "", "status");
  EXPECT_NE(text.out.find("holds:      alpha: "), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("damage found: 0"), std::string::npos) << text.out;

  // 4. A fresh box restores alpha bare metal from the healed peers.
  Start(kRescue);
  for (int h = 1; h < kRescue; ++h) {
    ASSERT_TRUE(net_->WaitForDaemonPeers(h, configs_[h], kRescue - 1, seconds(20))) << Logs();
  }
  const std::string restored = dir_ / "restored.img";
  ASSERT_EQ(Run(kRescue, "restore --host alpha latest --to " + restored).exit_code, 0)
      << last_.err << Logs();
  EXPECT_EQ(RunCommand("cmp " + ShellQuote(restored) + " " + ShellQuote(image_)).exit_code, 0);

  // 5. alpha, back, takes over: its repair learns the caretaker's copies
  // on peers it had not recorded (a copy put back on gamma matches its old
  // record) and copies nothing.
  size_t new_holders = 0;
  for (const auto& [id, hosts] : Holders()) {
    for (int h : hosts) new_holders += recorded.at(id).contains(h) ? 0 : 1;
  }
  Start(kAlpha);
  ASSERT_TRUE(net_->WaitForDaemonPeers(kAlpha, configs_[kAlpha], kRescue, seconds(20))) << Logs();
  json repair = JsonOutput(Run(kAlpha, "repair --json"));
  ASSERT_TRUE(repair.is_object()) << last_.err;
  EXPECT_EQ(repair["learned"], static_cast<int>(new_holders)) << repair.dump();
  std::printf("caretaker: %zu of %d chunks healed after the wipe; alpha's repair learned %zu holders\n",
              short_chunks, kChunks, new_holders);
  EXPECT_EQ(repair["copied"], 0) << repair.dump();
  EXPECT_EQ(repair["lost"], 0);
  EXPECT_TRUE(EveryChunkHeldTwice());
}

}  // namespace
}  // namespace sparetime::testing
