// TCP helpers on 127.0.0.1: connect/accept, refusals and timeouts as
// kUnavailable, a busy port named in the error, peer addresses.
#include "sparetime/transport/net.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <chrono>

namespace sparetime::transport {
namespace {

using std::chrono::milliseconds;

TEST(NetTest, ConnectAcceptAndPeerAddresses) {
  auto listener = ListenTcp("127.0.0.1", 0);
  ASSERT_TRUE(listener.ok()) << listener.error().ToString();
  auto port = LocalPort(*listener);
  ASSERT_TRUE(port.ok());
  EXPECT_NE(*port, 0);
  auto client = ConnectTcp("127.0.0.1", *port, milliseconds(2000));
  ASSERT_TRUE(client.ok()) << client.error().ToString();
  auto server = AcceptTcp(*listener, milliseconds(2000));
  ASSERT_TRUE(server.ok()) << server.error().ToString();
  EXPECT_EQ(PeerAddress(client->get()), "127.0.0.1:" + std::to_string(*port));
  EXPECT_EQ(PeerAddress(server->get()).rfind("127.0.0.1:", 0), 0u);
  EXPECT_EQ(PeerAddress(listener->get()), "unconnected socket");
  char c = 'x';
  ASSERT_EQ(::send(client->get(), &c, 1, MSG_NOSIGNAL), 1);
  char got = 0;
  ASSERT_EQ(::recv(server->get(), &got, 1, 0), 1);
  EXPECT_EQ(got, 'x');
}

TEST(NetTest, RefusedConnectionsAndIdleListenersAreUnavailable) {
  uint16_t port;
  {
    auto listener = ListenTcp("127.0.0.1", 0);
    ASSERT_TRUE(listener.ok());
    port = *LocalPort(*listener);
  }  // closed: nothing listens there now
  auto refused = ConnectTcp("127.0.0.1", port, milliseconds(2000));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(refused.error().message().find("127.0.0.1:" + std::to_string(port)), std::string::npos);

  auto listener = ListenTcp("127.0.0.1", 0);
  ASSERT_TRUE(listener.ok());
  auto start = std::chrono::steady_clock::now();
  auto none = AcceptTcp(*listener, milliseconds(100));
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), ErrorCode::kUnavailable);
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(95));
}

TEST(NetTest, BusyPortAndBadAddressAreNamed) {
  auto first = ListenTcp("127.0.0.1", 0);
  ASSERT_TRUE(first.ok());
  uint16_t port = *LocalPort(*first);
  auto second = ListenTcp("127.0.0.1", port);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message().find("127.0.0.1:" + std::to_string(port)), std::string::npos);
  auto bad = ListenTcp("not-an-address", 0);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("not-an-address"), std::string::npos);
}

}  // namespace
}  // namespace sparetime::transport
