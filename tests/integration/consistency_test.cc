// Consistency modes (issue 20, section 1) with the real `sparetime` binary on
// real loop devices holding mounted ext4 and xfs filesystems, while a writer
// process keeps creating, appending and fsyncing files:
//   - freeze: the restored image passes e2fsck -fn / xfs_repair -n (xfs after
//     the log replay of a first mount), and every
//     file whose fsync returned before the backup started is there,
//     byte-identical;
//   - crash: the snapshot is recorded as inconsistent, and `snapshots` (text
//     and --json) says so;
//   - auto: refuses a mounted read-write non-LVM filesystem naming the three
//     choices; reads an unmounted or read-only one directly;
//   - bad input: snapshot on a non-LVM device, a freeze whose estimate is over
//     the limit (refused before freezing), a stalled pipeline (the repository
//     on the frozen filesystem itself: its writes block until the deadline
//     thread thaws), SIGINT and kill -9 during a freeze. After each failure
//     nothing is recorded and the filesystem takes a write at once.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fcntl.h>
#include <future>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "testutil/cli_runner.h"
#include "testutil/testutil.h"

namespace sparetime::testing {
namespace {

using namespace std::chrono_literals;
constexpr uint64_t kMiB = 1 << 20;

// The bytes of writer file i (size varies; written in two appends).
std::vector<std::byte> WriterData(uint64_t i) { return RandomBytes(4096 + (i * 7919) % 61440, i + 1); }

void WriteAllOrExit(int fd, const std::byte* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) ::_exit(3);
    p += w;
    n -= static_cast<size_t>(w);
  }
}

// A filesystem of `type` on a loop device over an image file, mounted rw.
class MountedFs {
 public:
  MountedFs(const TempDir& tmp, const std::string& type, uint64_t size)
      : image_(tmp / (type + ".img")), mnt_(tmp / (type + "-mnt")) {
    {
      std::vector<std::byte> none;
      WriteFileOrDie(image_, none);
    }
    EXPECT_EQ(::truncate(image_.c_str(), static_cast<off_t>(size)), 0);
    loop_ = std::make_unique<LoopDevice>(image_);
    const std::string mkfs = type == "xfs" ? "mkfs.xfs -q -f " : "mkfs.ext4 -q -F ";
    CommandResult r = RunCommand(mkfs + loop_->path());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    ::mkdir(mnt_.c_str(), 0755);
    r = RunCommand("mount " + loop_->path() + " " + mnt_);
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
  ~MountedFs() {
    (void)RunCommand("fsfreeze -u " + mnt_ + " 2>/dev/null; umount " + mnt_ + " || { sleep 1; umount " + mnt_ + "; }");
    loop_.reset();
  }
  const std::string& device() const { return loop_->path(); }
  const std::string& mnt() const { return mnt_; }
  void Remount(const std::string& how) {
    CommandResult r = RunCommand("mount -o remount," + how + " " + mnt_);
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }

 private:
  std::string image_, mnt_;
  std::unique_ptr<LoopDevice> loop_;
};

// A new file with fsync within `limit`: the filesystem is not frozen. A
// probe still blocked (frozen) finishes on its own thread at the thaw.
bool WritableWithin(const std::string& dir, std::chrono::milliseconds limit) {
  static int n = 0;
  const std::string path = dir + "/probe-" + std::to_string(++n);
  auto done = std::make_shared<std::promise<bool>>();
  std::future<bool> result = done->get_future();
  std::thread([path, done] {
    int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
    bool ok = fd >= 0 && ::write(fd, "x", 1) == 1 && ::fsync(fd) == 0;
    if (fd >= 0) ::close(fd);
    done->set_value(ok);
  }).detach();
  return result.wait_for(limit) == std::future_status::ready && result.get();
}

// A process that keeps creating files w/N in `dir`, each written in two
// appends with an fsync after each, and logs N to `log` once both fsyncs
// returned.
class Writer {
 public:
  Writer(const std::string& dir, const std::string& log) : log_(log) {
    ::mkdir(dir.c_str(), 0755);
    WriteFileOrDie(log, {});  // Done() reads it from the start
    pid_ = ::fork();
    if (pid_ != 0) return;
    int lfd = ::open(log.c_str(), O_CREAT | O_WRONLY | O_APPEND, 0644);
    for (uint64_t i = 0;; ++i) {
      const std::vector<std::byte> data = WriterData(i);
      int fd = ::open((dir + "/" + std::to_string(i)).c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
      if (fd < 0) ::_exit(2);
      const size_t half = data.size() / 2;
      WriteAllOrExit(fd, data.data(), half);
      if (::fsync(fd) != 0) ::_exit(4);
      WriteAllOrExit(fd, data.data() + half, data.size() - half);
      if (::fsync(fd) != 0) ::_exit(4);
      ::close(fd);
      const std::string line = std::to_string(i) + "\n";
      WriteAllOrExit(lfd, reinterpret_cast<const std::byte*>(line.data()), line.size());
    }
  }
  ~Writer() { Stop(); }
  void Stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  // The files whose both fsyncs have returned by now.
  std::set<uint64_t> Done() const {
    std::set<uint64_t> done;
    std::vector<std::byte> raw = ReadFileOrDie(log_);
    std::stringstream in(std::string(reinterpret_cast<const char*>(raw.data()), raw.size()));
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty()) done.insert(std::stoull(line));  // a torn last line has no '\n'
    }
    if (!raw.empty() && static_cast<char>(raw.back()) != '\n' && !done.empty()) {
      done.erase(std::prev(done.end()));
    }
    return done;
  }

 private:
  std::string log_;
  pid_t pid_ = -1;
};

class Consistency : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!IsRoot()) GTEST_SKIP() << "needs root (loop devices, mounts, FIFREEZE)";
    cli_.Init();
  }
  size_t SnapshotCount() {
    CommandResult r = cli_.Run("--json snapshots");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(r.out).size();
  }
  // Restores the latest snapshot into an image file.
  std::string Restore(const std::string& name) {
    const std::string out = tmp_ / name;
    CommandResult r = cli_.Run("restore latest --to " + out);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return out;
  }
  void FreezeKeepsEveryFsyncedFile(const std::string& type, uint64_t size);

  TempDir tmp_;
  CliRunner cli_{tmp_ / "repo", "test passphrase"};
};

void Consistency::FreezeKeepsEveryFsyncedFile(const std::string& type, uint64_t size) {
  MountedFs fs(tmp_, type, size);
  Writer writer(fs.mnt() + "/w", tmp_ / "writer.log");
  while (writer.Done().size() < 20) std::this_thread::sleep_for(20ms);
  const std::set<uint64_t> before = writer.Done();  // fsynced before the freeze began
  nlohmann::json snap = cli_.Backup(fs.device(), "--consistency freeze --max-freeze 120");
  EXPECT_TRUE(WritableWithin(fs.mnt(), 10s)) << "thawed after the backup";
  EXPECT_GT(writer.Done().size(), before.size()) << "the writer went on after the thaw";
  writer.Stop();
  EXPECT_EQ(snap["consistency"], "freeze");
  EXPECT_EQ(snap["consistent"], true);

  const std::string image = Restore("restored.img");
  LoopDevice loop(image);
  const std::string mnt = tmp_ / "restored-mnt";
  ::mkdir(mnt.c_str(), 0755);
  CommandResult r;
  if (type == "xfs") {
    // A frozen xfs is consistent together with its log (FIFREEZE does not
    // cover the log: the free-block counters are in it), so the restored
    // image is mounted once to replay it, as its first boot would, before
    // xfs_repair -n judges it. ext4's freeze leaves nothing to replay.
    r = RunCommand("mount -o nouuid " + loop.path() + " " + mnt + " && umount " + mnt);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  const std::string check = type == "xfs" ? "xfs_repair -n -f " : "e2fsck -fn ";
  r = RunCommand(check + image);
  EXPECT_EQ(r.exit_code, 0) << check << "found damage:\n" << r.out << r.err;

  r = RunCommand("mount -o ro" + std::string(type == "xfs" ? ",nouuid" : "") + " " + loop.path() +
                 " " + mnt);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  size_t same = 0;
  for (uint64_t i : before) {
    const std::string path = mnt + "/w/" + std::to_string(i);
    if (::access(path.c_str(), F_OK) != 0) {
      ADD_FAILURE() << "file " << i << " was fsynced before the freeze and is missing";
      continue;
    }
    if (ReadFileOrDie(path) == WriterData(i)) {
      ++same;
    } else {
      ADD_FAILURE() << "file " << i << " differs";
    }
  }
  EXPECT_EQ(same, before.size());
  (void)RunCommand("umount " + mnt);
}

TEST_F(Consistency, FreezeKeepsEveryFsyncedFileOnExt4) {
  FreezeKeepsEveryFsyncedFile("ext4", 64 * kMiB);
}

TEST_F(Consistency, FreezeKeepsEveryFsyncedFileOnXfs) {
  FreezeKeepsEveryFsyncedFile("xfs", 300 * kMiB);  // mkfs.xfs's minimum
}

TEST_F(Consistency, CrashModeIsRecordedAndShownAsInconsistent) {
  MountedFs fs(tmp_, "ext4", 64 * kMiB);
  Writer writer(fs.mnt() + "/w", tmp_ / "writer.log");
  while (writer.Done().size() < 5) std::this_thread::sleep_for(20ms);
  nlohmann::json snap = cli_.Backup(fs.device(), "--consistency crash");
  writer.Stop();
  EXPECT_EQ(snap["consistency"], "crash");
  EXPECT_EQ(snap["consistent"], false);

  CommandResult r = cli_.Run("--json snapshots");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json list = nlohmann::json::parse(r.out);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["consistency"], "crash");
  EXPECT_EQ(list[0]["consistent"], false);
  r = cli_.Run("snapshots");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("CONSISTENCY"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("INCONSISTENT"), std::string::npos) << r.out;
}

TEST_F(Consistency, AutoRefusesMountedReadWriteAndReadsTheRestDirectly) {
  MountedFs fs(tmp_, "ext4", 64 * kMiB);
  CommandResult r = cli_.Run("backup " + fs.device());  // auto is the default
  EXPECT_EQ(r.exit_code, 5) << r.err;
  for (const char* choice : {"--consistency freeze", "--consistency snapshot",
                             "--consistency crash", "mounted read-write", "sparetimeConsistencyMode"}) {
    EXPECT_NE(r.err.find(choice), std::string::npos) << choice << " in: " << r.err;
  }
  EXPECT_EQ(SnapshotCount(), 0u);
  EXPECT_TRUE(WritableWithin(fs.mnt(), 5s));

  // Not LVM: snapshot mode says so and what to use instead.
  r = cli_.Run("backup --consistency snapshot " + fs.device());
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("not an LVM logical volume"), std::string::npos) << r.err;
  EXPECT_EQ(SnapshotCount(), 0u);

  // An unknown mode is a usage error.
  r = cli_.Run("backup --consistency sometimes " + fs.device());
  EXPECT_EQ(r.exit_code, 2) << r.err;

  fs.Remount("ro");
  nlohmann::json ro = cli_.Backup(fs.device());
  EXPECT_EQ(ro["consistency"], "direct");
  EXPECT_EQ(ro["consistent"], true);
  // freeze of a read-only mount has nothing to freeze: read directly.
  nlohmann::json frozen_ro = cli_.Backup(fs.device(), "--consistency freeze");
  EXPECT_EQ(frozen_ro["consistency"], "direct");
  fs.Remount("rw");
  EXPECT_TRUE(WritableWithin(fs.mnt(), 5s));
  EXPECT_EQ(SnapshotCount(), 2u);
}

TEST_F(Consistency, FreezeOverTheEstimateIsRefusedBeforeFreezing) {
  MountedFs fs(tmp_, "ext4", 64 * kMiB);
  WriteFileOrDie(fs.mnt() + "/data", RandomBytes(24 * kMiB, 7));
  ASSERT_EQ(RunCommand("sync").exit_code, 0);
  // 24 MB at 1 MB/s is about 24 s, over the 3 s maximum.
  CommandResult r =
      cli_.Run("backup --consistency freeze --max-freeze 3 --bwlimit 1M " + fs.device());
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("nothing was frozen"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("more than the maximum of 3 s"), std::string::npos) << r.err;
  EXPECT_EQ(SnapshotCount(), 0u);
  EXPECT_TRUE(WritableWithin(fs.mnt(), 5s));
}

// The repository on the filesystem being frozen: the pack writes block until
// the deadline thread thaws; the backup then fails and records nothing.
TEST_F(Consistency, StalledPipelineIsThawedByTheDeadline) {
  MountedFs fs(tmp_, "ext4", 64 * kMiB);
  CliRunner on_fs(fs.mnt() + "/repo", "test passphrase");
  on_fs.Init();
  const auto start = std::chrono::steady_clock::now();
  CommandResult r = on_fs.Run("backup --consistency freeze --max-freeze 2 " + fs.device());
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("reached its maximum of 2 s"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("no snapshot was recorded"), std::string::npos) << r.err;
  EXPECT_GE(took, 2s);
  EXPECT_TRUE(WritableWithin(fs.mnt(), 5s));
  r = on_fs.Run("--json snapshots");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out).size(), 0u);
}

// A backup frozen and slowed by --bwlimit (64 MiB at 2 MB/s: 30 s), stopped
// while frozen: SIGINT thaws through the deadline thread, kill -9 through
// the watchdog child. Either way at once, long before the 120 s maximum.
class ConsistencyStop : public Consistency, public ::testing::WithParamInterface<int> {};

TEST_P(ConsistencyStop, FreezeDoesNotOutliveTheAgent) {
  const int sig = GetParam();
  MountedFs fs(tmp_, "ext4", 64 * kMiB);
  const int pid = cli_.Start(
      "backup --consistency freeze --max-freeze 120 --bwlimit 2M " + fs.device(), tmp_ / "log");
  // Wait until the filesystem is frozen: a probe write that does not return.
  bool frozen = false;
  for (int i = 0; i < 60 && !frozen; ++i) {
    frozen = !WritableWithin(fs.mnt(), 1s);  // a blocked probe finishes at the thaw
  }
  ASSERT_TRUE(frozen) << "the backup never froze " << fs.mnt();
  const auto stop = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(pid, sig), 0);
  EXPECT_TRUE(WritableWithin(fs.mnt(), 15s)) << "still frozen after signal " << sig;
  EXPECT_LT(std::chrono::steady_clock::now() - stop, 30s);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  if (sig == SIGINT) {
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 8) << status;
  } else {
    EXPECT_TRUE(WIFSIGNALED(status)) << status;
  }
  EXPECT_EQ(SnapshotCount(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Signals, ConsistencyStop, ::testing::Values(SIGINT, SIGKILL));

}  // namespace
}  // namespace sparetime::testing
