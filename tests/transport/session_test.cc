// Sessions over real sockets (socketpairs, TCP on 127.0.0.1, and a relay in
// the middle that tampers with, replays, reorders, trickles or cuts the
// stream): handshakes and refusals, frame attacks, limits, deadlines,
// disconnects, and no descriptor leaks over many sessions.
#include "sparetime/transport/session.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <new>
#include <optional>
#include <thread>

#include "sparetime/base/bytes.h"
#include "sparetime/transport/frame.h"
#include "sparetime/transport/net.h"
#include "testutil/testutil.h"
#include "transport/relay.h"

// The largest single allocation while `g_track_allocations` is set: proves a
// forged length prefix is refused before a buffer of that size is made.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
static std::atomic<bool> g_track_allocations{false};
static std::atomic<size_t> g_largest_allocation{0};
void* operator new(size_t n) {
  if (g_track_allocations.load(std::memory_order_relaxed)) {
    size_t prev = g_largest_allocation.load();
    while (n > prev && !g_largest_allocation.compare_exchange_weak(prev, n)) {
    }
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace sparetime::transport {
namespace {

using std::chrono::milliseconds;
using testing::RandomBytes;
using testing::Relay;
using testing::SocketPair;
using Clock = std::chrono::steady_clock;

Status AllowAll(const PublicKey&) { return Status::Ok(); }

SessionOptions Fast() {
  SessionOptions o;
  o.handshake_timeout = milliseconds(2000);
  o.io_timeout = milliseconds(2000);
  return o;
}

struct Pair {
  Result<Session> initiator;
  Result<Session> responder;
};

Pair Establish(Fd a, Fd b, const Identity& alice, const Identity& bob, const PublicKey& expected,
               const Authorizer& authorize, SessionOptions options = Fast()) {
  std::optional<Result<Session>> responder;
  std::thread t([&] { responder.emplace(Session::Accept(std::move(b), bob, authorize, options)); });
  Result<Session> initiator = Session::Connect(std::move(a), alice, expected, options);
  t.join();
  return {std::move(initiator), std::move(*responder)};
}

Pair EstablishVia(Relay& relay, const Identity& alice, const Identity& bob,
                  SessionOptions options = Fast()) {
  return Establish(relay.TakeInitiatorEnd(), relay.TakeResponderEnd(), alice, bob,
                   bob.public_key(), AllowAll, options);
}

class SessionTest : public ::testing::Test {
 protected:
  Identity alice_ = Identity::Generate();
  Identity bob_ = Identity::Generate();
};

TEST_F(SessionTest, HandshakeAndMessagesBothWaysOverASocketpair) {
  for (bool alice_initiates : {true, false}) {
    auto [a, b] = SocketPair();
    const Identity& init = alice_initiates ? alice_ : bob_;
    const Identity& resp = alice_initiates ? bob_ : alice_;
    Pair p = Establish(std::move(a), std::move(b), init, resp, resp.public_key(), AllowAll);
    ASSERT_TRUE(p.initiator.ok()) << p.initiator.error().ToString();
    ASSERT_TRUE(p.responder.ok()) << p.responder.error().ToString();
    EXPECT_EQ(p.initiator->peer_key(), resp.public_key());
    EXPECT_EQ(p.responder->peer_key(), init.public_key());
    EXPECT_EQ(p.initiator->transcript_hash(), p.responder->transcript_hash());
    EXPECT_EQ(p.initiator->peer_name(), "local socket");

    ASSERT_TRUE(p.initiator->Send(AsBytes("ping")).ok());
    auto got = p.responder->Receive();
    ASSERT_TRUE(got.ok() && got->has_value());
    EXPECT_EQ(**got, std::vector<std::byte>(AsBytes("ping").begin(), AsBytes("ping").end()));
    ASSERT_TRUE(p.responder->Send({}).ok());  // empty messages are fine
    auto empty = p.initiator->Receive();
    ASSERT_TRUE(empty.ok() && empty->has_value());
    EXPECT_TRUE((*empty)->empty());

    ASSERT_TRUE(p.initiator->Close().ok());
    auto end = p.responder->Receive();
    ASSERT_TRUE(end.ok()) << end.error().ToString();
    EXPECT_FALSE(end->has_value()) << "a clean Close() reads as end of session";
    EXPECT_EQ(p.initiator->Send(AsBytes("late")).code(), ErrorCode::kFailedPrecondition);
  }
}

TEST_F(SessionTest, TcpLoopbackCarriesMaximalMessagesBothWays) {
  auto listener = ListenTcp("127.0.0.1", 0);
  ASSERT_TRUE(listener.ok()) << listener.error().ToString();
  uint16_t port = *LocalPort(*listener);
  std::optional<Result<Session>> server;
  std::thread t([&] {
    auto conn = AcceptTcp(*listener, milliseconds(5000));
    if (!conn.ok()) return server.emplace(conn.error()), void();
    server.emplace(Session::Accept(std::move(*conn), bob_, AllowAll, Fast()));
  });
  auto conn = ConnectTcp("127.0.0.1", port, milliseconds(5000));
  ASSERT_TRUE(conn.ok()) << conn.error().ToString();
  auto client = Session::Connect(std::move(*conn), alice_, bob_.public_key(), Fast());
  t.join();
  ASSERT_TRUE(client.ok()) << client.error().ToString();
  ASSERT_TRUE(server->ok()) << server->error().ToString();
  EXPECT_EQ(client->peer_name(), "127.0.0.1:" + std::to_string(port));

  auto big = RandomBytes(kMaxMessageSize, 77);
  // Both directions at once: on each side one thread sends while another receives.
  std::optional<Result<std::optional<std::vector<std::byte>>>> at_server, at_client;
  std::thread server_sender([&] { EXPECT_TRUE((*server)->Send(big).ok()); });
  std::thread server_receiver([&] { at_server.emplace((*server)->Receive()); });
  std::thread client_receiver([&] { at_client.emplace(client->Receive()); });
  EXPECT_TRUE(client->Send(big).ok());
  for (auto* t : {&server_sender, &server_receiver, &client_receiver}) t->join();
  ASSERT_TRUE(at_server->ok() && (*at_server)->has_value()) << at_server->status().ToString();
  ASSERT_TRUE(at_client->ok() && (*at_client)->has_value()) << at_client->status().ToString();
  EXPECT_EQ(***at_server, big);
  EXPECT_EQ(***at_client, big);
  auto too_big = client->Send(std::vector<std::byte>(kMaxMessageSize + 1));
  EXPECT_EQ(too_big.code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(client->Send(AsBytes("still usable")).ok());
  EXPECT_TRUE((*server)->Receive().ok());
}

TEST_F(SessionTest, InitiatorRefusesAResponderWithTheWrongKey) {
  Identity mallory = Identity::Generate();
  auto [a, b] = SocketPair();
  Pair p = Establish(std::move(a), std::move(b), alice_, mallory, bob_.public_key(), AllowAll);
  ASSERT_FALSE(p.initiator.ok());
  EXPECT_EQ(p.initiator.error().code(), ErrorCode::kAuthFailed);
  EXPECT_NE(p.initiator.error().message().find("handshake with local socket"), std::string::npos);
  EXPECT_NE(p.initiator.error().message().find(mallory.public_key().ToBase64()), std::string::npos);
  ASSERT_FALSE(p.responder.ok());
  EXPECT_EQ(p.responder.error().code(), ErrorCode::kAuthFailed);
}

TEST_F(SessionTest, ResponderRefusesAnUnauthorisedInitiator) {
  auto [a, b] = SocketPair();
  Pair p = Establish(std::move(a), std::move(b), alice_, bob_, bob_.public_key(),
                     [](const PublicKey&) { return NotFound("no agent with this key"); });
  ASSERT_FALSE(p.responder.ok());
  EXPECT_EQ(p.responder.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(p.responder.error().message().find("no agent with this key"), std::string::npos);
  ASSERT_FALSE(p.initiator.ok());
  EXPECT_EQ(p.initiator.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(p.initiator.error().message().find("not authorised"), std::string::npos);
}

TEST_F(SessionTest, TamperedHandshakeMessagesFailBothSides) {
  // Flip one byte in the middle of each handshake message on the wire.
  for (int direction = 0; direction < 2; ++direction) {
    for (size_t target = 0; target < 2; ++target) {
      Relay::Edit flip = [&](size_t index, std::vector<std::byte>& unit, const Relay::Send& send) {
        if (index == target) unit[2 + (unit.size() - 2) / 2] ^= std::byte{0x04};
        send(unit);
        return true;
      };
      Relay relay(direction == 0 ? flip : nullptr, direction == 1 ? flip : nullptr);
      Pair p = EstablishVia(relay, alice_, bob_);
      EXPECT_FALSE(p.initiator.ok()) << "direction " << direction << " message " << target;
      EXPECT_FALSE(p.responder.ok() && p.initiator.ok());
    }
  }
}

// A relay edit that applies `fn` to frames only (units from index 2 on).
Relay::Edit OnFrames(std::function<bool(size_t frame, std::vector<std::byte>&, const Relay::Send&)> fn) {
  return [fn](size_t index, std::vector<std::byte>& unit, const Relay::Send& send) {
    if (index < 2) return send(unit), true;
    return fn(index - 2, unit, send);
  };
}

TEST_F(SessionTest, TamperedFrameKillsTheSessionOnly) {
  Relay relay(OnFrames([](size_t frame, std::vector<std::byte>& unit, const Relay::Send& send) {
                if (frame == 1) unit[unit.size() - 3] ^= std::byte{1};
                send(unit);
                return true;
              }),
              nullptr);
  Pair p = EstablishVia(relay, alice_, bob_);
  ASSERT_TRUE(p.initiator.ok() && p.responder.ok());
  ASSERT_TRUE(p.initiator->Send(AsBytes("one")).ok());
  ASSERT_TRUE(p.initiator->Send(AsBytes("two")).ok());
  EXPECT_TRUE(p.responder->Receive().ok());
  auto bad = p.responder->Receive();
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kCorruption);
  EXPECT_NE(bad.error().message().find("frame 1 failed authentication"), std::string::npos);
  // Sticky: the stream position is lost, the session stays failed.
  EXPECT_EQ(p.responder->Receive().error().code(), ErrorCode::kFailedPrecondition);
}

TEST_F(SessionTest, ReplayedAndReorderedFramesAreRejected) {
  {  // frame 0 delivered twice
    Relay relay(OnFrames([](size_t frame, std::vector<std::byte>& unit, const Relay::Send& send) {
                  send(unit);
                  if (frame == 0) send(unit);
                  return true;
                }),
                nullptr);
    Pair p = EstablishVia(relay, alice_, bob_);
    ASSERT_TRUE(p.initiator.ok() && p.responder.ok());
    ASSERT_TRUE(p.initiator->Send(AsBytes("pay 10")).ok());
    EXPECT_TRUE(p.responder->Receive().ok());
    EXPECT_EQ(p.responder->Receive().error().code(), ErrorCode::kCorruption);
  }
  {  // frames 0 and 1 swapped
    std::vector<std::byte> held;
    Relay relay(OnFrames([&](size_t frame, std::vector<std::byte>& unit, const Relay::Send& send) {
                  if (frame == 0) return held = unit, true;
                  send(unit);
                  if (frame == 1) send(held);
                  return true;
                }),
                nullptr);
    Pair p = EstablishVia(relay, alice_, bob_);
    ASSERT_TRUE(p.initiator.ok() && p.responder.ok());
    ASSERT_TRUE(p.initiator->Send(AsBytes("first")).ok());
    ASSERT_TRUE(p.initiator->Send(AsBytes("second")).ok());
    EXPECT_EQ(p.responder->Receive().error().code(), ErrorCode::kCorruption);
  }
}

TEST_F(SessionTest, OversizedLengthPrefixIsRefusedWithoutAllocatingIt) {
  Relay relay(OnFrames([](size_t, std::vector<std::byte>&, const Relay::Send& send) {
                const std::byte forged[] = {std::byte{0xff}, std::byte{0xff}, std::byte{0xff},
                                            std::byte{0x7f}, std::byte{0}};
                send(forged);
                return true;
              }),
              nullptr);
  Pair p = EstablishVia(relay, alice_, bob_);
  ASSERT_TRUE(p.initiator.ok() && p.responder.ok());
  ASSERT_TRUE(p.initiator->Send(AsBytes("x")).ok());
  g_largest_allocation = 0;
  g_track_allocations = true;
  auto r = p.responder->Receive();
  g_track_allocations = false;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kCorruption);
  EXPECT_NE(r.error().message().find("2147483647"), std::string::npos) << r.error().message();
  EXPECT_LT(g_largest_allocation.load(), size_t{64} << 10);
}

TEST_F(SessionTest, GarbageInsteadOfAHandshakeIsRefusedQuickly) {
  auto [a, b] = SocketPair();
  std::string http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_TRUE(WriteFull(a.get(), AsBytes(http)).ok());
  auto start = Clock::now();
  auto r = Session::Accept(std::move(b), bob_, AllowAll, Fast());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kCorruption);
  EXPECT_NE(r.error().message().find("not a sparetime/1 peer"), std::string::npos);
  EXPECT_LT(Clock::now() - start, milliseconds(500));
}

TEST_F(SessionTest, SlowLorisHandshakeIsCutAtTheDeadline) {
  auto [a, b] = SocketPair();
  std::vector<std::byte> hello =
      InitiatorHandshake(alice_, bob_.public_key(), EphemeralKey::Generate()).Hello();
  hello.insert(hello.begin(), {std::byte(hello.size()), std::byte{0}});
  std::atomic<bool> stop{false};
  // &a = a: clang 14 cannot capture a structured binding implicitly.
  std::thread trickler([&, &a = a] {  // one byte per 100 ms, bounded by the message
    for (size_t i = 0; i < hello.size() && !stop; ++i) {
      if (::send(a.get(), &hello[i], 1, MSG_NOSIGNAL) != 1) break;
      std::this_thread::sleep_for(milliseconds(100));
    }
  });
  SessionOptions o = Fast();
  o.handshake_timeout = milliseconds(300);
  auto start = Clock::now();
  auto r = Session::Accept(std::move(b), bob_, AllowAll, o);
  auto took = Clock::now() - start;
  stop = true;
  trickler.join();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message().find("timed out after 300 ms"), std::string::npos)
      << r.error().message();
  EXPECT_GE(took, milliseconds(290));
  EXPECT_LT(took, milliseconds(1500));
}

TEST_F(SessionTest, SlowLorisFrameIsCutAtTheDeadline) {
  std::atomic<bool> stop{false};
  Relay relay(OnFrames([&](size_t, std::vector<std::byte>& unit, const Relay::Send& send) {
                for (size_t i = 0; i < unit.size() && !stop; ++i) {
                  send(std::span<const std::byte>(unit).subspan(i, 1));
                  std::this_thread::sleep_for(milliseconds(100));
                }
                return !stop;
              }),
              nullptr);
  Pair p = EstablishVia(relay, alice_, bob_);
  ASSERT_TRUE(p.initiator.ok() && p.responder.ok());
  ASSERT_TRUE(p.initiator->Send(RandomBytes(64, 1)).ok());
  auto start = Clock::now();
  auto r = p.responder->Receive(milliseconds(300));
  auto took = Clock::now() - start;
  stop = true;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message().find("timed out"), std::string::npos) << r.error().message();
  EXPECT_GE(took, milliseconds(290));
  EXPECT_LT(took, milliseconds(1500));
}

TEST_F(SessionTest, PeerClosingMidFrameOrWithoutEndFrameIsUnavailable) {
  {  // the relay forwards half a frame and hangs up
    Relay relay(OnFrames([](size_t, std::vector<std::byte>& unit, const Relay::Send& send) {
                  send(std::span<const std::byte>(unit).first(unit.size() / 2));
                  return false;
                }),
                nullptr);
    Pair p = EstablishVia(relay, alice_, bob_);
    ASSERT_TRUE(p.initiator.ok() && p.responder.ok());
    ASSERT_TRUE(p.initiator->Send(RandomBytes(1000, 2)).ok());
    auto r = p.responder->Receive();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
    EXPECT_NE(r.error().message().find("closed the connection during a frame body"),
              std::string::npos)
        << r.error().message();
  }
  {  // the initiator goes away without Close(): a truncated session
    auto [a, b] = SocketPair();
    Pair p = Establish(std::move(a), std::move(b), alice_, bob_, bob_.public_key(), AllowAll);
    ASSERT_TRUE(p.initiator.ok() && p.responder.ok());
    { Session gone = std::move(p.initiator).value(); }
    auto r = p.responder->Receive();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
  }
}

TEST_F(SessionTest, OneBadPeerDoesNotDisturbAnotherSession) {
  auto [a, b] = SocketPair();
  Pair good = Establish(std::move(a), std::move(b), alice_, bob_, bob_.public_key(), AllowAll);
  ASSERT_TRUE(good.initiator.ok() && good.responder.ok());
  {
    auto [x, y] = SocketPair();
    ASSERT_TRUE(WriteFull(x.get(), RandomBytes(300, 3)).ok());
    EXPECT_FALSE(Session::Accept(std::move(y), bob_, AllowAll, Fast()).ok());
  }
  ASSERT_TRUE(good.initiator->Send(AsBytes("still here")).ok());
  auto r = good.responder->Receive();
  ASSERT_TRUE(r.ok() && r->has_value());
}

size_t OpenDescriptors() {
  size_t n = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

TEST_F(SessionTest, ManySessionsLeakNoDescriptors) {
  auto listener = ListenTcp("127.0.0.1", 0);
  ASSERT_TRUE(listener.ok());
  uint16_t port = *LocalPort(*listener);
  const size_t before = OpenDescriptors();
  for (int i = 0; i < 150; ++i) {
    const bool tcp = i % 3 == 0;
    const bool refuse = i % 5 == 0;
    Fd a, b;
    if (tcp) {
      auto c = ConnectTcp("127.0.0.1", port, milliseconds(2000));
      ASSERT_TRUE(c.ok()) << c.error().ToString();
      auto s = AcceptTcp(*listener, milliseconds(2000));
      ASSERT_TRUE(s.ok()) << s.error().ToString();
      a = std::move(*c);
      b = std::move(*s);
    } else {
      std::tie(a, b) = SocketPair();
    }
    Pair p = Establish(std::move(a), std::move(b), alice_, bob_, bob_.public_key(),
                       refuse ? Authorizer([](const PublicKey&) { return NotFound("no"); })
                              : Authorizer(AllowAll));
    ASSERT_EQ(p.initiator.ok(), !refuse) << i;
    if (refuse) continue;
    ASSERT_TRUE(p.initiator->Send(AsBytes("hi")).ok());
    ASSERT_TRUE(p.responder->Receive().ok());
    if (i % 2 == 0) {
      ASSERT_TRUE(p.initiator->Close().ok());
    }
  }
  EXPECT_EQ(OpenDescriptors(), before);
}

}  // namespace
}  // namespace sparetime::transport
