// PeerServer against strangers (issue 26, defect 3), over real TCP on the
// loopback network: the whole of 127/8 is local, so connections bound to
// 127.0.0.2, .3, … come from distinct source addresses while the real peers
// connect from 127.0.0.1. Idle and trickling connections from one address
// get at most max_pending_per_address handshakes; floods from many
// addresses evict the oldest pending handshake; authenticated peers keep
// getting sessions throughout; a handshake past its deadline has its socket
// closed at once; refusals make one immediate line and one summary line;
// the server's threads stay bounded.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "sparetime/base/fd.h"
#include "sparetime/peer/peer_client.h"
#include "sparetime/peer/peer_server.h"
#include "sparetime/peerstore/peer_store.h"
#include "testutil/agent_process.h"
#include "testutil/testutil.h"

namespace sparetime::peer {
namespace {

using std::chrono::milliseconds;
using transport::Identity;

// A TCP connection to 127.0.0.1:port from `source` (an address of 127/8).
Fd ConnectFrom(const std::string& source, uint16_t port) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_TRUE(fd.valid());
  sockaddr_in local{};
  local.sin_family = AF_INET;
  ::inet_pton(AF_INET, source.c_str(), &local.sin_addr);
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof local), 0) << source;
  sockaddr_in remote{};
  remote.sin_family = AF_INET;
  remote.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr);
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&remote), sizeof remote), 0) << source;
  return fd;
}

// True when the server has closed `fd` (EOF or reset) within `timeout`.
bool ClosedWithin(const Fd& fd, milliseconds timeout) {
  pollfd p{fd.get(), POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
  char c;
  ssize_t n = ::recv(fd.get(), &c, 1, MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

size_t CountOpen(const std::vector<Fd>& fds) {
  size_t open = 0;
  for (const Fd& fd : fds) open += ClosedWithin(fd, milliseconds(0)) ? 0 : 1;
  return open;
}

size_t ThreadCount() {
  size_t n = 0;
  DIR* d = ::opendir("/proc/self/task");
  while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
  ::closedir(d);
  return n;
}

size_t CountLines(const std::string& log, const std::string& needle) {
  size_t n = 0;
  for (size_t at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1)) ++n;
  return n;
}

class PeerPreauthTest : public ::testing::Test {
 protected:
  void Start(PeerServerOptions o) {
    auto store = peerstore::PeerStore::Open(dir_ / "held", {64 << 20, 8 << 20});
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    o.listen_address = "127.0.0.1";
    o.port = 0;
    o.log = [this](const std::string& line) {
      std::lock_guard l(log_mu_);
      log_ += line + "\n";
    };
    auto lookup = [this](const transport::PublicKey& key) -> Result<std::string> {
      if (key == alpha_.public_key()) return std::string("alpha");
      return Status(ErrorCode::kPermissionDenied, "key " + key.ToBase64() + " is not in the directory");
    };
    auto server = PeerServer::Start(server_id_, *store_, lookup, o);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
  }

  // alpha connects, and a request is answered.
  bool PeerServed() {
    PeerEndpoint e{"server", "127.0.0.1", server_->port(), server_id_.public_key()};
    auto c = PeerClient::Connect(e, alpha_);
    if (!c.ok()) {
      ADD_FAILURE() << c.status().ToString() << "\n" << Log();
      return false;
    }
    auto stats = (*c)->Stats();
    EXPECT_TRUE(stats.ok()) << stats.status().ToString();
    return stats.ok();
  }

  std::string Log() {
    std::lock_guard l(log_mu_);
    return log_;
  }

  testing::TempDir dir_;
  Identity server_id_ = Identity::Generate();
  Identity alpha_ = Identity::Generate();
  std::unique_ptr<peerstore::PeerStore> store_;
  std::unique_ptr<PeerServer> server_;
  std::mutex log_mu_;
  std::string log_;
};

TEST_F(PeerPreauthTest, IdleAndTricklingFloodFromOneAddressLeavesPeersServed) {
  PeerServerOptions o;
  o.max_sessions = 4;
  o.max_pending = 16;
  o.max_pending_per_address = 3;
  o.handshake_timeout = milliseconds(1500);
  o.refusal_log_interval = std::chrono::minutes(10);  // summarised at Stop
  ASSERT_NO_FATAL_FAILURE(Start(o));
  const size_t threads_before = ThreadCount();

  std::vector<Fd> idle;
  for (int i = 0; i < 50; ++i) idle.push_back(ConnectFrom("127.0.0.2", server_->port()));
  ASSERT_TRUE(testing::WaitUntil([&] { return server_->sessions_refused() == 47; }, milliseconds(5000)))
      << server_->sessions_refused();
  EXPECT_EQ(server_->pending_connections(), 3u);
  EXPECT_EQ(CountOpen(idle), 3u);  // the 47 others were closed at once

  // Trickling from another address: one byte every 100 ms per connection.
  std::atomic<bool> stop{false};
  std::vector<Fd> trickle;
  for (int i = 0; i < 10; ++i) {
    trickle.push_back(ConnectFrom("127.0.0.3", server_->port()));
    // A plausible length prefix (a 64-byte HELLO), then its bytes one by one.
    (void)::send(trickle.back().get(), "\x40\x00", 2, MSG_NOSIGNAL);  // may be refused already
  }
  std::thread trickler([&] {
    while (!stop.load()) {
      for (const Fd& fd : trickle) (void)::send(fd.get(), "\x01", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      std::this_thread::sleep_for(milliseconds(100));
    }
  });
  ASSERT_TRUE(testing::WaitUntil([&] { return server_->sessions_refused() == 47 + 7; }, milliseconds(5000)))
      << server_->sessions_refused();
  EXPECT_EQ(server_->pending_connections(), 6u);

  // Peers get sessions all along, one after another and two at once.
  EXPECT_TRUE(PeerServed());
  EXPECT_TRUE(PeerServed());
  // 6 handshakes, this test's trickler, at most 1 session unwinding.
  EXPECT_LE(ThreadCount(), threads_before + 6 + 1 + 1);

  // Past the handshake deadline every pending socket is closed, without any
  // further connection arriving to wake the accept loop.
  auto deadline = std::chrono::steady_clock::now() + milliseconds(1500 + 1500);
  for (const Fd& fd : idle) {
    EXPECT_TRUE(ClosedWithin(fd, std::chrono::duration_cast<milliseconds>(
                                     deadline - std::chrono::steady_clock::now())));
  }
  stop.store(true);
  trickler.join();
  for (const Fd& fd : trickle) EXPECT_TRUE(ClosedWithin(fd, milliseconds(1500)));
  EXPECT_TRUE(testing::WaitUntil([&] { return server_->pending_connections() == 0; }, milliseconds(2000)));
  EXPECT_EQ(server_->sessions_served(), 2u);
  // 47 + 7 over the limit, 6 handshakes timed out.
  EXPECT_EQ(server_->sessions_refused(), 60u);

  server_->Stop();
  std::string log = Log();
  // One line at once (the first refusal), one summary of the other 59.
  EXPECT_EQ(CountLines(log, "\n"), 2u) << log;
  EXPECT_EQ(CountLines(log, "further refusals in the next 600 s are summarised"), 1u) << log;
  EXPECT_NE(log.find("refused 59 more connections in the last 600 s: 53 over the per-address limit "
                     "of pending handshakes"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("6 handshake failed or timed out"), std::string::npos) << log;
  EXPECT_NE(log.find("from 127.0.0.2 (49), 127.0.0.3 (10)"), std::string::npos) << log;
}

TEST_F(PeerPreauthTest, FloodFromManyAddressesEvictsOldestAndPeersStillGetIn) {
  PeerServerOptions o;
  o.max_pending = 4;
  o.max_pending_per_address = 2;
  o.handshake_timeout = milliseconds(10'000);
  o.refusal_log_interval = std::chrono::minutes(1);
  ASSERT_NO_FATAL_FAILURE(Start(o));
  const size_t threads_before = ThreadCount();

  std::vector<Fd> flood;
  for (int i = 0; i < 12; ++i) {
    flood.push_back(ConnectFrom("127.0.1." + std::to_string(i + 1), server_->port()));
    // In order: each eviction takes the oldest. (Wait for the evicted
    // handshake's thread to end: while max_pending evicted ones are still
    // unwinding, a new connection is refused instead, the thread bound.)
    ASSERT_TRUE(testing::WaitUntil(
        [&] {
          return server_->pending_connections() == std::min<size_t>(i + 1, 4) &&
                 server_->sessions_refused() == static_cast<uint64_t>(std::max(i - 3, 0)) &&
                 ThreadCount() <= threads_before + 4;
        },
        milliseconds(3000)));
  }
  ASSERT_TRUE(testing::WaitUntil([&] { return server_->sessions_refused() == 8; }, milliseconds(3000)));
  // The first 8 were evicted, the last 4 are still pending.
  for (int i = 0; i < 8; ++i) EXPECT_TRUE(ClosedWithin(flood[i], milliseconds(2000))) << i;
  for (int i = 8; i < 12; ++i) EXPECT_FALSE(ClosedWithin(flood[i], milliseconds(0))) << i;
  EXPECT_LE(ThreadCount(), threads_before + 4 + 4);

  // A peer takes the place of the oldest pending stranger.
  EXPECT_TRUE(PeerServed());
  EXPECT_TRUE(ClosedWithin(flood[8], milliseconds(2000)));
  EXPECT_EQ(server_->sessions_refused(), 9u);
  EXPECT_EQ(server_->sessions_served(), 1u);

  server_->Stop();
  EXPECT_NE(Log().find("refused 8 more connections in the last 60 s: 8 evicted (all pending slots taken)"),
            std::string::npos)
      << Log();
  EXPECT_EQ(CountLines(Log(), "\n"), 2u) << Log();
}

TEST_F(PeerPreauthTest, SummaryComesAtTheEndOfEachIntervalWithoutNewConnections) {
  PeerServerOptions o;
  o.max_pending_per_address = 1;
  o.refusal_log_interval = milliseconds(400);
  ASSERT_NO_FATAL_FAILURE(Start(o));
  std::vector<Fd> held;
  for (int i = 0; i < 4; ++i) held.push_back(ConnectFrom("127.0.0.5", server_->port()));
  ASSERT_TRUE(testing::WaitUntil([&] { return server_->sessions_refused() == 3; }, milliseconds(3000)));
  // The first at once; the other two in the summary, which the accept loop
  // writes once the interval is over, with no connection arriving.
  EXPECT_TRUE(testing::WaitUntil(
      [&] { return Log().find("refused 2 more connections in the last 0.4 s: 2 over the per-address") !=
                   std::string::npos; },
      milliseconds(3000)))
      << Log();
  EXPECT_EQ(CountLines(Log(), "\n"), 2u) << Log();
  EXPECT_NE(Log().find("from 127.0.0.5 (2)"), std::string::npos) << Log();
}

TEST_F(PeerPreauthTest, AuthenticatedPeerOverMaxSessionsIsRefusedAfterHandshake) {
  PeerServerOptions o;
  o.max_sessions = 1;
  ASSERT_NO_FATAL_FAILURE(Start(o));
  PeerEndpoint e{"server", "127.0.0.1", server_->port(), server_id_.public_key()};
  auto first = PeerClient::Connect(e, alpha_);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE((*first)->Stats().ok());
  EXPECT_EQ(server_->open_sessions(), 1u);
  auto second = PeerClient::Connect(e, alpha_);
  if (second.ok()) {
    EXPECT_FALSE((*second)->Stats().ok());
  }
  EXPECT_TRUE(testing::WaitUntil([&] { return server_->sessions_refused() == 1; }, milliseconds(3000)));
  EXPECT_NE(Log().find("1 sessions already running"), std::string::npos) << Log();
  first->reset();
  EXPECT_TRUE(testing::WaitUntil([&] { return server_->open_sessions() == 0; }, milliseconds(3000)));
  EXPECT_TRUE(PeerServed());
}

}  // namespace
}  // namespace sparetime::peer
