// Test helper: a man in the middle for sessions. Two socketpairs joined by
// two threads that forward the stream unit by unit — the first two units in
// each direction are handshake messages (LE16 length), the rest are frames
// (LE32 length, kind, body) — and let a test edit, drop, repeat, reorder,
// trickle or cut any unit on its way.
#ifndef SPARETIME_TESTS_TRANSPORT_RELAY_H_
#define SPARETIME_TESTS_TRANSPORT_RELAY_H_

#include <sys/socket.h>

#include <cerrno>
#include <cstddef>
#include <functional>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include "sparetime/base/bytes.h"
#include "sparetime/base/fd.h"

namespace sparetime::testing {

inline std::pair<Fd, Fd> SocketPair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) std::abort();
  return {Fd(fds[0]), Fd(fds[1])};
}

class Relay {
 public:
  using Send = std::function<void(std::span<const std::byte>)>;
  // Called for every unit; sends what should go on (default: the unit).
  // Returning false cuts the connection in that direction after the call.
  using Edit = std::function<bool(size_t index, std::vector<std::byte>& unit, const Send& send)>;

  // `to_responder` edits the initiator's stream, `to_initiator` the other.
  Relay(Edit to_responder, Edit to_initiator) {
    auto [a_user, a_relay] = SocketPair();
    auto [b_user, b_relay] = SocketPair();
    initiator_end_ = std::move(a_user);
    responder_end_ = std::move(b_user);
    a_ = std::move(a_relay);
    b_ = std::move(b_relay);
    up_ = std::thread([this, e = std::move(to_responder)] { Pump(a_.get(), b_.get(), e); });
    down_ = std::thread([this, e = std::move(to_initiator)] { Pump(b_.get(), a_.get(), e); });
  }
  ~Relay() {
    ::shutdown(a_.get(), SHUT_RDWR);  // wakes both pumps
    ::shutdown(b_.get(), SHUT_RDWR);
    up_.join();
    down_.join();
  }
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  // The sockets the two sessions use (taken once each).
  Fd TakeInitiatorEnd() { return std::move(initiator_end_); }
  Fd TakeResponderEnd() { return std::move(responder_end_); }

 private:
  static bool ReadAll(int fd, std::byte* p, size_t n) {
    while (n > 0) {
      ssize_t r = ::recv(fd, p, n, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      p += r;
      n -= static_cast<size_t>(r);
    }
    return true;
  }

  static void Pump(int from, int to, const Edit& edit) {
    Send send = [to](std::span<const std::byte> b) {
      size_t done = 0;
      while (done < b.size()) {
        ssize_t r = ::send(to, b.data() + done, b.size() - done, MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return;
        done += static_cast<size_t>(r);
      }
    };
    for (size_t index = 0;; ++index) {
      size_t head = index < 2 ? 2 : 5;
      std::vector<std::byte> unit(head);
      if (!ReadAll(from, unit.data(), head)) break;
      size_t len = index < 2 ? (size_t(unit[0]) | size_t(unit[1]) << 8) : GetLe32(unit.data());
      if (len > (8u << 20)) break;
      unit.resize(head + len);
      if (!ReadAll(from, unit.data() + head, len)) break;
      bool go_on = true;
      if (edit) {
        go_on = edit(index, unit, send);
      } else {
        send(unit);
      }
      if (!go_on) break;
    }
    ::shutdown(to, SHUT_WR);
  }

  Fd initiator_end_, responder_end_, a_, b_;
  std::thread up_, down_;
};

}  // namespace sparetime::testing

#endif  // SPARETIME_TESTS_TRANSPORT_RELAY_H_
