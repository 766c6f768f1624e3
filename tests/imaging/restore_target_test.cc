// RestoreTarget on regular files: sparse creation, O_DIRECT and the page
// cache, Reserve, hole punching, size checks and permissions (block devices:
// tests/integration/device_loop_test.cc). Split from device_test.cc.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>

#include "sparetime/base/fd.h"
#include "sparetime/imaging/device.h"
#include "testutil/testutil.h"

namespace sparetime {
namespace {

namespace fs = std::filesystem;
using testing::RandomBytes;
using testing::RunAsNobody;
using testing::ReadFileOrDie;
using testing::TempDir;
using testing::WriteFileOrDie;

std::vector<std::byte> Slice(const std::vector<std::byte>& v, size_t off, size_t len) {
  return {v.begin() + off, v.begin() + off + len};
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
  // A directory is a bad target (exit code 5), not a bad command line (issue 26).
  EXPECT_EQ(dir.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(dir.error().message().find("is a directory"), std::string::npos);
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
