// Message codec: round trips of every message type, a byte-exact layout
// check against docs/protocol.md, and malformed input of every kind
// (truncation at every length, trailing bytes, forged counts and lengths,
// bad enums, bad text) on the decoder, and limits on the encoder.
#include "sparetime/transport/messages.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "sparetime/base/bytes.h"
#include "sparetime/transport/frame.h"
#include "testutil/testutil.h"

namespace sparetime::transport {
namespace {

using testing::RandomBytes;

ChunkId Id(uint8_t fill) {
  ChunkId id;
  id.bytes.fill(std::byte{fill});
  return id;
}

// A migration key in sodium memory holding `bytes`.
SecretBuffer Key(const std::vector<std::byte>& bytes) {
  EXPECT_TRUE(InitCrypto().ok());
  SecretBuffer key(bytes.size());
  std::copy(bytes.begin(), bytes.end(), key.data());
  return key;
}

std::vector<Message> Samples() {
  std::vector<Message> v;
  auto add = [&](MessageBody body) { v.push_back(Message{uint32_t(v.size() * 7 + 1), std::move(body)}); };
  add(HasChunksRequest{"alpha", {Id(1), Id(2), Id(3)}});
  add(HasChunksRequest{"", {}});
  add(PutChunksRequest{{{Id(4), RandomBytes(100, 4)}, {Id(5), {}}}});
  add(GetChunkRequest{"host-1.example_b", Id(6)});
  add(ReleaseChunksRequest{{Id(7)}});
  add(PutRootsRequest{42, RandomBytes(300, 8)});
  add(GetRootsRequest{"beta"});
  add(PutWrappedKeyRequest{RandomBytes(180, 9)});
  add(GetWrappedKeyRequest{""});
  add(GetStatsRequest{});
  add(OkReply{});
  add(HasChunksReply{{true, false, true, true, false, false, false, false, true}});
  add(PutChunksReply{{Status::Ok(), NoSpace("quota of 10 GiB for owner alpha is full")}});
  add(ChunkReply{RandomBytes(5000, 10)});
  add(ReleaseChunksReply{12});
  add(RootsReply{43, RandomBytes(10, 11)});
  add(WrappedKeyReply{RandomBytes(90, 12)});
  add(StatsReply{1, 2, 3, 4});
  add(ErrorReply{NotFound("no chunk 0a0a0a0a for owner alpha")});
  add(MigrateHasChunksRequest{{Id(13), Id(14)}});
  add(MigratePutChunksRequest{{{Id(15), RandomBytes(64, 15)}}});
  add(MigrateRestoreRequest{Key(RandomBytes(32, 16)), {Id(17), Id(18)}});
  add(MigrateRestoreReply{4242});
  add(HoldSnapshotRequest{"alpha", "3f9a0c", 120});
  add(MigrateCheckRequest{true, {"alice", "alice", "root", "alice"}, {"staff", "staff", "staff", "staff"}, {"audio"}});
  add(ListChunksRequest{"alpha", true, ChunkId{}});
  add(ListChunksRequest{"beta", false, Id(19)});
  add(ChunkListReply{{Id(20), Id(21)}});
  add(CaretakerPutChunksRequest{"alpha", {{Id(22), RandomBytes(70, 22)}}});
  return v;
}

TEST(MessagesTest, EveryTypeRoundTripsByteForByte) {
  std::set<MessageType> seen;
  for (const Message& m : Samples()) {
    seen.insert(TypeOf(m.body));
    auto bytes = EncodeMessage(m);
    ASSERT_TRUE(bytes.ok()) << bytes.error().ToString();
    EXPECT_EQ(static_cast<uint8_t>((*bytes)[0]), static_cast<uint8_t>(TypeOf(m.body)));
    auto back = DecodeMessage(*bytes);
    ASSERT_TRUE(back.ok()) << MessageName(uint8_t(TypeOf(m.body))) << ": "
                           << back.error().ToString();
    EXPECT_EQ(back->request_id, m.request_id);
    EXPECT_EQ(back->body.index(), m.body.index());
    auto again = EncodeMessage(*back);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again, *bytes) << MessageName(uint8_t(TypeOf(m.body)));
  }
  EXPECT_EQ(seen.size(), std::variant_size_v<MessageBody>);
}

TEST(MessagesTest, CaretakerMessagesKeepTheirFields) {
  auto list = DecodeMessage(*EncodeMessage({3, ListChunksRequest{"alpha", false, Id(9)}}));
  ASSERT_TRUE(list.ok());
  const auto& l = std::get<ListChunksRequest>(list->body);
  EXPECT_EQ(l.owner, "alpha");
  EXPECT_FALSE(l.from_start);
  EXPECT_EQ(l.after, Id(9));
  auto put = DecodeMessage(
      *EncodeMessage({4, CaretakerPutChunksRequest{"gamma", {{Id(1), RandomBytes(10, 1)}}}}));
  ASSERT_TRUE(put.ok());
  const auto& p = std::get<CaretakerPutChunksRequest>(put->body);
  EXPECT_EQ(p.owner, "gamma");
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(p.chunks[0].sealed, RandomBytes(10, 1));
  // A from_start flag other than 0 or 1 is refused.
  std::vector<std::byte> bytes = *EncodeMessage({5, ListChunksRequest{"a", true, Id(2)}});
  bytes[5 + 1 + 1] = std::byte{2};  // header, owner length, "a"
  EXPECT_EQ(DecodeMessage(bytes).status().code(), ErrorCode::kCorruption);
}

TEST(MessagesTest, FieldsSurviveTheRoundTrip) {
  auto put = DecodeMessage(*EncodeMessage({9, PutChunksReply{{Status::Ok(), NoSpace("full")}}}));
  ASSERT_TRUE(put.ok());
  const auto& results = std::get<PutChunksReply>(put->body).results;
  ASSERT_EQ(results.size(), 2u);
  EXPECT_TRUE(results[0].ok());
  EXPECT_EQ(results[1].code(), ErrorCode::kNoSpace);
  EXPECT_EQ(results[1].message(), "full");

  auto has = DecodeMessage(*EncodeMessage({1, HasChunksReply{{true, false, true}}}));
  ASSERT_TRUE(has.ok());
  EXPECT_EQ(std::get<HasChunksReply>(has->body).present, (std::vector<bool>{true, false, true}));

  auto get = DecodeMessage(*EncodeMessage({2, GetChunkRequest{"alpha", Id(0xab)}}));
  ASSERT_TRUE(get.ok());
  EXPECT_EQ(std::get<GetChunkRequest>(get->body).owner, "alpha");
  EXPECT_EQ(std::get<GetChunkRequest>(get->body).id, Id(0xab));
}

TEST(MessagesTest, HoldSnapshotNamesAreCheckedOnBothSides) {
  auto hold = DecodeMessage(*EncodeMessage({3, HoldSnapshotRequest{"", "snap-1", 0}}));
  ASSERT_TRUE(hold.ok());
  EXPECT_EQ(std::get<HoldSnapshotRequest>(hold->body).snapshot, "snap-1");
  EXPECT_EQ(std::get<HoldSnapshotRequest>(hold->body).seconds, 0u);
  for (const std::string& bad : {std::string(), std::string("a b"), std::string(65, 'a')}) {
    auto encoded = EncodeMessage({3, HoldSnapshotRequest{"alpha", bad, 1}});
    ASSERT_FALSE(encoded.ok()) << bad;
    EXPECT_EQ(encoded.error().code(), ErrorCode::kInvalidArgument);
  }
  // A peer that sends one anyway: "0a" id owner "al" snapshot "a/b" seconds.
  std::vector<std::byte> raw;
  for (int b : std::initializer_list<int>{0x0a, 1, 0, 0, 0, 2, 'a', 'l', 3, 'a', '/', 'b', 1, 0, 0, 0}) raw.push_back(std::byte(b));
  auto decoded = DecodeMessage(raw);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.error().code(), ErrorCode::kCorruption);
  EXPECT_NE(decoded.error().message().find("held snapshot name"), std::string::npos)
      << decoded.error().message();
}

// The layouts docs/protocol.md shows as examples.
TEST(MessagesTest, LayoutMatchesTheSpecification) {
  EXPECT_EQ(ToHex(*EncodeMessage({0x01020304, GetChunkRequest{"alpha", Id(0x11)}})),
            "03" "04030201" "05" "616c706861" + std::string(64, '1'));
  EXPECT_EQ(ToHex(*EncodeMessage({7, HasChunksReply{{true, false, false, true, false, false,
                                                     false, false, false, true}}})),
            "81" "07000000" "0a000000" "0902");
  EXPECT_EQ(ToHex(*EncodeMessage({7, ErrorReply{NoSpace("full")}})),
            "ff" "07000000" "06" "0400" "66756c6c");
  EXPECT_EQ(ToHex(*EncodeMessage({5, PutRootsRequest{2, {std::byte{0xaa}}}})),
            "05" "05000000" "0200000000000000" "01000000" "aa");
  EXPECT_EQ(ToHex(*EncodeMessage({6, HoldSnapshotRequest{"alpha", "3f9a", 120}})),
            "0a" "06000000" "05" "616c706861" "04" "33663961" "78000000");
}

TEST(MessagesTest, EveryTruncationAndTrailingByteIsCorruption) {
  for (const Message& m : Samples()) {
    auto bytes = *EncodeMessage(m);
    for (size_t len = 0; len < bytes.size(); ++len) {
      auto r = DecodeMessage(std::span<const std::byte>(bytes).first(len));
      ASSERT_FALSE(r.ok()) << MessageName(uint8_t(bytes[0])) << " truncated to " << len;
      EXPECT_EQ(r.error().code(), ErrorCode::kCorruption);
    }
    bytes.push_back(std::byte{0});
    auto r = DecodeMessage(bytes);
    ASSERT_FALSE(r.ok()) << MessageName(uint8_t(bytes[0])) << " with a trailing byte";
    EXPECT_NE(r.error().message().find("trailing"), std::string::npos) << r.error().message();
  }
}

std::vector<std::byte> Raw(std::initializer_list<std::string_view> hex_parts) {
  std::string hex;
  for (auto p : hex_parts) hex += p;
  return *FromHex(hex);
}

void ExpectCorrupt(const std::vector<std::byte>& bytes, std::string_view needle) {
  auto r = DecodeMessage(bytes);
  ASSERT_FALSE(r.ok()) << ToHex(bytes);
  EXPECT_EQ(r.error().code(), ErrorCode::kCorruption);
  EXPECT_NE(r.error().message().find(needle), std::string::npos) << r.error().message();
}

TEST(MessagesTest, ForgedCountsAndLengthsAreRefusedWithoutAllocating) {
  // HasChunks, owner "", count 8193 (above the limit).
  ExpectCorrupt(Raw({"01", "00000000", "00", "01200000"}), "limit");
  // Count 8192 within the limit but only one id present: refused up front.
  ExpectCorrupt(Raw({"04", "00000000", "00200000", std::string(64, '0')}), "cannot fit");
  // PutChunks with count 0xffffffff.
  ExpectCorrupt(Raw({"02", "00000000", "ffffffff"}), "limit");
  // ChunkReply whose length is 4 GiB - 1.
  ExpectCorrupt(Raw({"83", "00000000", "ffffffff"}), "exceeds the limit");
  // ChunkReply claiming 10 bytes, carrying 2.
  ExpectCorrupt(Raw({"83", "00000000", "0a000000", "abcd"}), "truncated");
  // WrappedKeyReply above its 4 KiB limit.
  ExpectCorrupt(Raw({"88", "00000000", "01100000"}), "exceeds the limit");
}

TEST(MessagesTest, BadEnumsNamesTextsAndBitmapsAreRefused) {
  ExpectCorrupt(Raw({"42", "00000000"}), "unknown message type");
  ExpectCorrupt(Raw({}), "truncated");
  // Error reply with code 0 (OK) or beyond the table.
  ExpectCorrupt(Raw({"ff", "00000000", "00", "0000"}), "not a valid error");
  ExpectCorrupt(Raw({"ff", "00000000", "0d", "0000"}), "not a valid error");
  // PutChunksReply with an OK result that carries text (not canonical).
  ExpectCorrupt(Raw({"82", "00000000", "01000000", "00", "0100", "61"}), "OK result");
  // Error text with a control character (ESC).
  ExpectCorrupt(Raw({"ff", "00000000", "02", "0100", "1b"}), "control");
  // Error text above 1024 bytes.
  ExpectCorrupt(Raw({"ff", "00000000", "02", "0104"}), "limit");
  // Owner name with a space and with a slash.
  ExpectCorrupt(Raw({"06", "00000000", "03", "612062"}), "owner");
  ExpectCorrupt(Raw({"06", "00000000", "03", "612f62"}), "owner");
  // HasChunksReply of 3 answers with a bit set for a 4th.
  ExpectCorrupt(Raw({"81", "00000000", "03000000", "09"}), "beyond its count");
}

TEST(MessagesTest, EncoderEnforcesTheSameLimits) {
  auto expect_invalid = [](MessageBody body, std::string_view needle) {
    auto r = EncodeMessage({1, std::move(body)});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find(needle), std::string::npos) << r.error().message();
  };
  expect_invalid(HasChunksRequest{"", std::vector<ChunkId>(kMaxIdsPerBatch + 1)}, "split");
  expect_invalid(GetRootsRequest{"bad name"}, "not an agent name");
  expect_invalid(GetRootsRequest{std::string(256, 'a')}, "not an agent name");
  expect_invalid(ChunkReply{std::vector<std::byte>(kMaxSealedChunkSize + 1)}, "limit");
  expect_invalid(ErrorReply{Status::Ok()}, "not OK");
  PutChunksRequest two_big;
  two_big.chunks.push_back({Id(1), std::vector<std::byte>(kMaxSealedChunkSize)});
  two_big.chunks.push_back({Id(2), std::vector<std::byte>(kMaxSealedChunkSize)});
  expect_invalid(std::move(two_big), "message limit");

  // One maximal chunk fits in one message, and so in one frame.
  PutChunksRequest one_big;
  one_big.chunks.push_back({Id(1), std::vector<std::byte>(kMaxSealedChunkSize)});
  auto r = EncodeMessage({1, one_big});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->size(), kMessageHeaderSize + 4 + kPutChunkItemOverhead + kMaxSealedChunkSize);
  EXPECT_LE(r->size(), kMaxMessageSize);

  // Long error texts are cut, control characters replaced, never refused.
  auto long_error = EncodeMessage({1, ErrorReply{Internal(std::string(5000, 'x') + "\n")}});
  ASSERT_TRUE(long_error.ok());
  auto back = DecodeMessage(*long_error);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(std::get<ErrorReply>(back->body).status.message().size(), kMaxErrorText);
}

}  // namespace
}  // namespace sparetime::transport
