// Healing on peers (issue 26), end to end: real sparetimed agents (alpha,
// the owner, and its peers beta, gamma, delta) each in their own network
// namespace, an LDIF directory with R=2, the `sparetime` CLI on alpha.
// A byte flipped in one peer's pack: verify reports that replica and drops
// its location record (the peer drops its copy), the next backup of the
// intact device re-sends the chunk, verify is clean with exactly R replicas
// of every chunk, and the restore is byte-equal. The same with `repair`
// (copied from the good replica). Then one chunk damaged on EVERY peer that
// holds it: verify reports the chunk, and a backup of the intact source
// stores it again.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <cctype>
#include <map>
#include <nlohmann/json.hpp>

#include "sparetime/base/sqlite_db.h"
#include "testutil/agent_process.h"
#include "testutil/test_network.h"
#include "testutil/testutil.h"

namespace sparetime::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::seconds;

const char* const kHosts[] = {"alpha", "beta", "gamma", "delta"};
constexpr int kAlpha = 0, kPeers = 4;
constexpr char kPassphrase[] = "correct horse battery staple";
constexpr int kDataChunks = 8;      // 8 MiB of random data, 1 MiB chunks
constexpr int kManifestChunks = 2;  // root + piece of each (identical) manifest

// A record a peer holds for alpha: its pack file, where, how long.
struct HeldRecord {
  std::string id_hex;
  std::string pack;
  int64_t offset = 0;
  int64_t length = 0;
};

class PeerHealNetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!TestNetwork::Available()) GTEST_SKIP() << "needs root and ip netns";
    net_ = std::make_unique<TestNetwork>(kPeers);
    ASSERT_TRUE(net_->ok()) << net_->error();
    std::string ldif = DomainLdif({std::begin(kHosts), std::end(kHosts)}, [](const std::string& h) {
      return "sparetimeSite: site-" + h + "\n";
    });
    ldif += "dn: cn=default,ou=policies,ou=sparetime,dc=example,dc=org\n"
            "objectClass: sparetimePolicy\ncn: default\nsparetimeDomainDefault: TRUE\n"
            "sparetimeReplicas: 2\n";
    std::ofstream(ldif_, std::ios::trunc) << ldif;
    for (int h = 0; h < kPeers; ++h) {
      configs_[h] = WriteAgentConfig(dir_.path(), kHosts[h], ldif_, net_->address(h) + ":7401",
                                     "advertise_address = " + net_->address(h) +
                                         "\npeer_timeout = 5s\n");
      agents_[h] = std::make_unique<AgentProcess>(
          configs_[h], dir_ / (std::string(kHosts[h]) + ".log"), net_->netns(h));
    }
    ASSERT_TRUE(WaitUntil([&] { return Held().size() == kPeers - 1; }, seconds(30)))
        << last_.err << Logs();
    for (int h = 1; h < kPeers; ++h) {
      ASSERT_TRUE(net_->WaitForDaemonPeers(h, configs_[h], kPeers - 1, seconds(20))) << Logs();
    }
    ASSERT_EQ(Run("init --kdf min").exit_code, 0) << last_.err;
    image_ = dir_ / "disk.img";
    std::vector<std::byte> data = RandomBytes(kDataChunks << 20, 2026);
    std::ofstream(image_, std::ios::binary)
        .write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
    loop_ = std::make_unique<LoopDevice>(image_);
  }

  CommandResult Run(const std::string& args) {
    return last_ = net_->RunCli(kAlpha, configs_[kAlpha], kPassphrase, args);
  }
  json Cli(const std::string& args) { return JsonOutput(Run(args + " --json")); }

  std::string Logs() const {
    std::string out;
    for (int h = 0; h < kPeers; ++h) {
      if (agents_[h]) out += std::string("\n--- ") + kHosts[h] + ":\n" + agents_[h]->Log();
    }
    return out;
  }

  // Chunks each reachable peer holds for alpha, from `peers --probe`.
  std::map<std::string, int64_t> Held() {
    std::map<std::string, int64_t> held;
    json peers = Cli("peers --probe");
    if (!peers.is_object()) return held;
    for (const json& p : peers["peers"]) {
      if (p["probe"]["reachable"] == true) held[p["name"]] = p["probe"]["held_chunks"].get<int64_t>();
    }
    return held;
  }
  int64_t TotalHeld() {
    int64_t total = 0;
    for (const auto& [peer, n] : Held()) total += n;
    return total;
  }

  // What peer `host` holds for alpha, from its own index.db.
  std::vector<HeldRecord> Records(int host) {
    std::vector<HeldRecord> out;
    fs::path store = fs::path(dir_.path()) / ("state-" + std::string(kHosts[host])) / "held" /
                     "alpha" / "chunks";
    if (!fs::exists(store / "index.db")) return out;
    auto db = SqliteDb::Open(store / "index.db", SqliteDb::Mode::kExisting);
    EXPECT_TRUE(db.ok()) << db.status().ToString();
    if (!db.ok()) return out;
    auto stmt = (*db)->Prepare(
        "SELECT hex(c.id), p.name, c.offset, c.length FROM chunks c JOIN packs p ON p.id = c.pack "
        "ORDER BY c.id");
    EXPECT_TRUE(stmt.ok());
    if (!stmt.ok()) return out;
    SqliteQuery q = stmt->Query();
    for (;;) {
      Result<bool> row = q.Step();
      if (!row.ok() || !*row) break;
      out.push_back({q.Text(0), (store / q.Text(1)).string(), q.Int(2), q.Int(3)});
    }
    return out;
  }

  // Flips one byte in the middle of the blob of chunk `id_hex` on `host`.
  void Flip(int host, const std::string& id_hex) {
    for (const HeldRecord& r : Records(host)) {
      if (r.id_hex != id_hex) continue;
      std::fstream f(r.pack, std::ios::in | std::ios::out | std::ios::binary);
      const std::streamoff at = r.offset + 40 + r.length / 2;  // 40: the record header
      char c = 0;
      f.seekg(at);
      f.read(&c, 1);
      f.seekp(at);
      f.put(static_cast<char>(c ^ 0x10));
      ASSERT_TRUE(f.good());
      return;
    }
    FAIL() << kHosts[host] << " holds no chunk " << id_hex;
  }

  // A data chunk (the largest record: random data does not compress) and
  // the peers that hold it.
  std::pair<std::string, std::vector<int>> SomeDataChunk(size_t pick) {
    std::map<std::string, std::pair<int64_t, std::vector<int>>> by_id;
    for (int h = 1; h < kPeers; ++h) {
      for (const HeldRecord& r : Records(h)) {
        by_id[r.id_hex].first = r.length;
        by_id[r.id_hex].second.push_back(h);
      }
    }
    std::vector<std::pair<std::string, std::vector<int>>> data;
    for (const auto& [id, v] : by_id) {
      if (v.first > (512 << 10)) data.push_back({id, v.second});
    }
    EXPECT_EQ(data.size(), static_cast<size_t>(kDataChunks));
    if (data.size() <= pick) return {};
    return data[pick];
  }

  bool RestoredEqual(const std::string& name) {
    std::string out = dir_ / name;
    if (Run("restore latest --to " + out).exit_code != 0) return false;
    return RunCommand("cmp " + ShellQuote(out) + " " + ShellQuote(image_)).exit_code == 0;
  }

  TempDir dir_;
  std::string ldif_ = dir_ / "directory.ldif";
  std::unique_ptr<TestNetwork> net_;
  std::string configs_[kPeers];
  std::unique_ptr<AgentProcess> agents_[kPeers];
  std::unique_ptr<LoopDevice> loop_;
  std::string image_;
  CommandResult last_;
};

TEST_F(PeerHealNetnsTest, DamagedReplicasAreDroppedAndStoredAgainByBackupAndRepair) {
  json snap = Cli("backup " + loop_->path() + " --label first");
  ASSERT_TRUE(snap.is_object()) << last_.err << Logs();
  EXPECT_EQ(snap["stats"]["new_chunks"], kDataChunks);
  const int64_t replicas = 2 * (kDataChunks + kManifestChunks);
  ASSERT_EQ(TotalHeld(), replicas) << last_.out;
  ASSERT_EQ(Run("verify").exit_code, 0) << last_.err;

  // 1. One byte flipped in one peer's copy of one data chunk.
  auto [chunk, holders] = SomeDataChunk(0);
  ASSERT_EQ(holders.size(), 2u);
  const int bad = holders[0];
  ASSERT_NO_FATAL_FAILURE(Flip(bad, chunk));
  // verify reads every replica: it reports that one (exit 6), drops its
  // record, and the peer has dropped its copy.
  EXPECT_EQ(Run("verify").exit_code, 6) << last_.err;
  std::string lower = chunk.substr(0, 8);  // short_hex(): lower case
  for (char& c : lower) c = static_cast<char>(std::tolower(c));
  EXPECT_NE(last_.err.find("damaged replica of chunk " + lower + " on " + kHosts[bad]),
            std::string::npos)
      << last_.err;
  EXPECT_NE(last_.err.find("1 damaged or missing replica(s) on peers"), std::string::npos)
      << last_.err;
  EXPECT_EQ(TotalHeld(), replicas - 1);
  // The next backup of the intact device re-sends exactly that chunk.
  json healed = Cli("backup " + loop_->path() + " --label healed");
  ASSERT_TRUE(healed.is_object()) << last_.err << Logs();
  EXPECT_EQ(healed["stats"]["new_chunks"], 1);
  EXPECT_EQ(TotalHeld(), replicas);
  EXPECT_EQ(Run("verify").exit_code, 0) << last_.err;
  EXPECT_TRUE(RestoredEqual("after-backup.img")) << last_.err;

  // 2. The same damage healed by `repair`: copied from the good replica.
  auto [chunk2, holders2] = SomeDataChunk(1);
  ASSERT_EQ(holders2.size(), 2u);
  ASSERT_NO_FATAL_FAILURE(Flip(holders2[1], chunk2));
  EXPECT_EQ(Run("verify").exit_code, 6) << last_.err;
  EXPECT_EQ(TotalHeld(), replicas - 1);
  ASSERT_EQ(Run("repair").exit_code, 0) << last_.err;
  EXPECT_NE(last_.out.find("1 new replicas made"), std::string::npos) << last_.out;
  EXPECT_EQ(TotalHeld(), replicas);
  EXPECT_EQ(Run("verify").exit_code, 0) << last_.err;
  EXPECT_TRUE(RestoredEqual("after-repair.img")) << last_.err;

  // 3. One chunk damaged on every peer that holds it: no good copy is left,
  // verify reports the chunk itself, and a backup of the intact source
  // stores it again.
  auto [chunk3, holders3] = SomeDataChunk(2);
  ASSERT_EQ(holders3.size(), 2u);
  for (int h : holders3) ASSERT_NO_FATAL_FAILURE(Flip(h, chunk3));
  EXPECT_EQ(Run("verify").exit_code, 6) << last_.err;
  EXPECT_NE(last_.err.find("damaged chunk"), std::string::npos) << last_.err;
  EXPECT_EQ(TotalHeld(), replicas - 2);
  json again = Cli("backup " + loop_->path() + " --label stored-again");
  ASSERT_TRUE(again.is_object()) << last_.err << Logs();
  EXPECT_EQ(again["stats"]["new_chunks"], 1);
  EXPECT_EQ(TotalHeld(), replicas);
  EXPECT_EQ(Run("verify").exit_code, 0) << last_.err;
  EXPECT_TRUE(RestoredEqual("after-all-damaged.img")) << last_.err;
  // Every snapshot, the oldest too, reads the chunks stored again.
  json list = Cli("snapshots");
  ASSERT_TRUE(list.is_array());
  EXPECT_EQ(list.size(), 3u);
}

}  // namespace
}  // namespace sparetime::testing
