// Sealed frames in memory: round trip, tampering, replay, reordering,
// cross-direction frames, header limits.
#include "sparetime/transport/frame.h"

#include <gtest/gtest.h>

#include "sparetime/base/bytes.h"
#include "sparetime/base/fd.h"
#include "testutil/testutil.h"

namespace sparetime::transport {
namespace {

using testing::RandomBytes;

SecretBuffer Key(uint8_t fill) {
  SecretBuffer key(32);
  std::fill(key.data(), key.data() + 32, std::byte{fill});
  return key;
}

struct Split {
  std::array<std::byte, kFrameHeaderSize> header;
  std::vector<std::byte> body;
};
Split SplitFrame(const std::vector<std::byte>& frame) {
  Split s;
  std::copy_n(frame.begin(), kFrameHeaderSize, s.header.begin());
  s.body.assign(frame.begin() + kFrameHeaderSize, frame.end());
  return s;
}

Result<Frame> OpenWhole(FrameOpener& opener, const std::vector<std::byte>& frame) {
  Split s = SplitFrame(frame);
  return opener.Open(s.header, s.body);
}

TEST(FrameTest, RoundTripWithIncreasingSequence) {
  FrameSealer sealer(Key(7));
  FrameOpener opener(Key(7));
  for (size_t size : {size_t{0}, size_t{1}, size_t{1000}, size_t{1} << 20}) {
    auto payload = RandomBytes(size, size);
    auto frame = sealer.Seal(FrameKind::kMessage, payload);
    ASSERT_TRUE(frame.ok());
    EXPECT_EQ(frame->size(), kFrameHeaderSize + size + kFrameTagSize);
    EXPECT_EQ(GetLe32(frame->data()), size + kFrameTagSize);
    auto opened = OpenWhole(opener, *frame);
    ASSERT_TRUE(opened.ok()) << opened.error().ToString();
    EXPECT_EQ(opened->kind, FrameKind::kMessage);
    EXPECT_EQ(opened->payload, payload);
  }
  EXPECT_EQ(sealer.next_sequence(), 4u);
  EXPECT_EQ(opener.next_sequence(), 4u);
  auto end = sealer.Seal(FrameKind::kEnd, {});
  ASSERT_TRUE(end.ok());
  auto opened = OpenWhole(opener, *end);
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(opened->kind, FrameKind::kEnd);
}

TEST(FrameTest, MaximumMessageFitsAndOneMoreByteIsRefused) {
  FrameSealer sealer(Key(1));
  std::vector<std::byte> max(kMaxMessageSize);
  EXPECT_TRUE(sealer.Seal(FrameKind::kMessage, max).ok());
  max.push_back(std::byte{0});
  auto r = sealer.Seal(FrameKind::kMessage, max);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(sealer.Seal(FrameKind::kEnd, max).error().code(), ErrorCode::kInvalidArgument);
}

TEST(FrameTest, EveryFlippedByteIsRejected) {
  FrameSealer sealer(Key(3));
  auto frame = *sealer.Seal(FrameKind::kMessage, RandomBytes(40, 1));
  for (size_t pos = 0; pos < frame.size(); ++pos) {
    auto bad = frame;
    bad[pos] ^= std::byte{0x80};
    FrameOpener opener(Key(3));
    Split s = SplitFrame(bad);
    auto r = opener.Open(s.header, s.body);
    ASSERT_FALSE(r.ok()) << "flip at byte " << pos;
    EXPECT_EQ(r.error().code(), ErrorCode::kCorruption);
    EXPECT_EQ(opener.next_sequence(), 0u);
  }
}

TEST(FrameTest, ReplayedReorderedAndForeignFramesAreRejected) {
  FrameSealer sealer(Key(5));
  auto f0 = *sealer.Seal(FrameKind::kMessage, AsBytes("zero"));
  auto f1 = *sealer.Seal(FrameKind::kMessage, AsBytes("one"));
  {
    FrameOpener opener(Key(5));
    ASSERT_TRUE(OpenWhole(opener, f0).ok());
    auto replay = OpenWhole(opener, f0);
    ASSERT_FALSE(replay.ok());
    EXPECT_NE(replay.error().message().find("replayed"), std::string::npos);
    EXPECT_TRUE(OpenWhole(opener, f1).ok());  // the stream itself is intact
  }
  {
    FrameOpener opener(Key(5));
    EXPECT_FALSE(OpenWhole(opener, f1).ok()) << "frame 1 accepted before frame 0";
  }
  {
    FrameOpener other_direction(Key(6));
    EXPECT_FALSE(OpenWhole(other_direction, f0).ok());
  }
}

TEST(FrameTest, HeaderLimitsAreCheckedBeforeTheBody) {
  auto header = [](uint32_t length, uint8_t kind) {
    std::array<std::byte, kFrameHeaderSize> h;
    PutLe32(h.data(), length);
    h[4] = std::byte{kind};
    return h;
  };
  EXPECT_TRUE(ParseFrameHeader(header(16, 0)).ok());
  EXPECT_EQ(*ParseFrameHeader(header(kMaxFrameBody, 0)), kMaxFrameBody);
  for (auto [length, kind] : {std::pair<uint32_t, uint8_t>{15, 0}, {0, 0},
                              {kMaxFrameBody + 1, 0}, {0xffffffffu, 0}, {16, 2}, {17, 1}}) {
    auto r = ParseFrameHeader(header(length, kind));
    ASSERT_FALSE(r.ok()) << length << "/" << int(kind);
    EXPECT_EQ(r.error().code(), ErrorCode::kCorruption);
  }
  FrameOpener opener(Key(9));
  EXPECT_EQ(opener.Open(header(20, 0), std::vector<std::byte>(19)).error().code(),
            ErrorCode::kCorruption);
}

}  // namespace
}  // namespace sparetime::transport
