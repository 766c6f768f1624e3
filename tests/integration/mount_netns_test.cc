// `sparetime mount` of backups on peers: sparetimed agents in their own
// network namespaces (TestNetwork), one LDIF directory, R=2. alpha backs up
// a loop device to its peers and mounts the snapshot from them; a peer is
// killed in the middle of the reads (the rest comes from the other
// replicas); prune is refused while the mount is open; then a new box
// (epsilon) mounts alpha's snapshot with --host. ReadHoldsDeferAlphasPrune:
// epsilon's --host mount holds the snapshot on the peers, so alpha's own
// prune releases nothing until the unmount, or until the hold lapses after
// the mounter was killed (docs/peers.md "Read holds").
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "sparetime/base/fd.h"
#include "testutil/agent_process.h"
#include "testutil/test_network.h"
#include "testutil/testutil.h"

namespace sparetime::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::seconds;

const char* const kHosts[] = {"alpha", "beta", "gamma", "delta", "epsilon"};
constexpr int kAlpha = 0, kBeta = 1, kEpsilon = 4;
constexpr char kPassphrase[] = "mount over the peers";
constexpr uint64_t kMiB = 1 << 20;

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class MountNetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!TestNetwork::Available()) GTEST_SKIP() << "needs root and ip netns";
    net_ = std::make_unique<TestNetwork>(5);
    ASSERT_TRUE(net_->ok()) << net_->error();
    std::string ldif = DomainLdif({std::begin(kHosts), std::end(kHosts)}, [](const std::string& h) {
      // epsilon mounts alpha's backups as a new box would (bare metal): the
      // peers serve another owner's data only to agents named here.
      return "sparetimeSite: site-" + h + "\n" +
             std::string(h == "alpha" ? "sparetimeRestoreFor: epsilon\n" : "");
    });
    ldif += "dn: cn=default,ou=policies,ou=sparetime,dc=example,dc=org\n"
            "objectClass: sparetimePolicy\ncn: default\nsparetimeDomainDefault: TRUE\n"
            "sparetimeReplicas: 2\n";
    std::ofstream(ldif_, std::ios::trunc) << ldif;
    for (int h = 0; h < 5; ++h) {
      configs_[h] = WriteAgentConfig(dir_.path(), kHosts[h], ldif_, net_->address(h) + ":7401",
                                     "advertise_address = " + net_->address(h) + "\npeer_timeout = 2s\n");
      agents_[h] = std::make_unique<AgentProcess>(configs_[h], dir_ / (std::string(kHosts[h]) + ".log"),
                                                  net_->netns(h));
    }
    for (int h = 1; h < 5; ++h) {
      ASSERT_TRUE(net_->WaitForDaemonPeers(h, configs_[h], 4, seconds(20)));
    }
    ASSERT_TRUE(net_->WaitForDaemonPeers(kAlpha, configs_[kAlpha], 4, seconds(20)));
    mnt_ = dir_ / "mnt";
    fs::create_directory(mnt_);
  }

  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    RunCommand(std::string(SPARETIME_CLI) + " umount " + mnt_ + " >/dev/null 2>&1");
  }

  CommandResult Run(int h, const std::string& args) {
    return last_ = net_->RunCli(h, configs_[h], kPassphrase, args);
  }

  // `sparetime mount` on host h in the background; waits for its JSON line.
  json StartMount(int h, const std::string& args) {
    // A new log for each mount: the last one's JSON line must not pass for this one's.
    log_ = dir_ / ("mount-" + std::string(kHosts[h]) + "-" + std::to_string(++mounts_) + ".log");
    pid_ = ::fork();
    if (pid_ == 0) {
      // nsenter --net, not `ip netns exec`: that one unshares the mount
      // namespace too, and the FUSE mount would be invisible here.
      std::string cmd = "exec nsenter --net=/run/netns/" + net_->netns(h) + " env SPARETIME_PASSPHRASE=" +
                        ShellQuote(kPassphrase) + " " + SPARETIME_CLI + " --config " +
                        configs_[h] + " --json mount " + args + " " + mnt_ +
                        " --filesystems false >" + log_ + " 2>&1";
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    for (int i = 0; i < 600; ++i) {
      std::string text = ReadText(log_);
      size_t brace = text.find('{');
      if (brace != std::string::npos && text.find('\n', brace) != std::string::npos) {
        return json::parse(text.substr(brace, text.find('\n', brace) - brace));
      }
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = 0;
        ADD_FAILURE() << "mount exited: " << text;
        return {};
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "mount did not come up: " << ReadText(log_);
    return {};
  }

  int StopMount() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  // Reads [from, to) MiB of DIR/disk.img and compares it with the device image.
  void ExpectRange(uint64_t from, uint64_t to) {
    std::ifstream in(mnt_ + "/disk.img", std::ios::binary);
    std::vector<char> buf((to - from) * kMiB);
    in.seekg(static_cast<std::streamoff>(from * kMiB));
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    ASSERT_EQ(in.gcount(), static_cast<std::streamsize>(buf.size())) << ReadText(log_);
    EXPECT_EQ(std::memcmp(buf.data(), image_.data() + from * kMiB, buf.size()), 0)
        << "MiB " << from << ".." << to;
  }

  TempDir dir_;
  std::string ldif_ = dir_ / "directory.ldif";
  std::unique_ptr<TestNetwork> net_;
  std::string configs_[5];
  std::unique_ptr<AgentProcess> agents_[5];
  std::string mnt_, log_;
  std::vector<std::byte> image_;
  pid_t pid_ = 0;
  int mounts_ = 0;
  CommandResult last_;
};

TEST_F(MountNetnsTest, MountFromPeersSurvivesALostPeerBlocksPruneAndWorksForAnotherHost) {
  // 24 MiB: 16 MiB random, 4 MiB of 0xFF (one chunk four times), 4 MiB of zeros (holes).
  image_ = RandomBytes(16 * kMiB, 24);
  image_.resize(20 * kMiB, std::byte{0xFF});
  image_.resize(24 * kMiB, std::byte{0});
  WriteFileOrDie(dir_ / "disk.img", image_);
  LoopDevice loop(dir_ / "disk.img");
  ASSERT_EQ(Run(kAlpha, "init --kdf min").exit_code, 0) << last_.err;
  ASSERT_EQ(Run(kAlpha, "backup " + loop.path()).exit_code, 0) << last_.err;

  json out = StartMount(kAlpha, "latest");
  ASSERT_FALSE(out.is_null());
  EXPECT_EQ(out["files"].size(), 1u);
  ExpectRange(0, 6);
  // A peer dies in the middle: the rest is read from the other replicas.
  agents_[kBeta].reset();
  ExpectRange(6, 24);
  // The mount holds alpha's repository lock: prune waits, then gives up.
  EXPECT_EQ(Run(kAlpha, "prune --keep-last 1").exit_code, 10) << last_.err;
  EXPECT_NE(last_.err.find("mount is running"), std::string::npos) << last_.err;
  EXPECT_EQ(StopMount(), 0);

  // Bare metal: a box that knows only the directory and the passphrase.
  out = StartMount(kEpsilon, "--host alpha latest");
  ASSERT_FALSE(out.is_null());
  ExpectRange(0, 24);
  EXPECT_EQ(StopMount(), 0);
}

// The snapshot id of alpha's newest backup.
std::string BackupId(const CommandResult& r) {
  json j = json::parse(r.out, nullptr, false);
  return j.is_object() && j.contains("id") ? j["id"].get<std::string>() : "";
}

TEST_F(MountNetnsTest, ReadHoldsDeferAlphasPruneUntilUnmountOrExpiry) {
  // S1: 16 MiB random. S2: its first 8 MiB replaced — 8 chunks (and S1's
  // manifest) are S1's alone.
  std::vector<std::byte> s1 = RandomBytes(16 * kMiB, 31);
  WriteFileOrDie(dir_ / "disk.img", s1);
  LoopDevice loop(dir_ / "disk.img");
  ASSERT_EQ(Run(kAlpha, "init --kdf min").exit_code, 0) << last_.err;
  ASSERT_EQ(Run(kAlpha, "--json backup " + loop.path()).exit_code, 0) << last_.err;
  const std::string id1 = BackupId(last_);
  ASSERT_FALSE(id1.empty()) << last_.out;
  std::vector<std::byte> s2 = s1;
  std::vector<std::byte> fresh = RandomBytes(8 * kMiB, 32);
  std::copy(fresh.begin(), fresh.end(), s2.begin());
  {
    Result<Fd> dev = OpenFile(loop.path(), O_WRONLY);
    ASSERT_TRUE(dev.ok()) << dev.status().message();
    ASSERT_TRUE(WriteFullAt(dev->get(), s2, 0).ok());
    ASSERT_EQ(::fsync(dev->get()), 0);
  }
  ASSERT_EQ(Run(kAlpha, "--json backup " + loop.path()).exit_code, 0) << last_.err;
  const std::string id2 = BackupId(last_);

  // epsilon mounts S1 with a small cache, so reads after the prune go to the peers.
  image_ = s1;
  json out = StartMount(kEpsilon, "--host alpha " + id1 + " --cache-mib 8 --hold 600");
  ASSERT_FALSE(out.is_null());
  ExpectRange(0, 16);
  ASSERT_EQ(Run(kAlpha, "--json prune --keep-last 1").exit_code, 0) << last_.err;
  json first = json::parse(last_.out);
  EXPECT_EQ(first["snapshots_forgotten"], 1);
  const uint64_t garbage = first["chunks_removed"];
  EXPECT_GE(garbage, 9u) << last_.out;  // 8 data chunks + S1's manifest
  EXPECT_NE(last_.err.find("deferred: snapshot " + id1 + " of alpha is mounted by epsilon until"),
            std::string::npos) << last_.err;
  ExpectRange(0, 16);  // every chunk still there, read again from the peers
  EXPECT_EQ(StopMount(), 0);  // the unmount drops the holds

  ASSERT_EQ(Run(kAlpha, "--json prune --keep-last 1").exit_code, 0) << last_.err;
  json second = json::parse(last_.out);
  EXPECT_EQ(second["snapshots_forgotten"], 0);
  EXPECT_EQ(second["chunks_removed"], garbage) << last_.out;
  EXPECT_EQ(last_.err.find("deferred"), std::string::npos) << last_.err;
  EXPECT_EQ(second["notes"].size(), 0u) << last_.out;
  ASSERT_EQ(Run(kAlpha, "--json prune --keep-last 1").exit_code, 0) << last_.err;
  EXPECT_EQ(json::parse(last_.out)["chunks_removed"], 0);

  // A mounter killed without unmounting: its holds lapse after --hold.
  std::vector<std::byte> s3 = s2;
  fresh = RandomBytes(4 * kMiB, 33);
  std::copy(fresh.begin(), fresh.end(), s3.begin());
  {
    Result<Fd> dev = OpenFile(loop.path(), O_WRONLY);
    ASSERT_TRUE(dev.ok()) << dev.status().message();
    ASSERT_TRUE(WriteFullAt(dev->get(), s3, 0).ok());
    ASSERT_EQ(::fsync(dev->get()), 0);
  }
  ASSERT_EQ(Run(kAlpha, "backup " + loop.path()).exit_code, 0) << last_.err;
  image_ = s2;
  out = StartMount(kEpsilon, "--host alpha " + id2 + " --hold 5");
  ASSERT_FALSE(out.is_null());
  ExpectRange(0, 16);
  ASSERT_EQ(Run(kAlpha, "--json prune --keep-last 1").exit_code, 0) << last_.err;
  const uint64_t garbage2 = json::parse(last_.out)["chunks_removed"];
  EXPECT_GE(garbage2, 5u) << last_.out;  // 4 data chunks + S2's manifest
  EXPECT_NE(last_.err.find("deferred: snapshot " + id2 + " of alpha is mounted by epsilon"),
            std::string::npos) << last_.err;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = 0;
  // No renewal any more: within the hold time (5 s) the peers let go.
  bool released = false;
  for (int attempt = 0; attempt < 30 && !released; ++attempt) {
    std::this_thread::sleep_for(seconds(1));
    ASSERT_EQ(Run(kAlpha, "--json prune --keep-last 1").exit_code, 0) << last_.err;
    json j = json::parse(last_.out);
    released = last_.err.find("deferred") == std::string::npos;
    if (released) {
      EXPECT_EQ(j["chunks_removed"], garbage2) << last_.out;
      EXPECT_EQ(j["notes"].size(), 0u) << last_.out;
    }
  }
  EXPECT_TRUE(released) << "the holds of the killed mount never lapsed: " << last_.err;
}

}  // namespace
}  // namespace sparetime::testing
