// `sparetime mount`, `umount` and `restore --file` with the real binary, a
// real GPT disk image (ext4 in partition 1, nothing recognisable in 2), real
// FUSE, loop devices and ext4; and every bad input issue 24 lists that a
// local repository can show.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "testutil/cli_runner.h"
#include "testutil/testutil.h"

namespace sparetime::testing {
namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kPart1 = 2048 * 512;  // partition 1 starts at 1 MiB, 64 MiB long
constexpr uint64_t kPart2 = kPart1 + 64 * kMiB;

void Sh(const std::string& command) {
  CommandResult r = RunCommand(command);
  ASSERT_EQ(r.exit_code, 0) << command << "\n" << r.out << r.err;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

bool IsMountPoint(const std::string& dir) {
  return ReadText("/proc/self/mountinfo").find(" " + dir + " ") != std::string::npos;
}

// The sparetime FUSE mounts restore --file made in /tmp (its temporary
// mount points), one mountinfo line each. Compared before and after, not
// required empty: other tests (and other worktrees' tests) on this machine
// may have their own sparetime mounts at the same time.
std::set<std::string> RestoreMounts() {
  std::set<std::string> out;
  std::istringstream in(ReadText("/proc/self/mountinfo"));
  for (std::string line; std::getline(in, line);) {
    if (line.find("fuse.sparetime") != std::string::npos &&
        line.find(" /tmp/sparetime-restore.") != std::string::npos) {
      out.insert(line);
    }
  }
  return out;
}

// Loop devices still attached to anything under `dir`.
int LoopsUnder(const std::string& dir) {
  CommandResult r = RunCommand("losetup -a | grep -c " + ShellQuote(dir) + " || true");
  return std::stoi(r.out.empty() ? "0" : r.out);
}

class CliMount : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(IsRoot());
    disk_ = tmp_ / "disk.img";
    Sh("truncate -s 160M " + disk_);
    Sh("sgdisk -n 1:2048:+64M -n 2:0:+64M " + disk_ + " >/dev/null");
    {
      LoopDevice part(disk_);  // whole disk; the filesystem goes in via an offset loop
      ASSERT_FALSE(part.path().empty());
    }
    CommandResult loop = RunCommand("losetup -f --show -o " + std::to_string(kPart1) +
                                    " --sizelimit " + std::to_string(64 * kMiB) + " " + disk_);
    ASSERT_EQ(loop.exit_code, 0) << loop.err;
    std::string dev = loop.out.substr(0, loop.out.find('\n'));
    std::string m = tmp_ / "src";
    Sh("mkfs.ext4 -q " + dev + " && mkdir -p " + m + " && mount " + dev + " " + m);
    Sh("mkdir -p " + m + "/data/sub && ln -s ../f " + m + "/data/sub/link");
    WriteFileOrDie(m + "/data/f", RandomBytes(3 * kMiB + 5, 9));
    WriteFileOrDie(m + "/data/sub/g", RandomBytes(1000, 10));
    Sh("ln " + m + "/data/sub/g " + m + "/data/g-link");  // one inode, two names
    ASSERT_EQ(::chmod((m + "/data/f").c_str(), 0640), 0);
    ASSERT_EQ(::setxattr((m + "/data/f").c_str(), "user.note", "kept", 4, 0), 0);
    Sh("touch -d '2020-01-02 03:04:05' " + m + "/data/f");
    Sh("cp -a " + m + "/data " + tmp_ / "expected");
    Sh("umount " + m + " && losetup -d " + dev);
    cli_.Init("--chunk-size 1048576");
    snapshot_ = cli_.Backup(disk_, "--all-blocks")["id"];  // compared byte for byte
    mnt_ = tmp_ / "mnt";
    Sh("mkdir " + mnt_);
  }

  void TearDown() override {
    if (pid_ > 0) Stop(SIGKILL);
    RunCommand(std::string(SPARETIME_CLI) + " umount " + mnt_ + " >/dev/null 2>&1");
  }

  // Starts `mount` in the background and waits for its JSON line.
  nlohmann::json StartMount(const std::string& filesystems = "true") {
    log_ = tmp_ / ("mount" + std::to_string(++mounts_) + ".log");
    pid_ = cli_.Start("--json mount latest " + mnt_ + " --filesystems " + filesystems, log_);
    for (int i = 0; i < 300; ++i) {
      std::string text = ReadText(log_);
      size_t brace = text.find('{');
      if (brace != std::string::npos && text.find('\n', brace) != std::string::npos) {
        return nlohmann::json::parse(text.substr(brace, text.find('\n', brace) - brace));
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        ADD_FAILURE() << "mount exited: " << text;
        return {};
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "mount did not come up: " << ReadText(log_);
    return {};
  }

  // Signals the mount process and returns its exit code.
  int Stop(int sig) {
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  TempDir tmp_;
  CliRunner cli_{tmp_ / "repo", "test passphrase"};
  std::string disk_, mnt_, log_, snapshot_;
  int pid_ = 0;
  int mounts_ = 0;
};

TEST_F(CliMount, ShowsTheDiskPartitionsAndTheExt4FilesystemAndUnmountsOnSigterm) {
  nlohmann::json out = StartMount();
  ASSERT_FALSE(out.is_null());
  EXPECT_EQ(out["snapshot"], snapshot_);
  EXPECT_EQ(out["partition_table"], "gpt");
  ASSERT_EQ(out["files"].size(), 3u);
  EXPECT_EQ(out["files"][1]["name"], "part1.img");
  EXPECT_EQ(out["files"][1]["offset"], kPart1);
  EXPECT_EQ(out["files"][1]["fs"], "ext4");
  EXPECT_EQ(out["files"][2]["name"], "part2.img");
  EXPECT_EQ(out["files"][2]["fs"], "");  // unknown: the image is still there
  ASSERT_EQ(out["filesystems"].size(), 1u);
  EXPECT_EQ(out["filesystems"][0]["error"], "");

  EXPECT_TRUE(SameBytes(mnt_ + "/disk.img", disk_, 160 * kMiB));
  std::vector<std::byte> disk = ReadFileOrDie(disk_);
  std::vector<std::byte> part2 = ReadFileOrDie(mnt_ + "/part2.img");
  ASSERT_EQ(part2.size(), 64 * kMiB);
  EXPECT_TRUE(std::equal(part2.begin(), part2.end(), disk.begin() + kPart2));
  EXPECT_EQ(ReadFileOrDie(mnt_ + "/part1/data/f"), ReadFileOrDie(tmp_ / "expected/f"));
  EXPECT_EQ(ReadText(mnt_ + "/part1/data/sub/g").size(), 1000u);
  EXPECT_FALSE(::access((mnt_ + "/part2").c_str(), F_OK) == 0);
  // Read only, all the way down.
  EXPECT_EQ(::open((mnt_ + "/disk.img").c_str(), O_WRONLY), -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(::open((mnt_ + "/part1/data/new").c_str(), O_WRONLY | O_CREAT, 0600), -1);
  EXPECT_EQ(errno, EROFS);

  EXPECT_EQ(Stop(SIGTERM), 0);
  EXPECT_FALSE(IsMountPoint(mnt_));
  EXPECT_FALSE(IsMountPoint(mnt_ + "/part1"));
  EXPECT_EQ(LoopsUnder(mnt_), 0);
}

TEST_F(CliMount, UmountCommandAndCtrlCBothUnmountEverything) {
  ASSERT_FALSE(StartMount().is_null());
  CommandResult r = RunCommand(std::string(SPARETIME_CLI) + " umount " + mnt_);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("unmounted " + mnt_), std::string::npos) << r.out;
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = 0;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_FALSE(IsMountPoint(mnt_));
  EXPECT_EQ(LoopsUnder(mnt_), 0);

  ASSERT_FALSE(StartMount().is_null());
  EXPECT_EQ(Stop(SIGINT), 0);
  EXPECT_FALSE(IsMountPoint(mnt_));
  EXPECT_EQ(LoopsUnder(mnt_), 0);

  r = RunCommand(std::string(SPARETIME_CLI) + " umount " + mnt_);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("is not a sparetime mount"), std::string::npos) << r.err;
}

TEST_F(CliMount, AStaleMountOfAKilledProcessIsCleanedByTheNextMountOrUmount) {
  ASSERT_FALSE(StartMount().is_null());
  Stop(SIGKILL);
  EXPECT_TRUE(IsMountPoint(mnt_));  // left behind
  nlohmann::json again = StartMount();
  ASSERT_FALSE(again.is_null());
  EXPECT_NE(ReadText(log_).find("cleaned a stale mount"), std::string::npos) << ReadText(log_);
  EXPECT_EQ(ReadFileOrDie(mnt_ + "/part1/data/f"), ReadFileOrDie(tmp_ / "expected/f"));
  Stop(SIGKILL);
  CommandResult r = RunCommand(std::string(SPARETIME_CLI) + " umount " + mnt_);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("cleaned stale mount"), std::string::npos) << r.out;
  EXPECT_FALSE(IsMountPoint(mnt_));
  EXPECT_EQ(LoopsUnder(mnt_), 0);
}

TEST_F(CliMount, BadMountPointsAreRefusedWithWhatToDo) {
  CommandResult r = cli_.Run("mount latest " + tmp_ / "missing");
  EXPECT_EQ(r.exit_code, 5) << r.err;  // like a missing restore target (docs/cli.md)
  EXPECT_NE(r.err.find("does not exist; create it"), std::string::npos) << r.err;

  Sh("mkdir " + tmp_ / "full" + " && touch " + tmp_ / "full/x");
  r = cli_.Run("mount latest " + tmp_ / "full");
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_NE(r.err.find("is not empty"), std::string::npos) << r.err;

  ASSERT_FALSE(StartMount().is_null());
  r = cli_.Run("mount latest " + mnt_);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("is already a sparetime mount (served by process " + std::to_string(pid_)),
            std::string::npos)
      << r.err;
  Stop(SIGTERM);

  Sh("mkdir " + tmp_ / "tmpfs" + " && mount -t tmpfs none " + tmp_ / "tmpfs");
  r = cli_.Run("mount latest " + tmp_ / "tmpfs");
  Sh("umount " + tmp_ / "tmpfs");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("is already a mount point (tmpfs"), std::string::npos) << r.err;
}

TEST_F(CliMount, WrongPassphraseAndMissingFuseAreClearErrors) {
  CliRunner wrong(cli_.repo(), "not it");
  CommandResult r = wrong.Run("--key-cache 0 mount latest " + mnt_);
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_FALSE(IsMountPoint(mnt_));
  // /dev/fuse hidden in a private mount namespace.
  Sh("touch " + tmp_ / "nofuse");
  r = RunCommand("unshare -m --propagation slave sh -c " +
                 ShellQuote("mount --bind " + tmp_ / "nofuse" + " /dev/fuse && SPARETIME_PASSPHRASE='test passphrase' " +
                            SPARETIME_CLI + " --repo " + cli_.repo() + " mount latest " + mnt_));
  EXPECT_EQ(r.exit_code, 10) << r.err;
  EXPECT_NE(r.err.find("FUSE is unavailable: /dev/fuse is missing or not a character device; "
                       "load the kernel module (modprobe fuse) and install the fuse3 package"),
            std::string::npos)
      << r.err;
}

TEST_F(CliMount, RestoreFileCopiesAFileAndATreeWithModesTimesAndXattrs) {
  const std::set<std::string> mounts_before = RestoreMounts();
  const std::string dest = tmp_ / "out";
  CommandResult r = cli_.Run("restore latest --file /data/f --to " + dest);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFileOrDie(dest), ReadFileOrDie(tmp_ / "expected/f"));
  struct stat a {}, b {};
  ASSERT_EQ(::stat(dest.c_str(), &a), 0);
  ASSERT_EQ(::stat((tmp_ / "expected/f").c_str(), &b), 0);
  EXPECT_EQ(a.st_mode, b.st_mode);
  EXPECT_EQ(a.st_mtim.tv_sec, b.st_mtim.tv_sec);
  char value[16] = {};
  EXPECT_EQ(::getxattr(dest.c_str(), "user.note", value, sizeof value), 4);
  EXPECT_STREQ(value, "kept");

  r = cli_.Run("--json restore latest --file part1/data --to " + tmp_ / "tree");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["files"], 2);
  EXPECT_EQ(j["dirs"], 2);
  EXPECT_EQ(j["symlinks"], 1);
  EXPECT_EQ(j["hardlinks"], 1);
  EXPECT_EQ(j["bytes"], 3 * kMiB + 5 + 1000);
  EXPECT_EQ(RunCommand("diff -r " + tmp_ / "tree" + " " + tmp_ / "expected").exit_code, 0);
  // The hard link stays one: the same inode under both names, two links.
  struct stat g {}, link {};
  ASSERT_EQ(::stat((tmp_ / "tree/sub/g").c_str(), &g), 0);
  ASSERT_EQ(::stat((tmp_ / "tree/g-link").c_str(), &link), 0);
  EXPECT_EQ(g.st_ino, link.st_ino);
  EXPECT_EQ(g.st_nlink, 2u);
  EXPECT_EQ(link.st_nlink, 2u);
  EXPECT_EQ(ReadFileOrDie(tmp_ / "tree/g-link"), ReadFileOrDie(tmp_ / "expected/sub/g"));

  r = cli_.Run("restore latest --file /data/f --to " + dest);  // exists: nothing overwritten
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("exists; name a new path"), std::string::npos) << r.err;
  r = cli_.Run("restore latest --file /data/nope --to " + tmp_ / "nope");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("/data/nope is not in snapshot " + snapshot_ + " (looked in part1/data/nope)"),
            std::string::npos)
      << r.err;
  // Nothing stays mounted after restore --file.
  for (const std::string& m : RestoreMounts()) EXPECT_EQ(mounts_before.count(m), 1u) << "left mounted: " << m;
}

TEST_F(CliMount, BackupsGoOnWhileMountedAndPruneIsRefusedUntilTheUnmount) {
  ASSERT_FALSE(StartMount().is_null());
  nlohmann::json second = cli_.Backup(disk_);  // the shared lock allows it
  EXPECT_EQ(second["stats"]["new_chunks"], 0);
  CommandResult r = cli_.Run("prune --keep-last 1");
  EXPECT_EQ(r.exit_code, 10) << r.out << r.err;
  EXPECT_NE(r.err.find("open (a backup, restore, verify or mount is running): prune later"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(ReadFileOrDie(mnt_ + "/part1/data/f"), ReadFileOrDie(tmp_ / "expected/f"));
  EXPECT_EQ(Stop(SIGTERM), 0);
  r = cli_.Run("prune --keep-last 1");
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(CliMount, ADamagedChunkFailsOnlyItsRangeWithEioAndIsLogged) {
  // Damage one byte a third into the first pack file: a data chunk.
  CommandResult pack = RunCommand("find " + cli_.repo() + "/store/packs -name '*.pack' | sort | head -1");
  std::string path = pack.out.substr(0, pack.out.find('\n'));
  ASSERT_FALSE(path.empty());
  std::vector<std::byte> bytes = ReadFileOrDie(path);
  bytes[bytes.size() / 3] ^= std::byte{0x40};
  WriteFileOrDie(path, bytes);

  ASSERT_FALSE(StartMount("false").is_null());
  const std::vector<std::byte> disk = ReadFileOrDie(disk_);
  int fd = ::open((mnt_ + "/disk.img").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  std::vector<char> buf(kMiB);
  int bad = 0, good = 0;
  uint64_t bad_offset = 0;
  for (uint64_t off = 0; off < 160 * kMiB; off += kMiB) {
    ssize_t n = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(off));
    if (n < 0) {
      EXPECT_EQ(errno, EIO);
      ++bad;
      bad_offset = off;
    } else {
      EXPECT_EQ(n, static_cast<ssize_t>(kMiB));
      EXPECT_EQ(std::memcmp(buf.data(), disk.data() + off, kMiB), 0) << off;
      ++good;
    }
    if (good > 8 && bad == 1) break;  // the rest reads; no need to compare all 160 MiB twice
  }
  ::close(fd);
  EXPECT_EQ(bad, 1);
  EXPECT_GT(good, 8);
  std::string log = ReadText(log_);
  EXPECT_NE(log.find("damaged data at image offset " + std::to_string(bad_offset)), std::string::npos)
      << log;
  EXPECT_EQ(Stop(SIGTERM), 0);
}

// A bare xfs filesystem (no partition table) in a 320 MB sparse file —
// mkfs.xfs wants at least 300 MB; the holes cost the backup nothing — with a
// few MB of files: mounted through the FUSE image, a read-only loop device
// and xfs with norecovery.
class CliMountXfs : public CliMount {
 protected:
  void SetUp() override {
    ASSERT_TRUE(IsRoot());
    disk_ = tmp_ / "xfs.img";
    Sh("truncate -s 320M " + disk_ + " && mkfs.xfs -q " + disk_);
    std::string m = tmp_ / "src";
    Sh("mkdir -p " + m + " && mount -o loop " + disk_ + " " + m);
    Sh("mkdir -p " + m + "/docs/deep");
    WriteFileOrDie(m + "/docs/big", RandomBytes(5 * kMiB + 17, 41));
    WriteFileOrDie(m + "/docs/deep/small", RandomBytes(4096, 42));
    ASSERT_EQ(::chmod((m + "/docs/big").c_str(), 0604), 0);
    Sh("cp -a " + m + "/docs " + tmp_ / "expected");
    Sh("umount " + m);
    cli_.Init("--chunk-size 1048576");
    snapshot_ = cli_.Backup(disk_)["id"];
    mnt_ = tmp_ / "mnt";
    Sh("mkdir " + mnt_);
  }
};

TEST_F(CliMountXfs, AnXfsFilesystemIsMountedReadOnlyWithItsFilesByteEqual) {
  nlohmann::json out = StartMount();
  ASSERT_FALSE(out.is_null());
  ASSERT_EQ(out["files"].size(), 1u) << out.dump();
  EXPECT_EQ(out["files"][0]["fs"], "xfs");
  ASSERT_EQ(out["filesystems"].size(), 1u) << out.dump();
  EXPECT_EQ(out["filesystems"][0]["fs"], "xfs");
  EXPECT_EQ(out["filesystems"][0]["error"], "") << out.dump();
  const std::string root = mnt_ + "/disk";
  EXPECT_EQ(ReadFileOrDie(root + "/docs/big"), ReadFileOrDie(tmp_ / "expected/big"));
  EXPECT_EQ(ReadFileOrDie(root + "/docs/deep/small"), ReadFileOrDie(tmp_ / "expected/deep/small"));
  struct stat st {};
  ASSERT_EQ(::stat((root + "/docs/big").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0604u);
  EXPECT_EQ(RunCommand("diff -r " + root + "/docs " + tmp_ / "expected").exit_code, 0);
  // Read only all the way down.
  int fd = ::open((root + "/docs/new").c_str(), O_WRONLY | O_CREAT, 0644);
  EXPECT_EQ(fd, -1);
  EXPECT_EQ(errno, EROFS);
  fd = ::open((root + "/docs/big").c_str(), O_WRONLY);
  EXPECT_EQ(fd, -1);
  EXPECT_EQ(errno, EROFS);
  fd = ::open((mnt_ + "/disk.img").c_str(), O_WRONLY);
  EXPECT_EQ(fd, -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(Stop(SIGTERM), 0);
  EXPECT_FALSE(IsMountPoint(mnt_));
  EXPECT_EQ(LoopsUnder(mnt_), 0);
}

}  // namespace
}  // namespace sparetime::testing
