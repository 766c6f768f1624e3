// One privsep message over a SOCK_SEQPACKET socket (see privsep_io.h).
#include "privsep_io.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "sparetime/privsep/protocol.h"

namespace sparetime::privsep::detail {

Status SendMessage(int socket, std::span<const std::byte> bytes, const std::vector<int>& fds) {
  struct iovec iov {
    const_cast<std::byte*>(bytes.data()), bytes.size()
  };
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
  if (!fds.empty()) {
    if (fds.size() > kMaxFds) return Internal("privsep: too many descriptors for one message");
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  for (;;) {
    ssize_t n = ::sendmsg(socket, &msg, MSG_NOSIGNAL);
    if (n >= 0) return Status::Ok();
    if (errno == EINTR) continue;
    if (errno == EPIPE || errno == ECONNRESET) {
      return Unavailable("the other end of the privsep socket is closed");
    }
    return ErrnoStatus("privsep send", errno);
  }
}

Result<size_t> ReceiveMessage(int socket, std::span<std::byte> buf, std::vector<Fd>* fds) {
  struct iovec iov {
    buf.data(), buf.size()
  };
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * (kMaxFds + 1))] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == ECONNRESET) return Unavailable("the other end of the privsep socket is closed");
    return ErrnoStatus("privsep receive", errno);
  }
  std::vector<Fd> got;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      got.emplace_back(fd);
    }
  }
  if (n == 0 && got.empty()) {
    return Unavailable("the other end of the privsep socket is closed");
  }
  if ((msg.msg_flags & MSG_CTRUNC) != 0) {
    return InvalidArgument("privsep: a message carried more descriptors than allowed");
  }
  if ((msg.msg_flags & MSG_TRUNC) != 0) {
    return InvalidArgument("privsep: a message longer than " + std::to_string(buf.size() - 1) +
                           " bytes");
  }
  if (!got.empty() && fds == nullptr) {
    return InvalidArgument("privsep: a request carried descriptors");
  }
  if (fds != nullptr) *fds = std::move(got);
  return static_cast<size_t>(n);
}

}  // namespace sparetime::privsep::detail
