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
using testing::RunAsNobody;
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

TEST(DeviceIdentityTest, KeyUsesStrongestIdentityPlusSize) {
  DeviceIdentity id;
  id.path = "/dev/sdb";
  id.kind = "block";
  id.size = 1000;
  EXPECT_EQ(id.Key(), "path:/dev/sdb:size=1000");
  id.fs_uuid = "u-u-i-d";  // a hint only: clones of one image share it
  EXPECT_EQ(id.Key(), "path:/dev/sdb:size=1000");
  id.backing_file = "/img/a.img";
  EXPECT_EQ(id.Key(), "loopfile:/img/a.img:size=1000");
  id.loop_offset = 4096;
  EXPECT_EQ(id.Key(), "loopfile:/img/a.img:offset=4096:sizelimit=0:size=1000");
  id.loop_sizelimit = 1000;
  EXPECT_EQ(id.Key(), "loopfile:/img/a.img:offset=4096:sizelimit=1000:size=1000");
  id.serial = "S123";
  EXPECT_EQ(id.Key(), "serial:S123:size=1000");
  id.wwid = "naa.5000";
  EXPECT_EQ(id.Key(), "wwid:naa.5000:size=1000");
  id.size = 2000;
  EXPECT_EQ(id.Key(), "wwid:naa.5000:size=2000");
  id.partition = 2;
  id.start = 1 << 20;
  id.part_uuid = "p-2";
  EXPECT_EQ(id.Key(), "wwid:naa.5000:part=2:start=1048576:size=2000");
  id.legacy_key = "wwid:naa.5000:size=2000";  // a migrated schema-1 row
  EXPECT_EQ(id.Key(), "wwid:naa.5000:size=2000");
}

TEST(DeviceIdentityTest, PartitionWithoutDiskIdentityUsesItsUuidElseThePath) {
  DeviceIdentity id;
  id.path = "/dev/vda3";
  id.kind = "block";
  id.size = 512;
  id.partition = 3;
  id.start = 2048 * 512;
  EXPECT_EQ(id.Key(), "path:/dev/vda3:part=3:start=1048576:size=512");
  id.part_uuid = "0a1b2c3d-03";
  EXPECT_EQ(id.Key(), "partuuid:0a1b2c3d-03:part=3:start=1048576:size=512");
}

TEST(DeviceIdentityTest, ImageFilesAreTheirCanonicalPathNotTheirFsUuid) {
  DeviceIdentity a{"./a.img", "file", 4096, 512, "", "", "", "same-uuid"};
  DeviceIdentity b = a;
  a.real_path = "/srv/a.img";
  b.path = "b.img";
  b.real_path = "/srv/b.img";
  EXPECT_EQ(a.Key(), "path:/srv/a.img:size=4096");
  EXPECT_EQ(b.Key(), "path:/srv/b.img:size=4096");
  b.real_path.clear();  // not resolvable: the path as given
  EXPECT_EQ(b.Key(), "path:b.img:size=4096");
}

TEST(DeviceIdentityTest, JsonRoundTrip) {
  DeviceIdentity id{"/dev/loop3", "block", 1 << 20, 4096, "S1", "W1", "/x.img", "u"};
  id.partition = 1;
  id.start = 512;
  id.part_uuid = "pu";
  id.loop_offset = 7;
  id.loop_sizelimit = 9;
  id.real_path = "/r";
  Result<DeviceIdentity> back = DeviceIdentity::FromJson(id.ToJson());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->ToJson(), id.ToJson());
  EXPECT_EQ(back->logical_block_size, 4096u);
  EXPECT_EQ(back->Key(), id.Key());
  EXPECT_FALSE(id.ToJson().contains("legacy_key"));  // only migrated rows carry it

  id.legacy_key = "serial:S1:size=1048576";
  id.legacy_ambiguous = true;
  back = DeviceIdentity::FromJson(id.ToJson());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->legacy_key, id.legacy_key);
  EXPECT_TRUE(back->legacy_ambiguous);
  EXPECT_EQ(back->Key(), "serial:S1:size=1048576");
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
      {[](nlohmann::json& j) { j["partition"] = -2; }, "\"partition\""},
      {[](nlohmann::json& j) { j["legacy_ambiguous"] = 1; }, "\"legacy_ambiguous\""},
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
  // Partition `number` of disk `name` as maj:min, starting at sector `start`.
  void AddPartition(const std::string& name, int number, int maj, int min, uint64_t start,
                    const std::string& uuid) {
    const std::string part = name + std::to_string(number);
    WriteText(disk(name) + "/" + part + "/partition", std::to_string(number) + "\n");
    WriteText(disk(name) + "/" + part + "/start", std::to_string(start) + "\n");
    WriteText(disk(name) + "/" + part + "/uevent",
              "MAJOR=" + std::to_string(maj) + "\nDEVNAME=" + part + "\nDEVTYPE=partition\n" +
                  "PARTN=" + std::to_string(number) + (uuid.empty() ? "" : "\nPARTUUID=" + uuid) +
                  "\n");
    fs::create_symlink(
        "../../devices/pci0000:00/host0/block/" + name + "/" + part,
        root() + "/dev/block/" + std::to_string(maj) + ":" + std::to_string(min));
  }
  // The identity OpenBlockDevice gives a block device of `size` at `path`.
  DeviceIdentity Identity(const std::string& path, int maj, int min, uint64_t size) {
    DeviceIdentity id;
    id.path = path;
    id.kind = "block";
    id.size = size;
    detail::ApplySysfsIdentity(detail::ReadSysfsIdentity(makedev(maj, min), root()), id);
    return id;
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

TEST_F(FakeSysfsTest, EqualSizePartitionsOfOneDiskHaveDistinctKeys) {
  AddDisk("sda", 8, 0);  // its partition 1 is replaced below
  fs::remove_all(disk("sda") + "/sda1");
  fs::remove(root() + "/dev/block/8:1");
  WriteText(disk("sda") + "/device/wwid", "naa.5000c500a1b2c3d4\n");
  AddPartition("sda", 1, 8, 1, 2048, "6d2f-01");
  AddPartition("sda", 2, 8, 2, 2048 + 204800, "6d2f-02");
  const uint64_t size = 204800 * 512;
  DeviceIdentity p1 = Identity("/dev/sda1", 8, 1, size);
  DeviceIdentity p2 = Identity("/dev/sda2", 8, 2, size);
  EXPECT_EQ(p1.wwid, "naa.5000c500a1b2c3d4");  // the disk's, as before
  EXPECT_EQ(p1.partition, 1u);
  EXPECT_EQ(p1.start, 2048u * 512);
  EXPECT_EQ(p1.part_uuid, "6d2f-01");
  EXPECT_EQ(p2.partition, 2u);
  EXPECT_EQ(p2.start, (2048u + 204800) * 512);
  EXPECT_EQ(p1.Key(), "wwid:naa.5000c500a1b2c3d4:part=1:start=1048576:size=104857600");
  EXPECT_EQ(p2.Key(), "wwid:naa.5000c500a1b2c3d4:part=2:start=105906176:size=104857600");
  // The same partition under another /dev name keeps its key.
  EXPECT_EQ(Identity("/dev/sdc1", 8, 1, size).Key(), p1.Key());
  // The whole disk is neither of them.
  DeviceIdentity whole = Identity("/dev/sda", 8, 0, 2 * size + 2048 * 512);
  EXPECT_EQ(whole.partition, 0u);
  EXPECT_EQ(whole.Key(), "wwid:naa.5000c500a1b2c3d4:size=210763776");
}

TEST_F(FakeSysfsTest, DiskWithSerialVersusWithout) {
  AddDisk("vda", 254, 0);
  AddDisk("vdb", 254, 16);
  WriteText(disk("vda") + "/serial", "virtio-7\n");
  AddPartition("vda", 2, 254, 2, 4096, "");
  AddPartition("vdb", 2, 254, 18, 4096, "feedf00d-02");
  AddPartition("vdb", 3, 254, 19, 8192, "");
  EXPECT_EQ(Identity("/dev/vda", 254, 0, 8192).Key(), "serial:virtio-7:size=8192");
  EXPECT_EQ(Identity("/dev/vdb", 254, 16, 8192).Key(), "path:/dev/vdb:size=8192");
  EXPECT_EQ(Identity("/dev/vda2", 254, 2, 512).Key(), "serial:virtio-7:part=2:start=2097152:size=512");
  // Without a disk serial: the partition UUID, else the path (plus number and start).
  EXPECT_EQ(Identity("/dev/vdb2", 254, 18, 512).Key(),
            "partuuid:feedf00d-02:part=2:start=2097152:size=512");
  EXPECT_EQ(Identity("/dev/vdb3", 254, 19, 512).Key(), "path:/dev/vdb3:part=3:start=4194304:size=512");
}

TEST_F(FakeSysfsTest, LoopOffsetSizelimitAndLoopPartitions) {
  AddDisk("loop4", 7, 4);
  WriteText(disk("loop4") + "/loop/backing_file", "/srv/images/a.img\n");
  WriteText(disk("loop4") + "/loop/offset", "1048576\n");
  WriteText(disk("loop4") + "/loop/sizelimit", "0\n");
  AddPartition("loop4", 2, 259, 0, 2048, "");
  EXPECT_EQ(Identity("/dev/loop4", 7, 4, 4096).Key(),
            "loopfile:/srv/images/a.img:offset=1048576:sizelimit=0:size=4096");
  EXPECT_EQ(Identity("/dev/loop4p2", 259, 0, 512).Key(),
            "loopfile:/srv/images/a.img:offset=1048576:sizelimit=0:part=2:start=1048576:size=512");
  WriteText(disk("loop4") + "/loop/offset", "0\n");
  EXPECT_EQ(Identity("/dev/loop4", 7, 4, 4096).Key(), "loopfile:/srv/images/a.img:size=4096")
      << "a whole-file loop keeps its schema-1 key";
  WriteText(disk("loop4") + "/loop/offset", "junk\n");
  EXPECT_EQ(Identity("/dev/loop4", 7, 4, 4096).loop_offset, 0u);
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
  EXPECT_EQ(id.real_path, fs::canonical(tmp / "disk.img").string());
  EXPECT_EQ(id.Key(), "path:" + id.real_path + ":size=10000");

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

TEST(BlockDeviceTest, ClonedImagesDifferASymlinkIsTheSameImage) {
  TempDir tmp;
  std::vector<std::byte> data = RandomBytes(8192, 5);
  std::vector<std::byte> head = ExtHead(2048);
  std::copy(head.begin(), head.end(), data.begin());
  WriteFileOrDie(tmp / "template.img", data);
  fs::copy_file(tmp / "template.img", tmp / "clone.img");
  fs::create_symlink(tmp / "clone.img", tmp / "link.img");
  auto key = [&](const std::string& name) {
    Result<std::unique_ptr<BlockDevice>> dev = OpenBlockDevice(tmp / name);
    EXPECT_TRUE(dev.ok()) << dev.status().ToString();
    EXPECT_EQ((*dev)->identity().fs_uuid, kExtHeadUuid);
    return dev.ok() ? (*dev)->identity().Key() : "";
  };
  EXPECT_EQ(key("template.img"), "path:" + fs::canonical(tmp / "template.img").string() + ":size=8192");
  EXPECT_EQ(key("clone.img"), "path:" + fs::canonical(tmp / "clone.img").string() + ":size=8192");
  EXPECT_EQ(key("link.img"), key("clone.img"));
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

  // A device that is not one is exit code 5 (kFailedPrecondition), not 2.
  r = OpenBlockDevice(tmp.path());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(r.error().message(), tmp.path() +
                                     " is a directory: name a block device (/dev/...) or an "
                                     "image file");

  r = OpenBlockDevice("/dev/null");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kFailedPrecondition);
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

}  // namespace
}  // namespace sparetime
