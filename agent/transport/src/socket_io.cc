// poll()-with-deadline reads and writes on a connected socket.
#include "socket_io.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

namespace sparetime::transport::internal {
namespace {

std::string Progress(size_t done, size_t total) {
  return " (got " + std::to_string(done) + " of " + std::to_string(total) + " bytes)";
}

Status ConnectionError(int err, std::string_view what, size_t done, size_t total) {
  switch (err) {
    case ECONNRESET:
    case EPIPE:
    case ENOTCONN:
    case ETIMEDOUT:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case ENETDOWN:
    case ECONNABORTED:
      return Unavailable("connection lost during " + std::string(what) + ": " +
                         std::strerror(err) + Progress(done, total));
    default:
      return ErrnoStatus(std::string(what), err);
  }
}

// Waits until `events` are ready on fd or the deadline passes.
Status Wait(int fd, short events, const Deadline& deadline, std::string_view what, size_t done,
            size_t total) {
  for (;;) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline.at -
                                                             deadline.clock->MonoNow());
    if (left.count() <= 0) {
      return Unavailable("timed out after " + std::to_string(deadline.limit.count()) +
                         " ms during " + std::string(what) + Progress(done, total) +
                         ": the peer is stalled, too slow, or trickling bytes");
    }
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 60'000)));
    if (r > 0) return Status::Ok();  // ready, or HUP/ERR: the next call reports it
    if (r < 0 && errno != EINTR) return ErrnoStatus("poll during " + std::string(what), errno);
  }
}

}  // namespace

Status ReadFull(int fd, std::span<std::byte> buf, const Deadline& deadline, std::string_view what) {
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t n = ::recv(fd, buf.data() + done, buf.size() - done, MSG_DONTWAIT);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n == 0) {
      return Unavailable("the peer closed the connection during " + std::string(what) +
                         Progress(done, buf.size()));
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      ST_RETURN_IF_ERROR(Wait(fd, POLLIN, deadline, what, done, buf.size()));
    } else if (errno != EINTR) {
      return ConnectionError(errno, what, done, buf.size());
    }
  }
  return Status::Ok();
}

Status WriteFull(int fd, std::span<const std::byte> buf, const Deadline& deadline,
                 std::string_view what) {
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t n = ::send(fd, buf.data() + done, buf.size() - done, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) {
      done += static_cast<size_t>(n);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      ST_RETURN_IF_ERROR(Wait(fd, POLLOUT, deadline, what, done, buf.size()));
    } else if (errno != EINTR) {
      return ConnectionError(errno, what, done, buf.size());
    }
  }
  return Status::Ok();
}

void SendBestEffort(int fd, std::span<const std::byte> buf) {
  ssize_t n;
  do {
    n = ::send(fd, buf.data(), buf.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
}

}  // namespace sparetime::transport::internal
