// TCP listen/accept/connect with timeouts (getaddrinfo, non-blocking connect
// finished in poll). Invariant: every descriptor is SOCK_CLOEXEC and owned by
// an Fd from the moment it exists.
#include "sparetime/transport/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "sparetime/base/clock.h"

namespace sparetime::transport {
namespace {

using std::chrono::milliseconds;

struct AddrInfoFree {
  void operator()(addrinfo* ai) const { ::freeaddrinfo(ai); }
};
using AddrInfo = std::unique_ptr<addrinfo, AddrInfoFree>;

std::string Endpoint(const std::string& host, uint16_t port) {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
         std::to_string(port);
}

Result<AddrInfo> Resolve(const std::string& host, uint16_t port, int flags) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = flags;
  addrinfo* res = nullptr;
  std::string service = std::to_string(port);
  int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
  if (rc != 0) {
    return Unavailable("cannot resolve '" + host + "': " + ::gai_strerror(rc) +
                       " (check the address in the directory or the config)");
  }
  return AddrInfo(res);
}

void SetNoDelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // best effort
}

// Waits for `events` on fd until `deadline`; false on timeout.
Result<bool> PollUntil(int fd, short events, std::chrono::steady_clock::time_point deadline,
                       const std::string& what) {
  for (;;) {
    auto left =
        std::chrono::ceil<milliseconds>(deadline - SystemClock().MonoNow()).count();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, static_cast<int>(left > 60'000 ? 60'000 : left));
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return ErrnoStatus("poll while " + what, errno);
  }
}

// One attempt at one resolved address.
Result<Fd> ConnectOne(const addrinfo& ai, std::chrono::steady_clock::time_point deadline,
                      const std::string& endpoint) {
  Fd fd(::socket(ai.ai_family, ai.ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai.ai_protocol));
  if (!fd.valid()) return ErrnoStatus("socket for " + endpoint, errno);
  if (::connect(fd.get(), ai.ai_addr, ai.ai_addrlen) != 0) {
    if (errno != EINPROGRESS && errno != EINTR) {
      return Unavailable("cannot connect to " + endpoint + ": " + std::strerror(errno));
    }
    ST_ASSIGN_OR_RETURN(bool ready, PollUntil(fd.get(), POLLOUT, deadline, "connecting"));
    if (!ready) return Unavailable("connecting to " + endpoint + " timed out");
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) return Unavailable("cannot connect to " + endpoint + ": " + std::strerror(err));
  }
  int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0) {
    return ErrnoStatus("fcntl on the socket to " + endpoint, errno);
  }
  SetNoDelay(fd.get());
  return fd;
}

}  // namespace

Result<Fd> ListenTcp(const std::string& address, uint16_t port, int backlog) {
  ST_ASSIGN_OR_RETURN(AddrInfo ai, Resolve(address, port, AI_NUMERICHOST | AI_PASSIVE));
  std::string endpoint = Endpoint(address, port);
  Fd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
  if (!fd.valid()) return ErrnoStatus("socket for " + endpoint, errno);
  int one = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
    return ErrnoStatus("SO_REUSEADDR on " + endpoint, errno);
  }
  if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
    return ErrnoStatus("bind " + endpoint + " (is another agent already listening there?)", errno);
  }
  if (::listen(fd.get(), backlog) != 0) return ErrnoStatus("listen on " + endpoint, errno);
  return fd;
}

Result<uint16_t> LocalPort(const Fd& socket) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(socket.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return ErrnoStatus("getsockname", errno);
  }
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return InvalidArgument("not a TCP socket");
}

Result<Fd> AcceptTcp(const Fd& listener, milliseconds timeout) {
  auto deadline = SystemClock().MonoNow() + timeout;
  for (;;) {
    ST_ASSIGN_OR_RETURN(bool ready, PollUntil(listener.get(), POLLIN, deadline, "accepting"));
    if (!ready) {
      return Unavailable("no connection arrived within " + std::to_string(timeout.count()) + " ms");
    }
    Fd fd(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (fd.valid()) {
      int flags = ::fcntl(fd.get(), F_GETFL);
      if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0) {
        return ErrnoStatus("fcntl on an accepted socket", errno);
      }
      SetNoDelay(fd.get());
      return fd;
    }
    // The connection may have gone away between poll and accept: wait again.
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED) {
      return ErrnoStatus("accept", errno);
    }
  }
}

Result<Fd> ConnectTcp(const std::string& host, uint16_t port, milliseconds timeout) {
  auto deadline = SystemClock().MonoNow() + timeout;
  std::string endpoint = Endpoint(host, port);
  ST_ASSIGN_OR_RETURN(AddrInfo list, Resolve(host, port, 0));
  Status last = Unavailable("no address found for " + endpoint);
  for (addrinfo* ai = list.get(); ai != nullptr; ai = ai->ai_next) {
    Result<Fd> fd = ConnectOne(*ai, deadline, endpoint);
    if (fd.ok()) return fd;
    last = fd.error();
  }
  return last;
}

std::string PeerAddress(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "unconnected socket";
  char host[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    return Endpoint(host, ntohs(a->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    return Endpoint(host, ntohs(a->sin6_port));
  }
  return "local socket";
}

}  // namespace sparetime::transport
