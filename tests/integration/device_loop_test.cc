// Device reader and restore target on real loop devices (root only):
// identity from sysfs (backing file, offset loops, MBR partitions of a loop)
// and the ext4 superblock, O_DIRECT reads, size and
// read-only checks, busy devices, BLKZEROOUT, and a full filesystem.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "sparetime/base/fd.h"
#include "sparetime/imaging/device.h"
#include "testutil/testutil.h"

namespace sparetime {
namespace {

using testing::LoopDevice;
using testing::RandomBytes;
using testing::ReadFileOrDie;
using testing::RunCommand;
using testing::TempDir;
using testing::WriteFileOrDie;

constexpr size_t kMiB = 1 << 20;

class DeviceLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::IsRoot()) GTEST_SKIP() << "loop devices need root";
  }
  // A loop device over a fresh backing file of `data`.
  std::unique_ptr<LoopDevice> Loop(const std::string& name, const std::vector<std::byte>& data) {
    WriteFileOrDie(tmp_ / name, data);
    auto loop = std::make_unique<LoopDevice>(tmp_ / name);
    if (loop->path().empty()) ADD_FAILURE() << "no loop device";
    return loop;
  }
  static void Run(const std::string& cmd) {
    testing::CommandResult r = RunCommand(cmd);
    ASSERT_EQ(r.exit_code, 0) << cmd << ": " << r.err;
  }
  // Reads the whole device through OpenBlockDevice (O_DIRECT, no stale cache).
  static std::vector<std::byte> ReadAll(const std::string& path) {
    Result<std::unique_ptr<BlockDevice>> dev = OpenBlockDevice(path, {.direct_io = true});
    if (!dev.ok()) {
      ADD_FAILURE() << dev.status().ToString();
      return {};
    }
    std::vector<std::byte> out((*dev)->size());
    AlignedBuffer buf(kMiB);
    for (uint64_t off = 0; off < out.size(); off += kMiB) {
      Result<size_t> got = (*dev)->ReadAt(off, buf.span());
      if (!got.ok()) {
        ADD_FAILURE() << got.status().ToString();
        return {};
      }
      std::copy(buf.data(), buf.data() + *got, out.begin() + static_cast<ptrdiff_t>(off));
    }
    return out;
  }
  TempDir tmp_;
};

TEST_F(DeviceLoopTest, IdentityFromSysfsAndExt4Superblock) {
  auto loop = Loop("disk.img", RandomBytes(16 * kMiB, 1));
  Result<std::unique_ptr<BlockDevice>> dev = OpenBlockDevice(loop->path());
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  const DeviceIdentity& id = (*dev)->identity();
  EXPECT_EQ(id.kind, "block");
  EXPECT_EQ(id.path, loop->path());
  EXPECT_EQ(id.size, 16 * kMiB);
  EXPECT_EQ(id.logical_block_size, 512u);
  std::string backing = std::filesystem::canonical(tmp_ / "disk.img").string();
  EXPECT_EQ(id.backing_file, backing);
  EXPECT_EQ(id.fs_uuid, "");
  EXPECT_EQ(id.Key(), "loopfile:" + backing + ":size=" + std::to_string(16 * kMiB));
  EXPECT_EQ((*dev)->NextDataOffset(4096), 4096u) << "a block device has no hole map";

  const std::string uuid = "3f1c9a52-7b1e-4d2a-9c11-0123456789ab";
  Run("mkfs.ext4 -q -F -U " + uuid + " " + loop->path());
  dev = OpenBlockDevice(loop->path());
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  EXPECT_EQ((*dev)->identity().fs_uuid, uuid);
  // The fs UUID is a hint: a clone of the image would carry it too.
  EXPECT_EQ((*dev)->identity().Key(), "loopfile:" + backing + ":size=" + std::to_string(16 * kMiB));
}

TEST_F(DeviceLoopTest, MbrPartitionsOfALoopFromTheKernel) {
  // An MBR with two equal 2 MiB partitions at sectors 2048 and 6144, disk
  // signature 0x1234abcd.
  std::vector<std::byte> disk = RandomBytes(8 * kMiB, 11);
  std::fill(disk.begin(), disk.begin() + 512, std::byte{0});
  auto le32 = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) disk[at + i] = std::byte(static_cast<uint8_t>(v >> (8 * i)));
  };
  le32(440, 0x1234abcd);
  for (uint32_t n = 0; n < 2; ++n) {
    const size_t e = 446 + 16 * n;
    disk[e + 4] = std::byte{0x83};
    le32(e + 8, 2048 + n * 4096);
    le32(e + 12, 4096);
  }
  disk[510] = std::byte{0x55};
  disk[511] = std::byte{0xAA};
  WriteFileOrDie(tmp_ / "mbr.img", disk);
  testing::CommandResult attach =
      RunCommand("losetup --find --show -P " + (tmp_ / "mbr.img"));
  ASSERT_EQ(attach.exit_code, 0) << attach.err;
  struct Detach {
    std::string path;
    ~Detach() { (void)RunCommand("losetup -d " + path); }
  } loop{attach.out.substr(0, attach.out.find('\n'))};
  const std::string backing = std::filesystem::canonical(tmp_ / "mbr.img");
  std::string keys[2];
  for (int n = 1; n <= 2; ++n) {
    const std::string part = loop.path + "p" + std::to_string(n);
    for (int i = 0; i < 50 && ::access(part.c_str(), F_OK) != 0; ++i) ::usleep(20'000);
    if (::access(part.c_str(), F_OK) != 0)
      GTEST_SKIP() << "no " << part << ": this kernel parses no MBR (CONFIG_MSDOS_PARTITION)";
    Result<std::unique_ptr<BlockDevice>> dev = OpenBlockDevice(part);
    ASSERT_TRUE(dev.ok()) << part << ": " << dev.status().ToString();
    const DeviceIdentity& id = (*dev)->identity();
    EXPECT_EQ(id.size, 2 * kMiB);
    EXPECT_EQ(id.partition, static_cast<uint32_t>(n));
    EXPECT_EQ(id.start, (2048u + (n - 1) * 4096u) * 512);
    EXPECT_EQ(id.backing_file, backing);  // the whole loop device's
    if (!id.part_uuid.empty()) {
      EXPECT_EQ(id.part_uuid, "1234abcd-0" + std::to_string(n));
    }
    keys[n - 1] = id.Key();
  }
  EXPECT_EQ(keys[0], "loopfile:" + backing + ":part=1:start=1048576:size=2097152");
  EXPECT_EQ(keys[1], "loopfile:" + backing + ":part=2:start=3145728:size=2097152");
}

TEST_F(DeviceLoopTest, EqualSizeOffsetLoopsOfOneFileHaveDistinctKeys) {
  WriteFileOrDie(tmp_ / "mbr.img", RandomBytes(8 * kMiB, 11));
  const std::string backing = std::filesystem::canonical(tmp_ / "mbr.img");
  std::string offset_keys[2];
  for (int n = 0; n < 2; ++n) {
    const uint64_t off = (2048u + n * 4096u) * 512;
    testing::CommandResult r = RunCommand("losetup --find --show -o " + std::to_string(off) +
                                          " --sizelimit " + std::to_string(2 * kMiB) + " " +
                                          (tmp_ / "mbr.img"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::string path = r.out.substr(0, r.out.find('\n'));
    Result<std::unique_ptr<BlockDevice>> dev = OpenBlockDevice(path);
    Run("losetup -d " + path);
    ASSERT_TRUE(dev.ok()) << dev.status().ToString();
    EXPECT_EQ((*dev)->identity().loop_offset, off);
    EXPECT_EQ((*dev)->identity().loop_sizelimit, 2 * kMiB);
    offset_keys[n] = (*dev)->identity().Key();
  }
  EXPECT_EQ(offset_keys[0], "loopfile:" + backing + ":offset=1048576:sizelimit=2097152:size=2097152");
  EXPECT_NE(offset_keys[0], offset_keys[1]);
}

TEST_F(DeviceLoopTest, LogicalBlockSizeFromTheDevice) {
  auto loop = Loop("4k.img", RandomBytes(4 * kMiB, 2));
  Run("losetup --sector-size 4096 " + loop->path());
  Result<std::unique_ptr<BlockDevice>> dev = OpenBlockDevice(loop->path(), {.direct_io = true});
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  EXPECT_EQ((*dev)->identity().logical_block_size, 4096u);
  EXPECT_EQ(ReadAll(loop->path()), ReadFileOrDie(tmp_ / "4k.img"));
}

TEST_F(DeviceLoopTest, DirectIoReadsEqualBufferedReads) {
  std::vector<std::byte> data = RandomBytes(8 * kMiB, 3);
  auto loop = Loop("d.img", data);
  Result<std::unique_ptr<BlockDevice>> direct = OpenBlockDevice(loop->path(), {.direct_io = true});
  Result<std::unique_ptr<BlockDevice>> buffered = OpenBlockDevice(loop->path());
  ASSERT_TRUE(direct.ok()) << direct.status().ToString();
  ASSERT_TRUE(buffered.ok()) << buffered.status().ToString();
  AlignedBuffer a(kMiB), b(kMiB);
  for (uint64_t off = 0; off < data.size(); off += kMiB) {
    ASSERT_EQ(*(*direct)->ReadAt(off, a.span()), kMiB);
    ASSERT_EQ(*(*buffered)->ReadAt(off, b.span()), kMiB);
    ASSERT_TRUE(std::equal(a.data(), a.data() + kMiB, b.data())) << off;
    ASSERT_TRUE(std::equal(a.data(), a.data() + kMiB, data.begin() + off)) << off;
    (*direct)->DoneWith(off, kMiB);
  }
  // Past the end, and an unaligned read served by the buffered descriptor.
  EXPECT_EQ(*(*direct)->ReadAt(data.size() - 4096, a.span()), 4096u);
  EXPECT_EQ(*(*direct)->ReadAt(data.size(), a.span()), 0u);
  std::vector<std::byte> odd(999);
  ASSERT_EQ(*(*direct)->ReadAt(12345, odd), 999u);
  EXPECT_TRUE(std::equal(odd.begin(), odd.end(), data.begin() + 12345));
}

TEST_F(DeviceLoopTest, TargetSmallerThanImageIsRefused) {
  auto loop = Loop("small.img", RandomBytes(4 * kMiB, 4));
  Result<std::unique_ptr<RestoreTarget>> t = OpenRestoreTarget(loop->path(), 4 * kMiB + 512);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(t.error().message().find("target " + loop->path() + " is 4194304 bytes"),
            std::string::npos)
      << t.error().message();
}

TEST_F(DeviceLoopTest, WritesLandOnTheDevice) {
  auto loop = Loop("w.img", RandomBytes(4 * kMiB, 5));
  Result<std::unique_ptr<RestoreTarget>> t = OpenRestoreTarget(loop->path(), 3 * kMiB);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_TRUE((*t)->is_block_device());
  EXPECT_EQ((*t)->size(), 4 * kMiB);  // the device's size; its tail is kept
  std::vector<std::byte> data = RandomBytes(3 * kMiB, 6);
  ASSERT_TRUE((*t)->WriteAt(0, data).ok());
  ASSERT_TRUE((*t)->Finish().ok());
  t->reset();
  std::vector<std::byte> back = ReadAll(loop->path());
  ASSERT_EQ(back.size(), 4 * kMiB);
  EXPECT_TRUE(std::equal(data.begin(), data.end(), back.begin()));
  std::vector<std::byte> orig_tail = RandomBytes(4 * kMiB, 5);
  EXPECT_TRUE(std::equal(back.begin() + 3 * kMiB, back.end(), orig_tail.begin() + 3 * kMiB));
}

TEST_F(DeviceLoopTest, ReadOnlyDeviceIsPermissionDenied) {
  WriteFileOrDie(tmp_ / "ro.img", RandomBytes(kMiB, 7));
  testing::LoopDevice ro(tmp_ / "ro.img", /*read_only=*/true);
  ASSERT_FALSE(ro.path().empty());
  const std::string& path = ro.path();

  Result<std::unique_ptr<RestoreTarget>> t = OpenRestoreTarget(path, kMiB);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(t.error().message().find("target " + path + " is read-only"), std::string::npos)
      << t.error().message();
  // Reading a read-only device is fine.
  EXPECT_TRUE(OpenBlockDevice(path).ok());
}

TEST_F(DeviceLoopTest, BusyDeviceIsRefused) {
  auto loop = Loop("busy.img", RandomBytes(kMiB, 8));
  Result<Fd> holder = OpenFile(loop->path(), O_RDONLY | O_EXCL);  // like a mount would
  ASSERT_TRUE(holder.ok()) << holder.status().ToString();
  Result<std::unique_ptr<RestoreTarget>> t = OpenRestoreTarget(loop->path(), kMiB);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(t.error().message().find("is in use"), std::string::npos) << t.error().message();
}

TEST_F(DeviceLoopTest, HolesAreZeroedOnlyWhenAsked) {
  std::vector<std::byte> garbage = RandomBytes(4 * kMiB, 9);
  auto loop = Loop("z.img", garbage);
  {
    Result<std::unique_ptr<RestoreTarget>> t = OpenRestoreTarget(loop->path(), 4 * kMiB);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    ASSERT_TRUE((*t)->Hole(0, kMiB).ok());
    ASSERT_TRUE((*t)->Finish().ok());
  }
  EXPECT_EQ(ReadAll(loop->path()), garbage) << "without zero_holes a hole must not be written";

  Result<std::unique_ptr<RestoreTarget>> t =
      OpenRestoreTarget(loop->path(), 4 * kMiB, {.zero_holes = true});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_TRUE((*t)->Hole(0, kMiB).ok());               // BLKZEROOUT
  ASSERT_TRUE((*t)->Hole(2 * kMiB + 100, 1000).ok());  // unaligned: written zeroes
  ASSERT_TRUE((*t)->Hole(3 * kMiB, kMiB).ok());        // up to the very end
  ASSERT_TRUE((*t)->Finish().ok());
  t->reset();

  std::vector<std::byte> want = garbage;
  std::fill(want.begin(), want.begin() + kMiB, std::byte{0});
  std::fill(want.begin() + 2 * kMiB + 100, want.begin() + 2 * kMiB + 1100, std::byte{0});
  std::fill(want.begin() + 3 * kMiB, want.end(), std::byte{0});
  EXPECT_EQ(ReadAll(loop->path()), want);
}

TEST_F(DeviceLoopTest, FullFilesystemIsNoSpace) {
  std::string mnt = tmp_ / "mnt";
  ASSERT_TRUE(MakeDirs(mnt).ok());
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=1m") != 0) {
    GTEST_SKIP() << "cannot mount tmpfs here";
  }
  struct Unmount {
    std::string dir;
    ~Unmount() { ::umount2(dir.c_str(), MNT_DETACH); }
  } unmount{mnt};
  Result<std::unique_ptr<RestoreTarget>> t = OpenRestoreTarget(mnt + "/big.img", 8 * kMiB);
  ASSERT_TRUE(t.ok()) << t.status().ToString();  // sparse: creating it costs nothing
  std::vector<std::byte> data = RandomBytes(4 * kMiB, 10);
  Status st = (*t)->WriteAt(0, data);
  EXPECT_EQ(st.code(), ErrorCode::kNoSpace) << st.ToString();
  EXPECT_NE(st.message().find(mnt + "/big.img"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace sparetime
