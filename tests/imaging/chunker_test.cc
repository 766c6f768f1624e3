#include "sparetime/imaging/chunker.h"

#include <gtest/gtest.h>

#include <vector>

namespace sparetime {
namespace {

TEST(Chunker, AllowedSizes) {
  for (uint64_t s = 64 << 10; s <= 4 << 20; s <<= 1) EXPECT_TRUE(ValidateChunkSize(s).ok()) << s;
  for (uint64_t s : {0ull, 32768ull, 65537ull, 3ull << 20, 8ull << 20}) {
    Status st = ValidateChunkSize(s);
    EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument) << s;
    EXPECT_NE(st.message().find("power of two"), std::string::npos);
  }
}

TEST(Chunker, ExtentsCoverTheImageExactly) {
  FixedChunker c(10 * 65536 + 100, 65536);
  ASSERT_EQ(c.count(), 11u);
  uint64_t next = 0;
  for (uint64_t i = 0; i < c.count(); ++i) {
    ChunkExtent e = c.At(i);
    EXPECT_EQ(e.index, i);
    EXPECT_EQ(e.offset, next);
    next += e.length;
  }
  EXPECT_EQ(next, 10u * 65536 + 100);
  EXPECT_EQ(c.At(10).length, 100u);
  EXPECT_EQ(FixedChunker(0, 65536).count(), 0u);
  EXPECT_EQ(FixedChunker(65536, 65536).count(), 1u);
}

TEST(Chunker, ZeroDetection) {
  std::vector<std::byte> buf(1 << 20);
  EXPECT_TRUE(IsAllZero(buf));
  EXPECT_TRUE(IsAllZero(std::span(buf).first(0)));
  EXPECT_TRUE(IsAllZero(std::span(buf).first(7)));
  for (size_t pos : {size_t{0}, size_t{15}, size_t{16}, size_t{17}, size_t{4095},
                     buf.size() - 1}) {
    buf[pos] = std::byte{1};
    EXPECT_FALSE(IsAllZero(buf)) << pos;
    buf[pos] = std::byte{0};
  }
  buf[5] = std::byte{1};
  EXPECT_FALSE(IsAllZero(std::span(buf).first(7)));
}

}  // namespace
}  // namespace sparetime
