// Device reader, identity and restore target on regular files and a fake
// sysfs tree (no loop devices: see tests/integration/device_loop_test.cc).
#include "sparetime/imaging/device.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "../../imaging/src/device_sysfs.h"
#include "sparetime/base/fd.h"
#include "testutil/testutil.h"

namespace sparetime {
namespace {

namespace fs = std::filesystem;
using testing::RandomBytes;
using testing::ReadFileOrDie;
using testing::TempDir;
using testing::WriteFileOrDie;

void WriteText(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  WriteFileOrDie(
      path, std::vector<std::byte>(reinterpret_cast<const std::byte*>(text.data()),
                                   reinterpret_cast<const std::byte*>(text.data()) + text.size()));
}

std::vector<std::byte> Slice(const std::vector<std::byte>& v, size_t off, size_t len) {
  return {v.begin() + off, v.begin() + off + len};
}

// An ext4-looking head: magic 0xEF53 at 1080, UUID at 1128.
std::vector<std::byte> ExtHead(size_t size) {
  std::vector<std::byte> head(size);
  head[1080] = std::byte{0x53};
  head[1081] = std::byte{0xEF};
  for (int i = 0; i < 16; ++i) head[1128 + i] = std::byte(0xA0 + i);
  return head;
}
constexpr const char* kExtHeadUuid = "a0a1a2a3-a4a5-a6a7-a8a9-aaabacadaeaf";

// Runs `body` in a child process as user nobody; returns its exit code.
int RunAsNobody(const std::function<int()>& body) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(100);
    ::_exit(body());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(DeviceIdentityTest, KeyUsesStrongestIdentityPlusSize) {
  DeviceIdentity id;
  id.path = "/dev/sdb";
  id.size = 1000;
  EXPECT_EQ(id.Key(), "path:/dev/sdb:size=1000");
  id.backing_file = "/img/a.img";
  EXPECT_EQ(id.Key(), "loopfile:/img/a.img:size=1000");
  id.fs_uuid = "u-u-i-d";
  EXPECT_EQ(id.Key(), "fsuuid:u-u-i-d:size=1000");
  id.serial = "S123";
  EXPECT_EQ(id.Key(), "serial:S123:size=1000");
  id.wwid = "naa.5000";
  EXPECT_EQ(id.Key(), "wwid:naa.5000:size=1000");
  id.size = 2000;
  EXPECT_EQ(id.Key(), "wwid:naa.5000:size=2000");
}

TEST(DeviceIdentityTest, JsonRoundTrip) {
  DeviceIdentity id{"/dev/loop3", "block", 1 << 20, 4096, "S1", "W1", "/x.img", "u"};
  Result<DeviceIdentity> back = DeviceIdentity::FromJson(id.ToJson());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->ToJson(), id.ToJson());
  EXPECT_EQ(back->logical_block_size, 4096u);
  EXPECT_EQ(back->Key(), id.Key());
}

TEST(DeviceIdentityTest, FromJsonRejectsBadDocuments) {
  nlohmann::json good = DeviceIdentity{"/d", "file", 5, 512, "", "", "", ""}.ToJson();
  struct Case {
    std::function<void(nlohmann::json&)> mutate;
    std::string expect_in_message;
  } cases[] = {
      {[](nlohmann::json& j) { j.erase("size"); }, "missing field \"size\""},
      {[](nlohmann::json& j) { j.erase("path"); }, "missing field \"path\""},
      {[](nlohmann::json& j) { j["size"] = "big"; }, "\"size\""},
      {[](nlohmann::json& j) { j["size"] = -1; }, "\"size\""},
      {[](nlohmann::json& j) { j["logical_block_size"] = 1ull << 40; }, "\"logical_block_size\""},
      {[](nlohmann::json& j) { j["serial"] = 7; }, "\"serial\""},
      {[](nlohmann::json& j) { j["kind"] = "tape"; }, "tape"},
      {[](nlohmann::json& j) { j = nlohmann::json::array(); }, "object"},
  };
  for (const Case& c : cases) {
    nlohmann::json j = good;
    c.mutate(j);
    Result<DeviceIdentity> r = DeviceIdentity::FromJson(j);
    ASSERT_FALSE(r.ok()) << j.dump();
    EXPECT_EQ(r.error().code(), ErrorCode::kCorruption);
    EXPECT_NE(r.error().message().find(c.expect_in_message), std::string::npos)
        << r.error().message();
  }
  // Optional identity strings may be absent (older or minimal documents).
  good.erase("wwid");
  EXPECT_TRUE(DeviceIdentity::FromJson(good).ok());
}

TEST(SuperblockTest, RecognisesExtAndXfs) {
  EXPECT_EQ(detail::FsUuidFromSuperblock(ExtHead(4096)), kExtHeadUuid);
  EXPECT_EQ(detail::FsUuidFromSuperblock(ExtHead(1144)), kExtHeadUuid);  // just long enough
  std::vector<std::byte> ext = ExtHead(4096);
  EXPECT_EQ(detail::FsUuidFromSuperblock(std::span(ext).first(1143)), "");

  std::vector<std::byte> xfs(512);
  std::memcpy(xfs.data(), "XFSB", 4);
  for (int i = 0; i < 16; ++i) xfs[32 + i] = std::byte(0x10 * (i % 16) + i % 16);
  EXPECT_EQ(detail::FsUuidFromSuperblock(xfs), "00112233-4455-6677-8899-aabbccddeeff");

  std::vector<std::byte> zero_uuid = ExtHead(4096);
  std::fill(zero_uuid.begin() + 1128, zero_uuid.begin() + 1144, std::byte{0});
  EXPECT_EQ(detail::FsUuidFromSuperblock(zero_uuid), "");
  EXPECT_EQ(detail::FsUuidFromSuperblock(RandomBytes(4096, 1)), "");
  EXPECT_EQ(detail::FsUuidFromSuperblock({}), "");
}

class FakeSysfsTest : public ::testing::Test {
 protected:
  // sysfs/devices/.../sda (whole disk, 8:0) and sda1 (partition, 8:1),
  // linked from sysfs/dev/block like the kernel does.
  void AddDisk(const std::string& name, int maj, int min) {
    std::string disk = root() + "/devices/pci0000:00/host0/block/" + name;
    fs::create_directories(disk);
    fs::create_directories(root() + "/dev/block");
    fs::create_symlink("../../devices/pci0000:00/host0/block/" + name,
                       root() + "/dev/block/" + std::to_string(maj) + ":" + std::to_string(min));
    fs::create_directories(disk + "/" + name + "1");
    WriteText(disk + "/" + name + "1/partition", "1\n");
    fs::create_symlink(
        "../../devices/pci0000:00/host0/block/" + name + "/" + name + "1",
        root() + "/dev/block/" + std::to_string(maj) + ":" + std::to_string(min + 1));
  }
  std::string disk(const std::string& name) {
    return root() + "/devices/pci0000:00/host0/block/" + name;
  }
  std::string root() { return tmp_.path() + "/sys"; }
  TempDir tmp_;
};

TEST_F(FakeSysfsTest, SerialFromDeviceOrVirtioAttribute) {
  AddDisk("sda", 8, 0);
  WriteText(disk("sda") + "/device/serial", "  WD-1234 \n");
  detail::SysfsIdentity id = detail::ReadSysfsIdentity(makedev(8, 0), root());
  EXPECT_EQ(id.serial, "WD-1234");
  EXPECT_EQ(id.wwid, "");
  EXPECT_EQ(id.backing_file, "");

  AddDisk("vda", 254, 0);
  WriteText(disk("vda") + "/serial", "virtio-7");
  EXPECT_EQ(detail::ReadSysfsIdentity(makedev(254, 0), root()).serial, "virtio-7");
}

TEST_F(FakeSysfsTest, WwidPrecedenceAndPartitionUsesWholeDisk) {
  AddDisk("sda", 8, 0);
  WriteText(disk("sda") + "/device/serial", "S1\n");
  WriteText(disk("sda") + "/wwid", "eui.disk\n");
  EXPECT_EQ(detail::ReadSysfsIdentity(makedev(8, 0), root()).wwid, "eui.disk");
  WriteText(disk("sda") + "/device/wwid", "naa.device\n");
  detail::SysfsIdentity whole = detail::ReadSysfsIdentity(makedev(8, 0), root());
  EXPECT_EQ(whole.wwid, "naa.device");
  EXPECT_EQ(whole.serial, "S1");

  detail::SysfsIdentity part = detail::ReadSysfsIdentity(makedev(8, 1), root());
  EXPECT_EQ(part.wwid, "naa.device");
  EXPECT_EQ(part.serial, "S1");
}

TEST_F(FakeSysfsTest, LoopBackingFileAndUnknownDevice) {
  AddDisk("loop4", 7, 4);
  WriteText(disk("loop4") + "/loop/backing_file", "/srv/images/a.img\n");
  EXPECT_EQ(detail::ReadSysfsIdentity(makedev(7, 4), root()).backing_file, "/srv/images/a.img");
  detail::SysfsIdentity none = detail::ReadSysfsIdentity(makedev(99, 99), root());
  EXPECT_EQ(none.serial + none.wwid + none.backing_file, "");
}

TEST(BlockDeviceTest, RegularFileIdentityAndReads) {
  TempDir tmp;
  std::vector<std::byte> data = RandomBytes(10000, 2);
  std::vector<std::byte> head = ExtHead(2048);
  std::copy(head.begin(), head.end(), data.begin());
  WriteFileOrDie(tmp / "disk.img", data);

  Result<std::unique_ptr<BlockDevice>> dev = OpenBlockDevice(tmp / "disk.img");
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  const DeviceIdentity& id = (*dev)->identity();
  EXPECT_EQ(id.kind, "file");
  EXPECT_EQ(id.path, tmp / "disk.img");
  EXPECT_EQ(id.size, 10000u);
  EXPECT_EQ((*dev)->size(), 10000u);
  EXPECT_EQ(id.logical_block_size, 512u);
  EXPECT_EQ(id.fs_uuid, kExtHeadUuid);
  EXPECT_EQ(id.Key(), std::string("fsuuid:") + kExtHeadUuid + ":size=10000");

  std::vector<std::byte> buf(4096);
  Result<size_t> got = (*dev)->ReadAt(4096, buf);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, 4096u);
  EXPECT_EQ(buf, Slice(data, 4096, 4096));

  got = (*dev)->ReadAt(8192, buf);  // short: the file ends at 10000
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(*got, 1808u);
  EXPECT_EQ(Slice(buf, 0, 1808), Slice(data, 8192, 1808));
  EXPECT_EQ(*(*dev)->ReadAt(10000, buf), 0u);
  EXPECT_EQ(*(*dev)->ReadAt(1u << 30, buf), 0u);
  (*dev)->DoneWith(0, 10000);
}

TEST(BlockDeviceTest, ReadsStopAtTheSizeSeenAtOpen) {
  TempDir tmp;
  WriteFileOrDie(tmp / "grow.img", RandomBytes(5000, 3));
  Result<std::unique_ptr<BlockDevice>> dev = OpenBlockDevice(tmp / "grow.img");
  ASSERT_TRUE(dev.ok());
  WriteFileOrDie(tmp / "grow.img", RandomBytes(9000, 3));  // grows while being imaged
  std::vector<std::byte> buf(8192);
  EXPECT_EQ(*(*dev)->ReadAt(0, buf), 5000u);
}

TEST(BlockDeviceTest, DirectIoOnFileEqualsBufferedIncludingUnalignedTail) {
  TempDir tmp;
  std::vector<std::byte> data = RandomBytes(3 * 65536 + 1234, 4);
  WriteFileOrDie(tmp / "d.img", data);
  Result<std::unique_ptr<BlockDevice>> dev = OpenBlockDevice(tmp / "d.img", {.direct_io = true});
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  AlignedBuffer buf(65536);
  for (uint64_t off = 0; off < data.size(); off += 65536) {
    Result<size_t> got = (*dev)->ReadAt(off, buf.span());
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    size_t want = std::min<size_t>(65536, data.size() - off);
    ASSERT_EQ(*got, want);
    EXPECT_TRUE(std::equal(buf.data(), buf.data() + want, data.begin() + off)) << off;
  }
  // Unaligned offset, length and buffer address.
  std::vector<std::byte> odd(1001);
  ASSERT_EQ(*(*dev)->ReadAt(777, odd), 1001u);
  EXPECT_EQ(odd, Slice(data, 777, 1001));
}

TEST(BlockDeviceTest, DirectIoFallsBackWhereTheFilesystemRefusesIt) {
  // sysfs refuses O_DIRECT (EINVAL); tmpfs accepts it since Linux 6.6.
  const std::string path = "/sys/kernel/uevent_seqnum";
  if (::access(path.c_str(), R_OK) != 0) GTEST_SKIP() << path << " not available";
  Result<std::unique_ptr<BlockDevice>> direct = OpenBlockDevice(path, {.direct_io = true});
  ASSERT_TRUE(direct.ok()) << direct.status().ToString();
  EXPECT_EQ((*direct)->identity().kind, "file");
  AlignedBuffer buf(4096);
  Result<size_t> got = (*direct)->ReadAt(0, buf.span());
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_GT(*got, 0u);
  EXPECT_TRUE(std::isdigit(static_cast<unsigned char>(buf.data()[0])));
}

TEST(BlockDeviceTest, MissingDirectoryAndCharDevice) {
  TempDir tmp;
  Result<std::unique_ptr<BlockDevice>> r = OpenBlockDevice(tmp / "nope");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(r.error().message(), "device " + (tmp / "nope") + " does not exist");

  r = OpenBlockDevice(tmp.path());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(r.error().message(), tmp.path() + " is not a block device or image file");

  r = OpenBlockDevice("/dev/null");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
}

TEST(BlockDeviceTest, UnreadableIsPermissionDenied) {
  if (!testing::IsRoot()) GTEST_SKIP() << "needs root to switch to user nobody";
  TempDir tmp;
  ASSERT_EQ(::chmod(tmp.path().c_str(), 0755), 0);
  WriteFileOrDie(tmp / "secret.img", RandomBytes(4096, 5));
  ASSERT_EQ(::chmod((tmp / "secret.img").c_str(), 0600), 0);
  int rc = RunAsNobody([&] {
    Result<std::unique_ptr<BlockDevice>> r = OpenBlockDevice(tmp / "secret.img");
    if (r.ok()) return 1;
    if (r.error().code() != ErrorCode::kPermissionDenied) return 2;
    return r.error().message().find(tmp / "secret.img") == std::string::npos ? 3 : 0;
  });
  EXPECT_EQ(rc, 0);
}

TEST(AlignedBufferTest, AlignedAndMovable) {
  AlignedBuffer a(5000);
  EXPECT_EQ(a.size(), 5000u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data()) % AlignedBuffer::kAlignment, 0u);
  std::memset(a.data(), 7, a.size());
  std::byte* p = a.data();
  AlignedBuffer b(std::move(a));
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(a.size(), 0u);
  AlignedBuffer c(1);
  c = std::move(b);
  EXPECT_EQ(c.data(), p);
  EXPECT_EQ(c.size(), 5000u);
  EXPECT_EQ(AlignedBuffer(0).size(), 0u);
}

struct stat StatOrDie(const std::string& path) {
  struct stat sb;
  if (::stat(path.c_str(), &sb) != 0) std::abort();
  return sb;
}

TEST(RestoreTargetTest, NewFileIsCreatedSparseAtImageSize) {
  TempDir tmp;
  const uint64_t size = 64ull << 20;
  Result<std::unique_ptr<RestoreTarget>> t = OpenRestoreTarget(tmp / "out.img", size);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_FALSE((*t)->is_block_device());
  EXPECT_EQ((*t)->size(), size);
  std::vector<std::byte> chunk = RandomBytes(65536, 6);
  ASSERT_TRUE((*t)->Hole(0, 32ull << 20).ok());
  ASSERT_TRUE((*t)->WriteAt(32ull << 20, chunk).ok());
  ASSERT_TRUE((*t)->Hole((32ull << 20) + 65536, size - (32ull << 20) - 65536).ok());
  ASSERT_TRUE((*t)->Finish().ok());

  struct stat sb = StatOrDie(tmp / "out.img");
  EXPECT_EQ(static_cast<uint64_t>(sb.st_size), size);
  EXPECT_EQ(sb.st_mode & 0777, 0600u);
  EXPECT_LE(static_cast<uint64_t>(sb.st_blocks) * 512, 1u << 20) << "holes were written";
  std::vector<std::byte> back = ReadFileOrDie(tmp / "out.img");
  EXPECT_EQ(Slice(back, 32ull << 20, 65536), chunk);
  EXPECT_TRUE(std::all_of(back.begin(), back.begin() + (32 << 20),
                          [](std::byte b) { return b == std::byte{0}; }));
}

// How many of the file's pages are in the page cache (mincore).
size_t CachedPages(const std::string& path) {
  Result<Fd> fd = OpenFile(path, O_RDONLY);
  if (!fd.ok()) std::abort();
  struct stat sb = StatOrDie(path);
  void* map = ::mmap(nullptr, sb.st_size, PROT_READ, MAP_SHARED, fd->get(), 0);
  if (map == MAP_FAILED) std::abort();
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> vec((sb.st_size + page - 1) / page);
  if (::mincore(map, sb.st_size, vec.data()) != 0) std::abort();
  ::munmap(map, sb.st_size);
  return static_cast<size_t>(
      std::count_if(vec.begin(), vec.end(), [](unsigned char v) { return v & 1; }));
}

TEST(RestoreTargetTest, AlignedWritesBypassThePageCacheUnalignedOnesDoNot) {
  TempDir tmp;                                // on ext4 here, which takes O_DIRECT
  const uint64_t size = (4ull << 20) + 1000;  // an unaligned tail
  const std::string path = tmp / "direct.img";
  Result<std::unique_ptr<RestoreTarget>> t = OpenRestoreTarget(path, size, {.direct_io = true});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  std::vector<std::byte> data = RandomBytes(size, 9);
  // One aligned chunk from an aligned buffer, one from a misaligned one (staged).
  AlignedBuffer aligned(1 << 20);
  std::memcpy(aligned.data(), data.data(), 1 << 20);
  ASSERT_TRUE((*t)->WriteAt(0, aligned.span()).ok());
  std::vector<std::byte> odd(1 + (1 << 20));
  std::memcpy(odd.data() + 1, data.data() + (1 << 20), 1 << 20);
  ASSERT_TRUE((*t)->WriteAt(1 << 20, std::span(odd).subspan(1)).ok());
  ASSERT_TRUE((*t)->WriteAt(2 << 20, std::span(data).subspan(2 << 20, 2 << 20)).ok());
  ASSERT_TRUE((*t)->WriteAt(4 << 20, std::span(data).subspan(4 << 20)).ok());  // 1000 bytes
  ASSERT_TRUE((*t)->Finish().ok());
  t->reset();

  EXPECT_EQ(CachedPages(path), 1u) << "only the unaligned tail's page went through the cache";
  EXPECT_EQ(ReadFileOrDie(path), data);

  // Without the option every page goes through the cache.
  const std::string buffered = tmp / "buffered.img";
  t = OpenRestoreTarget(buffered, size, {.direct_io = false});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_TRUE((*t)->WriteAt(0, data).ok());
  ASSERT_TRUE((*t)->Finish().ok());
  t->reset();
  EXPECT_EQ(CachedPages(buffered), (size + 4095) / 4096);
}

TEST(RestoreTargetTest, ReserveAllocatesTheGivenRangesOnly) {
  TempDir tmp;  // ext4 here, which has fallocate
  const uint64_t size = 16ull << 20;
  const std::string path = tmp / "out.img";
  Result<std::unique_ptr<RestoreTarget>> t = OpenRestoreTarget(path, size);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const ByteRange runs[] = {{1ull << 20, 2ull << 20}, {8ull << 20, 1ull << 20}};
  ASSERT_TRUE((*t)->Reserve(runs).ok());
  uint64_t allocated = static_cast<uint64_t>(StatOrDie(path).st_blocks) * 512;
  EXPECT_GE(allocated, 3ull << 20);
  EXPECT_LT(allocated, (3ull << 20) + (256 << 10)) << "room beyond the ranges was taken";
  // Writes land in the reserved blocks; what was never written reads as zeroes.
  std::vector<std::byte> data = RandomBytes(1 << 20, 4);
  AlignedBuffer aligned(data.size());
  std::memcpy(aligned.data(), data.data(), data.size());
  ASSERT_TRUE((*t)->WriteAt(1ull << 20, aligned.span()).ok());
  ASSERT_TRUE((*t)->Finish().ok());
  t->reset();
  std::vector<std::byte> expected(size);
  std::copy(data.begin(), data.end(), expected.begin() + (1 << 20));
  EXPECT_EQ(ReadFileOrDie(path), expected);
  // A range past the end is refused like a write there.
  t = OpenRestoreTarget(path, size);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const ByteRange past[] = {{size - 4096, 8192}};
  EXPECT_EQ((*t)->Reserve(past).code(), ErrorCode::kInvalidArgument);
}

TEST(RestoreTargetTest, ExistingFileHolesArePunched) {
  TempDir tmp;
  const size_t size = 4 << 20;
  WriteFileOrDie(tmp / "old.img", RandomBytes(size, 7));
  Result<std::unique_ptr<RestoreTarget>> t = OpenRestoreTarget(tmp / "old.img", size);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_TRUE((*t)->Hole(0, size).ok());
  ASSERT_TRUE((*t)->Finish().ok());
  EXPECT_LT(StatOrDie(tmp / "old.img").st_blocks * 512, 1 << 20);
  std::vector<std::byte> back = ReadFileOrDie(tmp / "old.img");
  ASSERT_EQ(back.size(), size);
  EXPECT_TRUE(std::all_of(back.begin(), back.end(), [](std::byte b) { return b == std::byte{0}; }));
}

TEST(RestoreTargetTest, ExistingSmallerFileIsRefusedLargerIsTruncated) {
  TempDir tmp;
  WriteFileOrDie(tmp / "small.img", RandomBytes(1000, 8));
  Result<std::unique_ptr<RestoreTarget>> t = OpenRestoreTarget(tmp / "small.img", 4096);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(t.error().message().find("target " + (tmp / "small.img") +
                                     " is 1000 bytes, smaller than the image (4096 bytes)"),
            std::string::npos)
      << t.error().message();
  EXPECT_EQ(StatOrDie(tmp / "small.img").st_size, 1000);  // untouched

  WriteFileOrDie(tmp / "big.img", RandomBytes(9000, 8));
  t = OpenRestoreTarget(tmp / "big.img", 4096);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ((*t)->size(), 4096u);
  EXPECT_EQ(StatOrDie(tmp / "big.img").st_size, 4096);
}

TEST(RestoreTargetTest, WritesPastTheEndAndBadPathsAreRefused) {
  TempDir tmp;
  Result<std::unique_ptr<RestoreTarget>> t = OpenRestoreTarget(tmp / "t.img", 8192);
  ASSERT_TRUE(t.ok());
  std::vector<std::byte> data(4096);
  Status st = (*t)->WriteAt(8000, data);
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(st.message().find("past the end of target"), std::string::npos);
  EXPECT_EQ((*t)->Hole(8192, 1).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ((*t)->Hole(~0ull, 2).code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE((*t)->WriteAt(4096, data).ok());

  Result<std::unique_ptr<RestoreTarget>> dir = OpenRestoreTarget(tmp.path(), 10);
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.error().code(), ErrorCode::kInvalidArgument);
  Result<std::unique_ptr<RestoreTarget>> orphan = OpenRestoreTarget(tmp / "no/such/dir.img", 10);
  ASSERT_FALSE(orphan.ok());
  EXPECT_EQ(orphan.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(orphan.error().message().find(tmp / "no/such/dir.img"), std::string::npos);
}

TEST(RestoreTargetTest, ReadOnlyFileIsPermissionDenied) {
  if (!testing::IsRoot()) GTEST_SKIP() << "needs root to switch to user nobody";
  TempDir tmp;
  ASSERT_EQ(::chmod(tmp.path().c_str(), 0755), 0);
  WriteFileOrDie(tmp / "ro.img", RandomBytes(4096, 9));
  ASSERT_EQ(::chmod((tmp / "ro.img").c_str(), 0644), 0);
  int rc = RunAsNobody([&] {
    Result<std::unique_ptr<RestoreTarget>> r = OpenRestoreTarget(tmp / "ro.img", 4096);
    if (r.ok()) return 1;
    if (r.error().code() != ErrorCode::kPermissionDenied) return 2;
    return r.error().message().find("is read-only") == std::string::npos ? 3 : 0;
  });
  EXPECT_EQ(rc, 0);
}

}  // namespace
}  // namespace sparetime
