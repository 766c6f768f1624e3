#include "sparetime/base/fd.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "sparetime/base/bytes.h"
#include "testutil/testutil.h"

namespace sparetime {
namespace {

using testing::TempDir;

TEST(Fd, OpenIsCloseOnExec) {
  TempDir tmp;
  auto fd = OpenFile(tmp / "f", O_RDWR | O_CREAT);
  ASSERT_TRUE(fd.ok());
  EXPECT_TRUE(::fcntl(fd->get(), F_GETFD) & FD_CLOEXEC);
  EXPECT_TRUE(fd->Close().ok());
  EXPECT_FALSE(fd->valid());
}

TEST(Fd, MissingFileIsNotFoundAndNamesThePath) {
  auto fd = OpenFile("/nonexistent/sparetime", O_RDONLY);
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(fd.error().message().find("/nonexistent/sparetime"), std::string::npos);
}

TEST(Fd, PositionalReadAndWrite) {
  TempDir tmp;
  auto fd = OpenFile(tmp / "f", O_RDWR | O_CREAT);
  ASSERT_TRUE(fd.ok());
  std::vector<std::byte> data = testing::RandomBytes(100000, 1);
  ASSERT_TRUE(WriteFullAt(fd->get(), data, 5).ok());
  std::vector<std::byte> back(100010);
  auto n = ReadFullAt(fd->get(), back, 0);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 100005u);  // short only at end of file
  EXPECT_TRUE(std::equal(data.begin(), data.end(), back.begin() + 5));
}

TEST(Fd, WriteFileAtomicReplaces) {
  TempDir tmp;
  ASSERT_TRUE(WriteFileAtomic(tmp / "cfg", "one", 0600).ok());
  ASSERT_TRUE(WriteFileAtomic(tmp / "cfg", "two", 0600).ok());
  auto text = ReadFileToString(tmp / "cfg");
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "two");
  struct stat sb;
  ASSERT_EQ(::stat((tmp / "cfg").c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0600u);
}

TEST(Fd, MakeDirsNested) {
  TempDir tmp;
  EXPECT_TRUE(MakeDirs(tmp / "a/b/c").ok());
  EXPECT_TRUE(MakeDirs(tmp / "a/b/c").ok());
  ASSERT_TRUE(WriteFileAtomic(tmp / "file", "x").ok());
  EXPECT_EQ(MakeDirs(tmp / "file").code(), ErrorCode::kAlreadyExists);
}

TEST(Bytes, HexRoundTrip) {
  std::vector<std::byte> b = {std::byte{0x00}, std::byte{0xab}, std::byte{0xff}};
  EXPECT_EQ(ToHex(b), "00abff");
  EXPECT_EQ(*FromHex("00ABff"), b);
  EXPECT_FALSE(FromHex("abc").has_value());
  EXPECT_FALSE(FromHex("zz").has_value());
}

TEST(Bytes, LittleEndian) {
  std::vector<std::byte> out;
  AppendLe32(out, 0x01020304);
  AppendLe64(out, 0x1122334455667788ull);
  EXPECT_EQ(ToHex(out), "040302018877665544332211");
  EXPECT_EQ(GetLe32(out.data()), 0x01020304u);
  EXPECT_EQ(GetLe64(out.data() + 4), 0x1122334455667788ull);
}

}  // namespace
}  // namespace sparetime
