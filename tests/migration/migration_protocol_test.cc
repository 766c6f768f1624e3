// The migration messages of sparetime/1 (docs/protocol.md, "Migration"):
// round trips, the exact layout of MigrateRestore, strict decoding, and the
// key's path in sodium memory (wrong sizes refused, wire bytes wiped).
#include <gtest/gtest.h>

#include <algorithm>

#include "sparetime/migration/image_store.h"
#include "sparetime/transport/messages.h"

namespace sparetime::transport {
namespace {

ChunkId Id(uint8_t b) {
  ChunkId id;
  id.bytes.fill(std::byte{b});
  return id;
}

SecretBuffer Key(uint8_t fill, size_t size = kMigrationKeySize) {
  EXPECT_TRUE(InitCrypto().ok());
  SecretBuffer key(size);
  std::fill_n(key.data(), size, std::byte{fill});
  return key;
}

bool AllZero(std::span<const std::byte> b) {
  return std::all_of(b.begin(), b.end(), [](std::byte x) { return x == std::byte{0}; });
}

Message RoundTrip(const Message& m) {
  auto bytes = EncodeMessage(m);
  EXPECT_TRUE(bytes.ok()) << bytes.error().ToString();
  auto back = DecodeMessage(*bytes);
  EXPECT_TRUE(back.ok()) << back.error().ToString();
  EXPECT_EQ(back->request_id, m.request_id);
  return std::move(*back);
}

TEST(MigrationProtocolTest, MessagesRoundTrip) {
  auto has = RoundTrip({7, MigrateHasChunksRequest{{Id(1), Id(2)}}});
  ASSERT_TRUE(std::holds_alternative<MigrateHasChunksRequest>(has.body));
  EXPECT_EQ(std::get<MigrateHasChunksRequest>(has.body).ids[1], Id(2));

  auto put = RoundTrip({8, MigratePutChunksRequest{{{Id(3), {std::byte{9}, std::byte{8}}}}}});
  ASSERT_TRUE(std::holds_alternative<MigratePutChunksRequest>(put.body));
  EXPECT_EQ(std::get<MigratePutChunksRequest>(put.body).chunks[0].sealed.size(), 2u);

  auto restore = RoundTrip({9, MigrateRestoreRequest{Key(5), {Id(4)}}});
  ASSERT_TRUE(std::holds_alternative<MigrateRestoreRequest>(restore.body));
  const SecretBuffer& key = std::get<MigrateRestoreRequest>(restore.body).key;
  ASSERT_EQ(key.size(), kMigrationKeySize);
  EXPECT_EQ(key.data()[0], std::byte{5});
  EXPECT_EQ(key.data()[31], std::byte{5});
  EXPECT_EQ(std::get<MigrateRestoreRequest>(restore.body).index[0], Id(4));

  auto reply = RoundTrip({9, MigrateRestoreReply{4242}});
  ASSERT_TRUE(std::holds_alternative<MigrateRestoreReply>(reply.body));
  EXPECT_EQ(std::get<MigrateRestoreReply>(reply.body).pid, 4242u);
  EXPECT_EQ(MessageName(0x22), "MigrateRestore (0x22)");
}

// MigrateCheck: the credentials by name; bad names are refused on both sides.
TEST(MigrationProtocolTest, MigrateCheckCarriesNamesAndRefusesBadOnes) {
  MigrateCheckRequest check{true, {"alice", "alice", "root", "alice"}, {"staff", "staff", "staff", "staff"},
                            {"audio", "video"}};
  auto bytes = EncodeMessage({3, check});
  ASSERT_TRUE(bytes.ok()) << bytes.error().ToString();
  // type, request id, u8 privileged, 8 x (u8 length, name), u32 count, names.
  EXPECT_EQ((*bytes)[0], std::byte{0x23});
  EXPECT_EQ((*bytes)[5], std::byte{1});
  EXPECT_EQ((*bytes)[6], std::byte{5});
  EXPECT_EQ(bytes->size(), 5u + 1 + (1 + 5) * 3 + (1 + 4) + (1 + 5) * 4 + 4 + (1 + 5) * 2);
  auto back = DecodeMessage(*bytes);
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  const auto& m = std::get<MigrateCheckRequest>(back->body);
  EXPECT_TRUE(m.privileged);
  EXPECT_EQ(m.users, check.users);
  EXPECT_EQ(m.groups, check.groups);
  EXPECT_EQ(m.supplementary, check.supplementary);
  EXPECT_EQ(MessageName(0x23), "MigrateCheck (0x23)");

  for (const std::string& bad : {std::string(), std::string(256, 'a'), std::string("a\nb")}) {
    MigrateCheckRequest c = check;
    c.users[2] = bad;
    auto refused = EncodeMessage({3, c});
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code(), ErrorCode::kInvalidArgument);
  }
  MigrateCheckRequest many = check;
  many.supplementary.assign(kMaxMigrateGroups + 1, "g");
  EXPECT_FALSE(EncodeMessage({3, many}).ok());
  // A privileged byte other than 0/1, and a control character in a name.
  auto flipped = *bytes;
  flipped[5] = std::byte{2};
  EXPECT_EQ(DecodeMessage(flipped).error().code(), ErrorCode::kCorruption);
  flipped = *bytes;
  flipped[7] = std::byte{'\n'};
  EXPECT_EQ(DecodeMessage(flipped).error().code(), ErrorCode::kCorruption);
}

TEST(MigrationProtocolTest, MigrateRestoreLayout) {
  auto bytes = EncodeMessage({1, MigrateRestoreRequest{Key(0xaa), {Id(0xbb)}}});
  ASSERT_TRUE(bytes.ok());
  // type, request id, u32 count, ids, key (32) last.
  ASSERT_EQ(bytes->size(), 5u + 4 + 32 + 32);
  EXPECT_EQ((*bytes)[0], std::byte{0x22});
  EXPECT_EQ((*bytes)[5], std::byte{1});
  EXPECT_EQ((*bytes)[9], std::byte{0xbb});
  EXPECT_EQ((*bytes)[40], std::byte{0xbb});
  EXPECT_EQ((*bytes)[41], std::byte{0xaa});
  EXPECT_EQ((*bytes)[72], std::byte{0xaa});
  auto reply = EncodeMessage({1, MigrateRestoreReply{0x01020304}});
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(*reply, (std::vector<std::byte>{std::byte{0xa2}, std::byte{1}, std::byte{0}, std::byte{0}, std::byte{0},
                                            std::byte{4}, std::byte{3}, std::byte{2}, std::byte{1}}));
}

TEST(MigrationProtocolTest, BadKeysCountsAndTruncationAreRefused) {
  for (size_t size : {size_t{0}, size_t{16}, size_t{33}}) {
    auto bad_key = EncodeMessage({1, MigrateRestoreRequest{Key(1, size), {}}});
    ASSERT_FALSE(bad_key.ok()) << size;
    EXPECT_EQ(bad_key.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(bad_key.error().message().find("32 bytes, not " + std::to_string(size)), std::string::npos)
        << bad_key.error().message();
  }
  auto too_many = EncodeMessage({1, MigrateRestoreRequest{Key(1), std::vector<ChunkId>(1025)}});
  ASSERT_FALSE(too_many.ok());
  EXPECT_NE(too_many.error().message().find("split"), std::string::npos);
  // The largest allowed index fits one message.
  EXPECT_TRUE(EncodeMessage({1, MigrateRestoreRequest{Key(1), std::vector<ChunkId>(1024)}}).ok());

  auto bytes = EncodeMessage({1, MigrateRestoreRequest{Key(1), {Id(1)}}});
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

TEST(MigrationProtocolTest, WipeSecretsZeroesOnlyTheMessageThatCarriesTheKey) {
  auto restore = EncodeMessage({3, MigrateRestoreRequest{Key(0x5a), {Id(2)}}});
  ASSERT_TRUE(restore.ok());
  auto decoded = DecodeMessage(*restore);
  ASSERT_TRUE(decoded.ok());
  WipeSecrets(*restore);
  EXPECT_TRUE(AllZero(*restore));
  // The decoded key is its own copy: wiping the wire bytes leaves it intact.
  const SecretBuffer& key = std::get<MigrateRestoreRequest>(decoded->body).key;
  EXPECT_EQ(key.data()[17], std::byte{0x5a});

  auto has = EncodeMessage({4, MigrateHasChunksRequest{{Id(9)}}});
  ASSERT_TRUE(has.ok());
  const std::vector<std::byte> before = *has;
  WipeSecrets(*has);
  EXPECT_EQ(*has, before);
  std::vector<std::byte> empty;
  WipeSecrets(empty);  // no type byte: nothing to do
}

TEST(MigrationProtocolTest, MigrationKeyTakesOnlyA32ByteSecret) {
  auto key = migration::MigrationKey::FromSecret(Key(7));
  ASSERT_TRUE(key.ok()) << key.error().ToString();
  SecretBuffer copy = key->Secret();
  ASSERT_EQ(copy.size(), migration::MigrationKey::kSize);
  EXPECT_EQ(copy.data()[0], std::byte{7});
  // The same bytes make the same key (so the target opens the source's chunks).
  auto again = migration::MigrationKey::FromSecret(std::move(copy));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->Check(), key->Check());
  EXPECT_NE(migration::MigrationKey::FromSecret(Key(8))->Check(), key->Check());

  for (size_t size : {size_t{0}, size_t{31}, size_t{64}}) {
    auto bad = migration::MigrationKey::FromSecret(Key(7, size));
    ASSERT_FALSE(bad.ok()) << size;
    EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(bad.error().message().find("got " + std::to_string(size)), std::string::npos) << bad.error().message();
  }
}

}  // namespace
}  // namespace sparetime::transport
