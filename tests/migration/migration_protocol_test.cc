// The migration messages of sparetime/1 (docs/protocol.md, "Migration"):
// round trips, the exact layout of MigrateRestore, and strict decoding.
#include <gtest/gtest.h>

#include "sparetime/transport/messages.h"

namespace sparetime::transport {
namespace {

ChunkId Id(uint8_t b) {
  ChunkId id;
  id.bytes.fill(std::byte{b});
  return id;
}

Message RoundTrip(const Message& m) {
  auto bytes = EncodeMessage(m);
  EXPECT_TRUE(bytes.ok()) << bytes.error().ToString();
  auto back = DecodeMessage(*bytes);
  EXPECT_TRUE(back.ok()) << back.error().ToString();
  EXPECT_EQ(back->request_id, m.request_id);
  return *back;
}

TEST(MigrationProtocolTest, MessagesRoundTrip) {
  auto has = RoundTrip({7, MigrateHasChunksRequest{{Id(1), Id(2)}}});
  ASSERT_TRUE(std::holds_alternative<MigrateHasChunksRequest>(has.body));
  EXPECT_EQ(std::get<MigrateHasChunksRequest>(has.body).ids[1], Id(2));

  auto put = RoundTrip({8, MigratePutChunksRequest{{{Id(3), {std::byte{9}, std::byte{8}}}}}});
  ASSERT_TRUE(std::holds_alternative<MigratePutChunksRequest>(put.body));
  EXPECT_EQ(std::get<MigratePutChunksRequest>(put.body).chunks[0].sealed.size(), 2u);

  auto restore = RoundTrip({9, MigrateRestoreRequest{std::vector<std::byte>(32, std::byte{5}), {Id(4)}}});
  ASSERT_TRUE(std::holds_alternative<MigrateRestoreRequest>(restore.body));
  EXPECT_EQ(std::get<MigrateRestoreRequest>(restore.body).key[31], std::byte{5});
  EXPECT_EQ(std::get<MigrateRestoreRequest>(restore.body).index[0], Id(4));

  auto reply = RoundTrip({9, MigrateRestoreReply{4242}});
  ASSERT_TRUE(std::holds_alternative<MigrateRestoreReply>(reply.body));
  EXPECT_EQ(std::get<MigrateRestoreReply>(reply.body).pid, 4242u);
  EXPECT_EQ(MessageName(0x22), "MigrateRestore (0x22)");
}

TEST(MigrationProtocolTest, MigrateRestoreLayout) {
  auto bytes = EncodeMessage({1, MigrateRestoreRequest{std::vector<std::byte>(32, std::byte{0xaa}), {Id(0xbb)}}});
  ASSERT_TRUE(bytes.ok());
  // type, request id, key (32), u32 count, ids.
  ASSERT_EQ(bytes->size(), 5u + 32 + 4 + 32);
  EXPECT_EQ((*bytes)[0], std::byte{0x22});
  EXPECT_EQ((*bytes)[5], std::byte{0xaa});
  EXPECT_EQ((*bytes)[37], std::byte{1});
  EXPECT_EQ((*bytes)[41], std::byte{0xbb});
  auto reply = EncodeMessage({1, MigrateRestoreReply{0x01020304}});
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(*reply, (std::vector<std::byte>{std::byte{0xa2}, std::byte{1}, std::byte{0}, std::byte{0}, std::byte{0},
                                            std::byte{4}, std::byte{3}, std::byte{2}, std::byte{1}}));
}

TEST(MigrationProtocolTest, BadKeysCountsAndTruncationAreRefused) {
  auto short_key = EncodeMessage({1, MigrateRestoreRequest{std::vector<std::byte>(16), {}}});
  ASSERT_FALSE(short_key.ok());
  EXPECT_EQ(short_key.error().code(), ErrorCode::kInvalidArgument);
  auto too_many = EncodeMessage({1, MigrateRestoreRequest{std::vector<std::byte>(32), std::vector<ChunkId>(1025)}});
  ASSERT_FALSE(too_many.ok());
  EXPECT_NE(too_many.error().message().find("split"), std::string::npos);

  auto bytes = EncodeMessage({1, MigrateRestoreRequest{std::vector<std::byte>(32), {Id(1)}}});
  ASSERT_TRUE(bytes.ok());
  bytes->pop_back();
  auto cut = DecodeMessage(*bytes);
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.error().code(), ErrorCode::kCorruption);
  bytes->push_back(std::byte{0});
  bytes->push_back(std::byte{0});
  auto trailing = DecodeMessage(*bytes);
  ASSERT_FALSE(trailing.ok());
}

}  // namespace
}  // namespace sparetime::transport
