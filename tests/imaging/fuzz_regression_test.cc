// Findings of the fuzz targets (tests/fuzz, issue 26), replayed in the normal
// suite: each case is the input as its target takes it, run through the same
// code as the harness, with the behaviour the fix gives.
//
// pack_file: an index row (offset, length) is read from the same disk as the
// pack, and ReadRecord allocated `length` bytes before looking at the file —
// a damaged row claiming a 4 GiB record made every Get allocate 4 GiB (the
// target ran 5 inputs a second at 756 MB RSS). Now the length is checked
// against the file first: kCorruption, nothing allocated.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>

#include "../../imaging/src/pack_file.h"
#include "sparetime/base/bytes.h"
#include "sparetime/base/env.h"
#include "sparetime/base/fd.h"
#include "sparetime/imaging/repository_config.h"

namespace sparetime {
namespace {

// The pack_file target's input: u64 offset, u32 length (the index row), then
// the pack: its header and one record of 60 bytes.
std::vector<std::byte> PackFileInput(uint64_t offset, uint32_t length) {
  std::vector<std::byte> in;
  AppendLe64(in, offset);
  AppendLe32(in, length);
  auto header = EncodePackHeader();
  in.insert(in.end(), header.begin(), header.end());
  ChunkId id;
  id.bytes.fill(std::byte{0x5a});
  auto record = EncodeRecord(id, std::vector<std::byte>(60, std::byte{0x11}));
  in.insert(in.end(), record.begin(), record.end());
  return in;
}

Fd MemFile(std::span<const std::byte> bytes) {
  Fd fd(::memfd_create("pack", MFD_CLOEXEC));
  EXPECT_TRUE(fd.valid());
  EXPECT_EQ(::write(fd.get(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  return fd;
}

// What the harness does with the claimed location.
Status ReplayClaimedRead(const std::vector<std::byte>& in) {
  const uint64_t offset = GetLe64(in.data());
  const uint32_t length = GetLe32(in.data() + 8);
  std::span<const std::byte> pack = std::span(in).subspan(12);
  Fd fd = MemFile(pack);
  ChunkId id;
  std::memcpy(id.bytes.data(), pack.data() + kPackHeaderSize + 8, ChunkId::kSize);
  RecordLocation loc{"fuzz.pack", offset, length, {}};
  return ReadRecord(*Env::Default(), fd.get(), id, loc, BlobCheck::kHeaderOnly).status();
}

[[noreturn]] void ReplayUnderMemoryLimit() {
  rlimit limit{512u << 20, 512u << 20};
  ::setrlimit(RLIMIT_AS, &limit);
  Status s = ReplayClaimedRead(PackFileInput(kPackHeaderSize, 0xFFFFFFF0u));
  bool ok = s.code() == ErrorCode::kCorruption &&
            s.message().find("the pack file ends inside the record") != std::string::npos;
  std::_Exit(ok ? 0 : 1);
}

TEST(FuzzRegressionTest, PackRecordLengthBeyondTheFileIsDamageNotAnAllocation) {
  // Under a 512 MiB address-space limit, the old code's 4 GiB buffer threw
  // std::bad_alloc (the child died); the fixed code answers kCorruption.
  EXPECT_EXIT(ReplayUnderMemoryLimit(), ::testing::ExitedWithCode(0), "");
}

TEST(FuzzRegressionTest, PackRecordClaimsCheckedExactly) {
  // The real record reads; one byte more, an offset past the end, or an
  // offset whose sum with the length wraps, is damage.
  EXPECT_TRUE(ReplayClaimedRead(PackFileInput(kPackHeaderSize, 60)).ok());
  EXPECT_EQ(ReplayClaimedRead(PackFileInput(kPackHeaderSize, 61)).code(), ErrorCode::kCorruption);
  EXPECT_EQ(ReplayClaimedRead(PackFileInput(1u << 30, 60)).code(), ErrorCode::kCorruption);
  EXPECT_EQ(ReplayClaimedRead(PackFileInput(UINT64_MAX - 10, 60)).code(), ErrorCode::kCorruption);
}

// repository_config's crasher (repository_config-crash-279cadc6…, the same
// class as the status target's): a chunk size of 1.05e127 went through
// get<uint32_t>() — undefined behaviour.
TEST(FuzzRegressionTest, RepositoryConfigNumberAsFloatIsDamage) {
  Result<RepositoryConfig> c = RepositoryConfigFromJson(
      R"({"chunk_size": 10486666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666577, "format": "sparetime-repository", "version": 1, "zstd_level": 3})",
      "sparetime-repository", "config");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), ErrorCode::kCorruption);
  EXPECT_NE(c.status().message().find("config: \"chunk_size\" is not an integer"), std::string::npos)
      << c.status().message();
}

}  // namespace
}  // namespace sparetime
