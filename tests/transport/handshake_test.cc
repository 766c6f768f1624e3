// The handshake state machines in memory: success, refusals on both sides,
// every single-byte tamper of every message, version and name mismatches,
// hostile ephemeral keys, misuse.
#include "sparetime/transport/handshake.h"

#include <gtest/gtest.h>

#include <cstring>

namespace sparetime::transport {
namespace {

Status AllowAll(const PublicKey&) { return Status::Ok(); }

struct Outcome {
  Status initiator;
  Status responder;
  std::optional<SessionKeys> initiator_keys;
  std::optional<SessionKeys> responder_keys;
};

// Runs a whole handshake in memory. `mutate(index, message)` may alter
// message `index` (0 = HELLO .. 3 = ACCEPT) on its way; a side that fails
// sends its REJECT (if any) to the other, as the socket driver does.
Outcome RunHandshake(const Identity& init_id, const Identity& resp_id, const PublicKey& expected,
            const Authorizer& authorize,
            const std::function<void(int, std::vector<std::byte>&)>& mutate = nullptr) {
  Outcome out;
  InitiatorHandshake init(init_id, expected, EphemeralKey::Generate());
  ResponderHandshake resp(resp_id, EphemeralKey::Generate());
  auto pass = [&](int index, std::vector<std::byte> m) {
    if (mutate) mutate(index, m);
    return m;
  };
  auto r2 = resp.OnHello(pass(0, init.Hello()));
  if (!r2.ok()) {
    out.responder = r2.error();
    out.initiator = init.OnResponse(resp.RejectionFor(r2.error())).status();
    return out;
  }
  auto r3 = init.OnResponse(pass(1, *r2));
  if (!r3.ok()) {
    out.initiator = r3.error();
    out.responder = resp.OnFinish(init.RejectionFor(r3.error()), authorize).status();
    return out;
  }
  auto r4 = resp.OnFinish(pass(2, *r3), authorize);
  if (!r4.ok()) {
    out.responder = r4.error();
    out.initiator = init.OnAccept(resp.RejectionFor(r4.error())).status();
    return out;
  }
  out.responder_keys = resp.TakeKeys();
  auto keys = init.OnAccept(pass(3, *r4));
  if (!keys.ok()) {
    out.initiator = keys.error();
    return out;
  }
  out.initiator_keys = std::move(keys).value();
  return out;
}

bool SameKey(const SecretBuffer& a, const SecretBuffer& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size()) == 0;
}

TEST(HandshakeTest, BothSidesAgreeOnKeysAndLearnEachOther) {
  Identity alice = Identity::Generate(), bob = Identity::Generate();
  std::optional<PublicKey> seen;
  Outcome o = RunHandshake(alice, bob, bob.public_key(), [&](const PublicKey& k) {
    seen = k;
    return Status::Ok();
  });
  ASSERT_TRUE(o.initiator.ok()) << o.initiator.ToString();
  ASSERT_TRUE(o.responder.ok()) << o.responder.ToString();
  ASSERT_TRUE(o.initiator_keys && o.responder_keys);
  EXPECT_EQ(seen, alice.public_key());
  EXPECT_EQ(o.initiator_keys->peer, bob.public_key());
  EXPECT_EQ(o.responder_keys->peer, alice.public_key());
  EXPECT_TRUE(SameKey(o.initiator_keys->send_key, o.responder_keys->recv_key));
  EXPECT_TRUE(SameKey(o.initiator_keys->recv_key, o.responder_keys->send_key));
  EXPECT_FALSE(SameKey(o.initiator_keys->send_key, o.initiator_keys->recv_key));
  EXPECT_EQ(o.initiator_keys->transcript_hash, o.responder_keys->transcript_hash);

  // Fresh ephemeral keys: the next session has different keys.
  Outcome again = RunHandshake(alice, bob, bob.public_key(), AllowAll);
  ASSERT_TRUE(again.initiator_keys);
  EXPECT_FALSE(SameKey(o.initiator_keys->send_key, again.initiator_keys->send_key));
}

TEST(HandshakeTest, InitiatorRefusesAResponderWithAnotherKey) {
  Identity alice = Identity::Generate(), bob = Identity::Generate(), mallory = Identity::Generate();
  Outcome o = RunHandshake(alice, mallory, bob.public_key(), AllowAll);
  EXPECT_EQ(o.initiator.code(), ErrorCode::kAuthFailed);
  EXPECT_NE(o.initiator.message().find(mallory.public_key().ToBase64()), std::string::npos);
  EXPECT_NE(o.initiator.message().find(bob.public_key().ToBase64()), std::string::npos);
  EXPECT_EQ(o.responder.code(), ErrorCode::kAuthFailed);
  EXPECT_NE(o.responder.message().find("peer refused"), std::string::npos);
}

TEST(HandshakeTest, ResponderRefusesAnUnauthorisedInitiator) {
  Identity alice = Identity::Generate(), bob = Identity::Generate();
  Outcome o = RunHandshake(alice, bob, bob.public_key(), [](const PublicKey&) {
    return NotFound("key is not in the directory");
  });
  EXPECT_EQ(o.responder.code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(o.responder.message().find(alice.public_key().ToBase64()), std::string::npos);
  EXPECT_NE(o.responder.message().find("not in the directory"), std::string::npos);
  EXPECT_EQ(o.initiator.code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(o.initiator.message().find("not authorised"), std::string::npos);
}

TEST(HandshakeTest, ResponderWithoutAuthoriserFailsClosed) {
  Identity alice = Identity::Generate(), bob = Identity::Generate();
  Outcome o = RunHandshake(alice, bob, bob.public_key(), Authorizer());
  EXPECT_EQ(o.responder.code(), ErrorCode::kPermissionDenied);
  EXPECT_FALSE(o.initiator.ok());
}

TEST(HandshakeTest, EveryFlippedByteOfEveryMessageIsDetected) {
  Identity alice = Identity::Generate(), bob = Identity::Generate();
  const size_t sizes[] = {46, 146, 114, 18};  // documented message sizes
  for (int index = 0; index < 4; ++index) {
    for (size_t pos = 0; pos < sizes[index]; ++pos) {
      Outcome o = RunHandshake(alice, bob, bob.public_key(), AllowAll,
                      [&](int i, std::vector<std::byte>& m) {
                        ASSERT_EQ(m.size(), sizes[i]);
                        if (i == index) m[pos] ^= std::byte{0x01};
                      });
      EXPECT_FALSE(o.initiator.ok() && o.initiator_keys)
          << "flip in message " << index << " byte " << pos << " went unnoticed";
      EXPECT_FALSE(o.initiator.ok()) << "message " << index << " byte " << pos;
    }
  }
}

TEST(HandshakeTest, UnsupportedVersionAndProtocolNameAreRefusedClearly) {
  Identity alice = Identity::Generate(), bob = Identity::Generate();
  Outcome v = RunHandshake(alice, bob, bob.public_key(), AllowAll, [](int i, std::vector<std::byte>& m) {
    if (i == 0) m[0] = std::byte{2};
  });
  EXPECT_EQ(v.responder.code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(v.responder.message().find("version 2"), std::string::npos) << v.responder.message();
  EXPECT_EQ(v.initiator.code(), ErrorCode::kFailedPrecondition);

  Outcome n = RunHandshake(alice, bob, bob.public_key(), AllowAll, [](int i, std::vector<std::byte>& m) {
    if (i == 0) m[3 + 10] = std::byte{'2'};  // "sparetime/2"
  });
  EXPECT_EQ(n.responder.code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(n.responder.message().find("'sparetime/2'"), std::string::npos);
}

TEST(HandshakeTest, LowOrderEphemeralKeyIsRefused) {
  Identity alice = Identity::Generate(), bob = Identity::Generate();
  Outcome o = RunHandshake(alice, bob, bob.public_key(), AllowAll, [](int i, std::vector<std::byte>& m) {
    if (i == 0) std::fill(m.end() - 32, m.end(), std::byte{0});
  });
  EXPECT_EQ(o.responder.code(), ErrorCode::kAuthFailed);
  EXPECT_NE(o.responder.message().find("low-order"), std::string::npos);
}

TEST(HandshakeTest, MalformedMessagesAreCorruptionNotCrashes) {
  Identity alice = Identity::Generate(), bob = Identity::Generate();
  std::vector<std::byte> hello =
      InitiatorHandshake(alice, bob.public_key(), EphemeralKey::Generate()).Hello();
  std::vector<std::byte> long_hello = hello;
  long_hello.push_back(std::byte{0});
  for (std::vector<std::byte> m :
       {std::vector<std::byte>{}, std::vector<std::byte>{std::byte{1}},
        std::vector<std::byte>{std::byte{1}, std::byte{1}},
        std::vector<std::byte>{std::byte{1}, std::byte{3}, std::byte{0}},
        std::vector<std::byte>(hello.begin(), hello.end() - 1), long_hello}) {
    ResponderHandshake resp(bob, EphemeralKey::Generate());
    auto r = resp.OnHello(m);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kCorruption) << r.error().ToString();
  }
}

TEST(HandshakeTest, StepsOutOfOrderAreRefused) {
  Identity alice = Identity::Generate(), bob = Identity::Generate();
  InitiatorHandshake init(alice, bob.public_key(), EphemeralKey::Generate());
  EXPECT_EQ(init.OnAccept({}).error().code(), ErrorCode::kInternal);
  ResponderHandshake resp(bob, EphemeralKey::Generate());
  EXPECT_EQ(resp.OnFinish({}, AllowAll).error().code(), ErrorCode::kInternal);
  // A failed machine stays failed.
  ASSERT_FALSE(resp.OnHello({}).ok());
  EXPECT_EQ(resp.OnHello(init.Hello()).error().code(), ErrorCode::kInternal);
}

}  // namespace
}  // namespace sparetime::transport
