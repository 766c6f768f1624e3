// Partition tables written by the real tools (sfdisk for MBR, sgdisk for
// GPT) into image files, read back by imaging/partition_table; damaged
// tables are the real ones with bytes changed.
#include "sparetime/imaging/partition_table.h"

#include <gtest/gtest.h>

#include <cstring>

#include "testutil/testutil.h"

namespace sparetime {
namespace {

using testing::ReadFileOrDie;
using testing::RunCommand;
using testing::ShellQuote;
using testing::TempDir;
using testing::WriteFileOrDie;

constexpr uint64_t kDisk = 64ull << 20;

std::string MakeImage(const TempDir& dir, const std::string& name) {
  std::string path = dir / name;
  EXPECT_EQ(RunCommand("truncate -s " + std::to_string(kDisk) + " " + ShellQuote(path)).exit_code,
            0);
  return path;
}

void Sh(const std::string& command) {
  testing::CommandResult r = RunCommand(command);
  ASSERT_EQ(r.exit_code, 0) << command << "\n" << r.out << r.err;
}

Result<PartitionTable> ReadFile(const std::string& path) {
  std::vector<std::byte> bytes = ReadFileOrDie(path);
  return ParsePartitionTable(bytes);
}

void PutLe32(std::vector<std::byte>& d, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) d[at + i] = std::byte(v >> (8 * i));
}

// The MBR layout the MBR tests use: a primary, an extended with two logicals
// and another primary after it.
std::string MbrImage(const TempDir& dir) {
  std::string img = MakeImage(dir, "mbr.img");
  Sh("printf 'label: dos\\nlabel-id: 0x1234abcd\\n"
     "start=2048, size=8192, type=83\\n"
     "start=10240, size=20480, type=5\\n"
     "start=12288, size=4096, type=83\\n"
     "start=18432, size=2048, type=82\\n"
     "start=32768, size=16384, type=7\\n' | sfdisk -q " +
     ShellQuote(img));
  return img;
}

std::string GptImage(const TempDir& dir) {
  std::string img = MakeImage(dir, "gpt.img");
  Sh("sgdisk -n 1:2048:+8M -t 1:8300 -c 1:root -u 1:aaaaaaaa-bbbb-cccc-dddd-000000000001 "
     "-n 3:40960:+16M -t 3:ef00 -c 3:esp -u 3:11111111-2222-3333-4444-555555555555 "
     "-U 01234567-89AB-CDEF-0123-456789ABCDEF " +
     ShellQuote(img) + " >/dev/null");
  return img;
}

void ExpectGptLayout(const PartitionTable& t) {
  EXPECT_EQ(t.scheme, PartitionTable::Scheme::kGpt);
  EXPECT_EQ(t.sector_size, 512u);
  EXPECT_EQ(t.disk_uuid, "01234567-89ab-cdef-0123-456789abcdef");
  ASSERT_EQ(t.partitions.size(), 2u);
  const Partition& root = t.partitions[0];
  EXPECT_EQ(root.number, 1u);
  EXPECT_EQ(root.offset, 2048u * 512);
  EXPECT_EQ(root.size, 8ull << 20);
  EXPECT_EQ(root.type, "0fc63daf-8483-4772-8e79-3d69d8477de4");  // Linux filesystem
  EXPECT_EQ(root.uuid, "aaaaaaaa-bbbb-cccc-dddd-000000000001");
  EXPECT_EQ(root.name, "root");
  const Partition& esp = t.partitions[1];
  EXPECT_EQ(esp.number, 3u);
  EXPECT_EQ(esp.offset, 40960u * 512);
  EXPECT_EQ(esp.size, 16ull << 20);
  EXPECT_EQ(esp.type, "c12a7328-f81f-11d2-ba4b-00a0c93ec93b");  // EFI system partition
  EXPECT_EQ(esp.uuid, "11111111-2222-3333-4444-555555555555");
  EXPECT_EQ(esp.name, "esp");
}

TEST(Crc32, StandardCheckValue) {
  const char* s = "123456789";
  EXPECT_EQ(Crc32(std::as_bytes(std::span(s, 9))), 0xCBF43926u);
  EXPECT_EQ(Crc32({}), 0u);
}

TEST(PartitionTable, MbrWithLogicalPartitionsFromSfdisk) {
  TempDir dir;
  Result<PartitionTable> t = ReadFile(MbrImage(dir));
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->scheme, PartitionTable::Scheme::kMbr);
  EXPECT_EQ(t->disk_uuid, "1234abcd");
  ASSERT_EQ(t->partitions.size(), 4u);  // the extended container itself is not one
  struct Want {
    uint32_t number;
    uint64_t start, sectors;
    const char* type;
  } want[] = {{1, 2048, 8192, "0x83"}, {3, 32768, 16384, "0x07"},
              {5, 12288, 4096, "0x83"}, {6, 18432, 2048, "0x82"}};
  for (size_t i = 0; i < 4; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(t->partitions[i].number, want[i].number);
    EXPECT_EQ(t->partitions[i].offset, want[i].start * 512);
    EXPECT_EQ(t->partitions[i].size, want[i].sectors * 512);
    EXPECT_EQ(t->partitions[i].type, want[i].type);
  }
}

TEST(PartitionTable, GptFromSgdisk) {
  TempDir dir;
  Result<PartitionTable> t = ReadFile(GptImage(dir));
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ExpectGptLayout(*t);
}

TEST(PartitionTable, GptThroughReadFnReadsOnlyWhatItNeeds) {
  TempDir dir;
  std::vector<std::byte> disk = ReadFileOrDie(GptImage(dir));
  uint64_t bytes_read = 0;
  auto read = [&](uint64_t offset, std::span<std::byte> out) -> Status {
    bytes_read += out.size();
    std::memcpy(out.data(), disk.data() + offset, out.size());
    return Status::Ok();
  };
  Result<PartitionTable> t = ReadPartitionTable(read, disk.size());
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ExpectGptLayout(*t);
  EXPECT_EQ(bytes_read, 512u + 512u + 128u * 128u);  // MBR, header, entry array
}

TEST(PartitionTable, DamagedPrimaryGptHeaderFallsBackToTheBackup) {
  TempDir dir;
  std::vector<std::byte> disk = ReadFileOrDie(GptImage(dir));
  disk[512 + 40] ^= std::byte{1};  // first usable LBA: the header CRC no longer matches
  Result<PartitionTable> t = ParsePartitionTable(disk);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ExpectGptLayout(*t);
}

TEST(PartitionTable, DamagedPrimaryEntryArrayFallsBackToTheBackup) {
  TempDir dir;
  std::vector<std::byte> disk = ReadFileOrDie(GptImage(dir));
  disk[1024 + 32] ^= std::byte{0x10};  // partition 1's first LBA in the primary array
  Result<PartitionTable> t = ParsePartitionTable(disk);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ExpectGptLayout(*t);
}

TEST(PartitionTable, BothGptHeadersDamagedIsCorruption) {
  TempDir dir;
  std::vector<std::byte> disk = ReadFileOrDie(GptImage(dir));
  disk[512 + 40] ^= std::byte{1};
  disk[disk.size() - 512 + 40] ^= std::byte{1};
  Result<PartitionTable> t = ParsePartitionTable(disk);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), ErrorCode::kCorruption);
  EXPECT_NE(t.status().message().find("primary: GPT header at byte 512 fails its CRC32"),
            std::string::npos)
      << t.status().message();
  EXPECT_NE(t.status().message().find("; backup: GPT header at byte 67108352 fails its CRC32"),
            std::string::npos)
      << t.status().message();
}

TEST(PartitionTable, NoTableOnAZeroDiskOrABareFilesystem) {
  TempDir dir;
  Result<PartitionTable> zero = ReadFile(MakeImage(dir, "zero.img"));
  ASSERT_TRUE(zero.ok());
  EXPECT_EQ(zero->scheme, PartitionTable::Scheme::kNone);
  EXPECT_EQ(zero->partitions.size(), 0u);
  std::string ext4 = MakeImage(dir, "ext4.img");
  Sh("mkfs.ext4 -q -F " + ShellQuote(ext4));
  Result<PartitionTable> fs = ReadFile(ext4);
  ASSERT_TRUE(fs.ok()) << fs.status().ToString();
  EXPECT_EQ(fs->scheme, PartitionTable::Scheme::kNone);
  EXPECT_EQ(fs->partitions.size(), 0u);
}

TEST(PartitionTable, MbrPartitionPastTheEndIsCorruption) {
  TempDir dir;
  std::vector<std::byte> disk = ReadFileOrDie(MbrImage(dir));
  PutLe32(disk, 446 + 12, uint32_t(kDisk / 512));  // partition 1: as many sectors as the disk
  Result<PartitionTable> t = ParsePartitionTable(disk);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), ErrorCode::kCorruption);
  EXPECT_EQ(t.status().message(),
            "mbr partition 1 (bytes 1048576 + 67108864) does not lie inside the disk of "
            "67108864 bytes");
}

TEST(PartitionTable, OverlappingMbrPartitionsAreCorruption) {
  TempDir dir;
  std::vector<std::byte> disk = ReadFileOrDie(MbrImage(dir));
  PutLe32(disk, 446 + 48 + 8, 4096);  // partition 4 (slot 3, empty until now) starts inside 1
  PutLe32(disk, 446 + 48 + 12, 100);
  disk[446 + 48 + 4] = std::byte{0x83};
  Result<PartitionTable> t = ParsePartitionTable(disk);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(), "mbr partitions 1 and 4 overlap");
}

TEST(PartitionTable, LoopingEbrChainIsCorruption) {
  TempDir dir;
  std::vector<std::byte> disk = ReadFileOrDie(MbrImage(dir));
  // The second EBR (the one of partition 6) points to itself as the next.
  uint64_t second_ebr = 0;
  for (uint64_t s = 10240 + 1; s < 30720; ++s) {
    if (disk[s * 512 + 510] == std::byte{0x55} && disk[s * 512 + 511] == std::byte{0xAA}) {
      second_ebr = s;
      break;
    }
  }
  ASSERT_NE(second_ebr, 0u);
  disk[second_ebr * 512 + 462 + 4] = std::byte{0x05};
  PutLe32(disk, second_ebr * 512 + 462 + 8, uint32_t(second_ebr - 10240));  // itself
  PutLe32(disk, second_ebr * 512 + 462 + 12, 1);
  Result<PartitionTable> t = ParsePartitionTable(disk);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), ErrorCode::kCorruption);
  EXPECT_NE(t.status().message().find("EBR chain loops back"), std::string::npos)
      << t.status().message();
}

TEST(PartitionTable, TruncatedDataIsAnErrorNotACrash) {
  TempDir dir;
  std::vector<std::byte> disk = ReadFileOrDie(GptImage(dir));
  for (size_t n : {size_t{0}, size_t{100}, size_t{512}, size_t{1024}, size_t{2048}}) {
    SCOPED_TRACE(n);
    std::vector<std::byte> head(disk.begin(), disk.begin() + n);
    Result<PartitionTable> t = ParsePartitionTable(head);
    if (n < 512) {
      ASSERT_TRUE(t.ok());
      EXPECT_EQ(t->scheme, PartitionTable::Scheme::kNone);
    } else {
      EXPECT_FALSE(t.ok()) << "a protective MBR without a readable GPT";
    }
  }
}

}  // namespace
}  // namespace sparetime
