// Crash tests for WriteFileAtomic, which writes the repository config and
// the key files: replacing a config (and writing one where none was) with
// the power cut at every sync point, or EIO/ENOSPC at every mutation, must
// leave the old content or the new one, whole — never a mix, a truncated
// file or no file where there was one. The FaultEnv unit checks (what a
// power cut drops and keeps) are here too, since every crash test rests on
// them.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "crash_testing.h"
#include "sparetime/base/env.h"
#include "testutil/fault_env.h"
#include "testutil/testutil.h"

namespace sparetime {
namespace {

using testing::CrashPoint;
using testing::FaultEnv;
using testing::TempDir;

std::string ConfigText(int version) {
  // Long enough that a torn write would show: 3 pages of a repeated line.
  std::string line = "{\"format\": 1, \"version\": " + std::to_string(version) + "}\n";
  std::string out;
  while (out.size() < 12000) out += line;
  return out;
}

std::optional<std::string> ReadIfExists(const std::string& path) {
  Result<std::string> r = ReadFileToString(path);
  if (!r.ok()) return std::nullopt;
  return *r;
}

class CrashConfigTest : public ::testing::Test {
 protected:
  std::string path() const { return tmp_ / "repo/config"; }
  void Reset(bool with_old) {
    std::filesystem::remove_all(tmp_ / "repo");
    std::filesystem::create_directories(tmp_ / "repo");
    if (with_old) {
      ASSERT_TRUE(WriteFileAtomic(path(), ConfigText(1)).ok());
    }
  }
  // Writes versions 2 and 3; returns the last version acknowledged (or `start`).
  int Run(int start) {
    int acked = start;
    for (int v : {2, 3}) {
      status_ = WriteFileAtomic(env_, path(), ConfigText(v), 0600);
      if (!status_.ok()) return acked;
      acked = v;
    }
    return acked;
  }
  // The config holds version `acked` or `acked + 1`, whole (0: no file).
  void Check(int acked) {
    std::optional<std::string> got = ReadIfExists(path());
    if (acked == 0 && !got) return;  // never acknowledged, never there: fine
    ASSERT_TRUE(got.has_value()) << "the config vanished after version " << acked;
    const bool old_whole = acked > 0 && *got == ConfigText(acked);
    const bool new_whole = acked < 3 && *got == ConfigText(acked + 1);
    EXPECT_TRUE(old_whole || new_whole)
        << "after version " << acked << " the config is " << got->size() << " bytes: "
        << got->substr(0, 60);
  }

  TempDir tmp_;
  FaultEnv env_;
  Status status_;
  int acked_ = 0;
};

TEST_F(CrashConfigTest, ReplacingAtEverySyncPointLeavesOldOrNewWhole) {
  const uint64_t points = testing::CrashAtEverySyncPoint(
      env_, [&] { Reset(true); }, [&] { acked_ = Run(1); },
      [&](const CrashPoint& p) {
        EXPECT_EQ(status_.ok(), p.k == p.total) << status_.ToString();
        Check(acked_);
      });
  EXPECT_EQ(points, 4u);  // per version: the temp file's fsync, the directory's
}

TEST_F(CrashConfigTest, FirstWriteAtEverySyncPointLeavesNothingOrNewWhole) {
  const uint64_t points = testing::CrashAtEverySyncPoint(
      env_, [&] { Reset(false); }, [&] { acked_ = Run(0); },
      [&](const CrashPoint&) {
        // Version 1 never exists here: Run(0) writes 2 then 3.
        std::optional<std::string> got = ReadIfExists(path());
        if (acked_ == 0) {
          EXPECT_TRUE(!got || *got == ConfigText(2)) << (got ? got->substr(0, 60) : "");
        } else {
          Check(acked_);
        }
      });
  EXPECT_EQ(points, 4u);
}

TEST_F(CrashConfigTest, EioAndEnospcAtEveryMutationSurfaceAndLeaveOldOrNewWhole) {
  uint64_t surfaced = 0;
  const uint64_t mutations = testing::FailEveryMutation(
      env_, [&] { Reset(true); }, [&] { acked_ = Run(1); },
      [&](const CrashPoint& p) {
        // WriteFileAtomic has no best-effort step on its success path: every fault surfaces.
        ASSERT_FALSE(status_.ok());
        ++surfaced;
        EXPECT_EQ(status_.code(), testing::CodeFor(p.error)) << status_.ToString();
        Check(acked_);
      });
  // Per version: create temp, write, fsync, rename, fsync dir.
  EXPECT_EQ(mutations, 10u);
  EXPECT_EQ(surfaced, mutations);
}

// --- FaultEnv itself ---------------------------------------------------------------

TEST(FaultEnvTest, PowerCutDropsUnsyncedBytesOverwritesAndNames) {
  TempDir t;
  FaultEnv env;
  ASSERT_TRUE(env.CreateDir(t / "d", 0755).ok());
  ASSERT_TRUE(env.SyncDir(t.path()).ok());
  // A synced file, then an overwrite and an append that are not synced.
  {
    auto fd = env.Open(t / "d/a", O_RDWR | O_CREAT, 0644);
    ASSERT_TRUE(fd.ok());
    ASSERT_TRUE(env.WriteAt(fd->get(), AsBytes("hello world"), 0).ok());
    ASSERT_TRUE(env.Sync(fd->get(), SyncMode::kFull, "a").ok());
    ASSERT_TRUE(env.SyncDir(t / "d").ok());
    ASSERT_TRUE(env.WriteAt(fd->get(), AsBytes("HELLO"), 0).ok());
    ASSERT_TRUE(env.WriteAt(fd->get(), AsBytes("!!!"), 11).ok());
  }
  // An unsynced rename of a synced file over another, and an unsynced unlink.
  ASSERT_TRUE(WriteFileAtomic(env, t / "d/c", "old c").ok());
  ASSERT_TRUE(WriteFileAtomic(env, t / "d/e", "e").ok());
  {
    auto fd = env.Open(t / "d/c.new", O_RDWR | O_CREAT, 0644);
    ASSERT_TRUE(fd.ok());
    ASSERT_TRUE(env.WriteAt(fd->get(), AsBytes("new c"), 0).ok());
    ASSERT_TRUE(env.Sync(fd->get(), SyncMode::kFull, "c.new").ok());
  }
  ASSERT_TRUE(env.SyncDir(t / "d").ok());
  // A created file whose directory entry is not synced, though its data is.
  {
    auto fd = env.Open(t / "d/b", O_RDWR | O_CREAT, 0644);
    ASSERT_TRUE(fd.ok());
    ASSERT_TRUE(env.WriteAt(fd->get(), AsBytes("bbb"), 0).ok());
    ASSERT_TRUE(env.Sync(fd->get(), SyncMode::kFull, "b").ok());
  }
  ASSERT_TRUE(env.Rename(t / "d/c.new", t / "d/c").ok());
  ASSERT_TRUE(env.Unlink(t / "d/e").ok());
  ASSERT_TRUE(env.CreateDir(t / "d/sub", 0755).ok());

  EXPECT_EQ(*ReadFileToString(t / "d/a"), "HELLO world!!!");
  env.PowerCut();
  EXPECT_EQ(*ReadFileToString(t / "d/a"), "hello world");
  EXPECT_FALSE(std::filesystem::exists(t / "d/b"));
  EXPECT_EQ(*ReadFileToString(t / "d/c"), "old c");
  EXPECT_EQ(*ReadFileToString(t / "d/c.new"), "new c");
  EXPECT_EQ(*ReadFileToString(t / "d/e"), "e");
  EXPECT_FALSE(std::filesystem::exists(t / "d/sub"));
}

TEST(FaultEnvTest, CrashAtSyncTurnsThePowerOffUntilPowerCut) {
  TempDir t;
  FaultEnv env;
  auto fd = env.Open(t / "f", O_RDWR | O_CREAT, 0644);
  ASSERT_TRUE(fd.ok());
  ASSERT_TRUE(env.SyncDir(t.path()).ok());
  env.CrashAtSync(1);
  ASSERT_TRUE(env.WriteAt(fd->get(), AsBytes("one"), 0).ok());
  ASSERT_TRUE(env.Sync(fd->get(), SyncMode::kData, "f").ok());  // sync point 0
  ASSERT_TRUE(env.WriteAt(fd->get(), AsBytes("two"), 3).ok());
  Status st = env.Sync(fd->get(), SyncMode::kFull, "f");  // sync point 1: the power goes
  EXPECT_EQ(st.code(), ErrorCode::kIoError) << st.ToString();
  EXPECT_TRUE(env.power_off());
  EXPECT_FALSE(env.WriteAt(fd->get(), AsBytes("three"), 6).ok());
  EXPECT_FALSE(env.Unlink(t / "f").ok());
  EXPECT_TRUE(std::filesystem::exists(t / "f"));
  fd->reset();
  env.PowerCut();
  EXPECT_FALSE(env.power_off());
  EXPECT_EQ(*ReadFileToString(t / "f"), "one");
}

TEST(FaultEnvTest, FailsTheNthMatchingOperationOnceOrFromThenOn) {
  TempDir t;
  FaultEnv env;
  env.SetFault({.ops = testing::kOpWrite, .path_contains = "pack", .nth = 1, .error = ENOSPC});
  auto pack = env.Open(t / "x.pack", O_RDWR | O_CREAT, 0644);
  auto other = env.Open(t / "x.db", O_RDWR | O_CREAT, 0644);
  ASSERT_TRUE(pack.ok() && other.ok());
  EXPECT_TRUE(env.WriteAt(other->get(), AsBytes("a"), 0).ok());  // not matching
  EXPECT_TRUE(env.WriteAt(pack->get(), AsBytes("a"), 0).ok());   // match 0
  Status st = env.WriteAt(pack->get(), AsBytes("b"), 1);         // match 1: fails
  EXPECT_EQ(st.code(), ErrorCode::kNoSpace) << st.ToString();
  EXPECT_NE(st.message().find("x.pack"), std::string::npos) << st.ToString();
  EXPECT_TRUE(env.WriteAt(pack->get(), AsBytes("c"), 1).ok());  // once only
  env.SetFault({.ops = testing::kOpSync, .path_contains = "", .nth = 0, .error = EIO,
                .sticky = true});
  EXPECT_EQ(env.Sync(pack->get(), SyncMode::kFull, "p").code(), ErrorCode::kIoError);
  EXPECT_EQ(env.Sync(other->get(), SyncMode::kFull, "o").code(), ErrorCode::kIoError);
  EXPECT_EQ(env.faults_injected(), 3u);
  EXPECT_EQ(env.Count(testing::kOpWrite), 4u);
}

}  // namespace
}  // namespace sparetime
