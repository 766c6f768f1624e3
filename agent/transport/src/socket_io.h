// Deadline-bounded socket I/O for the session layer. Internal.
//
// Every call finishes by its deadline: the socket is only ever read and
// written with MSG_DONTWAIT, and waits happen in poll() with the time left
// by the Clock. EINTR is retried; SIGPIPE is never raised (MSG_NOSIGNAL).
// A peer that closes, resets or stalls past the deadline is kUnavailable.
#ifndef SPARETIME_TRANSPORT_SOCKET_IO_H_
#define SPARETIME_TRANSPORT_SOCKET_IO_H_

#include <chrono>
#include <cstddef>
#include <span>
#include <string_view>

#include "sparetime/base/clock.h"
#include "sparetime/base/status.h"

namespace sparetime::transport::internal {

struct Deadline {
  const Clock* clock;
  std::chrono::steady_clock::time_point at;
  std::chrono::milliseconds limit;  // for messages

  static Deadline After(const Clock& clock, std::chrono::milliseconds limit) {
    return {&clock, clock.MonoNow() + limit, limit};
  }
};

// Reads exactly buf.size() bytes. `what` names the item for errors.
Status ReadFull(int fd, std::span<std::byte> buf, const Deadline& deadline, std::string_view what);
// Writes all of buf.
Status WriteFull(int fd, std::span<const std::byte> buf, const Deadline& deadline,
                 std::string_view what);
// One non-blocking attempt to send `buf` (a parting REJECT); errors ignored.
void SendBestEffort(int fd, std::span<const std::byte> buf);

}  // namespace sparetime::transport::internal

#endif  // SPARETIME_TRANSPORT_SOCKET_IO_H_
