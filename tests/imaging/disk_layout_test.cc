// disk_layout (GPT move, window manifest) and fs_allocation's range logic,
// on image files made by sgdisk; no loop device or mount needed.
#include "sparetime/imaging/disk_layout.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sparetime/imaging/fs_allocation.h"
#include "testutil/testutil.h"

namespace sparetime {
namespace {

using testing::RunCommand;
using testing::TempDir;

constexpr uint64_t kMiB = 1 << 20;

void Sh(const std::string& cmd) {
  testing::CommandResult r = RunCommand(cmd);
  ASSERT_EQ(r.exit_code, 0) << cmd << "\n" << r.out << r.err;
}

TEST(AnyAllocated, ExactEdges) {
  const std::vector<ByteRange> r = {{4096, 4096}, {65536, 1}};
  EXPECT_FALSE(AnyAllocated(r, 0, 4096));
  EXPECT_TRUE(AnyAllocated(r, 0, 4097));
  EXPECT_TRUE(AnyAllocated(r, 8191, 1));
  EXPECT_FALSE(AnyAllocated(r, 8192, 65536 - 8192));
  EXPECT_TRUE(AnyAllocated(r, 8192, 65536 - 8192 + 1));
  EXPECT_FALSE(AnyAllocated(r, 65537, 1 << 20));
  EXPECT_FALSE(AnyAllocated({}, 0, 1 << 20));
}

TEST(ZeroUnallocated, OnlyTheFreeBytes) {
  const std::vector<ByteRange> r = {{100, 10}, {120, 5}, {200, 100}};
  std::vector<std::byte> data(150, std::byte{0xAA});  // device bytes 90..239
  ZeroUnallocated(r, 90, data);
  for (uint64_t i = 0; i < data.size(); ++i) {
    const uint64_t at = 90 + i;
    const bool used = (at >= 100 && at < 110) || (at >= 120 && at < 125) || at >= 200;
    EXPECT_EQ(data[i], used ? std::byte{0xAA} : std::byte{0}) << at;
  }
  std::vector<std::byte> inside(50, std::byte{1});
  ZeroUnallocated(r, 210, inside);
  EXPECT_EQ(inside, std::vector<std::byte>(50, std::byte{1}));
  ZeroUnallocated({}, 0, inside);
  EXPECT_EQ(inside, std::vector<std::byte>(50, std::byte{0}));
}

TEST(WindowManifest, ChunksOutsideBecomeHoles) {
  Manifest m;
  m.size = 10 * 65536 + 100;
  m.chunk_size = 65536;
  for (uint64_t i = 0; i < 11; ++i) m.chunks.push_back(testing::TestChunkId(i + 1));
  Manifest w = WindowManifest(m, 2 * 65536 + 10, 3 * 65536);  // chunks 2..5 touched
  for (uint64_t i = 0; i < 11; ++i) {
    EXPECT_EQ(w.chunks[i].is_hole(), i < 2 || i > 5) << i;
    if (!w.chunks[i].is_hole()) {
      EXPECT_EQ(w.chunks[i], m.chunks[i]);
    }
  }
}

TEST(RelocateGpt, BackupMovesToTheNewEndAndSgdiskIsClean) {
  TempDir tmp;
  const std::string disk = tmp / "disk.img";
  Sh("truncate -s 64M " + disk + " && sgdisk -n 1:2048:+20M -c 1:one -n 2:0:+10M " + disk +
     " >/dev/null");
  const std::string before = RunCommand("sgdisk -p " + disk).out;
  Sh("truncate -s 100M " + disk);
  testing::CommandResult v = RunCommand("sgdisk -v " + disk);
  EXPECT_EQ(v.out.find("No problems found"), std::string::npos) << "a stale GPT must be seen";

  Result<bool> moved = RelocateGpt(disk, 64 * kMiB);
  ASSERT_TRUE(moved.ok()) << moved.status().message();
  EXPECT_TRUE(*moved);
  v = RunCommand("sgdisk -v " + disk);
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  EXPECT_NE(v.out.find("No problems found"), std::string::npos) << v.out;
  const std::string after = RunCommand("sgdisk -p " + disk).out;
  EXPECT_NE(after.find("Disk " + disk + ": 204800 sectors"), std::string::npos) << after;
  EXPECT_NE(after.find("   1            2048           43007   20.0 MiB    8300  one"),
            std::string::npos)
      << after;
  EXPECT_NE(after.find("   2           43008           63487   10.0 MiB    8300"),
            std::string::npos)
      << after;
  // Our own parser agrees: the backup header at the new end checks.
  Sh("dd if=/dev/zero of=" + disk + " bs=512 count=1 seek=1 conv=notrunc status=none");
  std::vector<std::byte> bytes = testing::ReadFileOrDie(disk);
  Result<PartitionTable> t = ParsePartitionTable(bytes);
  ASSERT_TRUE(t.ok()) << t.status().message();
  ASSERT_EQ(t->partitions.size(), 2u);
  EXPECT_EQ(t->partitions[0].offset, 1 * kMiB);
  EXPECT_EQ(t->partitions[1].size, 10 * kMiB);
  (void)before;
}

TEST(RelocateGpt, NothingToDo) {
  TempDir tmp;
  const std::string disk = tmp / "disk.img";
  Sh("truncate -s 8M " + disk + " && sgdisk -n 1:2048:0 " + disk + " >/dev/null");
  const std::vector<std::byte> same = testing::ReadFileOrDie(disk);
  Result<bool> moved = RelocateGpt(disk, 8 * kMiB);  // not larger
  ASSERT_TRUE(moved.ok());
  EXPECT_FALSE(*moved);
  const std::string raw = tmp / "raw.img";
  testing::WriteFileOrDie(raw, testing::RandomBytes(4 * kMiB, 1));
  moved = RelocateGpt(raw, 2 * kMiB);  // no GPT
  ASSERT_TRUE(moved.ok());
  EXPECT_FALSE(*moved);
  EXPECT_EQ(testing::ReadFileOrDie(raw), testing::RandomBytes(4 * kMiB, 1));
  EXPECT_EQ(testing::ReadFileOrDie(disk), same);
}

TEST(RelocateGpt, DamagedEntriesAreRefused) {
  TempDir tmp;
  const std::string disk = tmp / "disk.img";
  Sh("truncate -s 8M " + disk + " && sgdisk -n 1:2048:0 " + disk + " >/dev/null");
  Sh("printf 'X' | dd of=" + disk + " bs=1 seek=1030 conv=notrunc status=none");  // entry 1
  Sh("truncate -s 16M " + disk);
  Result<bool> moved = RelocateGpt(disk, 8 * kMiB);
  ASSERT_FALSE(moved.ok());
  EXPECT_EQ(moved.status().code(), ErrorCode::kCorruption);
  EXPECT_NE(moved.status().message().find("the GPT entries fail their CRC32"), std::string::npos)
      << moved.status().message();
}

}  // namespace
}  // namespace sparetime
